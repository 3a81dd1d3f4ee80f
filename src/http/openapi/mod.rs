//! `GET /api/v1/openapi.json` (SPEC §16): the OpenAPI 3.1 document of every
//! endpoint, generated from the handlers' `utoipa::path` annotations and
//! the answers' schemas (`schemas`, `views`). Its tests hold it to the
//! route table (`routes`): every route the server registers is described,
//! and every description is of a route the server registers.

pub mod params;
pub mod schemas;
pub mod views;

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

use super::{admin, health, query, send, tokens};

/// Where the document is served, and the prefix of the operator API.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";

/// Paths of the console (`/ui`): HTML pages for a browser, not described.
pub const CONSOLE_PREFIX: &str = "/ui";

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "ferrox",
        description = "A durable message engine for healthcare integration: SEND (Redox Data Model API and FHIR R4 \
            messaging), synchronous queries, source sign-in, the operator API under /api/v1, health and metrics. \
            Sources authenticate with the access token of POST /auth/authenticate; the operator API takes an \
            operator token (admin_token or an [[operators]] token; roles viewer, operator, admin). Errors answer \
            in the API's own shape: Meta.Errors (Redox, operator API) or an OperationOutcome (FHIR). The operator \
            console's HTML pages under /ui are not described here: they read the operator API described here."
    ),
    paths(
        send::endpoint,
        send::fhir,
        query::query,
        tokens::authenticate,
        tokens::refresh,
        health::healthz,
        health::readyz,
        health::metrics,
        document,
        admin::config_routes::sources::list,
        admin::config_routes::sources::create,
        admin::config_routes::sources::get,
        admin::config_routes::sources::put,
        admin::config_routes::sources::delete,
        admin::config_routes::destinations::list,
        admin::config_routes::destinations::create,
        admin::config_routes::destinations::get,
        admin::config_routes::destinations::put,
        admin::config_routes::destinations::delete,
        admin::config_routes::subscriptions::list,
        admin::config_routes::subscriptions::create,
        admin::config_routes::subscriptions::get,
        admin::config_routes::subscriptions::put,
        admin::config_routes::subscriptions::delete,
        admin::logs::list_logs,
        admin::logs::get_log,
        admin::logs::queue,
        admin::queues::pause,
        admin::queues::resume,
        admin::queues::retry,
        admin::queues::skip,
        admin::queues::alerts,
        admin::resend::resend,
        admin::resend::replay,
        admin::audit::audit,
        admin::operators::list,
        admin::operators::create,
        admin::operators::get,
        admin::operators::put,
        admin::operators::delete,
    ),
    modifiers(&Security),
    tags(
        (name = "Send", description = "SEND: notifications from sources, answered once on disk (SPEC §3)"),
        (name = "Query", description = "REQUEST/RESPOND through to one destination (SPEC §7)"),
        (name = "Authentication", description = "Source sign-in (SPEC §8)"),
        (name = "Configuration", description = "Sources, destinations and subscriptions (SPEC §6)"),
        (name = "Logs", description = "Logs, queues and the actions on them (SPEC §6, §13)"),
        (name = "Alerts", description = "Alerts raised, and where they went (SPEC §14)"),
        (name = "Operators", description = "Operators and the audit trail (SPEC §12)"),
        (name = "Health", description = "Liveness, readiness, metrics and this document (SPEC §9, §16)"),
    )
)]
pub struct ApiDoc;

/// The bearer schemes: a source's access token, an operator's token, and
/// the optional `metrics_token`.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(description.to_owned());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            "source",
            bearer("A source's access token, from POST /auth/authenticate or POST /auth/refreshToken."),
        );
        components.add_security_scheme(
            "operator",
            bearer("An operator's token: admin_token, or a token of [[operators]] or of /api/v1/operators."),
        );
        components.add_security_scheme("metrics", bearer("The configuration's metrics_token, when it is set."));
    }
}

/// The document as JSON, made once.
pub fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")))
}

/// The API document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "Health",
    operation_id = "openapi_document",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object, content_type = "application/json")),
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document_json())
}

#[cfg(test)]
mod tests;
