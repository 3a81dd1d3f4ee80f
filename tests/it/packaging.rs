//! The packaging agrees with the binary: `deploy/ferrox.toml` and the
//! Compose trial's configuration start the real engine; the Dockerfile, the
//! systemd unit and the Compose file name the paths and port of
//! `deploy/ferrox.toml`; the Dockerfile's health check passes against a
//! running engine and fails without one; and every `ferrox` command in the
//! deployment docs names a subcommand and flags the binary has.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use crate::harness::{Options, Server, ferrox, wait_for};

/// How long a fresh engine may take to be ready.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// The documents whose commands are checked.
const DOCS: [&str; 3] = ["docs/install.md", "docs/operations.md", "docs/receiving.md"];

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

fn deploy_config() -> toml::Table {
    repo_file("deploy/ferrox.toml").parse().expect("deploy/ferrox.toml is TOML")
}

fn str_key<'a>(table: &'a toml::Table, key: &str) -> &'a str {
    table.get(key).and_then(toml::Value::as_str).unwrap_or_else(|| panic!("deploy/ferrox.toml has no {key}"))
}

/// The port of deploy/ferrox.toml's `listen`.
fn deploy_port() -> String {
    let listen = deploy_config();
    let listen = str_key(&listen, "listen");
    listen.rsplit_once(':').map(|(_, port)| port.to_owned()).expect("listen is HOST:PORT")
}

/// The Dockerfile's instructions, continuation lines joined.
fn dockerfile_instructions() -> Vec<String> {
    let text = repo_file("Dockerfile");
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty()) {
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    instructions
}

fn instruction(instructions: &[String], keyword: &str) -> Vec<String> {
    let prefix = format!("{keyword} ");
    instructions.iter().filter_map(|i| i.strip_prefix(&prefix)).map(str::to_owned).collect()
}

/// The exec form (`["a", "b"]`) of an instruction's argument.
fn exec_form(text: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(text.trim()).unwrap_or_else(|e| panic!("not an exec form {text:?}: {e}"))
}

