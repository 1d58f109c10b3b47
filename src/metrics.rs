//! Prometheus metrics: what an operator graphs and alerts on.
//!
//! Why `prometheus-client`: it is the Prometheus project's own Rust client, label sets
//! are typed structs (so a label can only take the values its enum has: cardinality is
//! bounded by construction, and no principal, path or prompt can become a label), it has
//! no global registry or exporter server of its own, and the text encoding is the
//! exposition format `promtool check metrics` validates. OpenTelemetry metrics would
//! add a pipeline (reader, exporter) for what is a counter bump here.
//!
//! The metrics are process-wide (one set, [`metrics()`]), recorded whether or not they
//! are served: a bump is an atomic add. [`serve`] exposes them on their own listener
//! (`TWOBOT_METRICS_ADDR`), never on the MCP listener, so scraping needs no MCP
//! credential and the MCP endpoint exposes nothing about the server's load.

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

mod labels;

pub use self::labels::{
    AddressLabels, AddressRefusal, ApprovalLabels, AuthFailure, AuthLabels, ChannelLabel,
    DecisionLabel, OAuthEvent, OAuthLabels, OutcomeLabel, PathLabel, ReasonLabels, RefusalReason,
    RunLabels, StatusLabels, TokenKind, TokenLabels, TransportLabel,
};

