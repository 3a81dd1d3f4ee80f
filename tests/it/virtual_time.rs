//! The retry schedule in virtual time (SPEC §4): an engine runs in this
//! process on a `ManualClock`; the test moves the clock to each retry's
//! deadline and checks when every attempt was made, to the millisecond.

use std::sync::{Arc, Mutex};

use ferrox::clock::{Clock as _, ManualClock, rfc3339};
use serde_json::json;

use crate::{
    client::patient_admin,
    delivery::{Dest, Sent, Setup, alerts, eventually, kinds},
    in_process::Engine,
    receiver::{Behavior, Receiver},
};

/// 2025-11-22T21:20:00Z: where the virtual clock starts.
const T0_MS: i64 = 1_763_846_400_000;

#[test]
fn production_retries_follow_the_schedule_in_virtual_time() {
    let clock = Arc::new(ManualClock::new(T0_MS));
    let receiver = Receiver::start();
    // Each request's virtual arrival time; every answer is a 500.
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let (seen_clock, seen) = (clock.clone(), arrivals.clone());
    receiver.set_rule(move |_, _| {
        seen.lock().expect("arrivals").push(seen_clock.now_ms());
        Behavior::Status(500, "{}".to_owned())
    });
    let dest = Dest::new(1, "production", receiver.url("/virtual"));
    let engine = Engine::start(&Setup { destinations: vec![dest.clone()], ..Setup::default() }.toml(), clock.clone());
    let token = engine.client.token();
    let sent = Sent::of(&engine.client.send(&token, &patient_admin("NewPatient", "virtual")));
    let log_id = sent.log(&dest);

    const ATTEMPTS: usize = 10;
    // The receiver records a request before its rule runs: count arrivals.
    let arrived = || arrivals.lock().expect("arrivals").len();
    let mut deadlines = Vec::new();
    while arrived() < ATTEMPTS {
        let got = arrived();
        // Either the next attempt comes at once (a zero delay) or the
        // destination's actor sleeps until a deadline.
        let deadline = eventually(&format!("attempt {} or a retry deadline", got + 1), || {
            if arrived() > got {
                return Some(None);
            }
            clock.next_deadline().map(Some)
        });
        let Some(deadline) = deadline else { continue };
        assert_eq!(arrived(), got, "an attempt came before its deadline");
        let q = engine.client.admin_get(&format!("/destinations/{}/queue", dest.id));
        assert_eq!(q.json["state"], "paused", "{}", q.text);
        assert_eq!(q.json["next_retry_at"], json!(rfc3339(deadline)), "next_retry_at vs the actor's timer: {}", q.text);
        deadlines.push(deadline - T0_MS);
        clock.advance_ms(deadline - clock.now_ms());
        eventually(&format!("attempt {}", got + 1), || (arrived() > got).then_some(()));
    }
    let expected_s: [i64; ATTEMPTS] = [0, 0, 10, 20, 40, 70, 120, 200, 320, 440];
    let arrived: Vec<i64> = arrivals.lock().expect("arrivals").iter().map(|t| t - T0_MS).collect();
    assert_eq!(arrived, expected_s.map(|s| s * 1000), "virtual arrival times (ms after the first attempt)");
    assert_eq!(deadlines, expected_s[2..].iter().map(|s| s * 1000).collect::<Vec<_>>(), "the actor's timers");

    let detail = eventually("ten attempts on the log", || {
        let r = engine.client.admin_get(&format!("/logs/{log_id}"));
        (r.json["attempts"].as_array().map(Vec::len) == Some(ATTEMPTS)).then_some(r.json)
    });
    assert_eq!(detail["status"], "Retrying", "{detail}");
    let started: Vec<String> = detail["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["started_at"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(started, expected_s.map(|s| rfc3339(T0_MS + s * 1000)), "attempts' started_at");
    // Ten failed attempts are one episode: one alert.
    let raised = alerts(&engine.client, &dest);
    assert_eq!(kinds(&raised), ["QueuePaused"], "{raised:?}");
}
