//! Console sessions (SPEC §15): an operator signs in with their token and
//! gets a session cookie. The engine keeps, per session, the digest of
//! the token that opened it, so a session ends when its token is removed
//! (an operator deleted through the API, or dropped from the
//! configuration), and the role and PHI access are the token's current
//! ones at each request.
//!
//! Sessions live in memory: a restart signs everyone out. The cookie holds
//! 256 random bits; the engine keeps only their SHA-256 digest. Each
//! session has a second random value, the CSRF token, which the console's
//! script sends in `X-Ferrox-Csrf` with every call of the operator API: a
//! page of another site can make the browser send the cookie, but cannot
//! read the token.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::{
    auth::generate_secret,
    ids::IdSource,
    limits,
    model::TimestampMs,
    operators::{TokenHash, token_hash},
};

/// The session cookie's name.
pub const COOKIE: &str = "ferrox_session";
/// The header that carries a session's CSRF token to the operator API.
pub const CSRF_HEADER: &str = "x-ferrox-csrf";

#[derive(Debug, Clone)]
pub struct Session {
    /// The digest of the operator token that opened it.
    pub token_hash: TokenHash,
    pub csrf: String,
    started_ms: TimestampMs,
    seen_ms: TimestampMs,
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_cookie: Mutex<HashMap<TokenHash, Session>>,
}

impl Sessions {
    /// Opens a session for the operator whose token has digest
    /// `token_hash`; returns the cookie's value.
    pub fn open(&self, ids: &dyn IdSource, opened_by: TokenHash, now_ms: TimestampMs) -> String {
        let cookie = generate_secret(ids);
        let session =
            Session { token_hash: opened_by, csrf: generate_secret(ids), started_ms: now_ms, seen_ms: now_ms };
        let mut sessions = self.by_cookie.lock();
        sessions.retain(|_, s| live(s, now_ms));
        if sessions.len() >= limits::CONSOLE_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.seen_ms).map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(token_hash(&cookie), session);
        cookie
    }

    /// The live session of a cookie, marked as used now.
    pub fn find(&self, cookie: &str, now_ms: TimestampMs) -> Option<Session> {
        let key = token_hash(cookie);
        let mut sessions = self.by_cookie.lock();
        let session = sessions.get_mut(&key)?;
        if !live(session, now_ms) {
            sessions.remove(&key);
            return None;
        }
        session.seen_ms = now_ms;
        Some(session.clone())
    }

    /// Ends a cookie's session.
    pub fn close(&self, cookie: &str) {
        self.by_cookie.lock().remove(&token_hash(cookie));
    }

    /// Ends every session opened with a token of digest `token_hash`.
    pub fn close_for(&self, token_hash: &TokenHash) {
        self.by_cookie.lock().retain(|_, s| &s.token_hash != token_hash);
    }
}

fn live(session: &Session, now_ms: TimestampMs) -> bool {
    now_ms - session.seen_ms < limits::CONSOLE_SESSION_IDLE_MS
        && now_ms - session.started_ms < limits::CONSOLE_SESSION_MAX_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SeededIds;

    #[test]
    fn a_session_ends_when_idle_too_long_or_too_old_or_closed() {
        let (sessions, ids) = (Sessions::default(), SeededIds::new(3));
        let hash = token_hash("an operator token");
        let cookie = sessions.open(&ids, hash, 0);
        assert_eq!(sessions.find(&cookie, 1).map(|s| s.token_hash), Some(hash));
        assert!(sessions.find("another cookie", 1).is_none());
        // Used every few hours, it lives until its maximum age.
        let step = limits::CONSOLE_SESSION_IDLE_MS - 1;
        let mut now = 1;
        while now + step < limits::CONSOLE_SESSION_MAX_MS {
            now += step;
            assert!(sessions.find(&cookie, now).is_some(), "ended early at {now}");
        }
        assert!(sessions.find(&cookie, limits::CONSOLE_SESSION_MAX_MS).is_none());
        let idle = sessions.open(&ids, hash, 0);
        assert!(sessions.find(&idle, limits::CONSOLE_SESSION_IDLE_MS).is_none());
        let closed = sessions.open(&ids, hash, 0);
        sessions.close(&closed);
        assert!(sessions.find(&closed, 1).is_none());
        let (a, b) = (sessions.open(&ids, hash, 0), sessions.open(&ids, token_hash("another token"), 0));
        sessions.close_for(&hash);
        assert!(sessions.find(&a, 1).is_none());
        assert!(sessions.find(&b, 1).is_some());
    }
}
