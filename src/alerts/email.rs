//! Alert email (SPEC §14): each alert one message over SMTP, sent with
//! `lettre`, to `[alerts] email_to` and to those the alert concerns: the
//! destination's `alert_emails` for its queue's alerts, the `alert_emails`
//! of the message's source for a processing failure. The recipients are
//! those configured when the email goes. `smtp://` speaks STARTTLS when the server
//! offers it, `smtps://` TLS from the start; `user:password@` in the URL
//! authenticates.
//!
//! Subject: `[ferrox] <kind>: <destination name>`. The body names the
//! destination, the log, what the receiver answered (or the transform's
//! error) and, when `public_url` is set, links the log in the console.

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};

use super::{Channel, Sent};
use crate::{
    clock::rfc3339,
    config::AlertsConfig,
    ledger::StateReader,
    limits,
    model::{Alert, AlertKind},
};

/// The channel's journaled name.
pub const NAME: &str = "email";

/// The SMTP transport an `smtp://` or `smtps://` URL asks for.
fn transport(text: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let url = url::Url::parse(text).map_err(|e| format!("smtp_url: {e}"))?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or("smtp_url has no host")?.to_owned();
    let tls_parameters = || TlsParameters::new(host.clone()).map_err(|e| format!("smtp_url: {e}"));
    let (tls, default_port) = match url.scheme() {
        "smtp" => (Tls::Opportunistic(tls_parameters()?), 25),
        "smtps" => (Tls::Wrapper(tls_parameters()?), 465),
        other => return Err(format!("smtp_url must be smtp:// or smtps://, not {other}://")),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(url.port().unwrap_or(default_port))
        .tls(tls)
        .timeout(Some(Duration::from_millis(limits::ALERT_POST_TIMEOUT_MS)));
    if !url.username().is_empty() {
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let password = url.password().map(decode).unwrap_or_default();
        builder = builder.credentials(Credentials::new(decode(url.username()), password));
    }
    Ok(builder.build())
}

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    public_url: Option<String>,
    /// To name the destination.
    state: StateReader,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email").field("to", &self.to).finish_non_exhaustive()
    }
}

impl Email {
    pub fn new(alerts: &AlertsConfig, state: StateReader) -> Result<Self, String> {
        alerts.check()?;
        let parse = |a: &String| a.parse::<Mailbox>().map_err(|e| e.to_string());
        Ok(Self {
            transport: transport(alerts.smtp_url.as_deref().ok_or("no smtp_url")?)?,
            from: parse(alerts.email_from.as_ref().ok_or("no email_from")?)?,
            to: alerts.email_to.iter().map(parse).collect::<Result<_, _>>()?,
            public_url: alerts.public_url.as_ref().map(|u| u.trim_end_matches('/').to_owned()),
            state,
        })
    }

    /// The last attempt of `log` made by the time of the alert.
    fn attempt_before(&self, log: crate::model::Id, at_ms: crate::model::TimestampMs) -> Option<crate::model::Attempt> {
        let record = self.state.read().find_log(log, u64::MAX).ok().flatten()?;
        record.attempts.into_iter().rfind(|a| a.started_at_ms <= at_ms)
    }

    /// Who hears of `alert`: `email_to`, and the destination's or the
    /// source's `alert_emails`, each address once.
    fn recipients(&self, alert: &Alert) -> Result<Vec<Mailbox>, String> {
        let state = self.state.read();
        let concerned: Vec<String> = match alert.kind {
            AlertKind::ProcessingFailed => alert
                .log_id
                .and_then(|log| state.find_log(log, u64::MAX).ok().flatten())
                .and_then(|log| state.sources.get(&log.source_id?))
                .map(|s| s.alert_emails.clone())
                .unwrap_or_default(),
            _ => state.destinations.get(&alert.destination_id).map(|d| d.alert_emails.clone()).unwrap_or_default(),
        };
        let mut to = self.to.clone();
        for address in concerned {
            let mailbox = address.parse::<Mailbox>().map_err(|e| format!("'{address}': {e}"))?;
            if !to.iter().any(|t| t.email == mailbox.email) {
                to.push(mailbox);
            }
        }
        Ok(to)
    }

    /// The alert as an email.
    fn message(&self, alert: &Alert) -> Result<Message, String> {
        let name = self.state.read().destinations.get(&alert.destination_id).map(|d| d.name.clone());
        let name = name.unwrap_or_else(|| alert.destination_id.to_string());
        let mut body = format!(
            "{kind} at {at}\n\nDestination: {name} ({destination})\n",
            kind = alert.kind.as_str(),
            at = rfc3339(alert.at_ms),
            destination = alert.destination_id,
        );
        if let Some(log) = alert.log_id {
            body.push_str(&format!("Log: {log}\n"));
        }
        body.push_str(&format!("\n{}\n", alert.text));
        if let Some(attempt) = alert.log_id.and_then(|log| self.attempt_before(log, alert.at_ms)) {
            body.push_str("\nThe receiver's answer:\n");
            match attempt.http_status {
                Some(status) => body.push_str(&format!("  HTTP {status}\n")),
                None => body.push_str("  no HTTP answer\n"),
            }
            if let Some(error) = &attempt.error {
                body.push_str(&format!("  error: {error}\n"));
            }
            if let Some(response) = &attempt.response {
                let excerpt: String = response.chars().take(1000).collect();
                body.push_str(&format!("  body: {excerpt}\n"));
            }
        }
        if let (Some(public), Some(log)) = (&self.public_url, alert.log_id) {
            body.push_str(&format!("\nOpen the log: {public}/ui/logs/{log}\n"));
        }
        body.push_str(&format!("\nAlert {} (ferrox)\n", alert.id));
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(format!("[ferrox] {}: {name}", alert.kind.as_str()))
            .header(ContentType::TEXT_PLAIN);
        let to = self.recipients(alert)?;
        if to.is_empty() {
            return Err(
                "no one to send it to: set [alerts] email_to, or the alert_emails of the destination or source".into(),
            );
        }
        for to in to {
            message = message.to(to);
        }
        message.body(body).map_err(|e| e.to_string())
    }
}

impl Channel for Email {
    fn name(&self) -> &str {
        NAME
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> LocalBoxFuture<'a, Sent> {
        Box::pin(async move {
            let message = match self.message(alert) {
                Ok(message) => message,
                Err(e) => return Sent::Refused(format!("the email could not be made: {e}")),
            };
            match self.transport.send(message).await {
                Ok(_) => Sent::Taken,
                Err(e) if e.is_permanent() => Sent::Refused(format!("the SMTP server refused the email: {e}")),
                Err(e) => Sent::Failed(format!("the email could not be sent: {e}")),
            }
        })
    }
}

/// A channel whose configuration could not be used: every send fails, so
/// its alerts wait for a configuration that works.
#[derive(Debug)]
pub struct Broken(pub String);

impl Channel for Broken {
    fn name(&self) -> &str {
        NAME
    }

    fn send<'a>(&'a self, _: &'a Alert) -> LocalBoxFuture<'a, Sent> {
        let reason = self.0.clone();
        Box::pin(async move { Sent::Failed(reason) })
    }
}
