//! The engine and the receiver a golden directory is made with.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, WAIT};

/// A receiver that answers by path: `/ok…` takes, `/query` replies,
/// anything else refuses with a Redox error.
pub fn start_receiver() -> u16 {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(|| App::new().default_service(web::to(answer)))
                .workers(1)
                .bind(("127.0.0.1", 0))
                .expect("binding the receiver");
            tx.send(server.addrs()[0].port()).expect("reporting the port");
            server.run().await
        })
    });
    rx.recv().expect("the receiver's port")
}

async fn answer(req: HttpRequest, _body: web::Bytes) -> HttpResponse {
    let path = req.path();
    if path.starts_with("/ok") {
        HttpResponse::Ok().json(json!({}))
    } else if path.starts_with("/query") {
        HttpResponse::Ok().json(json!({
            "Meta": { "DataModel": "PatientSearch", "EventType": "Query" },
            "Patients": [{ "Identifiers": [{ "ID": "0000012345", "IDType": "MR" }] }],
        }))
    } else {
        HttpResponse::InternalServerError()
            .json(json!({ "Meta": { "Errors": [{ "Text": "golden receiver refuses" }] } }))
    }
}

/// A running `ferrox serve`.
pub struct Engine {
    child: Child,
    pub base: String,
    pub agent: ureq::Agent,
}

impl Engine {
    pub fn start(bin: &Path, config: &Path, data: &Path) -> Self {
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting ferrox");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("reading the listening line");
        let base = line.trim().strip_prefix("ferrox listening on ").expect("the listening line").to_owned();
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        Self { child, base, agent }
    }

    pub fn stop(mut self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "signalling ferrox");
        let status = self.child.wait().expect("waiting for ferrox");
        assert!(status.success(), "ferrox exited with {status}");
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}")).unwrap_or_default();
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => self.agent.delete(&url).header("Authorization", &auth).call(),
            ("POST", Some(b)) => self.agent.post(&url).header("Authorization", &auth).send_json(b),
            ("POST", None) => self.agent.post(&url).header("Authorization", &auth).send_empty(),
            ("PUT", Some(b)) => self.agent.put(&url).header("Authorization", &auth).send_json(b),
            _ => panic!("unsupported request {method} {path}"),
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("reading an answer");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, value) = self.call(method, &format!("/api/v1{path}"), Some(ADMIN_TOKEN), body);
        assert!((200..300).contains(&status), "{method} {path}: {status} {value}");
        value
    }

    pub fn send(&self, token: &str, key: Option<&str>, body: &Value) -> Value {
        let url = format!("{}/endpoint", self.base);
        let mut request = self.agent.post(&url).header("Authorization", format!("Bearer {token}"));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let mut response = request.send_json(body).expect("SEND");
        let text = response.body_mut().read_to_string().expect("reading the SEND answer");
        assert_eq!(response.status().as_u16(), 200, "SEND: {text}");
        serde_json::from_str(&text).expect("a JSON answer")
    }

    pub fn tokens(&self, api_key: &str, secret: &str) -> Value {
        let body = json!({ "apiKey": api_key, "secret": secret });
        let (status, value) = self.call("POST", "/auth/authenticate", None, Some(&body));
        assert_eq!(status, 200, "authenticate: {value}");
        value
    }

    pub fn metric(&self, name: &str) -> f64 {
        let url = format!("{}/metrics", self.base);
        let text = self.agent.get(&url).call().expect("metrics").body_mut().read_to_string().expect("metrics text");
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
    }

    pub fn log(&self, id: &str) -> Value {
        self.admin("GET", &format!("/logs/{id}"), None)
    }

    pub fn queue(&self, destination: &str) -> Value {
        self.admin("GET", &format!("/destinations/{destination}/queue"), None)
    }
}

pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}
