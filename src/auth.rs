//! Source authentication (SPEC §8): stateless signed tokens and hashed
//! secrets.
//!
//! A token is `frx1.<payload>.<mac>`, both parts URL-safe base64 without
//! padding. The payload is a fixed-width binary record (33 bytes,
//! little-endian):
//!
//! | bytes  | field        |
//! |--------|--------------|
//! | 0      | kind (1 = access, 2 = refresh) |
//! | 1..17  | `source_id` (u128) |
//! | 17..25 | `expires_ms` (i64) |
//! | 25..33 | `nonce` (u64) |
//!
//! The MAC is HMAC-SHA256, keyed by the engine's [`TokenKey`], over the
//! token text before the second dot (`frx1.<payload>`), so that any change
//! to the text, the version prefix included, breaks it. Nothing is kept
//! server-side: a token stays valid across restarts as long as the key does.
//!
//! Secrets are stored as `pbkdf2-sha256$<rounds>$<salt hex>$<digest hex>`;
//! see [`hash_secret`] for why.

use std::{fmt, hint::black_box};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64URL};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    ids::IdSource,
    model::{Id, TimestampMs},
};

type HmacSha256 = Hmac<Sha256>;

const TOKEN_PREFIX: &str = "frx1.";
const PAYLOAD_BYTES: usize = 33;
const MAC_BYTES: usize = 32;
const PAYLOAD_CHARS: usize = b64_chars(PAYLOAD_BYTES);
const MAC_CHARS: usize = b64_chars(MAC_BYTES);
/// Every token has exactly this many characters, which lets `verify` turn
/// away oversized input before decoding anything.
const TOKEN_CHARS: usize = TOKEN_PREFIX.len() + PAYLOAD_CHARS + 1 + MAC_CHARS;
const _: () = assert!(TOKEN_CHARS == 93);

/// Length of unpadded base64 for `bytes` bytes.
const fn b64_chars(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

/// The key that signs tokens. The engine persists it so tokens survive
/// restarts; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn generate(ids: &dyn IdSource) -> Self {
        let mut bytes = [0u8; 32];
        ids.fill(&mut bytes);
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn to_byte(self) -> u8 {
        match self {
            Self::Access => 1,
            Self::Refresh => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Access),
            2 => Some(Self::Refresh),
            _ => None,
        }
    }
}

/// What a token asserts. It is valid while `now_ms < expires_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub source_id: Id,
    pub kind: TokenKind,
    pub expires_ms: TimestampMs,
    /// Tells apart tokens issued for the same source in the same
    /// millisecond.
    pub nonce: u64,
}

impl Claims {
    fn encode(&self) -> [u8; PAYLOAD_BYTES] {
        let mut out = [0u8; PAYLOAD_BYTES];
        out[0] = self.kind.to_byte();
        out[1..17].copy_from_slice(&self.source_id.0.to_le_bytes());
        out[17..25].copy_from_slice(&self.expires_ms.to_le_bytes());
        out[25..33].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8; PAYLOAD_BYTES]) -> Option<Self> {
        let kind = TokenKind::from_byte(bytes[0])?;
        let source_id = u128::from_le_bytes(bytes[1..17].try_into().ok()?);
        let expires_ms = i64::from_le_bytes(bytes[17..25].try_into().ok()?);
        let nonce = u64::from_le_bytes(bytes[25..33].try_into().ok()?);
        Some(Self { source_id: Id(source_id), kind, expires_ms, nonce })
    }
}

#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("malformed token")]
    Malformed,
    #[error("token signature does not match")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("wrong kind of token (access and refresh tokens are not interchangeable)")]
    WrongKind,
}

/// Signs `claims` into a compact, URL-safe token.
pub fn issue(key: &TokenKey, claims: &Claims) -> String {
    let mut token = String::with_capacity(TOKEN_CHARS);
    token.push_str(TOKEN_PREFIX);
    B64URL.encode_string(claims.encode(), &mut token);
    let mut mac = key.mac();
    mac.update(token.as_bytes());
    token.push('.');
    B64URL.encode_string(mac.finalize().into_bytes(), &mut token);
    debug_assert_eq!(token.len(), TOKEN_CHARS);
    token
}

