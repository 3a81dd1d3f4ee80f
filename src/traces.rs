//! Traces (SPEC §16): with `otlp_endpoint` set, one span per SEND, per
//! delivery attempt and per query, carrying the message and log IDs,
//! exported over OTLP/HTTP (JSON) to a collector.
//!
//! Spans are queued in memory and exported in batches from a thread of the
//! exporter's own, so tracing never waits on the collector: when it is slow
//! or down, the queue is bounded and spans past it are dropped, never the
//! messages they describe. Without `otlp_endpoint`, every span is a no-op.

use std::{borrow::Cow, thread, time::Duration};

use opentelemetry::{
    KeyValue,
    trace::{Span as _, Status, Tracer as _, TracerProvider as _},
};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, Span, Tracer},
};

use crate::limits;

/// Where spans go, if anywhere.
pub struct Traces {
    export: Option<(SdkTracerProvider, Tracer)>,
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traces").field("exporting", &self.export.is_some()).finish()
    }
}

/// The collector's traces URL: `otlp_endpoint` is the collector's base URL
/// (as `OTEL_EXPORTER_OTLP_ENDPOINT` is), unless it already names the path.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") }
}

impl Traces {
    /// No export: every span is a no-op.
    pub fn off() -> Self {
        Self { export: None }
    }

    /// Exports to the OTLP/HTTP collector at `endpoint`.
    pub fn export_to(endpoint: &str) -> Result<Self, String> {
        let url = traces_url(endpoint);
        // The exporter's blocking HTTP client owns a runtime of its own, which
        // may be neither built nor dropped on an async thread: build it on a
        // plain one.
        let built = thread::spawn(move || {
            SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .with_endpoint(url)
                .with_timeout(Duration::from_millis(limits::OTLP_EXPORT_TIMEOUT_MS))
                .build()
        })
        .join()
        .map_err(|_| "the OTLP exporter could not be built".to_owned())?;
        let exporter = built.map_err(|e| format!("otlp_endpoint {endpoint}: {e}"))?;
        let batches = BatchConfigBuilder::default()
            .with_scheduled_delay(Duration::from_millis(limits::OTLP_EXPORT_INTERVAL_MS))
            .with_max_queue_size(limits::OTLP_QUEUED_SPANS)
            .build();
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batches).build();
        let resource = Resource::builder_empty()
            .with_attributes([
                KeyValue::new("service.name", "ferrox"),
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            ])
            .build();
        let provider = SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build();
        let tracer = provider.tracer("ferrox");
        Ok(Self { export: Some((provider, tracer)) })
    }

    /// Starts a span named `name`; it ends when dropped.
    pub fn span(&self, name: &'static str) -> TraceSpan {
        TraceSpan(self.export.as_ref().map(|(_, tracer)| tracer.start(name)))
    }

    /// Exports what is queued and stops the exporter; spans started after
    /// this are dropped.
    pub fn shutdown(&self) {
        if let Some((provider, _)) = &self.export {
            // A collector that is down must not hold up the engine's stop;
            // the exporter's timeout bounds this, and its error is only logged.
            let provider = provider.clone();
            let done = thread::spawn(move || provider.shutdown()).join();
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "the last spans could not be exported");
            }
        }
    }
}

/// One span, or nothing when traces are off.
pub struct TraceSpan(Option<Span>);

impl std::fmt::Debug for TraceSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceSpan").field("recording", &self.0.is_some()).finish()
    }
}

impl TraceSpan {
    /// Sets a text attribute; `value` is formatted only when traces are on.
    pub fn set(&mut self, key: &'static str, value: impl std::fmt::Display) {
        if let Some(span) = &mut self.0 {
            span.set_attribute(KeyValue::new(key, value.to_string()));
        }
    }

    /// Sets a text attribute made by `value`, called only when traces are on.
    pub fn set_with(&mut self, key: &'static str, value: impl FnOnce() -> String) {
        if let Some(span) = &mut self.0 {
            span.set_attribute(KeyValue::new(key, value()));
        }
    }

    /// Sets a whole-number attribute.
    pub fn set_i64(&mut self, key: &'static str, value: i64) {
        if let Some(span) = &mut self.0 {
            span.set_attribute(KeyValue::new(key, value));
        }
    }

    /// Marks the span as failed, with why.
    pub fn fail(&mut self, why: impl Into<Cow<'static, str>>) {
        if let Some(span) = &mut self.0 {
            span.set_status(Status::error(why));
        }
    }
}

impl Drop for TraceSpan {
    fn drop(&mut self) {
        if let Some(span) = &mut self.0 {
            span.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_to_a_base_url_only() {
        assert_eq!(traces_url("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces_url("http://127.0.0.1:4318/"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/otel/v1/traces"), "http://c:4318/otel/v1/traces");
    }

    #[test]
    fn spans_are_no_ops_when_traces_are_off() {
        let traces = Traces::off();
        let mut span = traces.span("send");
        span.set("ferrox.message_id", "1");
        span.fail("no");
        assert!(span.0.is_none());
    }
}
