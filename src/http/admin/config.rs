//! CRUD of sources, destinations and subscriptions. Every change is a
//! journal event, answered once durable.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{change, json_body, path_id};
use crate::{
    error::ApiError,
    http::{AppCtx, authenticate_admin},
    journal::Event,
    objects::{DestinationSpec, SourceSpec, SubscriptionSpec, destination_json, source_json, subscription_json},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sources", web::get().to(list_sources))
        .route("/sources", web::post().to(create_source))
        .route("/sources/{id}", web::get().to(get_source))
        .route("/sources/{id}", web::put().to(put_source))
        .route("/sources/{id}", web::delete().to(delete_source))
        .route("/destinations", web::get().to(list_destinations))
        .route("/destinations", web::post().to(create_destination))
        .route("/destinations/{id}", web::get().to(get_destination))
        .route("/destinations/{id}", web::put().to(put_destination))
        .route("/destinations/{id}", web::delete().to(delete_destination))
        .route("/subscriptions", web::get().to(list_subscriptions))
        .route("/subscriptions", web::post().to(create_subscription))
        .route("/subscriptions/{id}", web::get().to(get_subscription))
        .route("/subscriptions/{id}", web::put().to(put_subscription))
        .route("/subscriptions/{id}", web::delete().to(delete_subscription));
}

type Reply = Result<HttpResponse, ApiError>;

fn list(plural: &str, items: Vec<Value>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ plural: items, "next_cursor": null }))
}

fn exists_conflict(kind: &str, id: Option<&str>, taken: impl Fn(crate::model::Id) -> bool) -> Result<(), ApiError> {
    match id.and_then(crate::model::Id::parse) {
        Some(id) if taken(id) => Err(ApiError::conflict(format!("{kind} {id} exists: use PUT to change it"))),
        _ => Ok(()),
    }
}

async fn list_sources(ctx: web::Data<AppCtx>, req: HttpRequest) -> Reply {
    authenticate_admin(&ctx, &req)?;
    Ok(list("sources", ctx.state.read().sources.values().map(|s| source_json(s, None)).collect()))
}

async fn get_source(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    authenticate_admin(&ctx, &req)?;
    let id = path_id(&id)?;
    let state = ctx.state.read();
    let source = state.sources.get(&id).ok_or_else(|| ApiError::not_found(format!("source {id} not found")))?;
    Ok(HttpResponse::Ok().json(source_json(source, None)))
}

async fn create_source(ctx: web::Data<AppCtx>, req: HttpRequest, body: web::Payload) -> Reply {
    authenticate_admin(&ctx, &req)?;
    let spec: SourceSpec = json_body(&req, body).await?;
    let value = change(
        &ctx,
        Box::new(move |state, ids| {
            exists_conflict("source", spec.id.as_deref(), |id| state.sources.contains_key(&id))?;
            let (source, secret) = spec.build(None, None, state, ids)?;
            let value = source_json(&source, secret.as_deref());
            Ok((Some(Event::SourceUpserted(source)), value))
        }),
    )
    .await?;
    Ok(HttpResponse::Created().json(value))
}

