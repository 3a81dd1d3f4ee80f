//! Where deliveries may go (`src/egress.rs`): with
//! `[delivery] deny_private_networks`, a literal private or metadata
//! address is refused when configured, and a name that resolves to one is
//! refused when a delivery connects, so nothing reaches it.

use serde_json::json;

use crate::{
    client::patient_admin,
    delivery::wait_status,
    harness::{ADMIN_TOKEN, EHR, Options, Server, serve_refuses},
    receiver::Receiver,
};

fn config(url: &str) -> String {
    format!(
        r#"admin_token = "{ADMIN_TOKEN}"
[delivery]
deny_private_networks = true
[[sources]]
name = "EHR"
api_key = "{}"
secret = "{}"
[[destinations]]
name = "Internal"
url = "{url}"
environment = "staging"
[[subscriptions]]
source = "EHR"
destination = "Internal"
data_model = "PatientAdmin"
"#,
        EHR.api_key, EHR.secret
    )
}

#[test]
fn private_addresses_are_refused_when_configured_and_when_a_name_resolves_to_them() {
    let receiver = Receiver::start();
    // A name, not an address: allowed in the file, refused at connection.
    let by_name = receiver.url("/internal").replace("127.0.0.1", "localhost");
    let server = Server::start_with(&Options { config_text: Some(config(&by_name)), ..Options::default() });
    let token = server.token();
    let sent = server.send(&token, &patient_admin("NewPatient", "internal")).accepted();
    let failed = wait_status(&server, &sent.logs[0].0, "Failed");
    let error = failed["attempts"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("resolves to 127.0.0.1") && error.contains("deny_private_networks"), "{failed}");
    assert!(receiver.received().is_empty(), "a delivery reached the private address");

    for url in ["http://169.254.169.254/latest/meta-data", "http://10.0.0.7/in", "http://[::1]:9/in"] {
        let made = server.admin_post("/destinations", &json!({ "name": "Meta", "url": url, "environment": "staging" }));
        let text = made.redox_error(400);
        assert!(text.contains("deny_private_networks"), "{url}: {text}");
    }
    let stderr = serve_refuses(&config("http://169.254.169.254/latest"));
    assert!(
        stderr.contains("[[destinations]] 'Internal'") && stderr.contains("169.254.169.254 is a link-local address"),
        "{stderr}"
    );
}
