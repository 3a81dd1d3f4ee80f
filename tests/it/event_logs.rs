//! The engine's own log lines (SPEC §16): `log_format = "json"` writes one
//! JSON object a line, with the start-up summary, failed deliveries and
//! operators' actions carrying their IDs; text to a pipe has no colours.

use serde_json::{Value, json};

use crate::{
    client::patient_admin,
    delivery::{Dest, Sent, Setup, eventually},
    harness::{ADMIN_TOKEN, Options, Server},
    receiver::{Behavior, Receiver},
};

/// Every line of the server's stderr as JSON; panics on one that is not.
fn json_lines(server: &Server) -> Vec<Value> {
    let log = server.server_log();
    log.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{log}")))
        .collect()
}

/// The first line whose message is `message` and whose fields hold
/// `fields`, once it is written.
fn line_with(server: &Server, message: &str, fields: &[(&str, &str)]) -> Value {
    eventually(&format!("a log line '{message}' with {fields:?}"), || {
        json_lines(server)
            .into_iter()
            .find(|line| line["message"] == message && fields.iter().all(|(k, v)| line[*k].as_str() == Some(*v)))
    })
}

/// A production destination whose receiver fails everything, with the
/// engine logging JSON at `info`.
fn start_failing() -> (Receiver, Dest, Server) {
    let receiver = Receiver::start();
    receiver.set_default(Behavior::Status(503, r#"{"Meta":{"Errors":[{"Text":"down for the test"}]}}"#.into()));
    let dest = Dest::new(1, "production", receiver.url("/in"));
    let setup = Setup { destinations: vec![dest.clone()], retry_schedule_ms: Some(vec![600_000]), ..Setup::default() };
    let toml = format!("log_format = \"json\"\n{}", setup.toml());
    let server = Server::start_with(&Options {
        config_text: Some(toml),
        env: vec![("RUST_LOG".into(), "info".into())],
        ..Options::default()
    });
    let subscription =
        json!({"source_id": crate::harness::EHR.id, "destination_id": dest.id, "data_model": "PatientAdmin"});
    let made = server.admin_post("/subscriptions", &subscription);
    assert_eq!(made.status, 201, "{}", made.text);
    (receiver, dest, server)
}

#[test]
fn json_lines_carry_the_start_up_a_failed_delivery_and_an_operators_pause_and_resume() {
    let (_receiver, dest, server) = start_failing();
    let started = line_with(&server, "ferrox started", &[]);
    assert_eq!(started["level"], "INFO", "{started}");
    assert_eq!(started["destinations"], 1, "{started}");
    assert_eq!(started["sources"], 1, "{started}");
    assert_eq!(started["data_dir"], server.data_dir().display().to_string(), "{started}");
    assert!(started["config_file"].as_str().is_some_and(|f| f.ends_with("ferrox.toml")), "{started}");
    assert!(server.base_url().ends_with(started["listen"].as_str().expect("listen")), "{started}");
    assert_eq!(started["scheme"], "http", "{started}");

    let token = server.token();
    let sent = Sent::of(&server.send(&token, &patient_admin("NewPatient", "0000012345")));
    let log_id = sent.log(&dest);
    let failed = line_with(&server, "delivery failed", &[("destination_id", &dest.id), ("log_id", &log_id)]);
    assert_eq!(failed["level"], "WARN", "{failed}");
    assert_eq!(failed["message_id"], sent.message_id, "{failed}");
    assert_eq!(failed["http_status"], 503, "{failed}");
    assert_eq!(failed["attempt_id"], sent.attempt(&dest), "{failed}");
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("down for the test")), "{failed}");
    line_with(&server, "alert raised", &[("destination_id", &dest.id), ("kind", "QueuePaused"), ("log_id", &log_id)]);

    for action in ["pause", "resume"] {
        let done = server.admin_post(&format!("/destinations/{}/{action}", dest.id), &json!({}));
        assert_eq!(done.status, 200, "{action}: {}", done.text);
        let line = line_with(
            &server,
            "operator action",
            &[("operator", "admin"), ("action", &format!("destination.{action}")), ("target_id", &dest.id)],
        );
        assert_eq!(line["level"], "INFO", "{line}");
    }
    let paused = line_with(&server, "queue paused", &[("destination_id", &dest.id)]);
    assert_eq!(paused["level"], "WARN", "{paused}");
    line_with(&server, "queue resumed", &[("destination_id", &dest.id)]);
    assert!(!server.server_log().contains(ADMIN_TOKEN), "no token in the logs");
}

#[test]
fn text_written_to_a_pipe_has_no_colour_codes() {
    let server = Server::start_with(&Options { env: vec![("RUST_LOG".into(), "info".into())], ..Options::default() });
    let log = eventually("the start-up summary", || {
        let log = server.server_log();
        log.contains("ferrox started").then_some(log)
    });
    assert!(!log.contains('\u{1b}'), "escape codes in:\n{log}");
    assert!(log.contains("destinations=4") && log.contains("sources=2"), "{log}");
    assert!(serde_json::from_str::<Value>(log.lines().next().unwrap_or_default()).is_err(), "text, not JSON: {log}");
}