async fn put_source(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>, body: web::Payload) -> Reply {
    authenticate_admin(&ctx, &req)?;
    let id = path_id(&id)?;
    let spec: SourceSpec = json_body(&req, body).await?;
    let value = change(
        &ctx,
        Box::new(move |state, ids| {
            let (source, secret) = spec.build(Some(id), state.sources.get(&id), state, ids)?;
            let value = source_json(&source, secret.as_deref());
            Ok((Some(Event::SourceUpserted(source)), value))
        }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(value))
}

async fn delete_source(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    authenticate_admin(&ctx, &req)?;
    let id = path_id(&id)?;
    change(
        &ctx,
        Box::new(move |state, _| {
            let source = state.sources.get(&id).ok_or_else(|| ApiError::not_found(format!("source {id} not found")))?;
            let value = source_json(source, None);
            Ok((Some(Event::SourceDeleted { id }), value))
        }),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_destinations(ctx: web::Data<AppCtx>, req: HttpRequest) -> Reply {
    authenticate_admin(&ctx, &req)?;
    Ok(list("destinations", ctx.state.read().destinations.values().map(destination_json).collect()))
}

async fn get_destination(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    authenticate_admin(&ctx, &req)?;
    let id = path_id(&id)?;
    let state = ctx.state.read();
    let d = state.destinations.get(&id).ok_or_else(|| ApiError::not_found(format!("destination {id} not found")))?;
    Ok(HttpResponse::Ok().json(destination_json(d)))
}

async fn create_destination(ctx: web::Data<AppCtx>, req: HttpRequest, body: web::Payload) -> Reply {
    authenticate_admin(&ctx, &req)?;
    let spec: DestinationSpec = json_body(&req, body).await?;
    let timeout_ms = ctx.config.delivery.timeout_ms;
    let value = change(
        &ctx,
        Box::new(move |state, ids| {
            exists_conflict("destination", spec.id.as_deref(), |id| state.destinations.contains_key(&id))?;
            let d = spec.build(None, None, timeout_ms, ids)?;
            let value = destination_json(&d);
            Ok((Some(Event::DestinationUpserted(d)), value))
        }),
    )
    .await?;
    Ok(HttpResponse::Created().json(value))
}

async fn put_destination(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>, body: web::Payload) -> Reply {
    authenticate_admin(&ctx, &req)?;
    let id = path_id(&id)?;
    let spec: DestinationSpec = json_body(&req, body).await?;
    let timeout_ms = ctx.config.delivery.timeout_ms;
    let value = change(
        &ctx,
        Box::new(move |state, ids| {
            let d = spec.build(Some(id), state.destinations.get(&id), timeout_ms, ids)?;
            let value = destination_json(&d);
            Ok((Some(Event::DestinationUpserted(d)), value))
        }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(value))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

async fn delete_destination(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    authenticate_admin(&ctx, &req)?;
    let id = path_id(&id)?;
    let query = web::Query::<DeleteQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid(format!("Invalid query: {e}")))?
        .into_inner();
    change(
        &ctx,
        Box::new(move |state, _| {
            let d = state.destinations.get(&id).ok_or_else(|| ApiError::not_found(format!("destination {id} not found")))?;
            let queued = state.queues.get(&id).map_or(0, |q| q.pending.len());
            if queued > 0 && !query.force {
                return Err(ApiError::conflict(format!(
                    "destination {id} has {queued} queued logs: deliver them first, or delete with ?force=true (they become Failed)"
                )));
            }
            Ok((Some(Event::DestinationDeleted { id }), destination_json(d)))
        }),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_subscriptions(ctx: web::Data<AppCtx>, req: HttpRequest) -> Reply {
    authenticate_admin(&ctx, &req)?;
    Ok(list("subscriptions", ctx.state.read().subscriptions.values().map(subscription_json).collect()))
}

async fn get_subscription(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    authenticate_admin(&ctx, &req)?;
    let id = path_id(&id)?;
    let state = ctx.state.read();
    let s = state.subscriptions.get(&id).ok_or_else(|| ApiError::not_found(format!("subscription {id} not found")))?;
    Ok(HttpResponse::Ok().json(subscription_json(s)))
}

async fn create_subscription(ctx: web::Data<AppCtx>, req: HttpRequest, body: web::Payload) -> Reply {
    authenticate_admin(&ctx, &req)?;
    let spec: SubscriptionSpec = json_body(&req, body).await?;
    let value = change(
        &ctx,
        Box::new(move |state, ids| {
            exists_conflict("subscription", spec.id.as_deref(), |id| state.subscriptions.contains_key(&id))?;
            let s = spec.build(None, None, state, ids)?;
            let value = subscription_json(&s);
            Ok((Some(Event::SubscriptionUpserted(s)), value))
        }),
    )
    .await?;
    Ok(HttpResponse::Created().json(value))
}

async fn put_subscription(
    ctx: web::Data<AppCtx>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
) -> Reply {
    authenticate_admin(&ctx, &req)?;
    let id = path_id(&id)?;
    let spec: SubscriptionSpec = json_body(&req, body).await?;
    let value = change(
        &ctx,
        Box::new(move |state, ids| {
            let s = spec.build(Some(id), state.subscriptions.get(&id), state, ids)?;
            let value = subscription_json(&s);
            Ok((Some(Event::SubscriptionUpserted(s)), value))
        }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(value))
}

async fn delete_subscription(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    authenticate_admin(&ctx, &req)?;
    let id = path_id(&id)?;
    change(
        &ctx,
        Box::new(move |state, _| {
            let s = state
                .subscriptions
                .get(&id)
                .ok_or_else(|| ApiError::not_found(format!("subscription {id} not found")))?;
            Ok((Some(Event::SubscriptionDeleted { id }), subscription_json(s)))
        }),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
