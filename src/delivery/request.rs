//! What a delivery sends and how its answer is read (SPEC §4).

use actix_web::http::header::{CONTENT_TYPE, HeaderName};
use serde_json::Value;

use crate::{clock::rfc3339, model::Destination, signature};

/// Bytes of the receiver's answer kept on an attempt.
pub const RESPONSE_BYTES_KEPT: usize = 4096;

/// Header names, made at compile time rather than parsed per request.
const VERIFICATION_TOKEN: HeaderName = HeaderName::from_static("verification-token");
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
const FERROX_MESSAGE_ID: HeaderName = HeaderName::from_static("ferrox-message-id");
const FERROX_LOG_ID: HeaderName = HeaderName::from_static("ferrox-log-id");
const FERROX_ATTEMPT_ID: HeaderName = HeaderName::from_static("ferrox-attempt-id");
const FERROX_RECEIVED_AT: HeaderName = HeaderName::from_static("ferrox-received-at");

/// Identifiers of one delivery attempt, for its headers.
#[derive(Debug, Clone)]
pub struct AttemptIds {
    pub log_id: String,
    pub attempt_id: String,
    pub message_id: u64,
    pub received_at_ms: i64,
    pub now_s: i64,
}

/// The delivery headers: verification token, Standard Webhooks headers and
/// the `ferrox-*` headers.
pub fn headers(dest: &Destination, ids: &AttemptIds, body: &[u8]) -> Result<Vec<(HeaderName, String)>, String> {
    let signature =
        signature::sign(&dest.signing_secret, &ids.log_id, ids.now_s, body).map_err(|e| format!("signing: {e}"))?;
    Ok(vec![
        (CONTENT_TYPE, "application/json".to_owned()),
        (VERIFICATION_TOKEN, dest.verification_token.clone()),
        (WEBHOOK_ID, ids.log_id.clone()),
        (WEBHOOK_TIMESTAMP, ids.now_s.to_string()),
        (WEBHOOK_SIGNATURE, signature),
        (FERROX_MESSAGE_ID, ids.message_id.to_string()),
        (FERROX_LOG_ID, ids.log_id.clone()),
        (FERROX_ATTEMPT_ID, ids.attempt_id.clone()),
        (FERROX_RECEIVED_AT, rfc3339(ids.received_at_ms)),
    ])
}

/// The first `RESPONSE_BYTES_KEPT` bytes of an answer, as text.
pub fn kept_response(body: &[u8]) -> String {
    let end = body.len().min(RESPONSE_BYTES_KEPT);
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// The receiver's own error text: `Meta.Errors[].Text` or the
/// `OperationOutcome` issues' text, if the answer has any.
pub fn receiver_error_text(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let texts: Vec<String> = if let Some(errors) = value.pointer("/Meta/Errors").and_then(Value::as_array) {
        errors.iter().filter_map(|e| e.get("Text").and_then(Value::as_str)).map(str::to_owned).collect()
    } else if value.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome") {
        let issues = value.get("issue").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        issues
            .iter()
            .filter_map(|i| i.pointer("/details/text").or_else(|| i.get("diagnostics")).and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    } else {
        Vec::new()
    };
    (!texts.is_empty()).then(|| texts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Environment, Id};

    #[test]
    fn receiver_errors_are_read_from_either_shape() {
        let redox = br#"{"Meta":{"Errors":[{"Text":"bad MRN"},{"Text":"bad DOB"}]}}"#;
        assert_eq!(receiver_error_text(redox).as_deref(), Some("bad MRN; bad DOB"));
        let fhir = br#"{"resourceType":"OperationOutcome","issue":[{"details":{"text":"unknown patient"}}]}"#;
        assert_eq!(receiver_error_text(fhir).as_deref(), Some("unknown patient"));
        assert_eq!(receiver_error_text(b"oops"), None);
        assert_eq!(kept_response(&[b'a'; 10_000]).len(), RESPONSE_BYTES_KEPT);
    }

    #[test]
    fn headers_carry_a_verifiable_signature() {
        let dest = Destination {
            id: Id(1),
            name: "lab".into(),
            url: "http://127.0.0.1:9/".into(),
            environment: Environment::Production,
            verification_token: "vt".into(),
            signing_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            timeout_ms: 1000,
            enabled: true,
            alert_emails: Vec::new(),
            alert_depth: None,
            alert_age_ms: None,
            client_cert: None,
            fifo_key: None,
            max_in_flight: 1,
        };
        let ids = AttemptIds {
            log_id: "msg_p5jXN8AQM9LWM0D4loKWxJek".into(),
            attempt_id: "a".into(),
            message_id: 3,
            received_at_ms: 0,
            now_s: 1614265330,
        };
        let h = headers(&dest, &ids, br#"{"test": 2432232314}"#).unwrap();
        let get = |name: &str| h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("webhook-signature"), Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
        assert_eq!(get("verification-token"), Some("vt"));
        assert_eq!(get("ferrox-received-at"), Some("1970-01-01T00:00:00Z"));
    }
}
