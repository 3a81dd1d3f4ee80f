//! The operator API's answers (SPEC §6, §12, §13), for the document:
//! field for field what the handlers build, `additionalProperties: false`.
//! Never constructed.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
pub enum LogStatus {
    Pending,
    Retrying,
    ProcessingFailed,
    Succeeded,
    Failed,
    Filtered,
}

#[derive(Debug, Deserialize, ToSchema)]
pub enum LogType {
    Async,
    Query,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Production,
    Staging,
    Development,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QueueState {
    Flowing,
    Paused,
    Halted,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

#[derive(Debug, Deserialize, ToSchema)]
pub enum AlertKind {
    QueuePaused,
    ProcessingFailed,
    QueueRecovered,
    QueueBacklog,
}

/// A source. `secret` appears once, in the answer that generated it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    api_key: String,
    alert_emails: Vec<String>,
    #[schema(nullable = false)]
    secret: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    url: String,
    environment: Environment,
    verification_token: String,
    /// `whsec_` and base64: the Standard Webhooks signing key.
    signing_secret: String,
    timeout_ms: u64,
    enabled: bool,
    alert_emails: Vec<String>,
    #[schema(required = true)]
    alert_depth: Option<u64>,
    #[schema(required = true)]
    alert_age_ms: Option<u64>,
    /// PEM certificate presented to a receiver that asks for one (mutual
    /// TLS), or null.
    #[schema(required = true)]
    client_cert_file: Option<String>,
    /// The certificate's private key (PEM), or null.
    #[schema(required = true)]
    client_key_file: Option<String>,
    /// Ordered lanes: the jq path whose value keeps order, or null for
    /// one lane (strict FIFO over the whole queue).
    #[schema(required = true)]
    fifo_key: Option<String>,
    /// Logs in flight at once across lanes.
    #[schema(minimum = 1, maximum = 64)]
    max_in_flight: u8,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = Uuid)]
    source_id: String,
    #[schema(format = Uuid)]
    destination_id: String,
    data_model: String,
    /// Empty: every event type of the data model.
    event_types: Vec<String>,
    /// A jq program, or null.
    #[schema(required = true)]
    transform: Option<String>,
    #[schema(required = true)]
    response_transform: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceList {
    sources: Vec<Source>,
    /// Always null: the list is whole.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationList {
    destinations: Vec<Destination>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionList {
    subscriptions: Vec<Subscription>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// One try to deliver a log.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = DateTime)]
    started_at: String,
    duration_ms: u64,
    /// The receiver's status; null after a timeout or a transport error.
    #[schema(required = true)]
    http_status: Option<u16>,
    /// The receiver's error text, or the transport error.
    #[schema(required = true)]
    error: Option<String>,
    /// The start of the receiver's answer, as kept.
    #[schema(required = true)]
    response: Option<String>,
}

/// A log, as `GET /logs` lists it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[schema(format = Uuid)]
    id: String,
    message_id: u64,
    #[serde(rename = "type")]
    #[schema(required = true)]
    log_type: Option<LogType>,
    #[schema(required = true, format = Uuid)]
    source_id: Option<String>,
    #[schema(format = Uuid)]
    destination_id: String,
    #[schema(required = true)]
    data_model: Option<String>,
    #[schema(required = true)]
    event_type: Option<String>,
    status: LogStatus,
    /// Why the log has its status (a skip, a manual retry, a failure).
    #[schema(required = true)]
    reason: Option<String>,
    #[schema(required = true, format = DateTime)]
    received_at: Option<String>,
    #[schema(format = DateTime)]
    updated_at: String,
    attempts: Vec<Attempt>,
    /// The log this one sends again (SPEC §13).
    #[schema(required = true, format = Uuid)]
    resent_from: Option<String>,
}

/// A log with its payload, as `GET /logs/{id}` answers it, and as retry
/// and skip answer with the log they changed. Without PHI access the
/// payload is null and `payload_redacted` true.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogDetail {
    #[schema(format = Uuid)]
    id: String,
    message_id: u64,
    #[serde(rename = "type")]
    #[schema(required = true)]
    log_type: Option<LogType>,
    #[schema(required = true, format = Uuid)]
    source_id: Option<String>,
    #[schema(format = Uuid)]
    destination_id: String,
    #[schema(required = true)]
    data_model: Option<String>,
    #[schema(required = true)]
    event_type: Option<String>,
    status: LogStatus,
    #[schema(required = true)]
    reason: Option<String>,
    #[schema(required = true, format = DateTime)]
    received_at: Option<String>,
    #[schema(format = DateTime)]
    updated_at: String,
    attempts: Vec<Attempt>,
    #[schema(required = true, format = Uuid)]
    resent_from: Option<String>,
    /// The message as received (JSON), or null when redacted.
    #[schema(required = true)]
    payload: Value,
    payload_redacted: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogList {
    logs: Vec<Log>,
    /// Pass as `cursor` for the next page; null on the last.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// A destination's queue, as `GET /destinations/{id}/queue` answers it,
/// and as pause and resume answer with the queue they changed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    #[schema(format = Uuid)]
    destination_id: String,
    depth: u64,
    #[schema(required = true)]
    oldest_pending_age_ms: Option<u64>,
    state: QueueState,
    #[schema(required = true)]
    paused_reason: Option<String>,
    #[schema(required = true, format = Uuid)]
    head_log_id: Option<String>,
    #[schema(required = true, format = DateTime)]
    next_retry_at: Option<String>,
    head_attempts: Vec<Attempt>,
    /// Lanes whose head is `Retrying` or `ProcessingFailed`: with a
    /// `fifo_key` these wait while the other lanes flow; without one, 1
    /// when the queue's head is blocked.
    lanes_blocked: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    #[schema(format = Uuid)]
    id: String,
    kind: AlertKind,
    #[schema(format = Uuid)]
    destination_id: String,
    #[schema(required = true, format = Uuid)]
    log_id: Option<String>,
    #[schema(format = DateTime)]
    at: String,
    text: String,
    /// Per channel: sent (true) or still to go (false).
    sent: BTreeMap<String, bool>,
    /// Per channel that refused the alert for good: why.
    refused: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertList {
    alerts: Vec<Alert>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = DateTime)]
    at: String,
    operator: String,
    /// e.g. `destination.pause`, `log.retry`, `source.create`.
    action: String,
    target: String,
    detail: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditList {
    audit: Vec<AuditEntry>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// An operator. `token` appears once, in the answer that generated it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    name: String,
    role: Role,
    phi_access: bool,
    /// `configuration` (read-only here) or `api`.
    origin: String,
    #[schema(required = true, format = DateTime)]
    created_at: Option<String>,
    #[schema(nullable = false)]
    token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorList {
    operators: Vec<Operator>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorDeleted {
    name: String,
    deleted: bool,
}

/// What a replay resent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replayed {
    resent: u64,
    #[schema(required = true, format = Uuid)]
    first_log_id: Option<String>,
    #[schema(required = true, format = Uuid)]
    last_log_id: Option<String>,
}
