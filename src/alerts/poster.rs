//! One poster per channel: takes the next alert after the channel's cursor
//! from the state, sends it until the channel takes or refuses it, and
//! journals that, which moves the cursor.

use std::time::Duration;

use super::{Channel, ChannelSpec, Sent};
use crate::{
    clock::SharedClock,
    cluster::{Holding, channel_duty},
    journal::Event,
    ledger::Ledger,
    limits,
    model::Alert,
};

/// Starts a poster for each channel, on an arbiter of their own. In
/// cluster mode only the node that holds the alerts duty sends, so each
/// alert leaves once per cluster.
pub fn start(ledger: Ledger, clock: SharedClock, channels: Vec<ChannelSpec>, holding: Holding) {
    if channels.is_empty() {
        return;
    }
    actix::Arbiter::new().spawn_fn(move || {
        for spec in channels {
            let channel = (spec.make)();
            actix_web::rt::spawn(run(ledger.clone(), clock.clone(), channel, holding.clone()));
        }
    });
}

/// The first durable alert after the channel's cursor, if any, and its
/// position. `None` too while the channel is not open.
fn next_alert(ledger: &Ledger, channel: &str) -> Option<(u64, Alert)> {
    let state = ledger.state().read();
    let done = *state.alert_channels.get(channel)?;
    let first = state.alerts.partition_point(|k| k.position <= done);
    state.alerts.get(first).map(|k| (k.position, k.alert.clone()))
}

/// The wait before try `tries` (from 1): doubling, within the limits.
fn backoff(tries: u32) -> Duration {
    let ms = limits::ALERT_RETRY_MIN_MS.saturating_mul(1 << tries.saturating_sub(1).min(16));
    Duration::from_millis(ms.min(limits::ALERT_RETRY_MAX_MS))
}

async fn run(ledger: Ledger, clock: SharedClock, channel: Box<dyn Channel>, holding: Holding) {
    let name = channel.name().to_owned();
    let duty = channel_duty(&name);
    loop {
        let next = holding.holds(&duty).then(|| next_alert(&ledger, &name)).flatten();
        let Some((position, alert)) = next else {
            actix_web::rt::time::sleep(Duration::from_millis(limits::ALERT_POLL_MS)).await;
            continue;
        };
        // Journaled before any channel sees it: durable first.
        if let Err(e) = ledger.commit(position).await {
            tracing::error!(channel = %name, error = %e, "an alert is not durable: it waits");
            actix_web::rt::time::sleep(backoff(8)).await;
            continue;
        }
        let refused = send(channel.as_ref(), &alert).await;
        record(&ledger, &clock, &name, position, refused).await;
    }
}

/// Sends until the channel takes or refuses the alert; returns the refusal.
async fn send(channel: &dyn Channel, alert: &Alert) -> Option<String> {
    let mut tries = 0;
    loop {
        tries += 1;
        match channel.send(alert).await {
            Sent::Taken => return None,
            Sent::Refused(reason) => {
                tracing::warn!(channel = channel.name(), alert = %alert.id, %reason, "an alert was refused for good");
                return Some(reason);
            }
            Sent::Failed(reason) => {
                if tries == 1 || tries % 10 == 0 {
                    tracing::warn!(channel = channel.name(), alert = %alert.id, %reason, tries, "an alert could not be sent; trying again");
                }
                actix_web::rt::time::sleep(backoff(tries)).await;
            }
        }
    }
}

/// Journals that the channel is done with the alert at `position`, trying
/// again while the journal cannot take it (should a crash come first, the
/// alert is sent again: at least once).
async fn record(ledger: &Ledger, clock: &SharedClock, channel: &str, position: u64, refused: Option<String>) {
    let event =
        Event::AlertSent { channel: channel.to_owned(), alert_position: position, at_ms: clock.now_ms(), refused };
    let mut tries = 0;
    while let Err(e) = ledger.record(&event) {
        tries += 1;
        if tries == 1 || tries % 10 == 0 {
            tracing::error!(channel, error = %e, tries, "an alert's sending could not be journaled; trying again");
        }
        actix_web::rt::time::sleep(backoff(tries)).await;
    }
}