/// Checks a token's signature, kind and expiry, in that order, and returns
/// its claims. Never panics, whatever the input.
pub fn verify(key: &TokenKey, token: &str, kind: TokenKind, now_ms: TimestampMs) -> Result<Claims, AuthError> {
    if token.len() != TOKEN_CHARS {
        return Err(AuthError::Malformed);
    }
    let (signed, mac_b64) = token.rsplit_once('.').ok_or(AuthError::Malformed)?;
    let payload_b64 = signed.strip_prefix(TOKEN_PREFIX).ok_or(AuthError::Malformed)?;
    if payload_b64.len() != PAYLOAD_CHARS || mac_b64.len() != MAC_CHARS {
        return Err(AuthError::Malformed);
    }
    let tag = B64URL.decode(mac_b64).map_err(|_| AuthError::Malformed)?;
    let mut mac = key.mac();
    mac.update(signed.as_bytes());
    mac.verify_slice(&tag).map_err(|_| AuthError::BadSignature)?;

    let payload: [u8; PAYLOAD_BYTES] =
        B64URL.decode(payload_b64).ok().and_then(|bytes| bytes.try_into().ok()).ok_or(AuthError::Malformed)?;
    let claims = Claims::decode(&payload).ok_or(AuthError::Malformed)?;
    if claims.kind != kind {
        return Err(AuthError::WrongKind);
    }
    if now_ms >= claims.expires_ms {
        return Err(AuthError::Expired);
    }
    Ok(claims)
}

const HASH_SCHEME: &str = "pbkdf2-sha256";
/// PBKDF2 rounds for new hashes. Secrets generated by ferrox carry 256 bits
/// of entropy and would need no stretching, but operators may choose their
/// own, so each guess against a leaked hash is made to cost 10 000 HMACs.
/// That is one to two milliseconds per authentication in a release build;
/// more would let a flood of failed logins tie up the CPU. The count is in
/// each stored hash, so it can be raised later without breaking old ones.
const HASH_ROUNDS: u32 = 10_000;
/// Stored hashes asking for more rounds than this are treated as malformed
/// rather than allowed to stall a worker.
const HASH_ROUNDS_MAX: u32 = 1_000_000;
const SALT_BYTES: usize = 16;
const DIGEST_BYTES: usize = 32;

/// Hashes a secret for storage as
/// `pbkdf2-sha256$<rounds>$<salt hex>$<digest hex>`: PBKDF2-HMAC-SHA256
/// (RFC 8018) with a random 16-byte salt and a 32-byte output.
pub fn hash_secret(secret: &str, ids: &dyn IdSource) -> String {
    let mut salt = [0u8; SALT_BYTES];
    ids.fill(&mut salt);
    let digest = pbkdf2_sha256(secret.as_bytes(), &salt, HASH_ROUNDS);
    format!("{HASH_SCHEME}${HASH_ROUNDS}${}${}", hex(&salt), hex(&digest))
}

/// Whether `secret` matches a value made by [`hash_secret`]. The digests
/// are compared in constant time; a malformed stored value gives `false`.
pub fn verify_secret(secret: &str, stored: &str) -> bool {
    let Some((rounds, salt, expected)) = parse_stored_hash(stored) else {
        return false;
    };
    let actual = pbkdf2_sha256(secret.as_bytes(), &salt, rounds);
    constant_time_eq(&actual, &expected)
}

/// A new source secret: 32 random bytes, URL-safe base64 without padding.
pub fn generate_secret(ids: &dyn IdSource) -> String {
    B64URL.encode(ids.bytes(32))
}

/// A new API key: 16 random bytes, URL-safe base64 without padding. It
/// names a source rather than proving anything, so it is shorter.
pub fn generate_api_key(ids: &dyn IdSource) -> String {
    B64URL.encode(ids.bytes(16))
}

type StoredHash = (u32, [u8; SALT_BYTES], [u8; DIGEST_BYTES]);

fn parse_stored_hash(stored: &str) -> Option<StoredHash> {
    let mut parts = stored.split('$');
    let scheme = parts.next()?;
    let rounds = parts.next()?;
    let salt = parts.next()?;
    let digest = parts.next()?;
    if scheme != HASH_SCHEME || parts.next().is_some() {
        return None;
    }
    // `u32::from_str` accepts a leading `+`; a canonical value never has one.
    if !rounds.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rounds = rounds.parse::<u32>().ok().filter(|r| (1..=HASH_ROUNDS_MAX).contains(r))?;
    Some((rounds, unhex(salt)?, unhex(digest)?))
}

/// PBKDF2-HMAC-SHA256 (RFC 8018 §5.2) for a single 32-byte output block.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], rounds: u32) -> [u8; DIGEST_BYTES] {
    let prf = HmacSha256::new_from_slice(password).expect("HMAC accepts keys of any length");
    let mut mac = prf.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut block: [u8; DIGEST_BYTES] = mac.finalize().into_bytes().into();
    let mut out = block;
    for _ in 1..rounds {
        let mut mac = prf.clone();
        mac.update(&block);
        block = mac.finalize().into_bytes().into();
        out.iter_mut().zip(block).for_each(|(o, b)| *o ^= b);
    }
    out
}