/// Every metric 2Bot keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Runs that ended, by outcome, transport and path.
    pub runs: Family<RunLabels, Counter>,
    /// Run wall time, admission to end.
    pub run_duration: Histogram,
    /// Codex processes running now.
    pub runs_active: Gauge,
    /// Calls waiting for a run slot now.
    pub runs_queued: Gauge,
    /// Calls refused before anything ran.
    pub refusals: Family<ReasonLabels, Counter>,
    /// HTTP responses, by status.
    pub http_requests: Family<StatusLabels, Counter>,
    /// Failed authentications.
    pub auth_failures: Family<AuthLabels, Counter>,
    /// Requests answered 429 by the rate limiter.
    pub rate_limited: Counter,
    /// Requests and connections refused by a per-address limit, before auth.
    pub address_refusals: Family<AddressLabels, Counter>,
    /// Live MCP sessions (Streamable HTTP).
    pub sessions_active: Gauge,
    /// Tokens Codex reported, by kind.
    pub codex_tokens: Family<TokenLabels, Counter>,
    /// Audit records that could not be written.
    pub audit_write_failures: Counter,
    /// The built-in authorization server's events.
    pub oauth_events: Family<OAuthLabels, Counter>,
    /// Approval requests answered, by decision and channel.
    pub approvals: Family<ApprovalLabels, Counter>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("twobot");
        let runs = Family::<RunLabels, Counter>::default();
        registry.register("runs", "Codex runs that ended, by outcome", runs.clone());
        // 0.1 s to ~30 min: Codex runs span seconds to the default 1 800 s timeout.
        let run_duration = Histogram::new([
            0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
        ]);
        registry.register_with_unit(
            "run_duration",
            "Wall time of a Codex run, from admission to its end",
            Unit::Seconds,
            run_duration.clone(),
        );
        let runs_active = Gauge::default();
        registry.register(
            "runs_active",
            "Codex processes running now",
            runs_active.clone(),
        );
        let runs_queued = Gauge::default();
        registry.register(
            "runs_queued",
            "Calls waiting for a run slot now",
            runs_queued.clone(),
        );
        let refusals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "refusals",
            "Calls refused before Codex ran, by reason",
            refusals.clone(),
        );
        let http_requests = Family::<StatusLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP responses on the MCP listener, by status",
            http_requests.clone(),
        );
        let auth_failures = Family::<AuthLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Failed authentications, by reason",
            auth_failures.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited",
            "Requests refused by the rate limiter (429)",
            rate_limited.clone(),
        );
        let address_refusals = Family::<AddressLabels, Counter>::default();
        registry.register(
            "address_refusals",
            "Requests and connections refused by a per-address limit before auth (429), by limit",
            address_refusals.clone(),
        );
        for limit in [AddressRefusal::requests, AddressRefusal::connections] {
            let _ = address_refusals.get_or_create(&AddressLabels { limit });
        }
        let sessions_active = Gauge::default();
        registry.register(
            "sessions_active",
            "Live MCP sessions",
            sessions_active.clone(),
        );
        let codex_tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "codex_tokens",
            "Tokens Codex reported, by kind",
            codex_tokens.clone(),
        );
        let audit_write_failures = Counter::default();
        registry.register(
            "audit_write_failures",
            "Audit records that could not be written",
            audit_write_failures.clone(),
        );
        let oauth_events = Family::<OAuthLabels, Counter>::default();
        registry.register(
            "oauth_events",
            "Events of the built-in OAuth authorization server (sign-ins, tokens, replays)",
            oauth_events.clone(),
        );
        let approvals = Family::<ApprovalLabels, Counter>::default();
        registry.register(
            "approvals",
            "Approval requests of Codex runs answered, by decision and channel",
            approvals.clone(),
        );
        // Every series with a closed label set starts at zero, so dashboards and `rate()`
        // see it before its first event rather than a missing series.
        for outcome in [
            OutcomeLabel::ok,
            OutcomeLabel::failed,
            OutcomeLabel::timed_out,
            OutcomeLabel::cancelled,
            OutcomeLabel::refused,
            OutcomeLabel::busy,
        ] {
            for transport in [TransportLabel::stdio, TransportLabel::http] {
                for path in [PathLabel::direct, PathLabel::task, PathLabel::background] {
                    let _ = runs.get_or_create(&RunLabels {
                        outcome,
                        transport,
                        path,
                    });
                }
            }
        }
        for reason in [
            RefusalReason::policy,
            RefusalReason::thread_owner,
            RefusalReason::busy,
            RefusalReason::quota,
            RefusalReason::too_many_runs,
            RefusalReason::spawn,
            RefusalReason::invalid_arguments,
            RefusalReason::disabled,
        ] {
            let _ = refusals.get_or_create(&ReasonLabels { reason });
        }
        for reason in [
            AuthFailure::missing,
            AuthFailure::invalid,
            AuthFailure::insufficient_scope,
            AuthFailure::malformed,
        ] {
            let _ = auth_failures.get_or_create(&AuthLabels { reason });
        }
        for event in [
            OAuthEvent::client_registered,
            OAuthEvent::sign_in_ok,
            OAuthEvent::sign_in_failed,
            OAuthEvent::sign_in_locked,
            OAuthEvent::consent_allowed,
            OAuthEvent::consent_denied,
            OAuthEvent::code_exchanged,
            OAuthEvent::refresh_rotated,
            OAuthEvent::code_replayed,
            OAuthEvent::refresh_replayed,
            OAuthEvent::token_refused,
        ] {
            let _ = oauth_events.get_or_create(&OAuthLabels { event });
        }
        for decision in [
            DecisionLabel::accept,
            DecisionLabel::decline,
            DecisionLabel::cancel,
        ] {
            for channel in [
                ChannelLabel::elicitation,
                ChannelLabel::input_required,
                ChannelLabel::card,
                ChannelLabel::timeout,
                ChannelLabel::unreachable,
                ChannelLabel::run_ended,
                ChannelLabel::policy,
            ] {
                let _ = approvals.get_or_create(&ApprovalLabels { decision, channel });
            }
        }
        for kind in [TokenKind::input, TokenKind::cached_input, TokenKind::output] {
            let _ = codex_tokens.get_or_create(&TokenLabels { kind });
        }
        Self {
            registry,
            runs,
            run_duration,
            runs_active,
            runs_queued,
            refusals,
            http_requests,
            auth_failures,
            rate_limited,
            address_refusals,
            sessions_active,
            codex_tokens,
            audit_write_failures,
            oauth_events,
            approvals,
        }
    }

    /// The exposition, in the Prometheus text format (0.0.4), which every scraper and
    /// `promtool check metrics` read.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        prometheus_text(&out)
    }

    /// Count a refusal.
    pub fn refused(&self, reason: RefusalReason) {
        self.refusals.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Count an answered approval request.
    pub fn approval(
        &self,
        decision: crate::run::control::Decision,
        channel: crate::run::control::Channel,
    ) {
        self.approvals
            .get_or_create(&ApprovalLabels {
                decision: decision.into(),
                channel: channel.into(),
            })
            .inc();
    }

    /// Count an event of the built-in authorization server.
    pub fn oauth(&self, event: OAuthEvent) {
        self.oauth_events
            .get_or_create(&OAuthLabels { event })
            .inc();
    }

    /// Count a refusal by a per-address limit.
    pub fn address_refused(&self, limit: AddressRefusal) {
        self.address_refusals
            .get_or_create(&AddressLabels { limit })
            .inc();
    }

    /// Count an authentication failure.
    pub fn auth_failed(&self, reason: AuthFailure) {
        self.auth_failures
            .get_or_create(&AuthLabels { reason })
            .inc();
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Keeps a gauge raised while alive (a run slot held, a call queued, a session open).
#[derive(Debug)]
pub struct GaugeGuard(&'static Gauge);

impl GaugeGuard {
    /// Raise `gauge` until the guard drops.
    pub fn raise(gauge: &'static Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The content type of the text exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// prometheus-client writes OpenMetrics, where a counter's family is named without its
/// `_total` suffix (`# TYPE twobot_runs counter`, samples `twobot_runs_total`). The
/// Prometheus text format names the family as its samples, so rename counter families,
/// drop OpenMetrics-only lines (`# UNIT`, `# EOF`), and keep everything else as is.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + counters.len() * 12);
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Serve `/metrics` on `listener` until `shutdown` fires. Any other path is 404.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(|| async {
            (
                [(http::header::CONTENT_TYPE, CONTENT_TYPE)],
                metrics().encode(),
            )
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
