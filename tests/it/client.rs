//! A blocking HTTP client for the engine's APIs (ureq), and the shapes of
//! its answers.

use std::time::Duration;

use serde_json::{Value, json};
use ureq::{Agent, http::HeaderMap};

use crate::harness::{ADMIN_TOKEN, EHR, SourceFixture};

/// No request of the suite should take longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Pages of `GET /api/v1/logs` followed before giving up on a cursor loop.
const MAX_PAGES: usize = 10_000;

/// An HTTP answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body parsed as JSON; `Null` when it is not JSON.
    pub json: Value,
}

/// What a 200 to a SEND reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub message_id: u64,
    /// `(log ID, destination ID)` per log, in the answer's order.
    pub logs: Vec<(String, String)>,
}

impl Reply {
    /// The Redox error of a rejected request: checks the status and the
    /// `Meta.Errors[0]` shape and returns its `Text`.
    pub fn redox_error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "expected {status}, got {}: {}", self.status, self.text);
        let error = &self.json["Meta"]["Errors"][0];
        assert!(error["Text"].is_string(), "no Meta.Errors[0].Text in {}", self.text);
        assert!(error["Type"].is_string(), "no Meta.Errors[0].Type in {}", self.text);
        error["Text"].as_str().unwrap_or_default().to_owned()
    }

    /// The FHIR error of a rejected request: checks the status and the
    /// `OperationOutcome` shape and returns the issue's `(code, text)`.
    pub fn fhir_error(&self, status: u16) -> (String, String) {
        assert_eq!(self.status, status, "expected {status}, got {}: {}", self.status, self.text);
        assert_eq!(self.json["resourceType"], "OperationOutcome", "{}", self.text);
        let issue = &self.json["issue"][0];
        assert_eq!(issue["severity"], "error", "{}", self.text);
        let code = issue["code"].as_str().unwrap_or_else(|| panic!("no issue code in {}", self.text));
        let text = issue["details"]["text"].as_str().unwrap_or_else(|| panic!("no details.text in {}", self.text));
        (code.to_owned(), text.to_owned())
    }

    /// The message and logs of a 200 to a Redox SEND.
    pub fn accepted(&self) -> Accepted {
        assert_eq!(self.status, 200, "SEND refused: {}", self.text);
        let meta = &self.json["Meta"];
        let message_id =
            meta["Message"]["ID"].as_u64().unwrap_or_else(|| panic!("Message.ID is not a number: {}", self.text));
        let logs = meta["Logs"].as_array().unwrap_or_else(|| panic!("no Meta.Logs: {}", self.text));
        let logs = logs
            .iter()
            .map(|l| {
                let text = |key: &str| l[key].as_str().unwrap_or_else(|| panic!("log without {key}: {l}")).to_owned();
                (text("ID"), text("DestinationID"))
            })
            .collect();
        Accepted { message_id, logs }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Talks to one running server.
#[derive(Debug, Clone)]
pub struct Client {
    agent: Agent,
    base_url: String,
}

type Response = Result<ureq::http::Response<ureq::Body>, ureq::Error>;

/// The whole answer, or the transport error that cut it short.
fn try_reply(result: Response) -> Result<Reply, ureq::Error> {
    let mut response = result?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.body_mut().read_to_string()?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply { status, headers, text, json })
}

fn reply(result: Response) -> Reply {
    try_reply(result).unwrap_or_else(|e| panic!("request failed: {e}"))
}

fn authorize<B>(request: ureq::RequestBuilder<B>, token: Option<&str>) -> ureq::RequestBuilder<B> {
    match token {
        Some(t) => request.header("Authorization", format!("Bearer {t}")),
        None => request,
    }
}

