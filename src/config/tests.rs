//! The configuration file's parsing and checks.

use super::*;

#[test]
fn defaults_when_empty() {
    let c = Config::parse("").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.delivery.retry_schedule_ms[1], 10_000);
}

#[test]
fn unknown_keys_are_named() {
    let err = Config::parse("listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap_err();
    assert!(err.contains("listen_port"), "{err}");
    let err = Config::parse("[storage]\nsegment_size = 1\n").unwrap_err();
    assert!(err.contains("segment_size"), "{err}");
    let err = Config::parse("[[sources]]\nname = \"a\"\ncolor = \"red\"\n").unwrap_err();
    assert!(err.contains("color"), "{err}");
}

#[test]
fn full_file_parses() {
    let text = r#"
        listen = "127.0.0.1:0"
        data_dir = "/tmp/x"
        admin_token = "0123456789abcdef0"
        max_body_bytes = 524288
        [auth]
        token_lifetime_s = 60
        [delivery]
        retry_schedule_ms = [0, 5]
        timeout_ms = 1000
        [storage]
        segment_bytes = 1048576
        retention_hours = 1
        [[sources]]
        name = "ehr"
        [[destinations]]
        name = "lab"
        url = "http://127.0.0.1:9/x"
        environment = "staging"
        [[subscriptions]]
        source_id = "00000000-0000-0000-0000-000000000001"
        destination_id = "00000000-0000-0000-0000-000000000002"
        data_model = "PatientAdmin"
        event_types = ["NewPatient"]
    "#;
    let c = Config::parse(text).unwrap();
    assert_eq!((c.sources.len(), c.destinations.len(), c.subscriptions.len()), (1, 1, 1));
    assert!(Config::parse("max_body_bytes = 0").is_err());
    let err = Config::parse("[storage]\nsegment_bytes = 1048576").unwrap_err();
    assert!(err.contains("segment_bytes") && err.contains("max_body_bytes"), "{err}");
    assert!(Config::parse("max_body_bytes = 65536\n[storage]\nsegment_bytes = 1048576").is_ok());
    assert!(Config::parse("admin_token = \"short\"").is_err());
}

#[test]
fn a_ca_file_must_hold_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.pem");
    let err = Config::parse(&format!("[delivery]\nca_file = {:?}\n", missing.display().to_string())).unwrap_err();
    assert!(err.contains("delivery.ca_file") && err.contains("no-such-ca.pem"), "{err}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = Config::parse(&format!("[delivery]\nca_file = {:?}\n", empty.display().to_string())).unwrap_err();
    assert!(err.contains("empty.pem") && err.contains("no PEM certificate"), "{err}");
    let err = Config::parse("[delivery]\nca_path = \"x\"\n").unwrap_err();
    assert!(err.contains("ca_path"), "{err}");
}

fn vars(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    list.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect()
}

#[test]
fn the_environment_overrides_the_file_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferrox.toml");
    std::fs::write(&path, "max_body_bytes = 65536\n[delivery]\ntimeout_ms = 1000\ntransform_timeout_ms = 700\n")
        .unwrap();
    let env = vars(&[
        ("FERROX_DELIVERY__TIMEOUT_MS", "2500"),
        ("FERROX_STORAGE__RETENTION_HOURS", "12"),
        ("FERROX_LOG_FORMAT", "json"),
        ("FERROX_LISTEN", "127.0.0.1:9999"),
    ]);
    let c = Config::load(Some(&path), env).unwrap();
    assert_eq!(c.delivery.timeout_ms, 2500, "the variable wins");
    assert_eq!(c.delivery.transform_timeout_ms, 700, "the file's other keys stay");
    assert_eq!(c.max_body_bytes, 65536);
    assert_eq!(c.storage.retention_hours, 12, "a table the file does not have");
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.listen.port(), 9999);
    assert_eq!(c.origin.as_deref(), Some(path.as_path()));
}

#[test]
fn without_a_file_the_environment_is_enough() {
    let env = vars(&[
        ("FERROX_ADMIN_TOKEN", "0123456789abcdef0123"),
        ("FERROX_SOURCES", r#"[{ name = "ehr", api_key = "k" }]"#),
    ]);
    let c = Config::load(None, env).unwrap();
    assert_eq!(c.admin_token.as_deref(), Some("0123456789abcdef0123"));
    assert_eq!(c.sources.len(), 1);
    assert_eq!(c.origin, None);
}

#[test]
fn errors_name_the_variable_or_the_file() {
    let err = Config::load(None, vars(&[("FERROX_LOG_FORMAT", "xml")])).unwrap_err();
    assert!(err.starts_with("FERROX_LOG_FORMAT") && err.contains("xml"), "{err}");
    let err = Config::load(None, vars(&[("FERROX_ADMIN_TOKEN", "short")])).unwrap_err();
    assert!(err.contains("admin_token"), "checked like the file: {err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[delivery]\ntimeout_ms = \"soon\"\n").unwrap();
    let err = Config::load(Some(&path), vars(&[("FERROX_LOG_FORMAT", "json")])).unwrap_err();
    assert!(err.contains("bad.toml") && err.contains("timeout_ms"), "{err}");
    let err = Config::load(Some(&dir.path().join("missing.toml")), vars(&[])).unwrap_err();
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn the_otlp_endpoint_is_an_http_url_with_a_host() {
    assert!(Config::parse("otlp_endpoint = \"http://127.0.0.1:4318\"").is_ok());
    assert!(Config::parse("otlp_endpoint = \"https://collector.example\"").is_ok());
    for bad in ["ftp://collector:21", "collector:4318", "http://", "not a url"] {
        let err = Config::parse(&format!("otlp_endpoint = {bad:?}")).unwrap_err();
        assert!(err.contains("otlp_endpoint"), "{bad}: {err}");
    }
}

#[test]
fn tls_files_come_in_pairs_and_must_load() {
    let err = Config::parse("[tls]\nkey_file = \"/x.key\"\n").unwrap_err();
    assert!(err.contains("tls.key_file is set without tls.cert_file"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.crt").display().to_string();
    let err = Config::parse(&format!("[tls]\ncert_file = {missing:?}\nkey_file = {missing:?}\n")).unwrap_err();
    assert!(err.contains("tls.cert_file") && err.contains("gone.crt"), "{err}");
    assert_eq!(Config::parse("[tls]\n").unwrap().tls.files(), Ok(None));
    let err = Config::parse("[tls]\ncert = \"x\"\n").unwrap_err();
    assert!(err.contains("cert"), "{err}");
}
