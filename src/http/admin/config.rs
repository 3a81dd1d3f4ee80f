//! CRUD of sources, destinations and subscriptions. Every change is a
//! journal event, decided inside the router and answered once durable.
//! The three kinds share their handlers through [`Kind`]. Objects the
//! configuration file declares are the file's: changing or deleting one
//! here is a 409 naming the file (`objects::file`). Their routes and
//! documentation are in `config_routes`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{change, json_body, path_id};
use crate::{
    error::ApiError,
    http::{AppCtx, authorize},
    ids::IdSource,
    journal::Event,
    model::Id,
    objects::{
        DestinationRules, DestinationSpec, SourceSpec, SubscriptionSpec, destination_json, file::FileObjects,
        source_json, subscription_json,
    },
    operators::{AuditDraft, Role},
    state::State,
};

/// What differs between the three kinds of configuration object.
pub(super) trait Kind: 'static {
    const SINGULAR: &'static str;
    const PLURAL: &'static str;
    type Spec: DeserializeOwned + Send + 'static;

    fn ids(state: &State) -> Vec<Id>;
    fn json(state: &State, id: Id) -> Option<Value>;
    /// Builds the object for an upsert; `path_id` is set for `PUT`.
    fn upsert(
        spec: &Self::Spec,
        path_id: Option<Id>,
        state: &State,
        ids: &dyn IdSource,
        rules: &DestinationRules,
    ) -> Decided;
    fn spec_id(spec: &Self::Spec) -> Option<&str>;
    /// Whether deleting `id` is refused, and why.
    fn refuse_delete(_state: &State, _id: Id, _force: bool) -> Option<ApiError> {
        None
    }
    /// The subscriptions that deleting `id` deletes with it.
    fn dependents(_state: &State, _id: Id) -> Vec<Id> {
        Vec::new()
    }
    fn deleted(id: Id) -> Event;
}

type Decided = Result<(Event, Value), ApiError>;
pub(super) type Reply = Result<HttpResponse, ApiError>;

pub(super) struct Sources;
pub(super) struct Destinations;
pub(super) struct Subscriptions;

impl Kind for Sources {
    const SINGULAR: &'static str = "source";
    const PLURAL: &'static str = "sources";
    type Spec = SourceSpec;

    fn ids(state: &State) -> Vec<Id> {
        state.sources.keys().copied().collect()
    }
    fn json(state: &State, id: Id) -> Option<Value> {
        state.sources.get(&id).map(|s| source_json(s, None))
    }
    fn upsert(
        spec: &SourceSpec,
        path_id: Option<Id>,
        state: &State,
        ids: &dyn IdSource,
        _: &DestinationRules,
    ) -> Decided {
        let existing = path_id.and_then(|id| state.sources.get(&id));
        let key_owner = |key: &str| state.source_by_api_key(key).map(|s| s.id);
        let (source, secret) = spec.build(path_id, existing, &key_owner, ids)?;
        let value = source_json(&source, secret.as_deref());
        Ok((Event::SourceUpserted(source), value))
    }
    fn spec_id(spec: &SourceSpec) -> Option<&str> {
        spec.id.as_deref()
    }
    fn dependents(state: &State, id: Id) -> Vec<Id> {
        state.subscriptions.values().filter(|s| s.source_id == id).map(|s| s.id).collect()
    }
    fn deleted(id: Id) -> Event {
        Event::SourceDeleted { id }
    }
}

impl Kind for Destinations {
    const SINGULAR: &'static str = "destination";
    const PLURAL: &'static str = "destinations";
    type Spec = DestinationSpec;

    fn ids(state: &State) -> Vec<Id> {
        state.destinations.keys().copied().collect()
    }
    fn json(state: &State, id: Id) -> Option<Value> {
        state.destinations.get(&id).map(destination_json)
    }
    fn upsert(
        spec: &DestinationSpec,
        path_id: Option<Id>,
        state: &State,
        ids: &dyn IdSource,
        rules: &DestinationRules,
    ) -> Decided {
        let existing = path_id.and_then(|id| state.destinations.get(&id));
        let destination = spec.build(path_id, existing, rules, ids)?;
        let value = destination_json(&destination);
        Ok((Event::DestinationUpserted(destination), value))
    }
    fn spec_id(spec: &DestinationSpec) -> Option<&str> {
        spec.id.as_deref()
    }
    fn refuse_delete(state: &State, id: Id, force: bool) -> Option<ApiError> {
        let queued = state.queues.get(&id).map_or(0, |q| q.pending.len());
        (queued > 0 && !force).then(|| {
            ApiError::conflict(format!(
                "destination {id} has {queued} queued logs: deliver them first, or delete with ?force=true (they become Failed)"
            ))
        })
    }
    fn dependents(state: &State, id: Id) -> Vec<Id> {
        state.subscriptions.values().filter(|s| s.destination_id == id).map(|s| s.id).collect()
    }
    fn deleted(id: Id) -> Event {
        Event::DestinationDeleted { id }
    }
}

impl Kind for Subscriptions {
    const SINGULAR: &'static str = "subscription";
    const PLURAL: &'static str = "subscriptions";
    type Spec = SubscriptionSpec;

