//! The shapes of the API's answers, for the document. Handlers build their
//! JSON with `serde_json`; these types describe it, field for field, and
//! refuse fields they do not name (`additionalProperties: false`), so the
//! integration tests and the schema fuzzing in CI catch any answer that
//! drifts from its description. They are never constructed.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// An error in the Redox shape (SEND, `/query`, sign-in and the operator API).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedoxErrors {
    #[serde(rename = "Meta")]
    meta: RedoxErrorMeta,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct RedoxErrorMeta {
    /// The request's data model, when it was read.
    #[schema(required = true)]
    data_model: Option<String>,
    #[schema(required = true)]
    event_type: Option<String>,
    errors: Vec<RedoxError>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct RedoxError {
    /// The HTTP status.
    #[serde(rename = "ID")]
    id: u32,
    /// What is wrong.
    text: String,
    /// The kind: `Validation`, `Authentication`, `Authorization`, `NotFound`, `Conflict`, ...
    #[serde(rename = "Type")]
    kind: String,
    /// `Send`, `Query`, `Authentication`, `Admin` or `Http`.
    module: String,
}

/// A FHIR R4 `OperationOutcome`: the answer of `$process-message`, an
/// information issue per log on success, one error issue otherwise.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OperationOutcome {
    #[schema(pattern = "^OperationOutcome$")]
    resource_type: String,
    issue: Vec<Issue>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Issue {
    /// `information` on success, `error` otherwise.
    #[schema(pattern = "^(information|error)$")]
    severity: String,
    /// A FHIR IssueType code: `informational`, `invalid`, `required`, `not-found`, `security`, ...
    code: String,
    details: IssueDetails,
    /// On success, the log's ID.
    #[schema(nullable = false)]
    diagnostics: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueDetails {
    text: String,
}

/// A Redox Data Model message: the `Meta` block and the model's body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DataModelMessage {
    #[serde(rename = "Meta")]
    meta: MessageMeta,
    /// Any other field.
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct MessageMeta {
    /// A data model, e.g. `PatientAdmin`.
    data_model: String,
    /// One of the data model's event types, e.g. `NewPatient`.
    event_type: String,
    /// The destinations to send to; absent or empty: every subscribed one.
    #[schema(nullable = false)]
    destinations: Option<Vec<DestinationRef>>,
    /// Any other field.
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationRef {
    #[serde(rename = "ID")]
    #[schema(format = Uuid)]
    id: String,
    #[schema(nullable = false)]
    name: Option<String>,
    /// Any other field.
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// A SEND's answer: the request's `Meta`, with the message's ID and its logs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendReply {
    #[serde(rename = "Meta")]
    meta: SendReplyMeta,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SendReplyMeta {
    data_model: String,
    event_type: String,
    message: MessageId,
    /// One per destination.
    logs: Vec<LogRef>,
    /// Any other field.
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageId {
    /// Strictly increasing in acceptance order.
    #[serde(rename = "ID")]
    id: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogRef {
    #[serde(rename = "ID")]
    #[schema(format = Uuid)]
    id: String,
    #[serde(rename = "AttemptID")]
    #[schema(format = Uuid)]
    attempt_id: String,
    #[serde(rename = "DestinationID")]
    #[schema(format = Uuid)]
    destination_id: String,
}

/// A FHIR R4 `Bundle` of type `message` whose first entry is a `MessageHeader`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FhirBundle {
    #[schema(pattern = "^Bundle$")]
    resource_type: String,
    #[serde(rename = "type")]
    #[schema(pattern = "^message$")]
    bundle_type: String,
    entry: Vec<BTreeMap<String, Value>>,
    /// Any other field.
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// A source's tokens (SPEC §8).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tokens {
    access_token: String,
    /// When the access token expires (RFC 3339).
    #[schema(format = DateTime)]
    expires: String,
    refresh_token: String,
}

/// `/healthz`: the process runs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Liveness {
    /// `ok`, or `starting` while the journal is replayed.
    status: String,
    /// The highest durable journal position.
    #[schema(nullable = false)]
    durable_through: Option<u64>,
}

/// `/readyz`: whether the engine takes messages, and if not, why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Readiness {
    /// `ready`, `starting`, `unavailable` or `failed`.
    status: String,
    #[schema(nullable = false)]
    reason: Option<String>,
    /// Ready, but the write-ahead log cannot grow.
    #[schema(nullable = false)]
    warning: Option<String>,
}
