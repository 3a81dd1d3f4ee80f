//! Console sessions (SPEC §15): an operator signs in with their token and
//! gets a session cookie. The engine keeps, per session, the digest of
//! the token that opened it, so a session ends when its token is removed
//! (an operator deleted through the API, or dropped from the
//! configuration), and the role and PHI access are the token's current
//! ones at each request.
//!
//! Sessions live in memory: a restart signs everyone out. In cluster mode
//! they are also kept in a store every node reads (`SessionStore`, a
//! JetStream key-value bucket), so a session opened on one node is good on
//! all, and signing out on one ends it on all. The cookie holds 256 random
//! bits; the engine keeps only their SHA-256 digest. Each
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

/// Sessions kept where every node reads them, by the hex digest of their
/// cookie. A store that cannot be reached answers `Err`, and the node goes
/// on with what it holds itself.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    fn put(&self, key: &str, value: Vec<u8>) -> Result<(), String>;
    fn delete(&self, key: &str) -> Result<(), String>;
}

/// A session as the store keeps it (version 1).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Stored {
    v: u32,
    token_hash: String,
    csrf: String,
    started_ms: TimestampMs,
    seen_ms: TimestampMs,
}

/// How often a session in use is written back to the store, so that its
/// entry, which ages out after `CONSOLE_SESSION_IDLE_MS`, lives on.
const STORE_TOUCH_MS: TimestampMs = 60_000;

#[derive(Debug, Default)]
pub struct Sessions {
    by_cookie: Mutex<HashMap<TokenHash, Session>>,
    shared: Option<std::sync::Arc<dyn SessionStore>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<TokenHash> {
    let mut hash = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(hash)
}

impl Session {
    fn stored(&self) -> Vec<u8> {
        let stored = Stored {
            v: 1,
            token_hash: hex(&self.token_hash),
            csrf: self.csrf.clone(),
            started_ms: self.started_ms,
            seen_ms: self.seen_ms,
        };
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    fn from_stored(value: &[u8]) -> Option<Self> {
        let stored: Stored = serde_json::from_slice(value).ok()?;
        let token_hash = unhex(&stored.token_hash)?;
        Some(Self { token_hash, csrf: stored.csrf, started_ms: stored.started_ms, seen_ms: stored.seen_ms })
    }
}

impl Sessions {
    /// Sessions also kept in `store`, shared with the other nodes.
    pub fn shared(store: std::sync::Arc<dyn SessionStore>) -> Self {
        Self { by_cookie: Mutex::default(), shared: Some(store) }
    }

    fn store_put(&self, key: &TokenHash, session: &Session) {
        if let Some(store) = &self.shared
            && let Err(e) = store.put(&hex(key), session.stored())
        {
            tracing::warn!(error = %e, "a console session could not be shared with the other nodes");
        }
    }

    /// The session of `key` as the store has it: `Ok(None)` when it has
    /// none (signed out on another node, or aged out); `Err` when the store
    /// cannot say.
    fn store_get(&self, key: &TokenHash) -> Result<Option<Session>, String> {
        let Some(store) = &self.shared else { return Err("no store".into()) };
        Ok(store.get(&hex(key))?.and_then(|value| Session::from_stored(&value)))
    }

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
        let key = token_hash(&cookie);
        self.store_put(&key, &session);
        sessions.insert(key, session);
        cookie
    }

    /// The live session of a cookie, marked as used now. With a store, the
    /// store decides: a session opened on another node is found there, and
    /// one ended there ends here too.
    pub fn find(&self, cookie: &str, now_ms: TimestampMs) -> Option<Session> {
        let key = token_hash(cookie);
        let held = self.by_cookie.lock().get(&key).cloned();
        let mut session = match (self.shared.is_some(), held) {
            (false, held) => held?,
            (true, held) => match self.store_get(&key) {
                Ok(Some(stored)) => stored,
                Ok(None) => {
                    self.by_cookie.lock().remove(&key);
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the shared console sessions cannot be read: this node's own serve");
                    held?
                }
            },
        };
        if !live(&session, now_ms) {
            self.close(cookie);
            return None;
        }
        let touch = now_ms - session.seen_ms >= STORE_TOUCH_MS;
        session.seen_ms = now_ms;
        if self.shared.is_some() && touch {
            self.store_put(&key, &session);
        }
        self.by_cookie.lock().insert(key, session.clone());
        Some(session)
    }

    /// Ends a cookie's session (on every node, with a store).
    pub fn close(&self, cookie: &str) {
        let key = token_hash(cookie);
        self.by_cookie.lock().remove(&key);
        if let Some(store) = &self.shared
            && let Err(e) = store.delete(&hex(&key))
        {
            tracing::warn!(error = %e, "a console session could not be ended on the other nodes");
        }
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

    /// A store in memory, that can be made unreachable.
    #[derive(Debug, Default)]
    struct Memory {
        entries: Mutex<HashMap<String, Vec<u8>>>,
        down: std::sync::atomic::AtomicBool,
    }

    impl Memory {
        fn reach(&self) -> Result<(), String> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) { Err("unreachable".into()) } else { Ok(()) }
        }
    }

    impl SessionStore for Memory {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
            self.reach()?;
            Ok(self.entries.lock().get(key).cloned())
        }

        fn put(&self, key: &str, value: Vec<u8>) -> Result<(), String> {
            self.reach()?;
            self.entries.lock().insert(key.to_owned(), value);
            Ok(())
        }

        fn delete(&self, key: &str) -> Result<(), String> {
            self.reach()?;
            self.entries.lock().remove(key);
            Ok(())
        }
    }

    #[test]
    fn shared_sessions_are_found_and_ended_on_every_node() {
        let store = std::sync::Arc::new(Memory::default());
        let (one, two) = (Sessions::shared(store.clone()), Sessions::shared(store.clone()));
        let ids = SeededIds::new(5);
        let hash = token_hash("an operator token");
        let cookie = one.open(&ids, hash, 0);
        let found = two.find(&cookie, 1).expect("found on the other node");
        assert_eq!((found.token_hash, found.csrf.clone()), (hash, one.find(&cookie, 1).expect("found").csrf));
        // In use, it is written back so that its entry lives on.
        two.find(&cookie, STORE_TOUCH_MS + 1).expect("still live");
        let stored = Session::from_stored(&store.get(&hex(&token_hash(&cookie))).unwrap().unwrap()).unwrap();
        assert_eq!(stored.seen_ms, STORE_TOUCH_MS + 1);
        // The store unreachable: each node serves the sessions it holds.
        store.down.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(one.find(&cookie, 2).is_some());
        store.down.store(false, std::sync::atomic::Ordering::SeqCst);
        // Signed out on one node, it is gone on the other, which held it too.
        two.close(&cookie);
        assert!(one.find(&cookie, 3).is_none());
        assert!(store.entries.lock().is_empty());
    }
}
