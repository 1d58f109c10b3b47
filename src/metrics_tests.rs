//! Unit tests of the metrics: the exposition names every metric, a gauge guard lowers its
//! gauge when dropped (apart from metrics.rs so that file reads as the code).

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::audit::Outcome;
use crate::run::{CallTransport, RunPath};

#[test]
fn the_exposition_names_every_metric_the_operator_graphs() {
    let m = metrics();
    m.runs
        .get_or_create(&RunLabels {
            outcome: Outcome::TimedOut.into(),
            transport: CallTransport::Stdio.into(),
            path: RunPath::Background.into(),
        })
        .inc();
    m.refused(RefusalReason::quota);
    m.auth_failed(AuthFailure::insufficient_scope);
    m.http_requests
        .get_or_create(&StatusLabels { status: 429 })
        .inc();
    m.codex_tokens
        .get_or_create(&TokenLabels {
            kind: TokenKind::cached_input,
        })
        .inc_by(7);
    m.run_duration.observe(0.3);
    let text = m.encode();
    for needle in [
        r#"twobot_runs_total{outcome="timed_out",transport="stdio",path="background"}"#,
        "twobot_run_duration_seconds_bucket",
        "twobot_runs_active ",
        "twobot_runs_queued ",
        r#"twobot_refusals_total{reason="quota"}"#,
        r#"twobot_http_requests_total{status="429"}"#,
        r#"twobot_auth_failures_total{reason="insufficient_scope"}"#,
        "twobot_rate_limited_total",
        "twobot_sessions_active ",
        r#"twobot_codex_tokens_total{kind="cached_input"}"#,
        "# TYPE twobot_runs_total counter",
        "# HELP twobot_runs_total ",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(
        !text.contains("# EOF") && !text.contains("# UNIT"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE twobot_run_duration_seconds histogram"),
        "{text}"
    );
}

#[test]
fn a_gauge_guard_lowers_the_gauge_when_dropped() {
    let m = metrics();
    let before = m.sessions_active.get();
    {
        let _g = GaugeGuard::raise(&m.sessions_active);
        assert_eq!(m.sessions_active.get(), before + 1);
    }
    assert_eq!(m.sessions_active.get(), before);
}
