//! Test support: the state as the API shows it, to compare a replay with
//! the live state.

use std::collections::BTreeMap;

use super::Queue;
use super::{LogFilter, LogRecord, State, query};
use crate::{
    journal::{BodyHash, KeptAlert},
    model::{Destination, Id, LogStatus, Source, Subscription, TimestampMs},
};

/// Everything a replay must rebuild, in a comparable form: what the API
/// shows of every log, not where it is kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fingerprint {
    sources: Vec<Source>,
    destinations: Vec<Destination>,
    subscriptions: Vec<Subscription>,
    token_key: Option<[u8; 32]>,
    next_message_id: u64,
    next_log: usize,
    logs: Vec<LogRecord>,
    counts: Vec<u64>,
    queues: BTreeMap<Id, Queue>,
    idempotency: BTreeMap<crate::history::KeyHash, (u64, u64, TimestampMs, BodyHash)>,
    alerts: Vec<KeptAlert>,
    audit: Vec<(u64, crate::model::AuditEntry)>,
    alert_channels: BTreeMap<String, u64>,
    operators: Vec<crate::model::OperatorRecord>,
    backlogged: Vec<Id>,
    position: u64,
}

impl Fingerprint {
    /// Without the idempotency keys received at or before `cutoff_ms` (as
    /// `State::forget_keys_before`): keys past their window answer nothing,
    /// and whether memory still holds one depends on when a compaction last
    /// forgot by the clock.
    pub(crate) fn without_keys_before(mut self, cutoff_ms: TimestampMs) -> Self {
        self.idempotency.retain(|_, (_, _, at_ms, _)| *at_ms > cutoff_ms);
        self
    }

    /// The names of the fields where `self` and `other` differ.
    pub(crate) fn differences(&self, other: &Self) -> Vec<String> {
        let mut out = Vec::new();
        macro_rules! field {
            ($($name:ident),*) => {$(
                if self.$name != other.$name {
                    out.push(format!("{}: {:?} != {:?}", stringify!($name), self.$name, other.$name));
                }
            )*};
        }
        field!(
            sources,
            destinations,
            subscriptions,
            token_key,
            next_message_id,
            next_log,
            logs,
            counts,
            queues,
            idempotency,
            alerts,
            audit,
            alert_channels,
            operators,
            backlogged,
            position
        );
        out
    }
}

impl State {
    /// Every log shown, newest first.
    pub(crate) fn all_logs(&self) -> Vec<LogRecord> {
        let mut filter = LogFilter { limit: query::MAX_PAGE, ..LogFilter::default() };
        let mut all = Vec::new();
        loop {
            let page = self.query_logs(&filter, u64::MAX).expect("the history reads back");
            all.extend(page.logs);
            match page.next {
                Some(next) => filter.before = Some(next),
                None => return all,
            }
        }
    }

    pub(crate) fn fingerprint(&self) -> Fingerprint {
        use LogStatus::*;
        Fingerprint {
            sources: self.sources.values().cloned().collect(),
            destinations: self.destinations.values().cloned().collect(),
            subscriptions: self.subscriptions.values().cloned().collect(),
            token_key: self.token_key,
            next_message_id: self.next_message_id,
            next_log: self.next_log,
            logs: self.all_logs(),
            counts: [Pending, Retrying, ProcessingFailed, Succeeded, Failed, Filtered]
                .into_iter()
                .map(|s| self.log_count(s))
                .collect(),
            queues: self.queues.iter().map(|(k, v)| (*k, v.clone())).collect(),
            idempotency: self
                .idempotency
                .iter()
                .map(|(k, e)| (*k, (e.message_id, e.position, e.at_ms, e.body_hash)))
                .collect(),
            alerts: self.alerts.clone(),
            audit: self.audit.clone(),
            alert_channels: self.alert_channels.clone(),
            operators: self.operators.values().cloned().collect(),
            backlogged: self.backlogged.iter().copied().collect(),
            position: self.position,
        }
    }
}
