//! Objects the engine-level model tests (`retention`, `powerloss`) set up:
//! one source and destinations `100 + n`, each with its subscription
//! `200 + n`.

use crate::{
    journal::NewLog,
    model::{Destination, Environment, Id, Source, Subscription},
    state::State,
};

/// Destinations the model tests configure: `100 + n` for `n` below this.
pub(crate) const DESTINATIONS: u128 = 3;

/// One new log per existing destination whose bit is set in `mask`, with
/// IDs from `fresh`.
pub(crate) fn new_logs(state: &State, mask: u64, mut fresh: impl FnMut() -> Id) -> Vec<NewLog> {
    (0..DESTINATIONS)
        .filter(|n| mask & (1 << n) != 0 && state.destinations.contains_key(&Id(100 + n)))
        .map(|n| NewLog { id: fresh(), attempt_id: fresh(), destination_id: Id(100 + n) })
        .collect()
}

pub(crate) fn source() -> Source {
    Source { id: Id(1), name: "s".into(), api_key: "k".into(), secret_hash: "h".into(), alert_emails: Vec::new() }
}

/// Destination `n`; `version` tells one of its configurations from another.
pub(crate) fn destination(n: u128, version: u64) -> Destination {
    Destination {
        id: Id(100 + n),
        name: format!("d{n}"),
        url: format!("http://127.0.0.1:9/{version}"),
        environment: Environment::Production,
        verification_token: "t".into(),
        signing_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        timeout_ms: 1000,
        enabled: true,
        alert_emails: Vec::new(),
        alert_depth: None,
        alert_age_ms: None,
        client_cert: None,
        fifo_key: None,
        max_in_flight: 1,
    }
}

/// The source's subscription to destination `n`.
pub(crate) fn subscription(n: u128) -> Subscription {
    Subscription {
        id: Id(200 + n),
        source_id: Id(1),
        destination_id: Id(100 + n),
        data_model: "PatientAdmin".into(),
        event_types: Vec::new(),
        transform: None,
        response_transform: None,
    }
}
