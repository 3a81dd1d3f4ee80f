//! `GET /metrics` (SPEC §16): counters by outcome, per destination, and the
//! latency histograms (accept, sync, delivery attempt, accepted to
//! delivered), in the OpenMetrics text format. Runs the real binary.

use std::collections::HashMap;

use crate::{
    client::patient_admin,
    delivery::{Dest, Sent, Setup, wait_status},
    harness::{Options, Server},
    receiver::{Behavior, Receiver},
};

/// Every sample of an exposition by its name and labels, as written.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("a sample without a value: {l}"));
            (name.to_owned(), value.parse().unwrap_or_else(|_| panic!("a sample whose value is no number: {l}")))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, name: &str) -> f64 {
    *samples.get(name).unwrap_or_else(|| panic!("no sample {name} in {samples:#?}"))
}

#[test]
fn metrics_count_sends_and_attempts_by_outcome_and_time_them() {
    let receiver = Receiver::start();
    let good = Dest::new(1, "staging", receiver.url("/good"));
    let bad = Dest::new(2, "staging", receiver.url("/bad"));
    receiver.set_rule(|r, _| match r.path.as_str() {
        "/bad" => Behavior::Status(503, "{\"busy\":true}".into()),
        _ => Behavior::Status(200, "{}".into()),
    });
    let server = Setup { destinations: vec![good.clone(), bad.clone()], ..Setup::default() }.start();
    let token = server.token();
    let sent: Vec<Sent> =
        (0..5).map(|i| Sent::of(&server.send(&token, &patient_admin("NewPatient", &format!("mrn-{i}"))))).collect();
    let refused = server.post_raw("/endpoint", Some(&token), Some("application/json"), b"{\"Meta\":");
    assert_eq!(refused.status, 400, "{}", refused.text);
    for s in &sent {
        wait_status(&server, &s.log(&good), "Succeeded");
        wait_status(&server, &s.log(&bad), "Failed");
    }

    let answer = server.get("/metrics");
    assert_eq!(answer.status, 200, "{}", answer.text);
    let content_type = answer.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    assert!(answer.text.trim_end().ends_with("# EOF"), "the exposition ends with # EOF");
    let s = samples(&answer.text);

    assert_eq!(value(&s, "ferrox_messages_accepted_total"), 5.0);
    assert_eq!(value(&s, "ferrox_sends_total{api=\"redox\",code=\"200\"}"), 5.0);
    assert_eq!(value(&s, "ferrox_sends_total{api=\"redox\",code=\"400\"}"), 1.0);
    // Only accepted SENDs are timed, and each was synced first.
    assert_eq!(value(&s, "ferrox_accept_seconds_count"), 5.0);
    assert!(value(&s, "ferrox_accept_seconds_sum") > 0.0);
    assert!(value(&s, "ferrox_wal_sync_seconds_count") >= 1.0);
    assert!(value(&s, "ferrox_wal_synced_records_total") >= 5.0);

    let (g, b) = (&good.id, &bad.id);
    assert_eq!(value(&s, &format!("ferrox_delivery_attempts_total{{destination=\"{g}\",outcome=\"success\"}}")), 5.0);
    assert_eq!(
        value(&s, &format!("ferrox_delivery_attempts_total{{destination=\"{b}\",outcome=\"http_error\"}}")),
        5.0
    );
    assert!(!s.contains_key(&format!("ferrox_delivery_attempts_total{{destination=\"{g}\",outcome=\"http_error\"}}")));
    assert_eq!(value(&s, &format!("ferrox_delivery_attempt_seconds_count{{destination=\"{b}\"}}")), 5.0);
    // Only successful deliveries count toward accepted-to-delivered.
    assert_eq!(value(&s, &format!("ferrox_accepted_to_delivered_seconds_count{{destination=\"{g}\"}}")), 5.0);
    assert!(!s.contains_key(&format!("ferrox_accepted_to_delivered_seconds_count{{destination=\"{b}\"}}")));
    assert_eq!(value(&s, &format!("ferrox_log_outcomes_total{{destination=\"{g}\",status=\"Succeeded\"}}")), 5.0);
    assert_eq!(value(&s, &format!("ferrox_log_outcomes_total{{destination=\"{b}\",status=\"Failed\"}}")), 5.0);

    // Every histogram's buckets rise to its count at +Inf.
    for (name, count) in s.iter().filter(|(n, _)| n.contains("_seconds_count")) {
        let family = name.split("_count").next().unwrap_or_default();
        let labels = name.split_once('{').map_or(String::new(), |(_, rest)| rest.trim_end_matches('}').to_owned());
        let inf = s
            .iter()
            .filter(|(n, _)| {
                n.starts_with(&format!("{family}_bucket{{")) && n.contains("le=\"+Inf\"") && n.contains(&labels)
            })
            .map(|(_, v)| *v)
            .next()
            .unwrap_or_else(|| panic!("no +Inf bucket for {name}"));
        assert_eq!(inf, *count, "{name}");
    }
}

#[test]
fn with_a_metrics_token_metrics_are_served_only_to_its_bearer() {
    const METRICS_TOKEN: &str = "scraper-token-0123456789";
    let server = Server::start_with(&Options {
        top_level: Some(format!("metrics_token = \"{METRICS_TOKEN}\"")),
        ..Options::default()
    });
    let bare = server.get("/metrics");
    assert_eq!(bare.status, 401, "{}", bare.text);
    assert_eq!(bare.header("www-authenticate"), Some("Bearer realm=\"metrics\""));
    assert!(!bare.text.contains("ferrox_"), "nothing of the metrics without the token: {}", bare.text);
    let wrong = server.get_with_headers("/metrics", &[("Authorization", "Bearer scraper-token-wrong-000000")]);
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    let operator =
        server.get_with_headers("/metrics", &[("Authorization", &format!("Bearer {}", crate::harness::ADMIN_TOKEN))]);
    assert_eq!(operator.status, 401, "the operator token is not the metrics token");
    let right = server.get_with_headers("/metrics", &[("Authorization", &format!("Bearer {METRICS_TOKEN}"))]);
    assert_eq!(right.status, 200, "{}", right.text);
    assert!(right.text.contains("ferrox_messages_accepted_total 0"), "{}", right.text);
    // Liveness and readiness stay open to the orchestrator.
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/readyz").status, 200);
}
