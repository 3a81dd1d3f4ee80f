//! What a delivery sends and how its answer is read (SPEC §4).

use actix_web::http::header::{CONTENT_TYPE, HeaderName};
use serde_json::{Map, Value, json};

use super::meta_ids;
use crate::{clock::rfc3339, model::Destination, signature, transform::Transform};

/// Bytes of the receiver's answer kept on an attempt.
pub const RESPONSE_BYTES_KEPT: usize = 4096;

/// Builds the body to deliver: the subscription's transform, then (for Data
/// Model bodies) `Meta.Transmission.ID` and `Meta.Message.ID`. `Ok(None)`
/// means the transform filtered the message out; `Err` is a processing
/// failure.
pub fn prepare_body(
    payload: &[u8],
    transform: Option<&Transform>,
    ids: Option<(u64, u64)>,
) -> Result<Option<Vec<u8>>, String> {
    if transform.is_none() {
        match ids {
            None => return Ok(Some(payload.to_vec())),
            Some((message_id, transmission_id)) => {
                if let Some(body) = meta_ids::set_ids(payload, message_id, transmission_id) {
                    return Ok(Some(body));
                }
            }
        }
    }
    let mut value: Value = serde_json::from_slice(payload).map_err(|e| format!("stored body is not JSON: {e}"))?;
    if let Some(transform) = transform {
        match transform.run(&value).map_err(|e| format!("transform failed: {e}"))? {
            Some(out) => value = out,
            None => return Ok(None),
        }
    }
    if let Some((message_id, transmission_id)) = ids
        && let Some(meta) = value.get_mut("Meta").and_then(Value::as_object_mut)
    {
        set_meta_ids(meta, message_id, transmission_id);
    }
    serde_json::to_vec(&value).map(Some).map_err(|e| format!("could not encode the body: {e}"))
}

/// Sets `Transmission.ID` and `Message.ID` in a body's `Meta` object.
pub fn set_meta_ids(meta: &mut Map<String, Value>, message_id: u64, transmission_id: u64) {
    meta.insert("Transmission".into(), json!({ "ID": transmission_id }));
    meta.insert("Message".into(), json!({ "ID": message_id }));
}

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
    fn data_model_bodies_get_their_ids_and_transforms_apply() {
        let payload = br#"{"Meta":{"DataModel":"PatientAdmin"},"Patient":{"SSN":"1"}}"#;
        let out = prepare_body(payload, None, Some((7, 70001))).unwrap().unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["Meta"]["Message"]["ID"].as_u64(), v["Meta"]["Transmission"]["ID"].as_u64()),
            (Some(7), Some(70001))
        );
        let t = Transform::compile("del(.Patient.SSN)").unwrap();
        let out: Value = serde_json::from_slice(&prepare_body(payload, Some(&t), None).unwrap().unwrap()).unwrap();
        assert_eq!(out["Patient"], json!({}));
        let filter = Transform::compile("select(.Meta.DataModel == \"Order\")").unwrap();
        assert_eq!(prepare_body(payload, Some(&filter), Some((1, 1))).unwrap(), None);
        let broken = Transform::compile("error(\"no\")").unwrap();
        assert!(prepare_body(payload, Some(&broken), None).unwrap_err().contains("no"));
        assert_eq!(prepare_body(b"{}", None, None).unwrap().unwrap(), b"{}");
    }

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
