//! Configuration objects as clients write them (operator API bodies and the
//! configuration file share these field names, SPEC §6), their validation,
//! and their conversion to stored objects. `file` holds the configuration
//! file's objects as a whole.

pub mod file;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    auth, datamodels,
    egress::Egress,
    error::ApiError,
    ids::IdSource,
    jq::Transform,
    lanes::FifoKey,
    limits,
    model::{ClientCert, Destination, Environment, Id, Source, Subscription},
    signature,
    state::State,
};

/// Longest delivery timeout accepted: beyond this a hung receiver would hold
/// its queue for too long between retries.
pub const MAX_TIMEOUT_MS: u64 = 10 * 60 * 1000;

#[derive(Debug, Clone, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub id: Option<String>,
    pub name: String,
    pub api_key: Option<String>,
    pub secret: Option<String>,
    /// Who hears of its messages' processing failures (SPEC §14).
    #[serde(default)]
    pub alert_emails: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    pub id: Option<String>,
    pub name: String,
    pub url: String,
    pub environment: String,
    pub verification_token: Option<String>,
    pub signing_secret: Option<String>,
    pub timeout_ms: Option<u64>,
    pub enabled: Option<bool>,
    /// Who hears of its queue's alerts (SPEC §14).
    #[serde(default)]
    pub alert_emails: Vec<String>,
    /// Pending logs past which the queue is backlogged.
    pub alert_depth: Option<u64>,
    /// Age of the oldest pending log past which the queue is backlogged.
    pub alert_age_ms: Option<u64>,
    /// PEM certificate (and chain) presented to a receiver that asks for
    /// one; with `client_key_file`, or neither.
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
    /// Ordered lanes (SPEC §18): a jq path whose value keeps order; null
    /// for strict FIFO over the whole queue.
    pub fifo_key: Option<String>,
    /// Logs in flight at once across lanes (1–64, default 1).
    pub max_in_flight: Option<u64>,
}

/// A subscription names its source and destination by ID (`source_id`,
/// `destination_id`) or by name (`source`, `destination`), so a
/// configuration file need not invent UUIDs.
#[derive(Debug, Clone, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    pub id: Option<String>,
    pub source_id: Option<String>,
    pub source: Option<String>,
    pub destination_id: Option<String>,
    pub destination: Option<String>,
    pub data_model: String,
    #[serde(default)]
    pub event_types: Vec<String>,
    pub transform: Option<String>,
    pub response_transform: Option<String>,
}

/// What a destination's validation needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct DestinationRules {
    /// `[delivery] timeout_ms`, for a destination that sets none.
    pub default_timeout_ms: u64,
    pub egress: Egress,
}

fn parse_id(field: &str, text: &str) -> Result<Id, ApiError> {
    Id::parse(text).ok_or_else(|| ApiError::invalid(format!("{field} '{text}' is not a UUID")))
}

fn nonempty(field: &str, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid(format!("{field} must not be empty")));
    }
    Ok(())
}

/// The ID to use: the one given (which must match `path_id` when the object
/// is addressed by URL), else `existing`, else a new one.
fn choose_id(
    field_id: Option<&str>,
    path_id: Option<Id>,
    existing: Option<Id>,
    ids: &dyn IdSource,
) -> Result<Id, ApiError> {
    let given = field_id.map(|t| parse_id("id", t)).transpose()?;
    match (given, path_id) {
        (Some(g), Some(p)) if g != p => Err(ApiError::invalid("id in the body differs from the id in the path")),
        (g, p) => Ok(g.or(p).or(existing).unwrap_or_else(|| ids.id())),
    }
}

