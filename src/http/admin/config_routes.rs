//! The routes of sources, destinations and subscriptions: one concrete,
//! documented handler per kind and verb over the generic ones of `config`.

use actix_web::{HttpRequest, web};

use super::config::{self, Destinations, Reply, Sources, Subscriptions};
use crate::http::{AppCtx, routes::Routes};

pub fn routes(r: &mut Routes<'_>) {
    sources::routes(r);
    destinations::routes(r);
    subscriptions::routes(r);
}

/// The five handlers of one kind, each with its `utoipa::path`.
macro_rules! object_routes {
    (
        $module:ident, $kind:ident, $plural:literal, $one:literal, $singular:literal,
        $view:ident, $list:ident, $spec:ident
    ) => {
        pub mod $module {
            use super::*;
            use crate::http::openapi::{params::DeleteQuery, schemas::RedoxErrors, views::{$list, $view}};
            use crate::objects::$spec;

            pub fn routes(r: &mut Routes<'_>) {
                let one = $one.strip_prefix("/api/v1").unwrap_or($one);
                let all = $plural.strip_prefix("/api/v1").unwrap_or($plural);
                r.get(all, list).post(all, create).get(one, get).put(one, put).delete(one, delete);
            }

            #[utoipa::path(get, path = $plural, tag = "Configuration",
                operation_id = concat!("list_", stringify!($module)),
                security(("operator" = [])),
                responses(
                    (status = 200, description = concat!("Every ", $singular), body = $list),
                    (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
                    (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
                ))]
            pub async fn list(ctx: web::Data<AppCtx>, req: HttpRequest) -> Reply {
                config::list::<$kind>(ctx, req).await
            }

            #[utoipa::path(post, path = $plural, tag = "Configuration",
                operation_id = concat!("create_", $singular),
                security(("operator" = [])),
                request_body = $spec,
                responses(
                    (status = 201, description = concat!("The ", $singular, " made, journaled"), body = $view),
                    (status = 400, description = "Invalid body: unknown fields, bad values", body = RedoxErrors),
                    (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
                    (status = 403, description = "The operator's role is not admin", body = RedoxErrors),
                    (status = 409, description = "Its ID or API key is taken", body = RedoxErrors),
                    (status = 413, description = "Body over 1 MiB", body = RedoxErrors),
                    (status = 415, description = "Content-Type not JSON", body = RedoxErrors),
                    (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
                    (status = 503, description = "The write-ahead log takes no writes", body = RedoxErrors),
                ))]
            pub async fn create(ctx: web::Data<AppCtx>, req: HttpRequest, body: web::Payload) -> Reply {
                config::create::<$kind>(ctx, req, body).await
            }

            #[utoipa::path(get, path = $one, tag = "Configuration",
                operation_id = concat!("get_", $singular),
                security(("operator" = [])),
                params(("id" = String, Path, format = Uuid)),
                responses(
                    (status = 200, description = concat!("The ", $singular), body = $view),
                    (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
                    (status = 404, description = "No such object", body = RedoxErrors),
                    (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
                ))]
            pub async fn get(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
                config::get::<$kind>(ctx, req, id).await
            }

            #[utoipa::path(put, path = $one, tag = "Configuration",
                operation_id = concat!("put_", $singular),
                security(("operator" = [])),
                params(("id" = String, Path, format = Uuid)),
                request_body = $spec,
                responses(
                    (status = 200, description = concat!("The ", $singular, " as changed (or made), journaled"), body = $view),
                    (status = 400, description = "Invalid body: unknown fields, bad values", body = RedoxErrors),
                    (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
                    (status = 403, description = "The operator's role is not admin", body = RedoxErrors),
                    (status = 404, description = "Not an ID", body = RedoxErrors),
                    (status = 409, description = "Declared in the configuration file, or its API key is taken", body = RedoxErrors),
                    (status = 413, description = "Body over 1 MiB", body = RedoxErrors),
                    (status = 415, description = "Content-Type not JSON", body = RedoxErrors),
                    (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
                    (status = 503, description = "The write-ahead log takes no writes", body = RedoxErrors),
                ))]
            pub async fn put(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>, body: web::Payload) -> Reply {
                config::put::<$kind>(ctx, req, id, body).await
            }

            #[utoipa::path(delete, path = $one, tag = "Configuration",
                operation_id = concat!("delete_", $singular),
                security(("operator" = [])),
                params(("id" = String, Path, format = Uuid), DeleteQuery),
                responses(
                    (status = 204, description = "Deleted, with the subscriptions that named it; journaled"),
                    (status = 400, description = "Invalid query", body = RedoxErrors),
                    (status = 401, description = "Missing or unknown operator token", body = RedoxErrors),
                    (status = 403, description = "The operator's role is not admin", body = RedoxErrors),
                    (status = 404, description = "No such object", body = RedoxErrors),
                    (status = 409, description = "Declared in the configuration file, or a destination with queued logs without force=true", body = RedoxErrors),
                    (status = 429, description = "Too many wrong tokens from this address", body = RedoxErrors),
                    (status = 503, description = "The write-ahead log takes no writes", body = RedoxErrors),
                ))]
            pub async fn delete(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
                config::delete::<$kind>(ctx, req, id).await
            }
        }
    };
}

object_routes!(sources, Sources, "/api/v1/sources", "/api/v1/sources/{id}", "source", Source, SourceList, SourceSpec);
object_routes!(
    destinations,
    Destinations,
    "/api/v1/destinations",
    "/api/v1/destinations/{id}",
    "destination",
    Destination,
    DestinationList,
    DestinationSpec
);
object_routes!(
    subscriptions,
    Subscriptions,
    "/api/v1/subscriptions",
    "/api/v1/subscriptions/{id}",
    "subscription",
    Subscription,
    SubscriptionList,
    SubscriptionSpec
);
