//! The report: percentiles, the table and the JSON.

use super::*;

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quantiles {
    pub(crate) count: u64,
    pub(crate) mean: f64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p99_9: f64,
    pub(crate) max: f64,
}

impl Quantiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "count": self.count, "mean": self.mean, "p50": self.p50, "p90": self.p90,
            "p99": self.p99, "p99_9": self.p99_9, "max": self.max,
        })
    }
}

pub(crate) struct Report {
    /// Seconds over which accepted/s counts: the window, or a burst's
    /// first SEND to its last answer.
    pub(crate) window_s: f64,
    /// Seconds over which delivered/s and CPU count: the window, or a
    /// burst's first SEND to its last delivery.
    pub(crate) delivery_window_s: f64,
    pub(crate) accepted: u64,
    pub(crate) refused: u64,
    pub(crate) errors: u64,
    pub(crate) outside_accepted: u64,
    pub(crate) outside_refused: u64,
    pub(crate) outside_errors: u64,
    pub(crate) missed: u64,
    pub(crate) deliveries_in_window: u64,
    /// From the last SEND's answer to the last delivery; None when the
    /// deliveries did not all arrive in time.
    pub(crate) drain_s: Option<f64>,
    /// (message, destination) pairs accepted but not delivered.
    pub(crate) undelivered: u64,
    pub(crate) duplicates: u64,
    pub(crate) malformed: u64,
    /// Deliveries of messages no SEND was answered for.
    pub(crate) unmatched: u64,
    pub(crate) accept: Quantiles,
    pub(crate) delivered: Quantiles,
    pub(crate) first_refusal: Option<String>,
    pub(crate) first_error: Option<String>,
    pub(crate) engine: String,
    /// CPU seconds used in the window by the engine and by this process
    /// (senders and receiver).
    pub(crate) engine_cpu_s: f64,
    pub(crate) tool_cpu_s: f64,
}

/// Milliseconds, to three significant figures or so.
pub(crate) fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(crate) fn table(args: &Args, r: &Report) -> String {
    let (mode, length) = match (args.rate, args.messages) {
        (Some(rate), _) => {
            (format!("open loop at {rate} SENDs/s"), format!("{} s (+{} s warm-up)", args.duration, args.warmup))
        }
        (None, Some(n)) => ("burst".to_owned(), format!("{n} messages")),
        (None, None) => ("closed loop".to_owned(), format!("{} s (+{} s warm-up)", args.duration, args.warmup)),
    };
    let mut t = format!(
        "ferrox load: {}, {mode}, {} B payloads, {}{}, {length}\n",
        plural(args.connections, "connection", "connections"),
        args.payload,
        plural(args.destinations, "destination", "destinations"),
        if args.lanes > 1 { format!(" ({} lanes each)", args.lanes) } else { String::new() },
    );
    let missed = if args.rate.is_some() { format!(", {} not sent in time", r.missed) } else { String::new() };
    t += &format!(
        "accepted   {:>7.0}/s   ({} answers 200, {} refused, {} errors{missed})\n",
        r.accepted as f64 / r.window_s,
        r.accepted,
        r.refused,
        r.errors
    );
    let drained = match r.drain_s {
        Some(s) => format!("drained {s:.1} s after the last SEND"),
        None => {
            format!("NOT drained: {} deliveries missing {} s after the last SEND", r.undelivered, args.drain_limit)
        }
    };
    t += &format!("delivered  {:>7.0}/s   ({drained})\n", r.deliveries_in_window as f64 / r.delivery_window_s);
    t += &format!(
        "cpu        engine {:.2} cores, load tool {:.2} cores (of {} on this machine)\n",
        r.engine_cpu_s / r.delivery_window_s,
        r.tool_cpu_s / r.delivery_window_s,
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    t += &format!("{:<14}{:>10}{:>10}{:>10}{:>10}{:>10}\n", "", "p50", "p90", "p99", "p99.9", "max");
    for (name, q) in [("accept", &r.accept), ("accept→deliv", &r.delivered)] {
        t += &format!(
            "{name:<14}{:>10}{:>10}{:>10}{:>10}{:>10}\n",
            ms(q.p50),
            ms(q.p90),
            ms(q.p99),
            ms(q.p99_9),
            ms(q.max)
        );
    }
    if r.missed > 0 {
        t += &format!("the engine fell behind the rate: {} SENDs scheduled before the end were never sent\n", r.missed);
    }
    if r.outside_refused + r.outside_errors > 0 {
        t += &format!(
            "outside the window (warm-up, last answers): {} refused, {} errors\n",
            r.outside_refused, r.outside_errors
        );
    }
    if r.duplicates + r.malformed + r.unmatched > 0 {
        t += &format!(
            "receiver: {} deliveries repeated, {} without a message ID, {} of messages never acknowledged to a sender\n",
            r.duplicates, r.malformed, r.unmatched
        );
    }
    if let Some(refusal) = &r.first_refusal {
        t += &format!("first refusal: {refusal}\n");
    }
    if let Some(error) = &r.first_error {
        t += &format!("first error: {error}\n");
    }
    t
}

pub(crate) fn report_json(args: &Args, r: &Report) -> Value {
    json!({
        "engine": r.engine,
        "connections": args.connections,
        "mode": if args.rate.is_some() { "open" } else if args.messages.is_some() { "burst" } else { "closed" },
        "rate_per_s": args.rate,
        "messages": args.messages,
        "payload_bytes": args.payload,
        "destinations": args.destinations,
        "lanes": args.lanes,
        "receiver_delay_ms": args.receiver_delay_ms,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "accepted": r.accepted,
        "refused": r.refused,
        "errors": r.errors,
        "missed": r.missed,
        "outside_window_accepted": r.outside_accepted,
        "outside_window_refused": r.outside_refused,
        "outside_window_errors": r.outside_errors,
        "accepted_per_s": r.accepted as f64 / r.window_s,
        "deliveries_in_window": r.deliveries_in_window,
        "delivered_per_s": r.deliveries_in_window as f64 / r.delivery_window_s,
        "drained": r.drain_s.is_some(),
        "drain_s": r.drain_s,
        "undelivered": r.undelivered,
        "duplicate_deliveries": r.duplicates,
        "malformed_deliveries": r.malformed,
        "unmatched_deliveries": r.unmatched,
        "accept_ms": r.accept.json(),
        "accept_to_delivered_ms": r.delivered.json(),
        "engine_cpu_s": r.engine_cpu_s,
        "tool_cpu_s": r.tool_cpu_s,
        "cores": thread::available_parallelism().map_or(0, |n| n.get()),
        "first_refusal": r.first_refusal,
        "first_error": r.first_error,
    })
}

pub(crate) fn output(args: &Args, report: &Report) -> Result<(), String> {
    let table = table(args, report);
    let Some(path) = &args.json else {
        print!("{table}");
        return Ok(());
    };
    let text = serde_json::to_string_pretty(&report_json(args, report)).map_err(|e| format!("JSON: {e}"))?;
    if path == "-" {
        eprint!("{table}");
        println!("{text}");
    } else {
        print!("{table}");
        let mut file = File::create(path).map_err(|e| format!("{path}: {e}"))?;
        writeln!(file, "{text}").map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}