impl SourceSpec {
    /// Builds the stored source; returns the secret when one was generated
    /// (shown once). `existing` keeps its key and secret when not replaced.
    /// `key_owner` tells which source, if any, holds an API key already.
    pub fn build(
        &self,
        path_id: Option<Id>,
        existing: Option<&Source>,
        key_owner: &dyn Fn(&str) -> Option<Id>,
        ids: &dyn IdSource,
    ) -> Result<(Source, Option<String>), ApiError> {
        nonempty("name", &self.name)?;
        let id = choose_id(self.id.as_deref(), path_id, existing.map(|s| s.id), ids)?;
        let api_key = match (&self.api_key, existing) {
            (Some(k), _) => k.clone(),
            (None, Some(e)) => e.api_key.clone(),
            (None, None) => auth::generate_api_key(ids),
        };
        nonempty("api_key", &api_key)?;
        if key_owner(&api_key).is_some_and(|other| other != id) {
            return Err(ApiError::conflict("api_key is used by another source"));
        }
        let (secret_hash, generated) = match (&self.secret, existing) {
            (Some(secret), Some(e)) if auth::verify_secret(secret, &e.secret_hash) => (e.secret_hash.clone(), None),
            (Some(secret), _) => {
                nonempty("secret", secret)?;
                (auth::hash_secret(secret, ids), None)
            }
            (None, Some(e)) => (e.secret_hash.clone(), None),
            (None, None) => {
                let secret = auth::generate_secret(ids);
                (auth::hash_secret(&secret, ids), Some(secret))
            }
        };
        let alert_emails = alert_emails(&self.alert_emails)?;
        Ok((Source { id, name: self.name.clone(), api_key, secret_hash, alert_emails }, generated))
    }
}

/// Most addresses one object's `alert_emails` may list.
pub const MAX_ALERT_EMAILS: usize = 20;

/// Checks a list of alert email addresses: each a plain `user@domain`.
pub fn alert_emails(list: &[String]) -> Result<Vec<String>, ApiError> {
    if list.len() > MAX_ALERT_EMAILS {
        return Err(ApiError::invalid(format!("alert_emails lists more than {MAX_ALERT_EMAILS} addresses")));
    }
    let mut checked: Vec<String> = Vec::with_capacity(list.len());
    for address in list {
        address
            .parse::<lettre::Address>()
            .map_err(|e| ApiError::invalid(format!("alert_emails: '{address}' is not an email address: {e}")))?;
        if !checked.contains(address) {
            checked.push(address.clone());
        }
    }
    Ok(checked)
}

fn positive(field: &str, value: Option<u64>) -> Result<Option<u64>, ApiError> {
    match value {
        Some(0) => Err(ApiError::invalid(format!("{field} must be at least 1"))),
        v => Ok(v),
    }
}

/// Checks that `text` is an absolute http(s) URL the egress rules allow.
pub fn validate_url(text: &str, egress: &Egress) -> Result<(), ApiError> {
    match url::Url::parse(text) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
            egress.check_url(text).map_err(ApiError::invalid)
        }
        Ok(_) => Err(ApiError::invalid(format!("url '{text}' must be an http or https URL with a host"))),
        Err(e) => Err(ApiError::invalid(format!("url '{text}' is not a valid URL: {e}"))),
    }
}

