//! Delivery (SPEC §4): what a destination receives. Every request's headers
//! and its Standard Webhooks signature, checked independently of the
//! engine, and connection reuse.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    delivery::{Dest, PATIENCE, Sent, Setup, logs_in_order, send, status, wait_first_seen, wait_status},
    receiver::Receiver,
};

/// Checks a Standard Webhooks signature independently of the engine.
pub fn standard_webhooks_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").expect("a whsec_ secret")).expect("base64 key");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn rfc3339_ms(text: &str) -> i128 {
    let t = OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"));
    t.unix_timestamp_nanos() / 1_000_000
}

#[test]
fn deliveries_carry_verifiable_signatures_and_ferrox_headers() {
    let receiver = Receiver::start();
    // The first attempt fails, so a retry shows a second attempt's headers.
    receiver.script([status(503)]);
    let mut dest = Dest::new(1, "production", receiver.url("/signed"));
    let key = b"ferrox-it-signing-key-0123456789";
    dest.signing_secret = Some(format!("whsec_{}", STANDARD.encode(key)));
    dest.verification_token = Some("it-verification-token".to_owned());
    let server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let token = server.token();
    let sent = send(&server, &token, "signed");
    let log_id = sent.log(&dest);
    let received = receiver.wait_for(|r| r.len() == 2, PATIENCE);
    let detail = wait_status(&server, &log_id, "Succeeded");
    let attempts = detail["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{detail}");
    let now_s = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()).unwrap();
    for (n, (request, attempt)) in received.iter().zip(attempts).enumerate() {
        let header = |name: &str| request.header(name).unwrap_or_else(|| panic!("attempt {n}: no {name} header"));
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/signed"));
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("verification-token"), "it-verification-token");
        assert_eq!((header("webhook-id"), header("ferrox-log-id")), (log_id.as_str(), log_id.as_str()));
        assert_eq!(header("ferrox-message-id"), sent.message_id.to_string());
        let timestamp = header("webhook-timestamp");
        let seconds: i64 = timestamp.parse().unwrap_or_else(|_| panic!("webhook-timestamp {timestamp:?}"));
        assert!((seconds - now_s).abs() < 120, "webhook-timestamp {seconds} is not about now ({now_s})");
        let expected =
            standard_webhooks_signature(dest.signing_secret.as_deref().unwrap(), &log_id, timestamp, &request.body);
        assert_eq!(header("webhook-signature"), expected, "attempt {n}: the signature does not verify");
        assert_eq!(header("ferrox-attempt-id"), attempt["id"].as_str().expect("attempt id"), "attempt {n}");
        assert_eq!(rfc3339_ms(header("ferrox-received-at")), rfc3339_ms(detail["received_at"].as_str().unwrap()));
        let body = request.json();
        assert_eq!(body["Meta"]["Message"]["ID"], sent.message_id, "{body}");
        assert!(body["Meta"]["Transmission"]["ID"].is_u64(), "{body}");
        assert_eq!(body["Patient"]["Identifiers"][0]["ID"], "signed", "{body}");
    }
    assert_eq!(received[0].header("ferrox-attempt-id"), Some(sent.attempt(&dest).as_str()), "the 200's AttemptID");
    assert_ne!(received[0].header("ferrox-attempt-id"), received[1].header("ferrox-attempt-id"));
    // A forged body does not verify with the header that came with it.
    let forged = standard_webhooks_signature(
        dest.signing_secret.as_deref().unwrap(),
        &log_id,
        received[1].header("webhook-timestamp").unwrap(),
        b"{}",
    );
    assert_ne!(received[1].header("webhook-signature"), Some(forged.as_str()));
}

#[test]
fn sequential_deliveries_reuse_one_connection() {
    let receiver = Receiver::start();
    let dest = Dest::new(1, "production", receiver.url("/reuse"));
    let server = Setup { destinations: vec![dest.clone()], ..Setup::default() }.start();
    let token = server.token();
    let sent: Vec<Sent> = (0..10).map(|n| send(&server, &token, &format!("reuse-{n}"))).collect();
    let expected = logs_in_order(&sent, &dest);
    let received = wait_first_seen(&receiver, &expected);
    assert_eq!(received.len(), 10);
    assert_eq!(receiver.connections(), 1, "10 sequential deliveries opened {} connections", receiver.connections());
}
