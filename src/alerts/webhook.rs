//! The alert webhook (`alert_webhook_url`): each alert POSTed as JSON.

use std::{sync::Arc, time::Duration};

use futures_util::future::LocalBoxFuture;
use serde_json::json;

use super::{Channel, Sent};
use crate::{clock::rfc3339, egress::Egress, limits, model::Alert, tls};

/// The channel's journaled name.
pub const NAME: &str = "webhook";

pub struct Webhook {
    url: String,
    client: awc::Client,
    egress: Egress,
}

impl Webhook {
    pub fn new(url: String, tls: &Arc<rustls::ClientConfig>, egress: Egress) -> Self {
        let client = tls::http_client(tls, Some(Duration::from_millis(limits::ALERT_POST_TIMEOUT_MS)), egress);
        Self { url, client, egress }
    }
}

impl Channel for Webhook {
    fn name(&self) -> &str {
        NAME
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> LocalBoxFuture<'a, Sent> {
        Box::pin(async move {
            if let Err(e) = self.egress.check(&self.url) {
                return Sent::Failed(e);
            }
            let body = json!({
                "id": alert.id.to_string(),
                "kind": alert.kind.as_str(),
                "destination_id": alert.destination_id.to_string(),
                "log_id": alert.log_id.map(|l| l.to_string()),
                "at": rfc3339(alert.at_ms),
                "text": alert.text,
            });
            match self.client.post(&self.url).send_json(&body).await {
                Ok(resp) if resp.status().is_success() => Sent::Taken,
                // A client error other than a timeout or a throttle will
                // not change by sending the same alert again.
                Ok(resp) if resp.status().is_client_error() && ![408, 425, 429].contains(&resp.status().as_u16()) => {
                    Sent::Refused(format!("the webhook answered HTTP {}", resp.status().as_u16()))
                }
                Ok(resp) => Sent::Failed(format!("the webhook answered HTTP {}", resp.status().as_u16())),
                Err(e) => Sent::Failed(format!("the webhook could not be reached: {e}")),
            }
        })
    }
}
