//! The torture run's destinations: one HTTP server, a path per
//! destination, answering 2xx or 500 at random and recording every request.

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use parking_lot::Mutex;

use super::{Rng, check::Receipt};

/// What the receivers share: their records, the engine's run, and the dice.
#[derive(Debug)]
pub struct Receivers {
    pub receipts: Mutex<Vec<Receipt>>,
    pub run: AtomicU32,
    rng: Mutex<Rng>,
    /// Chance in 1000 that a request is refused with a 500.
    failure_per_mille: u64,
}

impl Receivers {
    /// Starts the server on a thread of its own; returns it and its port.
    pub fn start(seed: u64, failure_per_mille: u64) -> anyhow::Result<(Arc<Self>, u16)> {
        let receivers = Arc::new(Self {
            receipts: Mutex::new(Vec::new()),
            run: AtomicU32::new(0),
            rng: Mutex::new(Rng::new(seed)),
            failure_per_mille,
        });
        let shared = receivers.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("torture-receivers".into()).spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let bound = HttpServer::new(move || {
                    App::new().app_data(web::Data::new(shared.clone())).route("/d/{n}", web::post().to(receive))
                })
                .workers(2)
                .bind(("127.0.0.1", 0));
                match bound {
                    Ok(server) => {
                        let _ = tx.send(Ok(server.addrs()[0].port()));
                        let _ = server.run().await;
                    }
                    Err(e) => drop(tx.send(Err(e))),
                }
            })
        })?;
        let port = rx.recv()??;
        Ok((receivers, port))
    }

    pub fn receipts(&self) -> Vec<Receipt> {
        self.receipts.lock().clone()
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    n: web::Path<usize>,
    shared: web::Data<Arc<Receivers>>,
) -> HttpResponse {
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some(message_id) = value["Meta"]["Message"]["ID"].as_u64() else {
        return HttpResponse::BadRequest().body("no Meta.Message.ID");
    };
    let webhook_id = req.headers().get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let taken = shared.rng.lock().below(1000) >= shared.failure_per_mille;
    let run = shared.run.load(Ordering::SeqCst);
    shared.receipts.lock().push(Receipt { destination: n.into_inner(), message_id, webhook_id, taken, run });
    if taken { HttpResponse::Ok().body("{}") } else { HttpResponse::InternalServerError().body("{}") }
}
