//! What was accepted and what arrived: the receiver in this process, and
//! the histograms it feeds.

use super::*;

/// A message accepted by the engine whose deliveries have not all arrived.
pub(crate) struct Pending {
    /// The SEND's start (closed loop) or scheduled start (open loop).
    pub(crate) start: Instant,
    /// Whether the SEND was answered in the measured window.
    pub(crate) measured: bool,
    /// The destinations it reached, a bit each.
    pub(crate) seen: [u64; 4],
    pub(crate) remaining: u32,
}

pub(crate) struct Book {
    pub(crate) pending: HashMap<u64, Pending>,
    /// Deliveries that arrived before their SEND's answer was read
    /// (destination, arrival), by message ID.
    pub(crate) early: HashMap<u64, Vec<(usize, Instant)>>,
    /// Accept → delivered, microseconds, measured messages only.
    pub(crate) delivered: Histogram<u64>,
    /// Arrival of the last delivery of a known message.
    pub(crate) last_delivery: Option<Instant>,
}

/// What the receiver and the senders share.
pub(crate) struct Tracker {
    pub(crate) destinations: usize,
    /// What the receiver takes over each request.
    pub(crate) delay: Duration,
    /// The measured window, set when the senders start.
    pub(crate) window: OnceLock<(Instant, Instant)>,
    pub(crate) book: Mutex<Book>,
    /// Deliveries that arrived in the measured window, of any message.
    pub(crate) in_window: AtomicU64,
    /// A (message, destination) delivered again.
    pub(crate) duplicates: AtomicU64,
    /// Deliveries without a message ID or to an unknown path.
    pub(crate) malformed: AtomicU64,
}

impl Book {
    /// Counts one delivery of `pending`; false when that destination had
    /// it already.
    pub(crate) fn record(&mut self, pending: &mut Pending, destination: usize, at: Instant) -> bool {
        let (word, bit) = (destination / 64, 1u64 << (destination % 64));
        if pending.seen[word] & bit != 0 {
            return false;
        }
        pending.seen[word] |= bit;
        pending.remaining -= 1;
        if pending.measured {
            record(&mut self.delivered, at.saturating_duration_since(pending.start));
        }
        self.last_delivery = Some(self.last_delivery.map_or(at, |last| last.max(at)));
        true
    }
}

impl Tracker {
    pub(crate) fn new(destinations: usize, delay: Duration) -> Result<Self, String> {
        Ok(Self {
            destinations,
            delay,
            window: OnceLock::new(),
            book: Mutex::new(Book {
                pending: HashMap::new(),
                early: HashMap::new(),
                delivered: histogram()?,
                last_delivery: None,
            }),
            in_window: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
        })
    }

    /// A SEND answered 200 with this message ID.
    pub(crate) fn accepted(&self, id: u64, start: Instant, measured: bool) {
        let mut book = self.book.lock();
        let mut pending = Pending { start, measured, seen: [0; 4], remaining: self.destinations as u32 };
        for (destination, at) in book.early.remove(&id).unwrap_or_default() {
            if !book.record(&mut pending, destination, at) {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
        if pending.remaining > 0 {
            book.pending.insert(id, pending);
        }
    }

    /// A delivery arrived at the receiver.
    pub(crate) fn delivered(&self, id: u64, destination: usize, at: Instant) {
        if self.window.get().is_some_and(|&(start, end)| at >= start && at < end) {
            self.in_window.fetch_add(1, Ordering::Relaxed);
        }
        let mut book = self.book.lock();
        let Some(mut pending) = book.pending.remove(&id) else {
            book.early.entry(id).or_default().push((destination, at));
            return;
        };
        if !book.record(&mut pending, destination, at) {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        if pending.remaining > 0 {
            book.pending.insert(id, pending);
        }
    }
}

pub(crate) fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new(3).map_err(|e| format!("histogram: {e}"))
}

/// Records a latency in microseconds. `record` grows the histogram as
/// needed; `saturating_record` would clamp to its current range instead.
pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// Reads the whole body, as a real receiver does (actix-web closes a
/// connection whose request body was left unread).
async fn receive(req: HttpRequest, _body: web::Bytes, tracker: web::Data<Arc<Tracker>>) -> HttpResponse {
    let at = Instant::now();
    let id = req.headers().get("ferrox-message-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let destination =
        req.path().strip_prefix("/d").and_then(|d| d.parse::<usize>().ok()).filter(|&d| d < tracker.destinations);
    match (id, destination) {
        (Some(id), Some(destination)) => tracker.delivered(id, destination, at),
        _ => {
            tracker.malformed.fetch_add(1, Ordering::Relaxed);
        }
    }
    if !tracker.delay.is_zero() {
        actix_web::rt::time::sleep(tracker.delay).await;
    }
    HttpResponse::Ok().body("{}")
}

/// Starts the receiver on its own thread; returns its port.
pub(crate) fn start_receiver(tracker: Arc<Tracker>) -> Result<u16, String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(tracker.clone()))
                    .app_data(web::PayloadConfig::new(16 << 20))
                    .default_service(web::to(receive))
            })
            .workers(2)
            .bind(("127.0.0.1", 0));
            match server {
                Ok(server) => {
                    let _ = tx.send(Ok(server.addrs()[0].port()));
                    let _ = server.run().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("the receiver could not bind: {e}")));
                }
            }
        })
    });
    rx.recv().map_err(|_| "the receiver did not start".to_owned())?
}
