//! Delivery (SPEC §4, §5): the real binary delivers to mock destinations
//! that fail, hang or answer. FIFO under random failures, the environments'
//! failure rules, isolation between destinations (the request's headers,
//! signature and connection reuse are in `delivery_headers`). The kit at
//! the top is shared with `delivery_headers`, `delivery_ops` and
//! `virtual_time`.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    path::PathBuf,
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    client::{Client, Reply, patient_admin},
    harness::{ADMIN_TOKEN, EHR, Options, Rng, Server, seed},
    receiver::{Behavior, Received, Receiver},
};

/// How long a delivery condition may take to hold.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A destination of a delivery test, subscribed from the EHR to every
/// PatientAdmin event (with `transform`, if set).
#[derive(Debug, Clone)]
pub struct Dest {
    pub id: String,
    pub name: String,
    pub url: String,
    pub environment: &'static str,
    pub timeout_ms: Option<u64>,
    pub signing_secret: Option<String>,
    pub verification_token: Option<String>,
    pub transform: Option<String>,
    /// Ordered lanes: `fifo_key` and `max_in_flight`.
    pub lanes: Option<(String, u64)>,
    number: u16,
}

impl Dest {
    /// Destination `number` of a test (IDs derive from it), delivering to `url`.
    pub fn new(number: u16, environment: &'static str, url: String) -> Self {
        Self {
            id: format!("de57{number:04x}-0000-4000-8000-000000000000"),
            name: format!("dest-{number}"),
            url,
            environment,
            timeout_ms: None,
            signing_secret: None,
            verification_token: None,
            transform: None,
            lanes: None,
            number,
        }
    }

    /// The ID of its subscription from the EHR.
    pub fn subscription_id(&self) -> String {
        format!("5ab5{:04x}-0000-4000-8000-000000000000", self.number)
    }
}

/// The configuration of a delivery test: the EHR and its destinations.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub destinations: Vec<Dest>,
    pub retry_schedule_ms: Option<Vec<u64>>,
    pub alert_webhook_url: Option<String>,
    /// `[delivery] ca_file`: CA certificates for https destinations.
    pub ca_file: Option<PathBuf>,
    /// `[delivery] transform_timeout_ms`.
    pub transform_timeout_ms: Option<u64>,
    /// `[delivery] transform_memory_mb`.
    pub transform_memory_mb: Option<u64>,
    /// An `[alerts]` table, as TOML lines after its header.
    pub alerts: Option<String>,
}

/// `text` as a TOML basic string (JSON's escapes are TOML's).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string encodes")
}

impl Setup {
    /// The configuration file, subscriptions included.
    pub fn toml(&self) -> String {
        self.toml_with(true)
    }

