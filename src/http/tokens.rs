//! Source authentication (SPEC §8): `POST /auth/authenticate` and
//! `POST /auth/refreshToken`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use utoipa::ToSchema;

use super::{
    AppCtx, client_ip,
    openapi::schemas::{RedoxErrors, Tokens},
    read_body, require_json,
};
use crate::{
    auth::{self, Claims, TokenKind},
    clock::rfc3339,
    error::ApiError,
    model::Id,
};

/// Refresh tokens live this many times longer than access tokens.
const REFRESH_LIFETIME_FACTOR: i64 = 30;
/// Auth bodies are tiny; anything larger is not a credential.
const AUTH_BODY_BYTES: usize = 16 * 1024;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authenticate {
    api_key: String,
    secret: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Refresh {
    api_key: String,
    refresh_token: String,
}

/// Reads a sign-in body, once the address's sign-in limit allows it.
async fn body<T: for<'de> Deserialize<'de>>(
    ctx: &AppCtx,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    ctx.throttles.sign_in.take(client_ip(req))?;
    require_json(req, &[])?;
    let bytes = read_body(ctx, req, payload, AUTH_BODY_BYTES).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("Invalid body: {e}")))
}

fn reply(result: Result<HttpResponse, ApiError>) -> HttpResponse {
    result.unwrap_or_else(|e| e.redox_response("Authentication", None, None))
}

#[utoipa::path(
    post,
    path = "/auth/authenticate",
    tag = "Authentication",
    request_body = Authenticate,
    responses(
        (status = 200, description = "An access token and a refresh token", body = Tokens),
        (status = 400, description = "Not JSON, or a field missing", body = RedoxErrors),
        (status = 401, description = "Unknown apiKey or wrong secret", body = RedoxErrors),
        (status = 408, description = "The body did not arrive in time", body = RedoxErrors),
        (status = 413, description = "Body over 16 KiB", body = RedoxErrors),
        (status = 415, description = "Content-Type not JSON", body = RedoxErrors),
        (status = 429, description = "Too many sign-ins from this address", body = RedoxErrors,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
    ),
)]
pub async fn authenticate(ctx: web::Data<AppCtx>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    reply(
        async {
            let creds: Authenticate = body(&ctx, &req, payload).await?;
            let source_id = {
                let state = ctx.state.read();
                let source = state
                    .source_by_api_key(&creds.api_key)
                    .filter(|s| auth::verify_secret(&creds.secret, &s.secret_hash));
                source.map(|s| s.id).ok_or_else(|| ApiError::unauthorized("Invalid apiKey or secret"))?
            };
            Ok(tokens(&ctx, source_id))
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/auth/refreshToken",
    tag = "Authentication",
    request_body = Refresh,
    responses(
        (status = 200, description = "New tokens", body = Tokens),
        (status = 400, description = "Not JSON, or a field missing", body = RedoxErrors),
        (status = 401, description = "Expired or forged refresh token, or another source's", body = RedoxErrors),
        (status = 408, description = "The body did not arrive in time", body = RedoxErrors),
        (status = 413, description = "Body over 16 KiB", body = RedoxErrors),
        (status = 415, description = "Content-Type not JSON", body = RedoxErrors),
        (status = 429, description = "Too many sign-ins from this address", body = RedoxErrors,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
    ),
)]
pub async fn refresh(ctx: web::Data<AppCtx>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    reply(
        async {
            let creds: Refresh = body(&ctx, &req, payload).await?;
            let claims = auth::verify(&ctx.token_key, &creds.refresh_token, TokenKind::Refresh, ctx.clock.now_ms())
                .map_err(|e| ApiError::unauthorized(format!("Invalid refresh token: {e}")))?;
            let state = ctx.state.read();
            let source = state.source_by_api_key(&creds.api_key).filter(|s| s.id == claims.source_id);
            let source_id = source
                .map(|s| s.id)
                .ok_or_else(|| ApiError::unauthorized("The refresh token belongs to another apiKey"))?;
            drop(state);
            Ok(tokens(&ctx, source_id))
        }
        .await,
    )
}

fn tokens(ctx: &AppCtx, source_id: Id) -> HttpResponse {
    let now = ctx.clock.now_ms();
    let lifetime_ms = i64::try_from(ctx.config.auth.token_lifetime_s).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
    let nonce = u64::from_le_bytes(ctx.ids.bytes(8).try_into().unwrap_or([0; 8]));
    let expires_ms = now.saturating_add(lifetime_ms);
    let access = Claims { source_id, kind: TokenKind::Access, expires_ms, nonce };
    let refresh = Claims {
        source_id,
        kind: TokenKind::Refresh,
        expires_ms: now.saturating_add(lifetime_ms.saturating_mul(REFRESH_LIFETIME_FACTOR)),
        nonce,
    };
    HttpResponse::Ok().json(json!({
        "accessToken": auth::issue(&ctx.token_key, &access),
        "expires": rfc3339(expires_ms),
        "refreshToken": auth::issue(&ctx.token_key, &refresh),
    }))
}
