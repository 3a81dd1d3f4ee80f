//! Standard Webhooks signatures for deliveries (SPEC §4).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`, the MAC
//! is HMAC-SHA256 keyed by the base64-decoded part of the destination's
//! `whsec_...` secret, and the `webhook-signature` header carries
//! `v1,<standard base64 of the MAC>`. Receivers check it with any Standard
//! Webhooks library, so every detail here must match the reference
//! implementations byte for byte.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids::IdSource;

const SECRET_PREFIX: &str = "whsec_";
/// Length of the keys ferrox generates.
const KEY_BYTES: usize = 32;
/// The specification asks for at least 24 bytes of key (192 bits) and at
/// most 512 bits.
const KEY_BYTES_MIN: usize = 24;
const KEY_BYTES_MAX: usize = 64;
const SIGNATURE_VERSION: &str = "v1";

#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("signing secret must be `whsec_` followed by the base64 of a 24 to 64 byte key")]
    InvalidSecret,
    /// The specification forbids a `.` in the message id: it would let one
    /// signed content pass for another.
    #[error("webhook message id must be non-empty and contain no `.`")]
    InvalidMessageId,
}

/// A new destination signing secret: `whsec_` and the standard base64 of
/// 32 random bytes.
pub fn generate_signing_secret(ids: &dyn IdSource) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(ids.bytes(KEY_BYTES)))
}

/// The `webhook-signature` header value for one delivery attempt.
pub fn sign(secret: &str, msg_id: &str, timestamp_s: i64, body: &[u8]) -> Result<String, SignatureError> {
    let key = decode_secret(secret).ok_or(SignatureError::InvalidSecret)?;
    if msg_id.is_empty() || msg_id.contains('.') {
        return Err(SignatureError::InvalidMessageId);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("{SIGNATURE_VERSION},{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// Whether `secret` can sign: used to check an operator-supplied secret
/// before it is stored.
pub fn is_valid_secret(secret: &str) -> bool {
    decode_secret(secret).is_some()
}

/// The key inside a `whsec_` secret. The prefix is required, and the
/// base64 must be standard and padded, as the reference libraries decode
/// it: a secret they would refuse is refused here, when it is configured,
/// rather than at the receiver.
fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX)?;
    // Checked before decoding so a huge string costs nothing.
    if encoded.len() > KEY_BYTES_MAX.div_ceil(3) * 4 {
        return None;
    }
    let key = STANDARD.decode(encoded).ok()?;
    (KEY_BYTES_MIN..=KEY_BYTES_MAX).contains(&key.len()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SeededIds;

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        // The "sign function works" test of the reference JavaScript library:
        // github.com/standard-webhooks/standard-webhooks,
        // libraries/javascript/src/webhook.test.ts.
        let key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let msg_id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let timestamp = 1614265330;
        let payload = r#"{"test": 2432232314}"#;
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(sign(key, msg_id, timestamp, payload.as_bytes()), Ok(expected.to_owned()));
    }

    #[test]
    fn matches_the_reference_rust_library_vector() {
        // `test_sign` in the same repository, libraries/rust/src/lib.rs.
        let key = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let payload = br#"{"email":"test@example.com","username":"test_user"}"#;
        let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        assert_eq!(sign(key, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, payload), Ok(expected.to_owned()));
    }

    #[test]
    fn bad_secrets_are_refused() {
        let long_key = STANDARD.encode([7u8; KEY_BYTES_MAX + 1]);
        let short_key = STANDARD.encode([7u8; KEY_BYTES_MIN - 1]);
        let cases = [
            String::new(),
            "whsec_".into(),
            // The bare key of the test vector: the prefix is required.
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!".into(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwé".into(),
            format!("whsec_{long_key}"),
            format!("whsec_{short_key}"),
            format!("whsec_{}", STANDARD.encode([7u8; KEY_BYTES]).trim_end_matches('=')),
            format!("whsec_{}", "A".repeat(10 << 20)),
        ];
        for secret in cases {
            assert!(!is_valid_secret(&secret), "{secret:?}");
            assert_eq!(sign(&secret, "msg_1", 1, b"{}"), Err(SignatureError::InvalidSecret), "{secret:?}");
        }
    }

    #[test]
    fn message_ids_with_a_dot_are_refused() {
        let secret = generate_signing_secret(&SeededIds::new(1));
        assert_eq!(sign(&secret, "msg.1", 1, b"{}"), Err(SignatureError::InvalidMessageId));
        assert_eq!(sign(&secret, "", 1, b"{}"), Err(SignatureError::InvalidMessageId));
    }

    #[test]
    fn generated_secrets_are_valid_and_distinct() {
        let ids = SeededIds::new(1);
        let (a, b) = (generate_signing_secret(&ids), generate_signing_secret(&ids));
        assert!(a.starts_with("whsec_") && is_valid_secret(&a) && is_valid_secret(&b));
        assert_ne!(a, b);
        let min = format!("whsec_{}", STANDARD.encode([1u8; KEY_BYTES_MIN]));
        let max = format!("whsec_{}", STANDARD.encode([1u8; KEY_BYTES_MAX]));
        assert!(is_valid_secret(&min) && is_valid_secret(&max));
    }

    #[test]
    fn every_signed_part_changes_the_signature() {
        let secret = generate_signing_secret(&SeededIds::new(1));
        let other = generate_signing_secret(&SeededIds::new(2));
        let base = sign(&secret, "msg_1", 1_700_000_000, b"{}").expect("valid");
        assert!(base.starts_with("v1,") && base.len() == 3 + 44);
        for changed in [
            sign(&other, "msg_1", 1_700_000_000, b"{}"),
            sign(&secret, "msg_2", 1_700_000_000, b"{}"),
            sign(&secret, "msg_1", 1_700_000_001, b"{}"),
            sign(&secret, "msg_1", 1_700_000_000, b"{ }"),
        ] {
            assert_ne!(changed.expect("valid"), base);
        }
    }
}
