//! Alerts leaving the engine (SPEC §6, §14), durably.
//!
//! A destination's actor journals an alert (`AlertRaised`) and does nothing
//! more: no channel sees an alert before it is durable. Each channel (the
//! webhook, email) has a poster of its own, driven by the
//! journal: it keeps a cursor, the position of the last alert the channel
//! is done with, journaled (`AlertSent`) after each alert, and takes the
//! next alert from the state. So each channel gets each alert at least
//! once across restarts, in the order raised, and memory holds no queue:
//! the alerts a channel has yet to send stay in the state, bounded by
//! `limits::ALERTS_UNSENT_KEPT`.
//!
//! A send that fails is tried again with backoff; one the channel refuses
//! for good (a 4xx from the webhook) is recorded as refused, and the
//! channel goes on with the next. Each channel runs apart, on the posters'
//! arbiter, so a failing channel holds up neither another channel nor any
//! delivery.
//!
//! A channel is opened at start (`AlertChannelOpened`) with the alerts
//! raised after that point; one no longer configured is closed
//! (`AlertChannelClosed`), so its cursor stops holding alerts back. In a
//! cluster each node has its own configuration: a channel is sent by the
//! node holding its duty (`cluster::channel_duty`), which only nodes
//! configured with it take, and a node never closes a channel another may
//! be configured with.

pub mod backlog;
pub mod email;
mod poster;
mod webhook;

use futures_util::future::LocalBoxFuture;

pub use self::poster::start;
use crate::{
    config::Config,
    journal::{Event, JournalError},
    ledger::Ledger,
    model::Alert,
};

/// How one send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The channel took the alert.
    Taken,
    /// The channel refused it for good; it is not sent again.
    Refused(String),
    /// It could not be sent now; it is tried again.
    Failed(String),
}

/// A way alerts leave the engine.
pub trait Channel {
    /// The channel's name, journaled with its cursor: stable across
    /// restarts.
    fn name(&self) -> &str;
    /// Sends one alert.
    fn send<'a>(&'a self, alert: &'a Alert) -> LocalBoxFuture<'a, Sent>;
}

/// A channel to start on the posters' arbiter: its name, and how to make
/// it there (HTTP clients stay on their thread).
pub struct ChannelSpec {
    pub name: String,
    pub make: Box<dyn FnOnce() -> Box<dyn Channel> + Send>,
}

impl std::fmt::Debug for ChannelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSpec").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The channels the configuration asks for.
pub fn configured(
    config: &Config,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    state: &crate::ledger::StateReader,
) -> Vec<ChannelSpec> {
    let mut channels = Vec::new();
    if let Some(url) = config.webhook_url().map(str::to_owned) {
        let (tls, egress) = (tls.clone(), config.egress());
        channels.push(ChannelSpec {
            name: webhook::NAME.to_owned(),
            make: Box::new(move || Box::new(webhook::Webhook::new(url, &tls, egress))),
        });
    }
    // With an SMTP server, alerts go by email: to `email_to`, and to the
    // `alert_emails` of the destination or source concerned.
    if config.alerts.smtp_url.is_some() {
        let (alerts, state) = (config.alerts.clone(), state.clone());
        channels.push(ChannelSpec {
            name: email::NAME.to_owned(),
            make: Box::new(move || match email::Email::new(&alerts, state) {
                Ok(email) => Box::new(email) as Box<dyn Channel>,
                // Checked with the configuration: cannot happen.
                Err(e) => Box::new(email::Broken(e)),
            }),
        });
    }
    channels
}

/// Opens the channels not yet in the journal, with the alerts raised from
/// now on, and with `close`, closes those no longer configured; returns
/// once durable.
pub async fn open(ledger: &Ledger, channels: &[ChannelSpec], close: bool) -> Result<(), JournalError> {
    let mut last = None;
    let known: Vec<String> = ledger.state().read().alert_channels.keys().cloned().collect();
    // Decided as each is recorded: in a cluster another node may have
    // opened the channel first.
    for channel in channels.iter().filter(|c| !known.contains(&c.name)) {
        let opened = ledger.record_with(|state, _| {
            (!state.alert_channels.contains_key(&channel.name))
                .then(|| Event::AlertChannelOpened { channel: channel.name.clone(), after: state.position })
        })?;
        last = opened.map(|(position, _)| position).or(last);
    }
    for gone in known.iter().filter(|k| close && !channels.iter().any(|c| &&c.name == k)) {
        let closed = ledger.record_with(|state, _| {
            state.alert_channels.contains_key(gone).then(|| Event::AlertChannelClosed { channel: gone.clone() })
        })?;
        last = closed.map(|(position, _)| position).or(last);
    }
    match last {
        Some(position) => ledger.commit(position).await,
        None => Ok(()),
    }
}