    fn toml_with(&self, subscriptions: bool) -> String {
        let mut toml = format!("admin_token = {}\n", quoted(ADMIN_TOKEN));
        if let Some(url) = &self.alert_webhook_url {
            let _ = writeln!(toml, "alert_webhook_url = {}", quoted(url));
        }
        if self.retry_schedule_ms.is_some()
            || self.ca_file.is_some()
            || self.transform_timeout_ms.is_some()
            || self.transform_memory_mb.is_some()
        {
            toml.push_str("[delivery]\n");
        }
        if let Some(mb) = self.transform_memory_mb {
            let _ = writeln!(toml, "transform_memory_mb = {mb}");
        }
        if let Some(ms) = self.transform_timeout_ms {
            let _ = writeln!(toml, "transform_timeout_ms = {ms}");
        }
        if let Some(schedule) = &self.retry_schedule_ms {
            let _ = writeln!(toml, "retry_schedule_ms = {schedule:?}");
        }
        if let Some(path) = &self.ca_file {
            let _ = writeln!(toml, "ca_file = {}", quoted(path.to_str().expect("a UTF-8 temp path")));
        }
        let _ = writeln!(
            toml,
            "[[sources]]\nid = {}\nname = {}\napi_key = {}\nsecret = {}",
            quoted(EHR.id),
            quoted(EHR.name),
            quoted(EHR.api_key),
            quoted(EHR.secret)
        );
        for d in &self.destinations {
            let _ = writeln!(
                toml,
                "[[destinations]]\nid = {}\nname = {}\nurl = {}\nenvironment = {}",
                quoted(&d.id),
                quoted(&d.name),
                quoted(&d.url),
                quoted(d.environment)
            );
            if let Some(ms) = d.timeout_ms {
                let _ = writeln!(toml, "timeout_ms = {ms}");
            }
            if let Some(secret) = &d.signing_secret {
                let _ = writeln!(toml, "signing_secret = {}", quoted(secret));
            }
            if let Some(token) = &d.verification_token {
                let _ = writeln!(toml, "verification_token = {}", quoted(token));
            }
            if let Some((key, max)) = &d.lanes {
                let _ = writeln!(toml, "fifo_key = {}\nmax_in_flight = {max}", quoted(key));
            }
        }
        for d in self.destinations.iter().filter(|_| subscriptions) {
            let _ = writeln!(
                toml,
                "[[subscriptions]]\nid = {}\nsource_id = {}\ndestination_id = {}\ndata_model = \"PatientAdmin\"",
                quoted(&d.subscription_id()),
                quoted(EHR.id),
                quoted(&d.id)
            );
            if let Some(program) = &d.transform {
                let _ = writeln!(toml, "transform = {}", quoted(program));
            }
        }
        if let Some(alerts) = &self.alerts {
            let _ = writeln!(toml, "[alerts]\n{alerts}");
        }
        toml
    }

    /// Starts the real binary with this configuration. The subscriptions
    /// are made through the operator API, as an operator would, so that
    /// tests may change them there (the file's own objects are the file's).
    pub fn start(&self) -> Server {
        let server = Server::start_with(&Options { config_text: Some(self.toml_with(false)), ..Options::default() });
        for d in &self.destinations {
            let subscription = json!({
                "id": d.subscription_id(),
                "source_id": EHR.id,
                "destination_id": d.id,
                "data_model": "PatientAdmin",
                "transform": d.transform,
            });
            let made = server.admin_post("/subscriptions", &subscription);
            assert_eq!(made.status, 201, "POST the subscription of {}: {}", d.name, made.text);
        }
        server
    }
}

/// What a 200 to a SEND said: the message ID and, per destination, the log
/// ID and the first attempt's ID.
#[derive(Debug, Clone)]
pub struct Sent {
    pub message_id: u64,
    logs: HashMap<String, (String, String)>,
}

impl Sent {
    pub fn of(reply: &Reply) -> Self {
        let accepted = reply.accepted();
        let logs = reply.json["Meta"]["Logs"].as_array().expect("Meta.Logs");
        let logs = logs
            .iter()
            .map(|l| {
                let text = |key: &str| l[key].as_str().unwrap_or_else(|| panic!("log without {key}: {l}")).to_owned();
                (text("DestinationID"), (text("ID"), text("AttemptID")))
            })
            .collect();
        Self { message_id: accepted.message_id, logs }
    }

    /// Its log for `dest`.
    pub fn log(&self, dest: &Dest) -> String {
        self.logs
            .get(&dest.id)
            .unwrap_or_else(|| panic!("message {} has no log for {}", self.message_id, dest.name))
            .0
            .clone()
    }

    /// The `AttemptID` the 200 named for `dest`.
    pub fn attempt(&self, dest: &Dest) -> String {
        self.logs.get(&dest.id).expect("a log for the destination").1.clone()
    }
}

/// SENDs a NewPatient for `mrn` from the EHR (routed by subscription).
pub fn send(server: &Server, token: &str, mrn: &str) -> Sent {
    Sent::of(&server.send(token, &patient_admin("NewPatient", mrn)))
}

/// The log IDs of `sent` for `dest`, in acceptance (message ID) order.
pub fn logs_in_order(sent: &[Sent], dest: &Dest) -> Vec<String> {
    let mut sorted: Vec<&Sent> = sent.iter().collect();
    sorted.sort_by_key(|s| s.message_id);
    sorted.iter().map(|s| s.log(dest)).collect()
}

