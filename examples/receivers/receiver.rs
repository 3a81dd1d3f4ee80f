//! A ferrox destination that does what `docs/receiving.md` asks of one,
//! in Rust (actix-web, hmac, sha2, base64, serde_json):
//!
//! ```sh
//! cargo run --release --example receiver -- --listen 127.0.0.1:9100 \
//!     --secret whsec_... --out processed.jsonl
//! ```
//!
//! (the secret may come from `WEBHOOK_SECRET` instead). For each POST it
//!
//! - checks the Standard Webhooks signature (`webhook-id`,
//!   `webhook-timestamp`, `webhook-signature`) with the destination's
//!   signing secret, and a timestamp within 5 minutes of now: otherwise it
//!   answers 401;
//! - drops a `webhook-id` it has already processed (ferrox delivers at
//!   least once): it answers 200 without processing it again;
//! - processes the message: appends one JSON line to `--out` (and syncs
//!   it) or prints it, then answers 200.
//!
//! It prints `receiver listening on http://HOST:PORT` to stderr once it
//! listens (port 0 picks a free one).

use std::{
    collections::HashSet,
    fs::{File, OpenOptions},
    io::{BufRead as _, BufReader, Write as _},
    net::SocketAddr,
    path::PathBuf,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use clap::Parser;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

/// How far `webhook-timestamp` may be from this machine's clock: a captured
/// request cannot be replayed later than this.
const TOLERANCE_S: i64 = 5 * 60;
/// Bodies larger than ferrox's default `max_body_bytes` are not ferrox's.
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

#[derive(Parser)]
#[command(about = "A ferrox destination: verifies signatures, drops repeats, keeps what it processed")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// The destination's signing_secret (`whsec_...`); `WEBHOOK_SECRET`
    /// when absent.
    #[arg(long)]
    secret: Option<String>,
    /// Append processed messages here (JSON lines); stdout when absent.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The messages processed, by `webhook-id`, kept in an append-only file so
/// that a restart of the receiver still knows them.
struct Processed {
    ids: HashSet<String>,
    out: Option<File>,
}

impl Processed {
    fn open(path: Option<&PathBuf>) -> anyhow::Result<Self> {
        let mut ids = HashSet::new();
        let Some(path) = path else { return Ok(Self { ids, out: None }) };
        if path.exists() {
            let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
            for line in BufReader::new(file).lines() {
                let record: Value = serde_json::from_str(&line?)?;
                ids.insert(record["webhook_id"].as_str().context("a record without webhook_id")?.to_owned());
            }
        }
        let out = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { ids, out: Some(out) })
    }

    /// Processes `record` unless `id` was; says whether it did.
    fn process_once(&mut self, id: &str, record: &Value) -> std::io::Result<bool> {
        if self.ids.contains(id) {
            return Ok(false);
        }
        let line = format!("{record}\n");
        match &mut self.out {
            Some(file) => {
                file.write_all(line.as_bytes())?;
                file.sync_data()?;
            }
            None => std::io::stdout().lock().write_all(line.as_bytes())?,
        }
        self.ids.insert(id.to_owned());
        Ok(true)
    }
}

struct Receiver {
    key: Vec<u8>,
    processed: Mutex<Processed>,
}

/// The HMAC key inside a `whsec_` secret.
fn signing_key(secret: &str) -> anyhow::Result<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").context("the signing secret must start with whsec_")?;
    STANDARD.decode(encoded).context("the signing secret is not base64 after whsec_")
}

/// `Ok` if the request is signed by `key` and fresh, else the reason.
fn verify(key: &[u8], request: &HttpRequest, body: &[u8], now_s: i64) -> Result<(), &'static str> {
    let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signatures)) =
        (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"))
    else {
        return Err("missing webhook-id, webhook-timestamp or webhook-signature");
    };
    let sent_at: i64 = timestamp.parse().map_err(|_| "webhook-timestamp is not a number")?;
    if (now_s - sent_at).abs() > TOLERANCE_S {
        return Err("webhook-timestamp is too far from now");
    }
    // The header may list several signatures ("v1,<sig> v1,<sig>"), e.g.
    // while a secret is being rotated: one valid is enough. `verify_slice`
    // compares in constant time.
    for candidate in signatures.split(' ') {
        let Some(("v1", signature)) = candidate.split_once(',') else { continue };
        let Ok(signature) = STANDARD.decode(signature) else { continue };
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        if mac.verify_slice(&signature).is_ok() {
            return Ok(());
        }
    }
    Err("no valid signature")
}

fn error(status: actix_web::http::StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "Meta": { "Errors": [{ "Text": text }] } }))
}

async fn receive(request: HttpRequest, body: web::Bytes, receiver: web::Data<Receiver>) -> HttpResponse {
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs().try_into().unwrap_or(i64::MAX));
    if let Err(reason) = verify(&receiver.key, &request, &body, now_s) {
        return error(actix_web::http::StatusCode::UNAUTHORIZED, reason);
    }
    let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let id = header("webhook-id").unwrap_or_default();
    // A body that is not JSON is not ours to fix, and a non-2xx would hold
    // the queue: take it, keep it as text.
    let message =
        serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    let record = json!({
        "webhook_id": id,
        "message_id": header("ferrox-message-id"),
        "received_at": header("ferrox-received-at"),
        "body": message,
    });
    let processed =
        receiver.processed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).process_once(&id, &record);
    match processed {
        Ok(fresh) => HttpResponse::Ok().json(json!({ "duplicate": !fresh })),
        // Not processed: a 5xx makes ferrox deliver it again.
        Err(e) => {
            error(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, &format!("could not keep the message: {e}"))
        }
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let secret = match args.secret {
        Some(secret) => secret,
        None => std::env::var("WEBHOOK_SECRET").context("--secret or WEBHOOK_SECRET is required")?,
    };
    let receiver = web::Data::new(Receiver {
        key: signing_key(&secret)?,
        processed: Mutex::new(Processed::open(args.out.as_ref())?),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(receiver.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .default_service(web::to(receive))
    })
    .workers(2)
    .bind(args.listen)
    .with_context(|| format!("listening on {}", args.listen))?;
    for addr in server.addrs() {
        eprintln!("receiver listening on http://{addr}");
    }
    server.run().await?;
    Ok(())
}