impl Client {
    pub fn new(base_url: String) -> Self {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .proxy(None)
            .build();
        Self { agent: config.new_agent(), base_url }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `POST /auth/authenticate`.
    pub fn authenticate(&self, api_key: &str, secret: &str) -> Reply {
        reply(self.agent.post(self.url("/auth/authenticate")).send_json(json!({ "apiKey": api_key, "secret": secret })))
    }

    /// `POST /auth/refreshToken`.
    pub fn refresh(&self, api_key: &str, refresh_token: &str) -> Reply {
        reply(
            self.agent
                .post(self.url("/auth/refreshToken"))
                .send_json(json!({ "apiKey": api_key, "refreshToken": refresh_token })),
        )
    }

    /// An access token of `source`.
    pub fn token_of(&self, source: SourceFixture) -> String {
        let r = self.authenticate(source.api_key, source.secret);
        assert_eq!(r.status, 200, "authenticate: {}", r.text);
        r.json["accessToken"].as_str().expect("accessToken").to_owned()
    }

    /// An access token of the EHR.
    pub fn token(&self) -> String {
        self.token_of(EHR)
    }

    /// `POST /endpoint` with a JSON body.
    pub fn send(&self, token: &str, body: &Value) -> Reply {
        self.send_keyed(token, None, body)
    }

    /// `POST /endpoint`, or `None` when the transport fails (the server
    /// died), whether before or after the server got the request.
    pub fn try_send(&self, token: &str, body: &Value) -> Option<Reply> {
        let request = self.agent.post(self.url("/endpoint")).header("Authorization", format!("Bearer {token}"));
        try_reply(request.send_json(body)).ok()
    }

    /// `POST /endpoint` with an optional `Idempotency-Key`.
    pub fn send_keyed(&self, token: &str, key: Option<&str>, body: &Value) -> Reply {
        let mut request = self.agent.post(self.url("/endpoint")).header("Authorization", format!("Bearer {token}"));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        reply(request.send_json(body))
    }

    /// A POST with full control of the token, content type and bytes.
    pub fn post_raw(&self, path: &str, token: Option<&str>, content_type: Option<&str>, bytes: &[u8]) -> Reply {
        let mut request = self.agent.post(self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        reply(request.send(bytes))
    }

    /// An empty POST with `headers`, and the console's CSRF token if given.
    pub fn post_with_headers(&self, path: &str, headers: &[(&str, &str)], csrf: Option<&str>) -> Reply {
        let mut request = self.agent.post(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(csrf) = csrf {
            request = request.header("X-Ferrox-Csrf", csrf);
        }
        reply(request.send_empty())
    }

    /// A GET with `headers`, not following a redirect.
    pub fn get_with_headers(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.get(self.url(path)).config().max_redirects(0).build();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        reply(request.call())
    }

    /// A JSON POST sent with chunked transfer encoding (no Content-Length).
    pub fn post_chunked(&self, path: &str, token: &str, bytes: Vec<u8>) -> Reply {
        let request = self.agent.post(self.url(path)).header("Authorization", format!("Bearer {token}"));
        let body = ureq::SendBody::from_owned_reader(std::io::Cursor::new(bytes));
        reply(request.header("Content-Type", "application/json").send(body))
    }

    /// `POST /fhir/R4/$process-message` with a FHIR JSON body.
    pub fn send_fhir(&self, token: &str, body: &Value) -> Reply {
        self.post_raw(
            "/fhir/R4/$process-message",
            Some(token),
            Some("application/fhir+json"),
            body.to_string().as_bytes(),
        )
    }

    /// An operator API request with an explicit bearer token (or none).
    pub fn admin_as(&self, token: Option<&str>, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let url = self.url(&format!("/api/v1{path}"));
        let a = &self.agent;
        match (method, body) {
            ("GET", _) => reply(authorize(a.get(url), token).call()),
            ("DELETE", _) => reply(authorize(a.delete(url), token).call()),
            ("POST", Some(b)) => reply(authorize(a.post(url), token).send_json(b)),
            ("POST", None) => reply(authorize(a.post(url), token).send_empty()),
            ("PUT", Some(b)) => reply(authorize(a.put(url), token).send_json(b)),
            _ => panic!("unsupported admin request {method} {path}"),
        }
    }

    pub fn admin_get(&self, path: &str) -> Reply {
        self.admin_as(Some(ADMIN_TOKEN), "GET", path, None)
    }

    pub fn admin_post(&self, path: &str, body: &Value) -> Reply {
        self.admin_as(Some(ADMIN_TOKEN), "POST", path, Some(body))
    }

    pub fn admin_put(&self, path: &str, body: &Value) -> Reply {
        self.admin_as(Some(ADMIN_TOKEN), "PUT", path, Some(body))
    }

    pub fn admin_delete(&self, path: &str) -> Reply {
        self.admin_as(Some(ADMIN_TOKEN), "DELETE", path, None)
    }

    /// A GET of any path, without a token.
    pub fn get(&self, path: &str) -> Reply {
        reply(self.agent.get(self.url(path)).call())
    }

    /// `durable_through` of `GET /healthz`: grows with every write.
    pub fn durable_through(&self) -> u64 {
        let r = reply(self.agent.get(self.url("/healthz")).call());
        assert_eq!(r.status, 200, "healthz: {}", r.text);
        r.json["durable_through"].as_u64().unwrap_or_else(|| panic!("no durable_through: {}", r.text))
    }

    /// A sample's value from `GET /metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let r = reply(self.agent.get(self.url("/metrics")).call());
        assert_eq!(r.status, 200, "metrics: {}", r.text);
        r.text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Every log matching `query`, following `next_cursor` (newest first).
    pub fn all_logs(&self, query: &str, limit: usize) -> Vec<Value> {
        let mut logs = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut path = format!("/logs?limit={limit}");
            if !query.is_empty() {
                path = format!("{path}&{query}");
            }
            if let Some(c) = &cursor {
                path = format!("{path}&cursor={c}");
            }
            let r = self.admin_get(&path);
            assert_eq!(r.status, 200, "GET {path}: {}", r.text);
            let page = r.json["logs"].as_array().unwrap_or_else(|| panic!("no logs list: {}", r.text));
            assert!(page.len() <= limit, "page of {} logs for limit {limit}", page.len());
            logs.extend(page.iter().cloned());
            match r.json["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return logs,
            }
        }
        panic!("GET /logs?{query} did not end after {MAX_PAGES} pages");
    }
}

/// `base` with the fields of the object `extra` added or replaced.
pub fn merged(base: &Value, extra: Value) -> Value {
    let mut value = base.clone();
    if let (Some(object), Value::Object(extra)) = (value.as_object_mut(), extra) {
        object.extend(extra);
    }
    value
}

/// A Redox message of `model`:`event` with the body `fields` besides Meta.
pub fn redox(model: &str, event: &str, fields: Value) -> Value {
    merged(&json!({ "Meta": { "DataModel": model, "EventType": event } }), fields)
}

/// A PatientAdmin message for the patient with medical record `mrn`.
pub fn patient_admin(event: &str, mrn: &str) -> Value {
    redox("PatientAdmin", event, json!({ "Patient": { "Identifiers": [{ "ID": mrn, "IDType": "MR" }] } }))
}

/// `body` with `Meta.Destinations` set.
pub fn to_destinations(mut body: Value, destinations: Value) -> Value {
    body["Meta"]["Destinations"] = destinations;
    body
}

/// A FHIR message Bundle whose MessageHeader has `header` merged in.
pub fn fhir_bundle(header: Value) -> Value {
    let base = json!({ "resourceType": "MessageHeader", "source": { "endpoint": "urn:it" } });
    json!({
        "resourceType": "Bundle",
        "type": "message",
        "entry": [
            { "resource": merged(&base, header) },
            { "resource": { "resourceType": "Patient", "id": "p1" } }
        ]
    })
}