/// Compares without an early exit, so the time taken does not reveal how
/// many leading bytes match.
fn constant_time_eq(a: &[u8; DIGEST_BYTES], b: &[u8; DIGEST_BYTES]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | black_box(x ^ y));
    black_box(diff) == 0
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Decodes exactly `N` bytes of lowercase hex, as [`hex`] writes them.
fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let nibble = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SeededIds;

    const NOW_MS: TimestampMs = 1_700_000_000_000;

    fn claims(kind: TokenKind) -> Claims {
        Claims {
            source_id: Id(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
            kind,
            expires_ms: NOW_MS + 86_400_000,
            nonce: 42,
        }
    }

    fn key(seed: u64) -> TokenKey {
        TokenKey::generate(&SeededIds::new(seed))
    }

    #[test]
    fn tokens_round_trip_for_both_kinds() {
        let key = key(1);
        for kind in [TokenKind::Access, TokenKind::Refresh] {
            let token = issue(&key, &claims(kind));
            assert_eq!(token.len(), TOKEN_CHARS);
            assert!(token.starts_with("frx1."));
            assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
            assert_eq!(verify(&key, &token, kind, NOW_MS), Ok(claims(kind)));
        }
    }

    #[test]
    fn extreme_claim_values_round_trip() {
        let key = key(1);
        let claims =
            Claims { source_id: Id(u128::MAX), kind: TokenKind::Access, expires_ms: i64::MAX, nonce: u64::MAX };
        let token = issue(&key, &claims);
        assert_eq!(verify(&key, &token, TokenKind::Access, i64::MIN), Ok(claims));
    }

    #[test]
    fn a_token_expires_at_exactly_its_expiry() {
        let key = key(1);
        let claims = claims(TokenKind::Access);
        let token = issue(&key, &claims);
        let at = claims.expires_ms;
        assert_eq!(verify(&key, &token, TokenKind::Access, at - 1), Ok(claims));
        assert_eq!(verify(&key, &token, TokenKind::Access, at), Err(AuthError::Expired));
        assert_eq!(verify(&key, &token, TokenKind::Access, at + 1), Err(AuthError::Expired));
    }

    #[test]
    fn access_and_refresh_tokens_are_not_interchangeable() {
        let key = key(1);
        let access = issue(&key, &claims(TokenKind::Access));
        let refresh = issue(&key, &claims(TokenKind::Refresh));
        assert_eq!(verify(&key, &access, TokenKind::Refresh, NOW_MS), Err(AuthError::WrongKind));
        assert_eq!(verify(&key, &refresh, TokenKind::Access, NOW_MS), Err(AuthError::WrongKind));
    }

    #[test]
    fn another_key_rejects_the_token() {
        let token = issue(&key(1), &claims(TokenKind::Access));
        assert_eq!(verify(&key(2), &token, TokenKind::Access, NOW_MS), Err(AuthError::BadSignature));
    }

    #[test]
    fn changing_any_byte_of_a_token_is_rejected() {
        let key = key(1);
        let token = issue(&key, &claims(TokenKind::Access));
        for i in 0..token.len() {
            for replacement in [b'A', b'B', b'z', b'0', b'-', b'_', b'.', b'=', b'+', b' '] {
                let mut bytes = token.clone().into_bytes();
                if bytes[i] == replacement {
                    continue;
                }
                bytes[i] = replacement;
                let tampered = String::from_utf8(bytes).expect("ASCII stays UTF-8");
                let result = verify(&key, &tampered, TokenKind::Access, NOW_MS);
                assert!(
                    matches!(result, Err(AuthError::Malformed | AuthError::BadSignature)),
                    "byte {i} set to {:?} gave {result:?}",
                    char::from(replacement),
                );
            }
        }
    }

    #[test]
    fn a_token_with_a_forged_payload_is_rejected() {
        // Re-encoding a different payload under the old MAC must not pass.
        let key = key(1);
        let token = issue(&key, &claims(TokenKind::Access));
        let mac_b64 = token.rsplit_once('.').expect("two dots").1;
        let mut forged = claims(TokenKind::Access);
        forged.expires_ms = i64::MAX;
        let forged = format!("{TOKEN_PREFIX}{}.{mac_b64}", B64URL.encode(forged.encode()));
        assert_eq!(verify(&key, &forged, TokenKind::Access, NOW_MS), Err(AuthError::BadSignature));
    }

    #[test]
    fn garbage_is_rejected_without_panicking() {
        let key = key(1);
        let near_miss = format!("frx1.{}.{}", "é".repeat(22), "x".repeat(43));
        let cases = [
            String::new(),
            ".".into(),
            "frx1.".into(),
            "frx1..".into(),
            "a".repeat(10 << 20),
            "€".repeat(TOKEN_CHARS),
            near_miss,
            format!("frx1.{}.{}", "A".repeat(43), "A".repeat(44)),
            format!("frx2.{}.{}", "A".repeat(44), "A".repeat(43)),
            format!("frx1.{}", "A".repeat(TOKEN_CHARS - 5)),
            "\0".repeat(TOKEN_CHARS),
        ];
        for case in cases {
            let result = verify(&key, &case, TokenKind::Access, NOW_MS);
            assert!(matches!(result, Err(AuthError::Malformed | AuthError::BadSignature)), "{result:?}");
        }
    }

    #[test]
    fn random_strings_are_rejected() {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let seed = 7;
        let ids = SeededIds::new(seed);
        let key = key(1);
        let b64 =
            |n: usize| -> String { ids.bytes(n).iter().map(|b| char::from(ALPHABET[usize::from(b % 64)])).collect() };
        for round in 0..2_000 {
            let text = if round % 2 == 0 {
                // Passes every structural check; only the MAC can fail.
                format!("{TOKEN_PREFIX}{}.{}", b64(PAYLOAD_CHARS), b64(MAC_CHARS))
            } else {
                let len = usize::from(ids.bytes(1)[0]);
                String::from_utf8_lossy(&ids.bytes(len)).into_owned()
            };
            let result = verify(&key, &text, TokenKind::Access, NOW_MS);
            assert!(matches!(result, Err(AuthError::Malformed | AuthError::BadSignature)), "seed {seed}: {text:?}");
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let key = TokenKey::new([0xab; 32]);
        assert_eq!(format!("{key:?}"), "TokenKey(..)");
        assert_eq!(key.bytes(), &[0xab; 32]);
    }

    #[test]
    fn errors_say_what_went_wrong() {
        assert_eq!(AuthError::Expired.to_string(), "token expired");
        assert_eq!(AuthError::Malformed.to_string(), "malformed token");
    }

    #[test]
    fn pbkdf2_matches_the_rfc_7914_test_vector() {
        // RFC 7914 §11, PBKDF2-HMAC-SHA-256 with P = "passwd", S = "salt",
        // c = 1: the first 32 of its 64 output bytes.
        let expected = "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc";
        assert_eq!(hex(&pbkdf2_sha256(b"passwd", b"salt", 1)), expected);
    }

    #[test]
    fn secret_hashes_verify_only_the_right_secret() {
        let ids = SeededIds::new(3);
        let stored = hash_secret("correct horse", &ids);
        assert!(stored.starts_with("pbkdf2-sha256$10000$"));
        assert_eq!(stored.len(), "pbkdf2-sha256$10000$".len() + 32 + 1 + 64);
        assert!(verify_secret("correct horse", &stored));
        assert!(!verify_secret("correct horsE", &stored));
        assert!(!verify_secret("", &stored));
    }

    #[test]
    fn two_hashes_of_one_secret_differ() {
        let ids = SeededIds::new(3);
        let (a, b) = (hash_secret("s3cret", &ids), hash_secret("s3cret", &ids));
        assert_ne!(a, b);
        assert!(verify_secret("s3cret", &a) && verify_secret("s3cret", &b));
    }

    #[test]
    fn malformed_stored_hashes_verify_nothing() {
        let stored = hash_secret("s3cret", &SeededIds::new(3));
        let parts: Vec<&str> = stored.split('$').collect();
        let (salt, digest) = (parts[2], parts[3]);
        let cases = [
            String::new(),
            "$$$".into(),
            "s3cret".into(),
            stored.replacen("pbkdf2-sha256", "sha256", 1),
            format!("pbkdf2-sha256$0${salt}${digest}"),
            format!("pbkdf2-sha256$+10000${salt}${digest}"),
            format!("pbkdf2-sha256$99999999999${salt}${digest}"),
            format!("pbkdf2-sha256$10000${}${digest}", &salt[1..]),
            format!("pbkdf2-sha256$10000${salt}${}", digest.to_uppercase()),
            format!("pbkdf2-sha256$10000${salt}${digest}$"),
            format!("pbkdf2-sha256$10000${salt}${}é", &digest[1..]),
            stored[..stored.len() - 1].into(),
        ];
        for case in cases {
            assert!(!verify_secret("s3cret", &case), "{case:?}");
        }
    }

    #[test]
    fn generated_secrets_and_keys_are_url_safe_and_distinct() {
        let ids = SeededIds::new(5);
        let (s1, s2) = (generate_secret(&ids), generate_secret(&ids));
        let key = generate_api_key(&ids);
        assert_eq!((s1.len(), key.len()), (43, 22));
        assert_ne!(s1, s2);
        for text in [&s1, &s2, &key] {
            assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }
}
