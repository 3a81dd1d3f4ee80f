//! The engine's metrics (SPEC §16), kept with `prometheus-client` and served
//! at `/metrics` in the OpenMetrics text format, which Prometheus reads.
//!
//! Two kinds live here. Events are counted and timed where they happen:
//! SENDs by answer, the time to accept one (its `fdatasync` included), each
//! write-ahead log sync, each delivery attempt by destination and outcome,
//! and the time from acceptance to delivery. Levels (logs by status, queue
//! depths, the journal's positions) are read from the engine's state when
//! `/metrics` is asked, by [`Levels`], so they cannot drift from it.

use std::{fmt::Write as _, sync::Arc, time::Duration};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, text::encode},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};

use crate::model::Id;

/// Upper bounds of the sub-millisecond to one-second buckets (seconds):
/// accepting a SEND and syncing the log.
const FAST_BUCKETS_S: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Upper bounds of the delivery buckets (seconds): an attempt is bounded by
/// the destination's timeout; accepted-to-delivered includes queueing and
/// retries, so it reaches hours.
const DELIVERY_BUCKETS_S: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
const DELIVERED_BUCKETS_S: [f64; 16] =
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    /// `redox` (`POST /endpoint`) or `fhir` (`POST /fhir/R4/$process-message`).
    api: &'static str,
    /// The HTTP status answered.
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    destination: Id,
}

/// A destination's ID as its label: formatted only at a scrape, so that
/// counting an attempt neither formats nor allocates.
impl EncodeLabelValue for Id {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        write!(encoder, "{self}")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    destination: Id,
    /// `success` (2xx), `http_error` (another status) or `transport_error`
    /// (no answer: refused, timed out, TLS, or egress rules).
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndedLabels {
    destination: Id,
    /// The status the log took: `Succeeded`, `Failed`, `Filtered`,
    /// `ProcessingFailed` or `Retrying` (a production failure, to be retried).
    status: &'static str,
}

/// What an attempt came to, for its label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Success,
    HttpError,
    TransportError,
}

impl AttemptOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::HttpError => "http_error",
            Self::TransportError => "transport_error",
        }
    }
}

/// Reads the engine's levels into the exposition at each scrape.
pub trait Levels: Send + Sync {
    /// Appends gauge families in the OpenMetrics text format.
    fn write(&self, out: &mut String);
}

/// Every metric the engine counts or times.
pub struct Metrics {
    registry: Registry,
    sends: Family<SendLabels, Counter>,
    accept: Histogram,
    wal_sync: Histogram,
    wal_sync_records: Counter,
    attempts: Family<AttemptLabels, Counter>,
    attempt_time: Family<DestinationLabels, Histogram>,
    delivered: Family<DestinationLabels, Histogram>,
    ended: Family<EndedLabels, Counter>,
    levels: parking_lot::RwLock<Option<Arc<dyn Levels>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn attempt_histogram() -> Histogram {
    Histogram::new(DELIVERY_BUCKETS_S.iter().copied())
}

fn delivered_histogram() -> Histogram {
    Histogram::new(DELIVERED_BUCKETS_S.iter().copied())
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferrox");
        let sends = Family::<SendLabels, Counter>::default();
        registry.register("sends", "SEND requests answered, by API and HTTP status", sends.clone());
        let accept = Histogram::new(FAST_BUCKETS_S.iter().copied());
        registry.register_with_unit(
            "accept",
            "Time to accept a SEND: from its handling's start (body read, checks, journal, sync) to its answer",
            Unit::Seconds,
            accept.clone(),
        );
        let wal_sync = Histogram::new(FAST_BUCKETS_S.iter().copied());
        registry.register_with_unit(
            "wal_sync",
            "Time of each write-ahead log sync: the batch's writes and its fdatasync",
            Unit::Seconds,
            wal_sync.clone(),
        );
        let wal_sync_records = Counter::default();
        registry.register("wal_synced_records", "Records made durable by the syncs", wal_sync_records.clone());
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register("delivery_attempts", "Delivery attempts, by destination and outcome", attempts.clone());
        let attempt_time = Family::new_with_constructor(attempt_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "delivery_attempt",
            "Time of each delivery attempt, by destination",
            Unit::Seconds,
            attempt_time.clone(),
        );
        let delivered = Family::new_with_constructor(delivered_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "accepted_to_delivered",
            "Time from a message's acceptance to its successful delivery, by destination",
            Unit::Seconds,
            delivered.clone(),
        );
        let ended = Family::<EndedLabels, Counter>::default();
        registry.register(
            "log_outcomes",
            "Logs' processing and delivery outcomes, by destination and status",
            ended.clone(),
        );
        Self {
            registry,
            sends,
            accept,
            wal_sync,
            wal_sync_records,
            attempts,
            attempt_time,
            delivered,
            ended,
            levels: parking_lot::RwLock::new(None),
        }
    }

