//! A scriptable mock destination (svix's test receiver): an HTTP/1.1 server
//! on 127.0.0.1 that records every request and answers as the test says:
//! at once, slowly, when the test releases it, never, or with a connection
//! reset. One thread per
//! connection, and connections are kept alive because the engine's client
//! reuses them. It speaks plain HTTP, or HTTPS (rustls) with the
//! certificate it is given.

use std::{
    collections::{HashMap, VecDeque},
    io::{self, BufReader, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use self::wire::{read_chunked, read_head, respond, set_linger_zero, write_all};
use serde_json::Value;

mod wire;

/// Larger request bodies close the connection: no delivery test needs more.
const MAX_BODY_BYTES: usize = 64 << 20;
/// A request line, header line or chunk-size line longer than this is bad input.
const MAX_LINE_BYTES: u64 = 16 << 10;
/// Headers per request; the engine sends about a dozen.
const MAX_HEADERS: usize = 256;
/// Connections open at once, so a runaway client cannot exhaust threads.
const MAX_CONNECTIONS: usize = 512;

/// How to answer one request.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Answer at once with this status and body.
    Status(u16, String),
    /// Answer after the delay.
    Slow(Duration, u16, String),
    /// Answer once the test calls `release`, at once if it already has;
    /// until then the request is held like `Hang`.
    Held(u16, String),
    /// Read the request and never answer; the connection stays open until
    /// the receiver is dropped.
    Hang,
    /// Read the request, then reset the connection without answering.
    Reset,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// In arrival order, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the whole request had been read.
    pub at: Instant,
}

impl Received {
    /// The first value of header `name`, whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON; `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Decides the answer to a request the script does not cover; gets the
/// request and its number (from 0, counting every request).
type Rule = Arc<dyn Fn(&Received, u64) -> Behavior + Send + Sync>;

struct State {
    received: Vec<Received>,
    script: VecDeque<Behavior>,
    rule: Rule,
    connections: usize,
    /// Clones of the open connections, so that a drop can shut them down.
    open: HashMap<u64, TcpStream>,
    /// `Held` requests are answered.
    released: bool,
    stopping: bool,
}

/// What the test thread and the server threads share; the condition
/// variable signals both a new request and the stop.
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Speaks TLS with this configuration; plain HTTP when `None`.
    tls: Option<Arc<ServerConfig>>,
}

impl Shared {
    /// Locks the state, even if a test thread panicked while holding it:
    /// server threads never panic.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the receiver stops or `deadline` passes (never, if
    /// `None`); true if it stopped.
    fn stopped_before(&self, deadline: Option<Instant>) -> bool {
        let mut state = self.lock();
        while !state.stopping {
            let now = Instant::now();
            let timeout = match deadline {
                Some(d) if now >= d => return false,
                Some(d) => d - now,
                None => Duration::from_secs(3600),
            };
            state = self.changed.wait_timeout(state, timeout).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }

    /// Waits until the test releases held requests or the receiver stops;
    /// true if released.
    fn released(&self) -> bool {
        let mut state = self.lock();
        while !state.released && !state.stopping {
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.released && !state.stopping
    }

    /// Records a request and decides its answer: the script first, then the rule.
    fn record(&self, request: Received) -> Behavior {
        let (number, scripted, rule) = {
            let mut state = self.lock();
            state.received.push(request.clone());
            self.changed.notify_all();
            (state.received.len() as u64 - 1, state.script.pop_front(), state.rule.clone())
        };
        scripted.unwrap_or_else(|| {
            catch_unwind(AssertUnwindSafe(|| rule(&request, number))).unwrap_or_else(|_| {
                eprintln!("receiver: the rule panicked on request {number}; answering 500");
                Behavior::Status(500, "{}".to_owned())
            })
        })
    }
}

/// A running mock destination. Dropping it stops it, releases hung
/// connections and frees its port.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Receiver {
    /// Listens on a free port; answers 200 `{}` until told otherwise.
    pub fn start() -> Self {
        Self::listen(None)
    }

    /// As `start`, but speaks HTTPS with `tls` (its certificate names
    /// `127.0.0.1`).
    pub fn start_tls(tls: Arc<ServerConfig>) -> Self {
        Self::listen(Some(tls))
    }

    fn listen(tls: Option<Arc<ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let state = State {
            received: Vec::new(),
            script: VecDeque::new(),
            rule: Arc::new(|_: &Received, _| Behavior::Status(200, "{}".to_owned())),
            connections: 0,
            open: HashMap::new(),
            released: false,
            stopping: false,
        };
        let shared = Arc::new(Shared { state: Mutex::new(state), changed: Condvar::new(), tls });
        let accepting = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("receiver-accept".to_owned())
            .spawn(move || accept_loop(listener, &accepting))
            .expect("spawning the receiver");
        Self { addr, shared, acceptor: Some(acceptor) }
    }

    /// Where it listens, for raw TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/path`, or `https://` when it speaks TLS.
    pub fn url(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        let scheme = if self.shared.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{slash}{path}", self.addr)
    }

    /// The answer to every request the script does not cover; replaces any rule.
    pub fn set_default(&self, behavior: Behavior) {
        self.set_rule(move |_, _| behavior.clone());
    }

    /// Appends answers, consumed one per request in arrival order before the
    /// default or rule applies.
    pub fn script(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        self.shared.lock().script.extend(behaviors);
    }

    /// Decides each request the script does not cover; replaces the default.
    pub fn set_rule(&self, rule: impl Fn(&Received, u64) -> Behavior + Send + Sync + 'static) {
        self.shared.lock().rule = Arc::new(rule);
    }

    /// Answers every `Held` request, and those to come at once.
    pub fn release(&self) {
        self.shared.lock().released = true;
        self.shared.changed.notify_all();
    }

    /// Every request so far in arrival order, including hung and reset ones.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    /// Waits until `pred` holds for the requests so far and returns them;
    /// panics, listing what arrived, if it does not hold within `timeout`.
    #[track_caller]
    pub fn wait_for(&self, pred: impl Fn(&[Received]) -> bool, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while !pred(&state.received) {
            let now = Instant::now();
            if now >= deadline {
                let got: Vec<String> = state.received.iter().map(summary).collect();
                drop(state);
                panic!(
                    "the receiver's condition did not hold within {timeout:?}; got {}:\n{}",
                    got.len(),
                    got.join("\n")
                );
            }
            state = self.shared.changed.wait_timeout(state, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        state.received.clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.stopping = true;
            for stream in state.open.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            self.shared.changed.notify_all();
        }
        // The acceptor blocks in accept(): a connection wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn summary(r: &Received) -> String {
    let id = r.header("webhook-id").unwrap_or("-");
    format!("  {} {} webhook-id={id} ({} bytes)", r.method, r.path, r.body.len())
}

fn accept_loop(listener: TcpListener, shared: &Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    for (id, stream) in (0u64..).zip(listener.incoming()) {
        let Ok(stream) = stream.inspect_err(|e| eprintln!("receiver: accept failed: {e}")) else { continue };
        let clone = {
            let mut state = shared.lock();
            if state.stopping {
                break;
            }
            if state.open.len() >= MAX_CONNECTIONS {
                eprintln!("receiver: over {MAX_CONNECTIONS} connections; closing a new one");
                continue;
            }
            state.connections += 1;
            stream.try_clone().map(|c| state.open.insert(id, c))
        };
        if let Err(e) = clone {
            eprintln!("receiver: cloning connection {id}: {e}");
            continue;
        }
        let serving = Arc::clone(shared);
        match thread::Builder::new().name(format!("receiver-{id}")).spawn(move || serve(stream, id, &serving)) {
            Ok(worker) => workers.push(worker),
            Err(e) => {
                eprintln!("receiver: spawning a thread for connection {id}: {e}");
                shared.lock().open.remove(&id);
            }
        }
        workers.retain(|w| !w.is_finished());
    }
    drop(listener);
    for worker in workers {
        let _ = worker.join();
    }
}

/// Serves one connection, then closes it (resetting it if told to).
fn serve(stream: TcpStream, id: u64, shared: &Shared) {
    let served = match &shared.tls {
        None => serve_requests(&stream, &stream, shared),
        Some(tls) => ServerConnection::new(Arc::clone(tls))
            .map_err(io::Error::other)
            .and_then(|tls| serve_requests(StreamOwned::new(tls, &stream), &stream, shared)),
    };
    if let Err(e) = served
        && !shared.lock().stopping
    {
        eprintln!("receiver: connection {id}: {e}; closing it");
    }
    // The clone must go too: the socket closes with its last descriptor.
    shared.lock().open.remove(&id);
}

/// Serves the requests of one connection, read and answered through
/// `stream` (the socket itself, or TLS over it); `socket` is reset when told.
fn serve_requests(stream: impl Read + Write, socket: &TcpStream, shared: &Shared) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = read_head(&mut reader)? else { return Ok(()) };
        if head.expects_continue {
            write_all(reader.get_mut(), b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut body = vec![0; head.content_length];
        reader.read_exact(&mut body)?;
        if head.chunked {
            body = read_chunked(&mut reader)?;
        }
        let request =
            Received { method: head.method, path: head.path, headers: head.headers, body, at: Instant::now() };
        match shared.record(request) {
            Behavior::Status(status, body) => respond(reader.get_mut(), status, &body, head.keep_alive)?,
            Behavior::Slow(delay, status, body) => {
                if shared.stopped_before(Some(Instant::now() + delay)) {
                    return Ok(());
                }
                respond(reader.get_mut(), status, &body, head.keep_alive)?;
            }
            Behavior::Held(status, body) => {
                if !shared.released() {
                    return Ok(());
                }
                respond(reader.get_mut(), status, &body, head.keep_alive)?;
            }
            Behavior::Hang => {
                shared.stopped_before(None);
                return Ok(());
            }
            Behavior::Reset => return set_linger_zero(socket),
        }
        if !head.keep_alive {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashSet,
        io::{Read as _, Write as _},
        net::{TcpListener, TcpStream},
        panic::{AssertUnwindSafe, catch_unwind},
        sync::Mutex,
        thread,
        time::{Duration, Instant},
    };

    use ureq::Agent;

    use super::{Behavior, Receiver};

    const PATIENCE: Duration = Duration::from_secs(10);

    fn agent(timeout: Duration) -> Agent {
        Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .proxy(None)
            .build()
            .new_agent()
    }

    /// POSTs `body` with a `webhook-id`; the status and body of the answer.
    fn post(agent: &Agent, url: &str, id: &str, body: &str) -> Result<(u16, String), ureq::Error> {
        let mut response = agent.post(url).header("webhook-id", id).content_type("application/json").send(body)?;
        Ok((response.status().as_u16(), response.body_mut().read_to_string()?))
    }

    fn status(code: u16, body: &str) -> Behavior {
        Behavior::Status(code, body.to_owned())
    }

    #[test]
    fn it_records_requests_and_answers_at_once_or_slowly() {
        let receiver = Receiver::start();
        let client = agent(PATIENCE);
        assert_eq!(post(&client, &receiver.url("/lab"), "a", "{\"n\":1}").unwrap(), (200, "{}".to_owned()));
        receiver.set_default(status(503, "{\"down\":true}"));
        assert_eq!(post(&client, &receiver.url("lab"), "b", "{}").unwrap(), (503, "{\"down\":true}".to_owned()));
        receiver.set_default(Behavior::Slow(Duration::from_millis(300), 201, "late".to_owned()));
        let sent = Instant::now();
        assert_eq!(post(&client, &receiver.url("/slow"), "c", "{}").unwrap(), (201, "late".to_owned()));
        assert!(sent.elapsed() >= Duration::from_millis(300), "answered after {:?}", sent.elapsed());
        let received = receiver.received();
        let first = &received[0];
        assert_eq!((first.method.as_str(), first.path.as_str()), ("POST", "/lab"));
        assert_eq!((first.header("Webhook-ID"), first.header("content-type")), (Some("a"), Some("application/json")));
        assert_eq!(first.json()["n"], 1);
        assert_eq!(received.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/lab", "/lab", "/slow"]);
        assert!(received[1].at <= received[2].at);
        assert_eq!(receiver.connections(), 1, "one agent keeps one connection alive");
    }

    #[test]
    fn the_script_comes_first_then_the_rule() {
        let receiver = Receiver::start();
        receiver.script([status(500, "one"), status(502, "two")]);
        // Fails the first attempt of each webhook-id, as a flaky destination would.
        let seen = Mutex::new(HashSet::new());
        receiver.set_rule(move |r, n| {
            let first = seen.lock().unwrap().insert(r.header("webhook-id").unwrap_or_default().to_owned());
            if first { Behavior::Status(500, format!("#{n}")) } else { Behavior::Status(200, format!("#{n}")) }
        });
        let client = agent(PATIENCE);
        let answers: Vec<_> =
            ["a", "b", "c", "c", "d"].iter().map(|id| post(&client, &receiver.url("/"), id, "{}").unwrap()).collect();
        let expected = [(500, "one"), (502, "two"), (500, "#2"), (200, "#3"), (500, "#4")];
        assert_eq!(answers, expected.map(|(s, b)| (s, b.to_owned())));
    }

    #[test]
    fn hang_holds_the_request_until_the_receiver_is_dropped() {
        let receiver = Receiver::start();
        receiver.set_default(Behavior::Hang);
        let error = post(&agent(Duration::from_millis(300)), &receiver.url("/hang"), "h", "{}").unwrap_err();
        assert!(matches!(error, ureq::Error::Timeout(_)), "{error}");
        receiver.wait_for(|r| r.len() == 1, PATIENCE);
        let address = receiver.addr();
        let dropped = Instant::now();
        drop(receiver);
        assert!(dropped.elapsed() < Duration::from_secs(5), "the drop took {:?}", dropped.elapsed());
        TcpListener::bind(address).expect("a dropped receiver frees its port");
    }

    #[test]
    fn held_requests_are_answered_once_released() {
        let receiver = Receiver::start();
        receiver.script([Behavior::Held(202, "held".to_owned())]);
        let url = receiver.url("/held");
        let sender = thread::spawn(move || post(&agent(PATIENCE), &url, "h", "{}").unwrap());
        receiver.wait_for(|r| r.len() == 1, PATIENCE);
        receiver.release();
        assert_eq!(sender.join().unwrap(), (202, "held".to_owned()));
        receiver.script([Behavior::Held(200, "later".to_owned())]);
        assert_eq!(post(&agent(PATIENCE), &receiver.url("/held"), "i", "{}").unwrap(), (200, "later".to_owned()));
    }

    #[test]
    fn reset_cuts_the_connection() {
        let receiver = Receiver::start();
        receiver.script([Behavior::Reset]);
        let error = post(&agent(PATIENCE), &receiver.url("/reset"), "r", "{}").unwrap_err();
        assert!(
            matches!(&error, ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "a reset is a connection error, not {error}"
        );
        assert_eq!(post(&agent(PATIENCE), &receiver.url("/after"), "s", "{}").unwrap().0, 200);
        assert_eq!(receiver.received().len(), 2);
    }

    #[test]
    fn wait_for_sees_requests_from_other_threads_and_has_a_deadline() {
        let receiver = Receiver::start();
        let url = receiver.url("/many");
        let sender = thread::spawn(move || {
            let client = agent(PATIENCE);
            (0..3).map(|i| post(&client, &url, &i.to_string(), "{}").map(|a| a.0).unwrap()).collect::<Vec<_>>()
        });
        let received = receiver.wait_for(|r| r.len() == 3, PATIENCE);
        assert_eq!(received.iter().filter_map(|r| r.header("webhook-id")).collect::<Vec<_>>(), ["0", "1", "2"]);
        assert_eq!(sender.join().unwrap(), [200, 200, 200]);
        let wait = AssertUnwindSafe(|| receiver.wait_for(|r| r.len() == 4, Duration::from_millis(50)));
        let message =
            catch_unwind(wait).err().and_then(|e| e.downcast::<String>().ok()).expect("a panic at the deadline");
        assert!(message.contains("got 3:") && message.contains("webhook-id=2"), "{message}");
    }

    #[test]
    fn chunked_bodies_are_read_and_bad_input_only_closes_the_connection() {
        let receiver = Receiver::start();
        let address = receiver.addr();
        let mut chunked = TcpStream::connect(address).unwrap();
        let request = "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                       3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: t\r\n\r\n";
        chunked.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        chunked.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\n{}"), "{answer:?}");
        assert_eq!(receiver.received()[0].body, b"abcdefg");
        for garbage in ["NOT HTTP\r\n\r\n", "POST / HTTP/1.1\r\ncontent-length: 99999999999\r\n\r\n"] {
            let mut bad = TcpStream::connect(address).unwrap();
            bad.write_all(garbage.as_bytes()).unwrap();
            let mut answer = Vec::new();
            let _ = bad.read_to_end(&mut answer);
            assert!(answer.is_empty(), "bad input is not answered: {answer:?}");
        }
        assert_eq!(post(&agent(PATIENCE), &receiver.url("/"), "ok", "{}").unwrap().0, 200);
        assert_eq!((receiver.received().len(), receiver.connections()), (2, 4));
    }
}
