//! What the HTTP port answers while the journal is replayed: the port is
//! bound before replay, so probes and clients get an answer, not a refused
//! connection. `/healthz` is 200 (the process is alive), `/readyz` and
//! every other path 503 with `Retry-After`.

use actix_web::{App, HttpResponse, HttpServer, dev::Server, web};
use serde_json::json;

use crate::error::{ApiError, ErrorKind};

const REASON: &str = "ferrox is starting: its write-ahead log is being replayed";

/// Serves the starting answers on `listener` until stopped.
pub fn serve(listener: std::net::TcpListener) -> std::io::Result<Server> {
    let server = HttpServer::new(|| {
        App::new()
            .route("/healthz", web::get().to(|| async { HttpResponse::Ok().json(json!({ "status": "starting" })) }))
            .route(
                "/readyz",
                web::get().to(|| async {
                    HttpResponse::ServiceUnavailable()
                        .insert_header(("retry-after", "1"))
                        .json(json!({ "status": "starting", "reason": REASON }))
                }),
            )
            .default_service(web::to(|| async {
                ApiError::new(ErrorKind::Unavailable, REASON).retry_after(1).redox_response("Http", None, None)
            }))
    })
    .workers(1)
    .disable_signals()
    // Stopping for the engine to take over waits this long at most.
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}