impl DestinationSpec {
    pub fn build(
        &self,
        path_id: Option<Id>,
        existing: Option<&Destination>,
        rules: &DestinationRules,
        ids: &dyn IdSource,
    ) -> Result<Destination, ApiError> {
        nonempty("name", &self.name)?;
        validate_url(&self.url, &rules.egress)?;
        let environment = Environment::parse(&self.environment).ok_or_else(|| {
            ApiError::invalid(format!("environment '{}' must be production, staging or development", self.environment))
        })?;
        let timeout_ms = self.timeout_ms.unwrap_or(rules.default_timeout_ms);
        if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(ApiError::invalid(format!("timeout_ms must be between 1 and {MAX_TIMEOUT_MS}")));
        }
        let signing_secret = match (&self.signing_secret, existing) {
            (Some(s), _) if signature::is_valid_secret(s) => s.clone(),
            (Some(_), _) => return Err(ApiError::invalid("signing_secret must be 'whsec_' followed by base64")),
            (None, Some(e)) => e.signing_secret.clone(),
            (None, None) => signature::generate_signing_secret(ids),
        };
        let verification_token = match (&self.verification_token, existing) {
            (Some(t), _) => t.clone(),
            (None, Some(e)) => e.verification_token.clone(),
            (None, None) => auth::generate_api_key(ids),
        };
        Ok(Destination {
            id: choose_id(self.id.as_deref(), path_id, existing.map(|d| d.id), ids)?,
            name: self.name.clone(),
            url: self.url.clone(),
            environment,
            verification_token,
            signing_secret,
            timeout_ms,
            enabled: self.enabled.unwrap_or(true),
            alert_emails: alert_emails(&self.alert_emails)?,
            alert_depth: positive("alert_depth", self.alert_depth)?,
            alert_age_ms: positive("alert_age_ms", self.alert_age_ms)?,
            client_cert: self.client_cert()?,
            fifo_key: self.fifo_key.as_deref().map(FifoKey::parse).transpose().map_err(ApiError::invalid)?,
            max_in_flight: self.max_in_flight()?,
        })
    }

    fn max_in_flight(&self) -> Result<u8, ApiError> {
        let max = limits::MAX_IN_FLIGHT;
        match self.max_in_flight {
            None => Ok(1),
            Some(n) if n > 1 && self.fifo_key.is_none() => Err(ApiError::invalid(format!(
                "max_in_flight {n} needs a fifo_key: without one the queue is a single lane, delivered one log at a time"
            ))),
            Some(n) if (1..=u64::from(max)).contains(&n) => Ok(n as u8),
            Some(n) => Err(ApiError::invalid(format!("max_in_flight {n} must be between 1 and {max}"))),
        }
    }

    /// The client certificate: both files or neither, and they must load
    /// and belong together now, not at the first delivery.
    fn client_cert(&self) -> Result<Option<ClientCert>, ApiError> {
        let cert = match (&self.client_cert_file, &self.client_key_file) {
            (None, None) => return Ok(None),
            (Some(cert_file), Some(key_file)) => {
                ClientCert { cert_file: cert_file.clone(), key_file: key_file.clone() }
            }
            (Some(_), None) => {
                return Err(ApiError::invalid("client_cert_file needs client_key_file: set both or neither"));
            }
            (None, Some(_)) => {
                return Err(ApiError::invalid("client_key_file needs client_cert_file: set both or neither"));
            }
        };
        nonempty("client_cert_file", &cert.cert_file)?;
        nonempty("client_key_file", &cert.key_file)?;
        crate::tls::ClientTls::check(&cert).map_err(ApiError::invalid)?;
        Ok(Some(cert))
    }
}

/// One end of a subscription as its spec names it: by ID or by name.
#[derive(Debug, Clone, Copy)]
pub enum EndRef<'a> {
    Id(&'a str),
    Name(&'a str),
}

impl EndRef<'_> {
    /// How a message names this end: its ID, or its name in quotes.
    pub fn describe(&self) -> String {
        match self {
            Self::Id(id) => id.to_string(),
            Self::Name(name) => format!("'{name}'"),
        }
    }
}

impl SubscriptionSpec {
    /// How the spec names its source.
    pub fn source_ref(&self) -> Result<EndRef<'_>, ApiError> {
        end_ref("source", self.source_id.as_deref(), self.source.as_deref())
    }

    pub fn destination_ref(&self) -> Result<EndRef<'_>, ApiError> {
        end_ref("destination", self.destination_id.as_deref(), self.destination.as_deref())
    }

    /// The source and destination IDs, named by ID or by name, among the
    /// engine's objects.
    pub fn resolve(&self, state: &State) -> Result<(Id, Id), ApiError> {
        let source =
            resolve_end("source", self.source_ref()?, state.sources.values().map(|s| (s.id, s.name.as_str())))?;
        let destinations = state.destinations.values().map(|d| (d.id, d.name.as_str()));
        let destination = resolve_end("destination", self.destination_ref()?, destinations)?;
        Ok((source, destination))
    }

    /// Builds the stored subscription between `source_id` and
    /// `destination_id`, which the caller has resolved.
    pub fn build(
        &self,
        path_id: Option<Id>,
        existing: Option<&Subscription>,
        (source_id, destination_id): (Id, Id),
        ids: &dyn IdSource,
    ) -> Result<Subscription, ApiError> {
        if !datamodels::is_known_data_model(&self.data_model) {
            return Err(ApiError::invalid(format!("data_model '{}' is not a known data model", self.data_model)));
        }
        if self.data_model != "FHIR" {
            for event_type in &self.event_types {
                datamodels::lookup(&self.data_model, event_type)
                    .map_err(|e| ApiError::invalid(format!("event_types: {}", e.text)))?;
            }
        }
        for (field, program) in [("transform", &self.transform), ("response_transform", &self.response_transform)] {
            if let Some(program) = program {
                Transform::compile(program).map_err(|e| ApiError::invalid(format!("{field} does not compile: {e}")))?;
            }
        }
        Ok(Subscription {
            id: choose_id(self.id.as_deref(), path_id, existing.map(|s| s.id), ids)?,
            source_id,
            destination_id,
            data_model: self.data_model.clone(),
            event_types: self.event_types.clone(),
            transform: self.transform.clone(),
            response_transform: self.response_transform.clone(),
        })
    }
}

