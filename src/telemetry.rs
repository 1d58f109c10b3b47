//! Logging and tracing set-up.
//!
//! Logs always go to stderr: in stdio mode stdout is the MCP channel, and one stray byte
//! there breaks the client. Spans are also exported over OTLP/HTTP when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and
//! a caller's W3C `traceparent` continues its trace; with neither variable set no
//! exporter exists and nothing leaves the process.
//!
//! At INFO the log is one line per run, not per protocol message: rmcp's session and
//! `initialize` dumps are held back to DEBUG (see [`directives`]), and a client that
//! cancels by closing its response stream, as 2026-07-28 clients do, is not reported
//! as an ERROR (see `GoneClients`).

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps the exporter alive; [`Telemetry::shutdown`] flushes the spans still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flush and stop the exporter. Call outside the async runtime (it blocks).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("2bot-mcp: flushing OpenTelemetry spans failed: {e}");
        }
    }
}

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the OTLP span exporter: {0}")]
pub struct TelemetryError(String);

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Whether the environment asks for OTLP export (and does not disable the SDK).
pub fn otlp_requested() -> bool {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled
        && (env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Install the global subscriber with `filter` (already validated by `config`), plus the
/// OTLP exporter when the environment asks for it.
pub fn init(filter: &str, json: bool) -> Result<Telemetry, TelemetryError> {
    let provider = if otlp_requested() {
        Some(provider()?)
    } else {
        None
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("2bot-mcp")));
    let directives = directives(filter);
    let filter = EnvFilter::builder()
        .parse(&directives)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let gone = GoneClients {
        keep: matches!(
            filter.max_level_hint(),
            Some(
                tracing::level_filters::LevelFilter::DEBUG
                    | tracing::level_filters::LevelFilter::TRACE
            )
        ),
    };
    let registry = tracing_subscriber::registry()
        .with(gone)
        .with(filter)
        .with(otel);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    if let Err(e) = result {
        eprintln!("2bot-mcp: logging was already initialised: {e}");
    }
    Ok(Telemetry { provider })
}

/// The filter actually installed for the operator's `filter`: when its default level is
/// INFO and it says nothing about rmcp, rmcp is held to WARN, since at INFO rmcp logs
/// every session, notification and the whole `initialize` request. Any explicit
/// `rmcp=…` directive, or a DEBUG/TRACE default, shows them again.
pub fn directives(filter: &str) -> String {
    let parts: Vec<&str> = filter.split(',').map(str::trim).collect();
    let default_is_info = parts.iter().any(|p| p.eq_ignore_ascii_case("info"));
    let mentions_rmcp = parts.iter().any(|p| p.starts_with("rmcp"));
    if default_is_info && !mentions_rmcp {
        format!("{filter},rmcp=warn")
    } else {
        filter.to_owned()
    }
}

/// Drops rmcp's ERROR "failed to send pending response during drain: channel closed":
/// it means only that the client stopped listening before the reply (a 2026-07-28
/// client cancels a call by closing its stream), which is normal. At DEBUG it is kept.
#[derive(Debug, Clone, Copy)]
struct GoneClients {
    keep: bool,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for GoneClients {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let meta = event.metadata();
        if self.keep || *meta.level() != tracing::Level::ERROR || meta.target() != "rmcp::service" {
            return true;
        }
        let mut fields = GoneFields::default();
        event.record(&mut fields);
        !(fields.draining && fields.closed)
    }
}

#[derive(Default)]
struct GoneFields {
    draining: bool,
    closed: bool,
}

impl tracing::field::Visit for GoneFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.draining |= text.contains("pending response during drain"),
            "error" => self.closed |= text.contains("channel closed"),
            _ => {}
        }
    }
}

fn provider() -> Result<SdkTracerProvider, TelemetryError> {
    // Endpoint, headers, timeout and protocol come from the standard OTEL_* variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| TelemetryError(e.to_string()))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("2bot-mcp");
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Make `span` a child of the caller's trace when `headers` carry a W3C `traceparent`.
/// Without OTLP export there is no trace to continue, and this does nothing.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
    if !headers.contains_key(&TRACEPARENT) {
        return;
    }
    let parent =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    // Fails only when no OpenTelemetry layer is installed: nothing to continue then.
    let _ = span.set_parent(parent);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmcp_is_held_to_warn_only_when_the_default_is_info_and_rmcp_is_not_named() {
        for (given, installed) in [
            ("info", "info,rmcp=warn"),
            ("twobot=debug,info", "twobot=debug,info,rmcp=warn"),
            ("debug", "debug"),
            ("warn", "warn"),
            ("info,rmcp=info", "info,rmcp=info"),
            ("twobot=debug,rmcp=info", "twobot=debug,rmcp=info"),
        ] {
            assert_eq!(directives(given), installed, "{given}");
        }
    }
}