    fn ids(state: &State) -> Vec<Id> {
        state.subscriptions.keys().copied().collect()
    }
    fn json(state: &State, id: Id) -> Option<Value> {
        state.subscriptions.get(&id).map(subscription_json)
    }
    fn upsert(
        spec: &SubscriptionSpec,
        path_id: Option<Id>,
        state: &State,
        ids: &dyn IdSource,
        _: &DestinationRules,
    ) -> Decided {
        let existing = path_id.and_then(|id| state.subscriptions.get(&id));
        let subscription = spec.build(path_id, existing, spec.resolve(state)?, ids)?;
        let value = subscription_json(&subscription);
        Ok((Event::SubscriptionUpserted(subscription), value))
    }
    fn spec_id(spec: &SubscriptionSpec) -> Option<&str> {
        spec.id.as_deref()
    }
    fn deleted(id: Id) -> Event {
        Event::SubscriptionDeleted { id }
    }
}

fn not_found<K: Kind>(id: Id) -> ApiError {
    ApiError::not_found(format!("{} {id} not found", K::SINGULAR))
}

pub(super) async fn list<K: Kind>(ctx: web::Data<AppCtx>, req: HttpRequest) -> Reply {
    authorize(&ctx, &req, Role::Viewer)?;
    let state = ctx.state.read();
    let items: Vec<Value> = K::ids(&state).into_iter().filter_map(|id| K::json(&state, id)).collect();
    Ok(HttpResponse::Ok().json(json!({ K::PLURAL: items, "next_cursor": null })))
}

pub(super) async fn get<K: Kind>(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    authorize(&ctx, &req, Role::Viewer)?;
    let id = path_id(&id)?;
    let value = K::json(&ctx.state.read(), id).ok_or_else(|| not_found::<K>(id))?;
    Ok(HttpResponse::Ok().json(value))
}

fn rules(ctx: &AppCtx) -> DestinationRules {
    DestinationRules { default_timeout_ms: ctx.config.delivery.timeout_ms, egress: ctx.config.egress() }
}

/// Refuses a change to an object of the configuration file, or to one
/// whose deletion would delete one of the file's subscriptions.
fn file_refusal<K: Kind>(file: &FileObjects, state: &State, id: Id) -> Result<(), ApiError> {
    let owned = std::iter::once(id).chain(K::dependents(state, id));
    match owned.filter_map(|id| file.refusal(id)).next() {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}

pub(super) async fn create<K: Kind>(ctx: web::Data<AppCtx>, req: HttpRequest, body: web::Payload) -> Reply {
    let operator = authorize(&ctx, &req, Role::Admin)?;
    let audit = AuditDraft::new(&operator, &format!("{}.create", K::SINGULAR), None);
    let spec: K::Spec = json_body(&ctx, &req, body).await?;
    let defaults = rules(&ctx);
    let value = change(
        &ctx,
        Box::new(move |state, ids| {
            if let Some(id) = K::spec_id(&spec).and_then(Id::parse).filter(|id| K::json(state, *id).is_some()) {
                return Err(ApiError::conflict(format!("{} {id} exists: use PUT to change it", K::SINGULAR)));
            }
            let (event, value) = K::upsert(&spec, None, state, ids, &defaults)?;
            Ok((Some(event), value))
        }),
        audit,
    )
    .await?;
    Ok(HttpResponse::Created().json(value))
}

pub(super) async fn put<K: Kind>(
    ctx: web::Data<AppCtx>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
) -> Reply {
    let operator = authorize(&ctx, &req, Role::Admin)?;
    let id = path_id(&id)?;
    let audit = AuditDraft::new(&operator, &format!("{}.update", K::SINGULAR), Some(id.to_string()));
    let spec: K::Spec = json_body(&ctx, &req, body).await?;
    let defaults = rules(&ctx);
    let file = ctx.file.clone();
    let value = change(
        &ctx,
        Box::new(move |state, ids| {
            if let Some(refusal) = file.refusal(id) {
                return Err(refusal);
            }
            let (event, value) = K::upsert(&spec, Some(id), state, ids, &defaults)?;
            Ok((Some(event), value))
        }),
        audit,
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

pub(super) async fn delete<K: Kind>(ctx: web::Data<AppCtx>, req: HttpRequest, id: web::Path<String>) -> Reply {
    let operator = authorize(&ctx, &req, Role::Admin)?;
    let id = path_id(&id)?;
    let query = web::Query::<DeleteQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid(format!("Invalid query: {e}")))?
        .into_inner();
    let mut audit = AuditDraft::new(&operator, &format!("{}.delete", K::SINGULAR), Some(id.to_string()));
    if query.force {
        audit = audit.detail("force=true");
    }
    let file = ctx.file.clone();
    change(
        &ctx,
        Box::new(move |state, _| {
            let value = K::json(state, id).ok_or_else(|| not_found::<K>(id))?;
            file_refusal::<K>(&file, state, id)?;
            if let Some(refusal) = K::refuse_delete(state, id, query.force) {
                return Err(refusal);
            }
            Ok((Some(K::deleted(id)), value))
        }),
        audit,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
