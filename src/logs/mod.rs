//! The engine's own log lines (not its message logs): how they are written
//! (`log_format`, colours only on a terminal), the start-up summary, and
//! one line for each journaled event an operator would look for
//! (`events`).

mod events;

use std::{io::IsTerminal as _, net::SocketAddr};

use tracing_subscriber::EnvFilter;

use crate::{
    config::{Config, LogFormat},
    state::State,
};

pub use events::journaled;

/// Installs the process's subscriber: to stderr, at `RUST_LOG`'s level or
/// `default_level`, as text or one JSON object a line. Escape codes for
/// colour are written only when stderr is a terminal, so files and log
/// collectors get plain text.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).flatten_event(true).with_current_span(false).init(),
    }
}

/// Says what the engine runs with, once it serves: the file, the data
/// directory, the objects and where it listens. Without a file, says how
/// to give it one.
pub fn started(config: &Config, state: &State, addrs: &[SocketAddr], scheme: &str) {
    let listen: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let config_file = config.origin.as_ref().map_or_else(|| "(none)".to_owned(), |p| p.display().to_string());
    tracing::info!(
        config_file = %config_file,
        data_dir = %config.data_dir.display(),
        sources = state.sources.len(),
        destinations = state.destinations.len(),
        subscriptions = state.subscriptions.len(),
        listen = %listen.join(", "),
        scheme,
        log_format = ?config.log_format,
        "ferrox started"
    );
    if config.origin.is_none() {
        tracing::warn!(
            "no configuration file: running on the defaults and the {prefix} variables. Start with \
             `ferrox serve --config examples/ferrox.toml`, or set keys as {prefix}<KEY> variables \
             (e.g. {prefix}ADMIN_TOKEN, {prefix}DELIVERY__TIMEOUT_MS); docs/configuration.md lists every key",
            prefix = crate::config::ENV_PREFIX
        );
    }
}