fn wait_ready(server: &Server) {
    wait_for("/readyz to answer 200", READY_DEADLINE, || server.get("/readyz").status == 200);
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn the_production_configuration_starts_the_engine() {
    let text = repo_file("deploy/ferrox.toml");
    let admin_token = str_key(&deploy_config(), "admin_token").to_owned();
    // The harness overrides listen and data_dir on the command line, as
    // the documentation's trial runs do.
    let mut server = Server::start_with(&Options { config_text: Some(text), ..Options::default() });
    wait_ready(&server);
    let sources = server.admin_as(Some(&admin_token), "GET", "/sources", None);
    assert_eq!(sources.status, 200, "the file's admin_token: {}", sources.text);
    assert!(server.stop().success(), "a clean stop: {}", server.server_log());
}

#[test]
fn the_compose_trial_configuration_starts_the_engine_with_its_objects() {
    let text = repo_file("deploy/trial/ferrox.toml");
    let trial: toml::Table = text.parse().expect("TOML");
    let server = Server::start_with(&Options { config_text: Some(text), ..Options::default() });
    wait_ready(&server);
    let admin_token = str_key(&trial, "admin_token");
    let destinations = server.admin_as(Some(admin_token), "GET", "/destinations", None);
    assert_eq!(destinations.status, 200, "{}", destinations.text);
    assert_eq!(destinations.json["destinations"][0]["url"], "http://receiver:9100/ferrox", "{}", destinations.text);
    // The receiver of docker-compose.yml is given the destination's secret.
    let secret = trial["destinations"][0]["signing_secret"].as_str().expect("a signing_secret");
    assert!(repo_file("docker-compose.yml").contains(&format!("WEBHOOK_SECRET: \"{secret}\"")));
    let token = server.authenticate("trial-api-key", "trial-secret-0123456789");
    assert_eq!(token.status, 200, "the trial's source signs in: {}", token.text);
}

#[test]
fn the_dockerfile_unit_and_compose_file_agree_with_the_production_configuration() {
    let config = deploy_config();
    let data_dir = str_key(&config, "data_dir");
    let port = deploy_port();
    assert_eq!(data_dir, "/var/lib/ferrox");
    assert_eq!(str_key(&config, "listen"), "0.0.0.0:8080", "reachable from outside a container");

    let docker = dockerfile_instructions();
    let rust_version = repo_file("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("Cargo.toml's rust-version");
    let from = instruction(&docker, "FROM");
    assert_eq!(from.first().map(String::as_str), Some(format!("rust:{rust_version}-bookworm AS builder").as_str()));
    assert_eq!(from.last().map(String::as_str), Some("debian:bookworm-slim"));
    assert_eq!(instruction(&docker, "EXPOSE"), std::slice::from_ref(&port));
    assert_eq!(instruction(&docker, "VOLUME").iter().map(|v| exec_form(v)).collect::<Vec<_>>(), [[data_dir]]);
    assert!(docker.iter().any(|i| i == "COPY deploy/ferrox.toml /etc/ferrox/ferrox.toml"), "{docker:#?}");
    assert_eq!(instruction(&docker, "USER"), ["ferrox:ferrox"]);
    assert!(docker.iter().any(|i| i.contains("useradd --system --uid 10001")), "a fixed uid");
    assert!(docker.iter().any(|i| i.contains(&format!("install -d -o ferrox -g ferrox -m 0750 {data_dir}"))));
    let entrypoint = exec_form(&instruction(&docker, "ENTRYPOINT")[0]);
    let cmd = exec_form(&instruction(&docker, "CMD")[0]);
    assert_eq!(entrypoint, ["/usr/local/bin/ferrox"]);
    assert_eq!(cmd, ["serve", "--config", "/etc/ferrox/ferrox.toml"]);
    let help = ferrox(&["serve".as_ref(), "--help".as_ref()]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--config"), "ferrox serve --config exists");

    let unit = repo_file("deploy/ferrox.service");
    let setting =
        |key: &str| -> Vec<&str> { unit.lines().filter_map(|l| l.strip_prefix(key)?.strip_prefix('=')).collect() };
    assert_eq!(setting("ExecStart"), ["/usr/local/bin/ferrox serve --config /etc/ferrox/ferrox.toml"]);
    assert_eq!(setting("User"), ["ferrox"]);
    // systemd makes /var/lib/<StateDirectory>.
    assert_eq!(setting("StateDirectory").iter().map(|d| format!("/var/lib/{d}")).collect::<Vec<_>>(), [data_dir]);
    assert_eq!(setting("ReadWritePaths"), [data_dir]);
    assert_eq!(setting("ProtectSystem"), ["strict"]);
    assert_eq!(setting("CapabilityBoundingSet"), [""]);
    // The jq workers set their own memory limit (setrlimit): the filter
    // must not take @resources away.
    assert!(setting("SystemCallFilter").iter().all(|f| !f.contains("@resources")), "{unit}");

    let compose = repo_file("docker-compose.yml");
    assert!(compose.contains(&format!(":{port}:{port}\"")), "the published port");
    assert!(compose.contains(&format!("ferrox-data:{data_dir}")), "the data volume");
    assert!(compose.contains("./deploy/trial/ferrox.toml:/etc/ferrox/ferrox.toml:ro"));
    assert!(compose.contains("./examples/receivers:/app:ro") && compose.contains("/app/receiver.py"));
}

#[test]
fn the_dockerfile_health_check_passes_only_against_a_live_engine() {
    let docker = dockerfile_instructions();
    let check = instruction(&docker, "HEALTHCHECK");
    let command = check[0].split_once("CMD ").map(|(_, c)| exec_form(c)).expect("HEALTHCHECK ... CMD [...]");
    let port = deploy_port();
    let mut server = Server::start();
    let live_port = server.base_url().rsplit_once(':').map(|(_, p)| p.to_owned()).expect("a port");
    let run = |on_port: &str| {
        let args: Vec<String> =
            command.iter().map(|a| a.replace(&format!("/{port} "), &format!("/{on_port} "))).collect();
        assert_ne!(args, command, "the check names port {port}: {command:?}");
        let started = Instant::now();
        let status = Command::new(&args[0]).args(&args[1..]).status().expect("running the health check");
        assert!(started.elapsed() < Duration::from_secs(3), "within the check's timeout");
        status.success()
    };
    assert!(run(&live_port), "the health check fails against a running engine");
    server.stop();
    assert!(!run(&live_port), "the health check passes with no engine");
}

/// The `ferrox` invocations of the docs' code blocks: the words after the
/// program (`ferrox`, a path ending in `/ferrox`, or `cargo run ... --`).
fn documented_invocations(text: &str) -> Vec<Vec<String>> {
    let mut in_block = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let line = line.trim().trim_start_matches("$ ");
        let line = line.strip_prefix("sudo -u ferrox ").or_else(|| line.strip_prefix("sudo ")).unwrap_or(line);
        if !in_block || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let start = match words.first() {
            Some(&w) if w == "ferrox" || w.ends_with("/ferrox") => 1,
            Some(&"cargo") if words.get(1) == Some(&"run") && !words.contains(&"--example") => {
                match words.iter().position(|w| *w == "--") {
                    Some(dashes) => dashes + 1,
                    None => continue,
                }
            }
            _ => continue,
        };
        let args = words[start..].iter().take_while(|w| !["|", "&&", ";", ">", "2>&1"].contains(w));
        found.push(args.map(|w| (*w).to_owned()).collect());
    }
    found
}

#[test]
fn every_ferrox_command_in_the_docs_exists() {
    let mut checked = 0;
    for doc in DOCS {
        for args in documented_invocations(&repo_file(doc)) {
            // Subcommands are the leading lower-case words; flags follow.
            let subcommands: Vec<&str> = args
                .iter()
                .map(String::as_str)
                .take_while(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
                .take_while(|w| !w.starts_with('-'))
                .collect();
            let mut help_args: Vec<&std::ffi::OsStr> = subcommands.iter().map(|w| w.as_ref()).collect();
            help_args.push("--help".as_ref());
            let help = ferrox(&help_args);
            let help_text = String::from_utf8_lossy(&help.stdout).into_owned();
            assert!(help.status.success(), "{doc}: `ferrox {}` is not a command: {help:?}", args.join(" "));
            for flag in args.iter().filter(|w| w.starts_with("--")) {
                let name = flag.split('=').next().unwrap_or(flag);
                assert!(
                    name == "--help" || name == "--version" || help_text.contains(&format!("{name} ")),
                    "{doc}: `ferrox {}` uses {name}, which `ferrox {} --help` does not list:\n{help_text}",
                    args.join(" "),
                    subcommands.join(" ")
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "the docs show the binary's commands ({checked} found)");
}

#[test]
fn the_version_the_docs_install_is_the_package_version() {
    let version = ferrox(&["--version".as_ref()]);
    let printed = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    assert_eq!(printed, format!("ferrox {}", env!("CARGO_PKG_VERSION")));
    let changelog = repo_file("CHANGELOG.md");
    assert!(changelog.contains(&format!("## [{}]", env!("CARGO_PKG_VERSION"))), "CHANGELOG.md has this version");
    let license = repo_file("LICENSE");
    assert_eq!(
        license.lines().nth(1).map(str::trim),
        Some("Apache License"),
        "LICENSE is the license Cargo.toml names"
    );
    assert!(repo_file("Cargo.toml").contains("license = \"Apache-2.0\""));
}