/// The `webhook-id` of every request, in arrival order.
pub fn webhook_ids(received: &[Received]) -> Vec<String> {
    received.iter().map(|r| r.header("webhook-id").unwrap_or("<none>").to_owned()).collect()
}

/// Each `webhook-id` once, in the order first seen.
pub fn first_seen(received: &[Received]) -> Vec<String> {
    let mut seen = HashSet::new();
    webhook_ids(received).into_iter().filter(|id| seen.insert(id.clone())).collect()
}

/// Waits until the receiver has seen every log of `expected` and checks
/// that it saw them first in exactly that order; returns the requests.
pub fn wait_first_seen(receiver: &Receiver, expected: &[String]) -> Vec<Received> {
    let wanted: HashSet<&String> = expected.iter().collect();
    let received = receiver.wait_for(
        |r| {
            let ids: HashSet<&str> = r.iter().filter_map(|r| r.header("webhook-id")).collect();
            wanted.iter().all(|w| ids.contains(w.as_str()))
        },
        PATIENCE,
    );
    let order = first_seen(&received);
    if order != expected {
        let at = order.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(order.len().min(expected.len()));
        panic!(
            "first-seen order differs from acceptance order at {at}: saw {:?}, expected {:?} ({} seen, {} expected)",
            order.get(at),
            expected.get(at),
            order.len(),
            expected.len()
        );
    }
    received
}

/// Checks the FIFO shape of a queue that never crashed: a `webhook-id`
/// seen before is only ever the retry of the request right before it.
pub fn assert_retries_back_to_back(received: &[Received]) {
    let ids = webhook_ids(received);
    let mut seen = HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        if !seen.insert(id) {
            assert_eq!(
                Some(id),
                i.checked_sub(1).map(|p| &ids[p]),
                "request {i} repeats {id}, which is not the request before it: a later log overtook a retry"
            );
        }
    }
}

/// Polls `probe` until it gives a value, or panics after `PATIENCE`.
pub fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < end, "timed out after {PATIENCE:?} waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Replaces the transform of `dest`'s subscription from the EHR.
pub fn set_transform(server: &Client, dest: &Dest, program: &str) {
    let subscription = json!({
        "source_id": EHR.id,
        "destination_id": dest.id,
        "data_model": "PatientAdmin",
        "transform": program,
    });
    let put = server.admin_put(&format!("/subscriptions/{}", dest.subscription_id()), &subscription);
    assert_eq!(put.status, 200, "PUT the subscription of {}: {}", dest.name, put.text);
}

/// `GET /api/v1/logs/{id}`.
pub fn log(server: &Client, log_id: &str) -> Value {
    let r = server.admin_get(&format!("/logs/{log_id}"));
    assert_eq!(r.status, 200, "GET /logs/{log_id}: {}", r.text);
    r.json
}

/// Waits until the log has `status`; returns it.
pub fn wait_status(server: &Client, log_id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    let found = eventually(&format!("log {log_id} to be {status}"), || {
        last = log(server, log_id);
        (last["status"] == status).then(|| last.clone())
    });
    assert_eq!(found["status"], status, "last seen: {last}");
    found
}

/// `GET /api/v1/destinations/{id}/queue`.
pub fn queue(server: &Client, dest: &Dest) -> Value {
    let r = server.admin_get(&format!("/destinations/{}/queue", dest.id));
    assert_eq!(r.status, 200, "queue of {}: {}", dest.name, r.text);
    r.json
}

/// The alerts of `dest`, newest first.
pub fn alerts(server: &Client, dest: &Dest) -> Vec<Value> {
    let r = server.admin_get("/alerts");
    assert_eq!(r.status, 200, "GET /alerts: {}", r.text);
    let all = r.json["alerts"].as_array().unwrap_or_else(|| panic!("no alerts list: {}", r.text));
    all.iter().filter(|a| a["destination_id"] == dest.id.as_str()).cloned().collect()
}

/// The kinds of alerts, in the given order.
pub fn kinds(alerts: &[Value]) -> Vec<&str> {
    alerts.iter().map(|a| a["kind"].as_str().unwrap_or("<none>")).collect()
}