fn end_ref<'a>(kind: &str, id: Option<&'a str>, name: Option<&'a str>) -> Result<EndRef<'a>, ApiError> {
    match (id, name) {
        (Some(id), None) => Ok(EndRef::Id(id)),
        (None, Some(name)) => Ok(EndRef::Name(name)),
        (Some(_), Some(_)) => Err(ApiError::invalid(format!("{kind}_id and {kind}: give one of them, not both"))),
        (None, None) => Err(ApiError::invalid(format!("{kind}_id (or {kind}, by name) is required"))),
    }
}

/// The one object among `known` (ID, name) that `wanted` names.
pub(crate) fn resolve_end<'a>(
    kind: &str,
    wanted: EndRef<'_>,
    known: impl Iterator<Item = (Id, &'a str)>,
) -> Result<Id, ApiError> {
    let field = match wanted {
        EndRef::Id(_) => format!("{kind}_id"),
        EndRef::Name(_) => kind.to_owned(),
    };
    let matching: Vec<Id> = match wanted {
        EndRef::Id(text) => {
            let id = parse_id(&field, text)?;
            known.filter(|(k, _)| *k == id).map(|(k, _)| k).collect()
        }
        EndRef::Name(name) => known.filter(|(_, n)| *n == name).map(|(k, _)| k).collect(),
    };
    match matching.as_slice() {
        [one] => Ok(*one),
        [] => Err(ApiError::invalid(format!("{field}: {kind} {} does not exist", wanted.describe()))),
        _ => {
            Err(ApiError::invalid(format!("{field}: more than one {kind} is named {}: give its ID", wanted.describe())))
        }
    }
}

/// JSON views of stored objects. The source's secret is write-only: it
/// appears only in the create response, when it was generated.
pub fn source_json(s: &Source, generated_secret: Option<&str>) -> Value {
    let mut v = json!({ "id": s.id.to_string(), "name": s.name, "api_key": s.api_key, "alert_emails": s.alert_emails });
    if let Some(secret) = generated_secret {
        v["secret"] = json!(secret);
    }
    v
}

pub fn destination_json(d: &Destination) -> Value {
    json!({
        "id": d.id.to_string(),
        "name": d.name,
        "url": d.url,
        "environment": d.environment.as_str(),
        "verification_token": d.verification_token,
        "signing_secret": d.signing_secret,
        "timeout_ms": d.timeout_ms,
        "enabled": d.enabled,
        "alert_emails": d.alert_emails,
        "alert_depth": d.alert_depth,
        "alert_age_ms": d.alert_age_ms,
        "client_cert_file": d.client_cert.as_ref().map(|c| &c.cert_file),
        "client_key_file": d.client_cert.as_ref().map(|c| &c.key_file),
        "fifo_key": d.fifo_key.as_ref().map(FifoKey::as_str),
        "max_in_flight": d.max_in_flight,
    })
}

pub fn subscription_json(s: &Subscription) -> Value {
    json!({
        "id": s.id.to_string(),
        "source_id": s.source_id.to_string(),
        "destination_id": s.destination_id.to_string(),
        "data_model": s.data_model,
        "event_types": s.event_types,
        "transform": s.transform,
        "response_transform": s.response_transform,
    })
}
