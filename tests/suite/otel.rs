//! OpenTelemetry: spans reach an OTLP/HTTP collector, continuing the caller's trace.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

use crate::common::http::*;

/// A collector on 127.0.0.1 that keeps every span it is sent.
async fn collector() -> Result<(String, Arc<Mutex<Vec<Span>>>)> {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let store = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let store = store.clone();
            async move {
                if let Ok(req) = ExportTraceServiceRequest::decode(body) {
                    let mut all = store.lock().unwrap();
                    for rs in req.resource_spans {
                        for ss in rs.scope_spans {
                            all.extend(ss.spans);
                        }
                    }
                }
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{addr}"), spans))
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Any::StringValue(s) => s.clone(),
            Any::IntValue(i) => i.to_string(),
            Any::BoolValue(b) => b.to_string(),
            other => format!("{other:?}"),
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn spans_are_exported_over_otlp_and_continue_the_callers_trace() -> Result<()> {
    let (endpoint, spans) = collector().await?;
    let server = spawn_http(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await?;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let session = raw_session(&server.url, None).await?;
    let call = json!({"jsonrpc":"2.0","id":7,"method":"tools/call",
        "params":{"name":"run_codex_prompt","arguments":{"prompt":"scenario:ok"}}});
    let response = post(&server.url, &call)
        .header("mcp-session-id", &session)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let body = response.text().await?;
    assert!(body.contains("\"isError\":false"), "{body}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let (http, tool, run) = loop {
        {
            let all = spans.lock().unwrap();
            let find = |name: &str| {
                all.iter()
                    .find(|s| s.name == name && hex(&s.trace_id) == trace_id)
                    .cloned()
            };
            if let (Some(h), Some(t), Some(r)) = (
                all.iter()
                    .find(|s| s.name == "http" && hex(&s.parent_span_id) == caller_span)
                    .cloned(),
                find("tools/call"),
                find("codex_run"),
            ) {
                break (h, t, r);
            }
        }
        let names: Vec<(String, String)> = spans
            .lock()
            .unwrap()
            .iter()
            .map(|s| (s.name.clone(), hex(&s.trace_id)))
            .collect();
        assert!(
            Instant::now() < deadline,
            "spans of trace {trace_id} not all exported: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(hex(&http.trace_id), trace_id);
    assert_eq!(hex(&tool.parent_span_id), caller_span);
    assert_eq!(
        run.parent_span_id, tool.span_id,
        "codex_run is a child of tools/call"
    );
    assert_eq!(attr(&run, "sandbox").as_deref(), Some("read-only"));
    assert_eq!(attr(&run, "exit_code").as_deref(), Some("0"));
    assert!(attr(&run, "cwd").context("cwd")?.ends_with("root"));
    assert!(attr(&run, "duration_ms").is_some());
    assert!(attr(&run, "input_tokens").is_some());
    assert!(attr(&run, "output_tokens").is_some());
    Ok(())
}
