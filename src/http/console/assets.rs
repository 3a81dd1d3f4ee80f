//! The console's stylesheet and script, compiled into the binary: the
//! console loads nothing from anywhere else.

use actix_web::{HttpResponse, web};

const ASSETS: [(&str, &str, &str); 2] = [
    ("console.css", "text/css; charset=utf-8", include_str!("assets/console.css")),
    ("console.js", "text/javascript; charset=utf-8", include_str!("assets/console.js")),
];

pub async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, mime, body)) => HttpResponse::Ok()
            .content_type(*mime)
            .insert_header(("x-content-type-options", "nosniff"))
            // Small, and they change with the binary: a restart after an
            // upgrade must serve the new ones, so caches only revalidate.
            .insert_header(("cache-control", "no-cache"))
            .body(*body),
        None => HttpResponse::NotFound().finish(),
    }
}
