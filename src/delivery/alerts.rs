//! Alerts to `alert_webhook_url`: posted by a task of their own, retried
//! until the webhook takes them (at least once), never holding up a
//! delivery.

use std::{sync::Arc, time::Duration};

use serde_json::json;
use tokio::sync::mpsc;

use crate::{clock::rfc3339, model::Alert, tls};

/// Longest wait between two tries of an alert.
const RETRY_MAX_MS: u64 = 60_000;

/// Where destination actors hand alerts.
#[derive(Debug, Clone, Default)]
pub struct AlertSink {
    tx: Option<mpsc::UnboundedSender<Alert>>,
}

impl AlertSink {
    /// Starts the poster on its own arbiter; `None` posts nothing. `tls`
    /// is for an `https://` webhook.
    pub fn start(url: Option<String>, tls: Arc<rustls::ClientConfig>) -> Self {
        let Some(url) = url else { return Self::default() };
        let (tx, rx) = mpsc::unbounded_channel();
        // The HTTP client is not `Send`: start the poster on the arbiter's
        // own thread.
        actix::Arbiter::new().spawn_fn(move || {
            actix_web::rt::spawn(post_all(url, tls, rx));
        });
        Self { tx: Some(tx) }
    }

    /// Queues an alert for posting; never blocks.
    pub fn notify(&self, alert: &Alert) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(alert.clone());
        }
    }
}

async fn post_all(url: String, tls: Arc<rustls::ClientConfig>, mut rx: mpsc::UnboundedReceiver<Alert>) {
    let client = tls::http_client(&tls, Some(Duration::from_secs(10)));
    while let Some(alert) = rx.recv().await {
        let body = json!({
            "id": alert.id.to_string(),
            "kind": alert.kind.as_str(),
            "destination_id": alert.destination_id.to_string(),
            "log_id": alert.log_id.map(|l| l.to_string()),
            "at": rfc3339(alert.at_ms),
            "text": alert.text,
        });
        let mut wait_ms = 500;
        loop {
            match client.post(&url).send_json(&body).await {
                Ok(resp) if resp.status().is_success() => break,
                Ok(resp) => tracing::warn!(status = resp.status().as_u16(), "alert webhook refused an alert"),
                Err(e) => tracing::warn!(error = %e, "alert webhook unreachable"),
            }
            actix_web::rt::time::sleep(Duration::from_millis(wait_ms)).await;
            wait_ms = (wait_ms * 2).min(RETRY_MAX_MS);
        }
    }
}
