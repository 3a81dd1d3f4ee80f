//! Query parameters of the operator API, for the document. Any parameter
//! not named here is a 400. Never constructed.
#![allow(dead_code)]

use serde::Deserialize;
use utoipa::IntoParams;

use super::views::{LogStatus, LogType};

/// `GET /logs`: every filter optional, newest first.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// A destination's ID.
    #[param(format = Uuid)]
    destination: Option<String>,
    /// A source's ID.
    #[param(format = Uuid)]
    source: Option<String>,
    #[param(inline)]
    status: Option<LogStatus>,
    #[serde(rename = "type")]
    #[param(inline)]
    log_type: Option<LogType>,
    data_model: Option<String>,
    event_type: Option<String>,
    /// Received at or after (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Received before (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Logs per page (at least 1; at most 1000).
    #[param(minimum = 1)]
    limit: Option<u32>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

/// Paging of `/alerts` and `/audit`, newest first.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Entries per page (at least 1; at most 1000).
    #[param(minimum = 1)]
    limit: Option<u32>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

/// `DELETE` of a source, destination or subscription.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Delete a destination that still has queued logs (they become `Failed`).
    force: Option<bool>,
}