    /// Where the levels come from; set once the engine's state exists.
    pub fn read_levels_from(&self, levels: Arc<dyn Levels>) {
        *self.levels.write() = Some(levels);
    }

    /// A SEND answered with `code` after `took`; `took` is counted only for
    /// an accepted one.
    pub fn send(&self, fhir: bool, code: u16, took: Duration) {
        let api = if fhir { "fhir" } else { "redox" };
        self.sends.get_or_create(&SendLabels { api, code }).inc();
        if code == 200 {
            self.accept.observe(took.as_secs_f64());
        }
    }

    /// One write-ahead log sync of `records` records.
    pub fn wal_synced(&self, took: Duration, records: u64) {
        self.wal_sync.observe(took.as_secs_f64());
        self.wal_sync_records.inc_by(records);
    }

    /// One delivery attempt to `destination`.
    pub fn attempt(&self, destination: Id, outcome: AttemptOutcome, took_ms: u64) {
        self.attempt_time
            .get_or_create(&DestinationLabels { destination })
            .observe(Duration::from_millis(took_ms).as_secs_f64());
        self.attempts.get_or_create(&AttemptLabels { destination, outcome: outcome.label() }).inc();
    }

    /// A message delivered to `destination`, `since_accepted_ms` after it
    /// was accepted.
    pub fn delivered(&self, destination: Id, since_accepted_ms: i64) {
        let seconds = Duration::from_millis(u64::try_from(since_accepted_ms).unwrap_or(0)).as_secs_f64();
        self.delivered.get_or_create(&DestinationLabels { destination }).observe(seconds);
    }

    /// A log of `destination` took `status` as its processing's or
    /// delivery's outcome.
    pub fn outcome(&self, destination: Id, status: &'static str) {
        self.ended.get_or_create(&EndedLabels { destination, status }).inc();
    }

    /// The whole exposition: the levels, then the counted and timed metrics,
    /// ending with `# EOF`.
    pub fn exposition(&self) -> String {
        let mut out = String::new();
        if let Some(levels) = self.levels.read().as_ref() {
            levels.write(&mut out);
        }
        if encode(&mut out, &self.registry).is_err() {
            let _ = writeln!(out, "# EOF");
        }
        out
    }
}

/// Writes one gauge family's header.
pub fn gauge_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// Writes one counter family's header and its single value; OpenMetrics
/// names the family without `_total` and the sample with it.
pub fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name}_total {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_times_land_in_the_exposition() {
        let metrics = Metrics::new();
        let destination = Id(7);
        metrics.send(false, 200, Duration::from_micros(700));
        metrics.send(false, 400, Duration::from_micros(50));
        metrics.wal_synced(Duration::from_micros(900), 3);
        metrics.attempt(destination, AttemptOutcome::HttpError, 12);
        metrics.attempt(destination, AttemptOutcome::Success, 4);
        metrics.delivered(destination, 1500);
        metrics.outcome(destination, "Succeeded");
        let text = metrics.exposition();
        assert!(text.contains("ferrox_sends_total{api=\"redox\",code=\"200\"} 1"), "{text}");
        assert!(text.contains("ferrox_sends_total{api=\"redox\",code=\"400\"} 1"), "{text}");
        // Only the accepted SEND is timed; 0.7 ms falls in the 1 ms bucket.
        assert!(text.contains("ferrox_accept_seconds_count 1"), "{text}");
        assert!(text.contains("ferrox_accept_seconds_bucket{le=\"0.0005\"} 0"), "{text}");
        assert!(text.contains("ferrox_accept_seconds_bucket{le=\"0.001\"} 1"), "{text}");
        assert!(text.contains("ferrox_wal_synced_records_total 3"), "{text}");
        let id = destination.to_string();
        assert!(
            text.contains(&format!("ferrox_delivery_attempts_total{{destination=\"{id}\",outcome=\"http_error\"}} 1")),
            "{text}"
        );
        assert!(text.contains(&format!("ferrox_delivery_attempt_seconds_count{{destination=\"{id}\"}} 2")), "{text}");
        assert!(
            text.contains(&format!("ferrox_accepted_to_delivered_seconds_bucket{{le=\"1.0\",destination=\"{id}\"}} 0"))
                || text.contains(&format!(
                    "ferrox_accepted_to_delivered_seconds_bucket{{destination=\"{id}\",le=\"1.0\"}} 0"
                )),
            "{text}"
        );
        assert!(
            text.contains(&format!("ferrox_log_outcomes_total{{destination=\"{id}\",status=\"Succeeded\"}} 1")),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