/// Every log of `dest` listed by the operator API.
pub fn logs_of(server: &Client, dest: &Dest) -> Vec<Value> {
    server.all_logs(&format!("destination={}", dest.id), 1000)
}

pub fn status(code: u16) -> Behavior {
    Behavior::Status(
        code,
        if code == 200 {
            "{}".to_owned()
        } else {
            format!("{{\"Meta\":{{\"Errors\":[{{\"Text\":\"answered {code}\"}}]}}}}")
        },
    )
}

/// Sends `count` messages from `threads` concurrent clients; returns what
/// was accepted, in no particular order.
fn send_concurrently(server: &Server, token: &str, count: usize, threads: usize) -> Vec<Sent> {
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let client = (**server).clone();
                scope.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|n| Sent::of(&client.send(token, &patient_admin("NewPatient", &format!("mrn-{n}")))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a sender panicked")).collect()
    })
}

/// Messages in the FIFO test: 1,000 (as the issue asks) runs in a few
/// seconds in a debug build.
const FIFO_MESSAGES: usize = 1000;

#[test]
fn production_delivers_everything_in_order_through_random_failures() {
    let seed = seed("production_delivers_everything_in_order_through_random_failures");
    let receiver = Receiver::start();
    let rng = Mutex::new(Rng::new(seed));
    // Whether each request, in arrival order, was answered 200.
    let answers = Arc::new(Mutex::new(Vec::new()));
    let answered = answers.clone();
    // 30% answered 500, 5% reset, the rest 200.
    receiver.set_rule(move |r, _| {
        let roll = rng.lock().expect("rng").below(100);
        let id = r.header("webhook-id").unwrap_or_default().to_owned();
        answered.lock().expect("answers").push((id, roll >= 35));
        match roll {
            0..30 => status(500),
            30..35 => Behavior::Reset,
            _ => status(200),
        }
    });
    let dest = Dest::new(1, "production", receiver.url("/fifo"));
    let setup =
        Setup { destinations: vec![dest.clone()], retry_schedule_ms: Some(vec![0, 10, 20]), ..Setup::default() };
    let server = setup.start();
    let token = server.token();
    let started = Instant::now();
    let sent = send_concurrently(&server, &token, FIFO_MESSAGES, 4);
    let expected = logs_in_order(&sent, &dest);
    let received = wait_first_seen(&receiver, &expected);
    assert_retries_back_to_back(&received);
    // A log is sent only once its predecessor succeeded.
    let answers = eventually("every answer to be decided", || {
        let answers = answers.lock().expect("answers").clone();
        (answers.len() >= received.len()).then_some(answers)
    });
    for (n, pair) in answers.windows(2).enumerate() {
        let [(before, ok), (after, _)] = pair else { unreachable!("windows of two") };
        assert!(*ok || before == after, "request {}: log {after} was sent after a failure of {before}", n + 1);
    }
    eprintln!("{FIFO_MESSAGES} messages, {} requests, delivered in {:?}", receiver.received().len(), started.elapsed());
    // Every log ends Succeeded, with one attempt per request the receiver saw.
    let logs = eventually("every log to succeed", || {
        let logs = logs_of(&server, &dest);
        (logs.len() == FIFO_MESSAGES && logs.iter().all(|l| l["status"] == "Succeeded")).then_some(logs)
    });
    let received = receiver.received();
    let mut requests: HashMap<String, usize> = HashMap::new();
    for id in webhook_ids(&received) {
        *requests.entry(id).or_default() += 1;
    }
    for l in &logs {
        let id = l["id"].as_str().expect("id");
        let attempts = l["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), requests[id], "log {id}: attempts recorded vs requests received: {l}");
        let (last, failed) = attempts.split_last().expect("at least one attempt");
        assert_eq!(last["http_status"], 200, "log {id}: {l}");
        assert!(failed.iter().all(|a| a["http_status"] != 200 && a["error"].is_string()), "log {id}: {l}");
    }
}

#[test]
fn staging_and_development_fail_a_log_and_go_on() {
    // Each destination fails its first request its own way: an error
    // status, a reset connection, no answer within `timeout_ms`, a
    // redirection (not followed: only a 2xx is success).
    let failures = [
        ("staging", status(500)),
        ("development", Behavior::Reset),
        ("staging", Behavior::Hang),
        ("development", status(307)),
    ];
    let receivers: Vec<Receiver> = failures
        .iter()
        .map(|(_, failure)| {
            let r = Receiver::start();
            r.script([failure.clone()]);
            r
        })
        .collect();
    let destinations: Vec<Dest> = failures
        .iter()
        .zip(&receivers)
        .zip(1..)
        .map(|(((environment, _), r), n)| {
            let mut d = Dest::new(n, environment, r.url("/failing"));
            d.timeout_ms = Some(500);
            d
        })
        .collect();
    let server = Setup { destinations: destinations.clone(), ..Setup::default() }.start();
    let token = server.token();
    let sent: Vec<Sent> = (0..3).map(|n| send(&server, &token, &format!("env-{n}"))).collect();
    let mut failed_attempts = Vec::new();
    for (dest, receiver) in destinations.iter().zip(&receivers) {
        let expected = logs_in_order(&sent, dest);
        let received = wait_first_seen(receiver, &expected);
        assert_eq!(webhook_ids(&received), expected, "{}: a failed log was retried", dest.name);
        let failed = wait_status(&server, &expected[0], "Failed");
        let attempts = failed["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 1, "{}: {failed}", dest.name);
        failed_attempts.push(attempts[0].clone());
        for later in &expected[1..] {
            wait_status(&server, later, "Succeeded");
        }
        let q = queue(&server, dest);
        assert_eq!((&q["state"], &q["depth"]), (&json!("flowing"), &json!(0)), "{}: {q}", dest.name);
        assert!(alerts(&server, dest).is_empty(), "{}: a non-production failure raised an alert", dest.name);
    }
    let [answered, reset, timed_out, redirected] = &failed_attempts[..] else { unreachable!("four destinations") };
    assert_eq!(answered["http_status"], 500, "{answered}");
    assert!(
        answered["error"].as_str().is_some_and(|e| e.contains("answered 500")),
        "the receiver's Meta.Errors text is kept: {answered}"
    );
    assert!(reset["http_status"].is_null() && reset["error"].is_string(), "{reset}");
    assert!(timed_out["http_status"].is_null(), "{timed_out}");
    assert!(timed_out["error"].as_str().is_some_and(|e| e.contains("timed out")), "{timed_out}");
    assert_eq!(redirected["http_status"], 307, "{redirected}");
}

#[test]
fn a_hanging_destination_does_not_slow_another() {
    let hanging = Receiver::start();
    hanging.set_default(Behavior::Hang);
    let healthy = Receiver::start();
    let mut stuck = Dest::new(1, "production", hanging.url("/stuck"));
    stuck.timeout_ms = Some(600_000);
    let flowing = Dest::new(2, "production", healthy.url("/flowing"));
    let server = Setup { destinations: vec![stuck.clone(), flowing.clone()], ..Setup::default() }.start();
    let token = server.token();
    let started = Instant::now();
    let sent: Vec<Sent> = (0..20).map(|n| send(&server, &token, &format!("iso-{n}"))).collect();
    let expected = logs_in_order(&sent, &flowing);
    let received = healthy.wait_for(|r| r.len() >= expected.len(), Duration::from_secs(10));
    eprintln!("20 deliveries past a hung destination in {:?}", started.elapsed());
    assert_eq!(webhook_ids(&received), expected);
    let head = logs_in_order(&sent, &stuck)[0].clone();
    let hung = hanging.wait_for(|r| !r.is_empty(), PATIENCE);
    assert_eq!(webhook_ids(&hung), std::slice::from_ref(&head), "only the head of the stuck queue is in flight");
    let q = queue(&server, &stuck);
    assert_eq!((&q["head_log_id"], &q["depth"]), (&json!(head), &json!(20)), "{q}");
    assert_eq!(log(&server, &head)["status"], "Pending");
}
