//! A log as the state keeps it: small for the common case of a pending
//! log, with its attempts and reason boxed apart.

use crate::model::{Attempt, Id, LogStatus, TimestampMs};

#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub id: Id,
    pub message_id: u64,
    pub position: u64,
    pub destination_id: Id,
    pub first_attempt_id: Id,
    pub status: LogStatus,
    pub updated_at_ms: TimestampMs,
    /// The journal position of the event that ended it; 0 while not ended.
    pub ended_at: u64,
    /// Attempts and reason, boxed: most logs in memory are pending and
    /// have neither, so they pay one pointer instead of 40 bytes.
    pub(super) detail: Option<Box<LogDetail>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct LogDetail {
    pub(super) attempts: Vec<Attempt>,
    /// The journal position that recorded each attempt.
    pub(super) attempt_positions: Vec<u64>,
    /// Why the log is in its status, when an operator or a failure says so.
    pub(super) reason: Option<Box<str>>,
    /// Its status in the history, when it was brought back from there.
    pub(super) shadowed: Option<LogStatus>,
    /// For a resent log: the log it was sent again from, the position of
    /// the event that made it and when (SPEC §13).
    pub(super) resent: Option<(Id, u64, TimestampMs)>,
}

impl Log {
    pub fn attempts(&self) -> &[Attempt] {
        self.detail.as_ref().map_or(&[], |d| &d.attempts)
    }

    pub fn reason(&self) -> Option<&str> {
        self.detail.as_ref()?.reason.as_deref()
    }

    /// The log it was sent again from, if it is a resent log.
    pub fn resent_from(&self) -> Option<Id> {
        self.detail.as_ref()?.resent.map(|(from, _, _)| from)
    }

    /// The position of the event that made it: its message's, or the
    /// resend's. Once this is durable, so is the log.
    pub fn created_at(&self) -> u64 {
        self.detail.as_ref().and_then(|d| d.resent).map_or(self.position, |(_, at, _)| at)
    }

    /// When it was resent, if it was.
    pub fn resent_at_ms(&self) -> Option<TimestampMs> {
        self.detail.as_ref()?.resent.map(|(_, _, at_ms)| at_ms)
    }

    pub(super) fn push_attempt(&mut self, position: u64, attempt: Attempt) {
        let detail = self.detail.get_or_insert_default();
        detail.attempts.push(attempt);
        detail.attempt_positions.push(position);
    }

    pub(super) fn set_reason(&mut self, reason: Option<Box<str>>) {
        match (&mut self.detail, reason) {
            (None, None) => {}
            (Some(detail), reason) => detail.reason = reason,
            (detail @ None, reason) => *detail = Some(Box::new(LogDetail { reason, ..LogDetail::default() })),
        }
    }
}
