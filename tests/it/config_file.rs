//! The configuration file's objects (SPEC §9): checked as a whole before
//! anything is written, every error named with its object and field;
//! objects named by name rather than UUID; the file owns its objects, so
//! the operator API cannot change them and a restart never reverts a
//! change silently.

use std::ffi::OsStr;

use serde_json::json;

use crate::{
    client::patient_admin,
    delivery::{PATIENCE, eventually},
    harness::{ADMIN_TOKEN, EHR, Options, Server, ferrox, serve_refuses_in},
    receiver::Receiver,
};

fn config(receiver: &Receiver, lab_path: &str, extra: &str) -> String {
    format!(
        r#"admin_token = "{ADMIN_TOKEN}"
[[sources]]
name = "EHR"
api_key = "{}"
secret = "{}"
[[destinations]]
name = "Lab"
url = "{}"
environment = "staging"
[[subscriptions]]
source = "EHR"
destination = "Lab"
data_model = "PatientAdmin"
{extra}"#,
        EHR.api_key,
        EHR.secret,
        receiver.url(lab_path)
    )
}

#[test]
fn a_file_with_errors_writes_nothing_and_names_every_error() {
    let receiver = Receiver::start();
    let broken = config(
        &receiver,
        "/lab",
        r#"[[destinations]]
name = "Billing"
url = "http://user:pw@127.0.0.1:9/billing"
environment = "production"
[[subscriptions]]
source = "Clinic"
destination = "Lab"
data_model = "PatientAdmin"
"#,
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let stderr = serve_refuses_in(&broken, dir.path());
    for named in [
        "has 2 error(s); nothing of it was applied",
        "[[destinations]] 'Billing': url 'http://user:***@127.0.0.1:9/billing' holds credentials",
        "[[subscriptions]] #2: source: source 'Clinic' does not exist",
    ] {
        assert!(stderr.contains(named), "the refusal does not say {named:?}:\n{stderr}");
    }
    assert!(!stderr.contains(":pw@"), "a password reached the log:\n{stderr}");
    let dump = ferrox(&[OsStr::new("wal"), OsStr::new("dump"), dir.path().as_os_str()]);
    let records = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.status.success() && records.trim().is_empty(), "a refused file wrote records:\n{records}");
}

#[test]
fn the_file_owns_its_objects_named_by_name_and_its_changes_apply_at_restart() {
    let receiver = Receiver::start();
    let mut server =
        Server::start_with(&Options { config_text: Some(config(&receiver, "/lab", "")), ..Options::default() });
    let token = server.token();
    let sent = server.send(&token, &patient_admin("NewPatient", "by-name")).accepted();
    receiver.wait_for(|r| r.len() == 1, PATIENCE);
    let lab = sent.logs[0].1.clone();

    // The API may not change or delete the file's objects.
    let change = json!({ "name": "Lab", "url": receiver.url("/elsewhere"), "environment": "staging" });
    let refused = server.admin_put(&format!("/destinations/{lab}"), &change);
    let text = refused.redox_error(409);
    assert!(text.contains("destination 'Lab'") && text.contains("ferrox.toml"), "{text}");
    let subscriptions = server.admin_get("/subscriptions").json["subscriptions"].clone();
    let subscription = subscriptions[0]["id"].as_str().expect("a subscription").to_owned();
    server.admin_delete(&format!("/subscriptions/{subscription}")).redox_error(409);
    // Deleting the source would delete the file's subscription with it.
    let source = server.admin_get("/sources").json["sources"][0]["id"].as_str().expect("a source").to_owned();
    server.admin_delete(&format!("/sources/{source}")).redox_error(409);

    // A change to the file applies at the next start, to the same objects.
    server.stop();
    server.rewrite_config(&config(&receiver, "/lab-v2", ""));
    server.restart();
    let destination = server.admin_get(&format!("/destinations/{lab}"));
    assert_eq!(destination.json["url"], receiver.url("/lab-v2"), "{}", destination.text);
    let token = server.token();
    server.send(&token, &patient_admin("NewPatient", "after")).accepted();
    let received = receiver.wait_for(|r| r.len() == 2, PATIENCE);
    assert_eq!(received[1].path, "/lab-v2");

    // Taken out of the file, the destination stays, and the API may change it.
    server.stop();
    let sources_only = format!(
        "admin_token = \"{ADMIN_TOKEN}\"\n[[sources]]\nname = \"EHR\"\napi_key = \"{}\"\nsecret = \"{}\"\n",
        EHR.api_key, EHR.secret
    );
    server.rewrite_config(&sources_only);
    server.restart();
    let changed = server.admin_put(&format!("/destinations/{lab}"), &change);
    assert_eq!(changed.status, 200, "{}", changed.text);
    eventually("the change to stay", || {
        (server.admin_get(&format!("/destinations/{lab}")).json["url"] == receiver.url("/elsewhere")).then_some(())
    });
}
