//! What the HTTP port answers while the journal is replayed: the port is
//! bound before replay, so probes and clients get an answer, not a refused
//! connection. `/healthz` is 200 (the process is alive), `/readyz` and
//! every other path 503 with `Retry-After`.

use actix_web::{App, HttpResponse, HttpServer, dev::Server, web};
use serde_json::json;

use crate::error::{ApiError, ErrorKind};

const REASON: &str = "ferrox is starting: its write-ahead log is being replayed";

/// Serves the starting answers on `listener` until stopped, over HTTPS
/// with `tls` when given, as the engine will.
pub fn serve(listener: std::net::TcpListener, tls: Option<rustls::ServerConfig>) -> std::io::Result<Server> {
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
    .shutdown_timeout(1);
    let server = match tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls)?,
        None => server.listen(listener)?,
    };
    let server = server.run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn while_starting_the_port_is_alive_but_not_ready() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = serve(listener, None).unwrap();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let client = awc::Client::default();
        let get = |path: &'static str| client.get(format!("http://{addr}{path}")).send();
        assert_eq!(get("/healthz").await.unwrap().status().as_u16(), 200);
        let mut ready = get("/readyz").await.unwrap();
        assert_eq!(ready.status().as_u16(), 503);
        assert_eq!(ready.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
        let body: serde_json::Value = ready.json().await.unwrap();
        assert!(body["reason"].as_str().unwrap().contains("replayed"), "{body}");
        let mut send = client.post(format!("http://{addr}/endpoint")).send_body("{}").await.unwrap();
        assert_eq!(send.status().as_u16(), 503);
        let body: serde_json::Value = send.json().await.unwrap();
        assert!(body["Meta"]["Errors"][0]["Text"].as_str().unwrap().contains("starting"), "{body}");
        handle.stop(true).await;
    }
}
