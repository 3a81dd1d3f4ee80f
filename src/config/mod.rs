//! The configuration (SPEC §9, §16): the file (TOML), then the `FERROX_`
//! environment variables over it (`env`), and defaults for what neither
//! sets. Unknown keys are an error that names them.

mod env;
mod listen;
mod probe;
#[cfg(test)]
mod tests;

use std::{
    ffi::OsString,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

pub use env::{PREFIX as ENV_PREFIX, variables_set as env_variables_set};
pub use listen::resolve as resolve_listen;

use crate::{
    limits,
    objects::{DestinationRules, DestinationSpec, SourceSpec, SubscriptionSpec, file::Declared},
    operators::{OperatorSpec, Operators},
};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The file this configuration was read from, for messages.
    #[serde(skip)]
    pub origin: Option<PathBuf>,
    /// An address, or a host name resolved at start-up.
    #[serde(deserialize_with = "listen::deserialize")]
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Bearer token of the operator API; `None` disables `/api/v1`.
    pub admin_token: Option<String>,
    /// Bearer token `GET /metrics` asks for; `None` serves it to anyone who
    /// can reach the port.
    pub metrics_token: Option<String>,
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver (such
    /// as `http://127.0.0.1:4318`); `None` exports no traces.
    pub otlp_endpoint: Option<String>,
    pub alert_webhook_url: Option<String>,
    pub max_body_bytes: usize,
    /// Longest a request body may take to arrive; then 408.
    pub body_read_timeout_ms: u64,
    /// How log lines are written: `text`, or `json` (one object a line).
    pub log_format: LogFormat,
    pub auth: AuthConfig,
    pub delivery: DeliveryConfig,
    pub storage: StorageConfig,
    pub alerts: AlertsConfig,
    /// HTTPS served by ferrox itself (SPEC §16).
    pub tls: TlsConfig,
    pub sources: Vec<SourceSpec>,
    pub destinations: Vec<DestinationSpec>,
    pub subscriptions: Vec<SubscriptionSpec>,
    /// Operators of the operator API besides `admin_token` (SPEC §12).
    pub operators: Vec<OperatorSpec>,
    /// Cluster mode (SPEC §17): this node's place in a NATS JetStream
    /// cluster; `None` runs alone on the embedded log.
    pub cluster: Option<ClusterConfig>,
}

/// `[cluster]`: the NATS servers, this node's name, the copies of every
/// stream and bucket, and how long a destination's lease lasts unless kept.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub nats_urls: Vec<String>,
    pub node_name: String,
    pub replicas: usize,
    pub lease_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nats_urls: Vec::new(),
            node_name: String::new(),
            replicas: crate::cluster::ClusterSettings::DEFAULT_REPLICAS,
            lease_ms: crate::cluster::ClusterSettings::DEFAULT_LEASE.as_millis() as u64,
        }
    }
}

impl ClusterConfig {
    pub fn settings(&self) -> crate::cluster::ClusterSettings {
        crate::cluster::ClusterSettings {
            nats_urls: self.nats_urls.clone(),
            node_name: self.node_name.clone(),
            replicas: self.replicas,
            lease: std::time::Duration::from_millis(self.lease_ms),
        }
    }
}

/// `log_format`: lines for people, or JSON objects for a log collector.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub token_lifetime_s: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    pub retry_schedule_ms: Vec<u64>,
    pub timeout_ms: u64,
    /// PEM file of CA certificates trusted for `https://` destinations, on
    /// top of the system's roots (a private CA, a self-signed receiver).
    pub ca_file: Option<PathBuf>,
    /// Longest a jq transform may run on one message or reply before its
    /// worker process is stopped and the log is `ProcessingFailed`.
    pub transform_timeout_ms: u64,
    /// Refuse to send to loopback, private, link-local and metadata
    /// addresses (see `egress`).
    pub deny_private_networks: bool,
    /// Memory each jq worker process may map; a program that needs more
    /// fails its log (`ProcessingFailed`).
    pub transform_memory_mb: u64,
}

/// `[alerts]` (SPEC §14): where alerts go besides `GET /api/v1/alerts`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// `smtp://[user:password@]host:port` (STARTTLS when the server offers
    /// it) or `smtps://...` (TLS from the start).
    pub smtp_url: Option<String>,
    pub email_from: Option<String>,
    /// Who gets every alert by email: the operators.
    pub email_to: Vec<String>,
    /// Replaces the top-level `alert_webhook_url`, which stays accepted.
    pub webhook_url: Option<String>,
    /// The console's address, for links in emails.
    pub public_url: Option<String>,
}

impl AlertsConfig {
    /// Checks the email settings: an SMTP URL and a sender when there are
    /// recipients, addresses that parse, URLs of the right schemes.
    pub fn check(&self) -> Result<(), String> {
        use lettre::message::Mailbox;
        for to in &self.email_to {
            to.parse::<Mailbox>().map_err(|e| format!("email_to '{to}' is not an email address: {e}"))?;
        }
        if let Some(from) = &self.email_from {
            from.parse::<Mailbox>().map_err(|e| format!("email_from '{from}' is not an email address: {e}"))?;
        }
        if let Some(text) = &self.smtp_url {
            let url = url::Url::parse(text).map_err(|e| format!("smtp_url: {e}"))?;
            if !["smtp", "smtps"].contains(&url.scheme()) {
                return Err(format!("smtp_url must be smtp:// or smtps://, not {}://", url.scheme()));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err("smtp_url has no host".into());
            }
        }
        if let Some(public) = &self.public_url {
            let parsed = url::Url::parse(public).map_err(|e| format!("public_url '{public}': {e}"))?;
            if !["http", "https"].contains(&parsed.scheme()) {
                return Err(format!("public_url '{public}' must be http:// or https://"));
            }
        }
        if !self.email_to.is_empty() && (self.smtp_url.is_none() || self.email_from.is_none()) {
            return Err("email_to needs smtp_url and email_from".into());
        }
        if self.smtp_url.is_some() && self.email_from.is_none() {
            return Err("smtp_url needs email_from".into());
        }
        Ok(())
    }
}

/// `[tls]`: with both files set, `listen` serves HTTPS with them (PEM:
/// the certificate and its chain; a PKCS#8, RSA or EC key), read again on
/// SIGHUP.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl TlsConfig {
    /// The certificate and key files, when HTTPS is on; setting one
    /// without the other is an error.
    pub fn files(&self) -> Result<Option<(&std::path::Path, &std::path::Path)>, String> {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            (Some(_), None) => Err("tls.cert_file is set without tls.key_file: set both or neither".into()),
            (None, Some(_)) => Err("tls.key_file is set without tls.cert_file: set both or neither".into()),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub segment_bytes: u64,
    /// Terminal messages, their logs and alerts are kept this long after
    /// their last change, then dropped with the journal segments they sit
    /// in.
    pub retention_hours: u64,
    /// How often the engine looks for journal segments it can delete.
    pub compaction_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            origin: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            admin_token: None,
            metrics_token: None,
            otlp_endpoint: None,
            alert_webhook_url: None,
            max_body_bytes: limits::DEFAULT_MAX_BODY_BYTES,
            body_read_timeout_ms: limits::BODY_READ_TIMEOUT_MS,
            log_format: LogFormat::Text,
            auth: AuthConfig::default(),
            delivery: DeliveryConfig::default(),
            storage: StorageConfig::default(),
            alerts: AlertsConfig::default(),
            tls: TlsConfig::default(),
            sources: Vec::new(),
            destinations: Vec::new(),
            subscriptions: Vec::new(),
            operators: Vec::new(),
            cluster: None,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { token_lifetime_s: 24 * 3600 }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_schedule_ms: vec![0, 10_000, 10_000, 20_000, 30_000, 50_000, 80_000, 120_000],
            timeout_ms: 30_000,
            ca_file: None,
            transform_timeout_ms: 5_000,
            deny_private_networks: false,
            transform_memory_mb: limits::TRANSFORM_MEMORY_MB,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            segment_bytes: ferrox_storage::DEFAULT_SEGMENT_BYTES,
            retention_hours: 7 * 24,
            compaction_interval_ms: 60_000,
        }
    }
}

/// A century: beyond that, keep everything.
const MAX_RETENTION_HOURS: u64 = 100 * 366 * 24;

impl Config {
    /// Milliseconds terminal messages are kept.
    pub fn retention_ms(&self) -> i64 {
        i64::try_from(self.storage.retention_hours.min(MAX_RETENTION_HOURS) * 3_600_000).unwrap_or(i64::MAX)
    }

    /// Parses a configuration file's text and checks its values.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_with(text, Vec::new())
    }

    /// The configuration from the file at `path` (none: the defaults) with
    /// the `FERROX_` variables among `vars` over it, checked. Errors name
    /// the file or the variable at fault.
    pub fn load(path: Option<&Path>, vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Self, String> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?,
            None => String::new(),
        };
        let mut config = Self::parse_with(&text, vars).map_err(|e| match path {
            Some(path) => format!("{}: {e}", path.display()),
            None => e,
        })?;
        config.origin = path.map(Path::to_path_buf);
        Ok(config)
    }

    /// Parses `text` with the `FERROX_` variables among `vars` over it.
    fn parse_with(text: &str, vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Self, String> {
        let overrides = env::overrides(vars)?;
        // Without variables the file is read straight, so its errors point
        // at their line.
        let config: Config = if overrides.is_empty() {
            toml::from_str(text).map_err(|e| e.to_string())?
        } else {
            env::check_each(&overrides)?;
            let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
            env::apply(&mut table, &overrides)?;
            Config::deserialize(toml::Value::Table(table)).map_err(|e| {
                // The variables pass on their own, so the file is at fault.
                toml::from_str::<Config>(text).err().map_or_else(|| e.message().to_owned(), |e| e.to_string())
            })?
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(cluster) = &self.cluster {
            cluster.settings().check()?;
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > limits::MAX_BODY_BYTES_LIMIT {
            return Err(format!("max_body_bytes must be between 1 and {}", limits::MAX_BODY_BYTES_LIMIT));
        }
        if self.body_read_timeout_ms == 0 || self.body_read_timeout_ms > 600_000 {
            return Err("body_read_timeout_ms must be between 1 and 600000".into());
        }
        if self.auth.token_lifetime_s == 0 {
            return Err("auth.token_lifetime_s must be positive".into());
        }
        if self.delivery.retry_schedule_ms.is_empty() {
            return Err("delivery.retry_schedule_ms must list at least one delay".into());
        }
        let record_bytes = self.max_record_bytes() as u64;
        let segment = self.storage.segment_bytes;
        if segment < record_bytes + 4096 || !segment.is_multiple_of(4096) || segment > ferrox_storage::MAX_SEGMENT_BYTES
        {
            return Err(format!(
                "storage.segment_bytes ({segment}) must be a multiple of 4096, at most {}, and hold one message of max_body_bytes ({}) with {} bytes of overhead: at least {}",
                ferrox_storage::MAX_SEGMENT_BYTES,
                self.max_body_bytes,
                limits::EVENT_OVERHEAD_BYTES,
                (record_bytes + 4096).div_ceil(4096) * 4096
            ));
        }
        if self.storage.retention_hours > MAX_RETENTION_HOURS {
            return Err(format!("storage.retention_hours must be at most {MAX_RETENTION_HOURS}"));
        }
        if self.delivery.transform_timeout_ms == 0 || self.delivery.transform_timeout_ms > 600_000 {
            return Err("delivery.transform_timeout_ms must be between 1 and 600000".into());
        }
        if !(limits::TRANSFORM_MEMORY_MB_MIN..=1 << 20).contains(&self.delivery.transform_memory_mb) {
            return Err(format!(
                "delivery.transform_memory_mb must be between {} and {}",
                limits::TRANSFORM_MEMORY_MB_MIN,
                1u64 << 20
            ));
        }
        if self.storage.compaction_interval_ms == 0 {
            return Err("storage.compaction_interval_ms must be positive".into());
        }
        if self.delivery.timeout_ms == 0 || self.delivery.timeout_ms > crate::objects::MAX_TIMEOUT_MS {
            return Err(format!("delivery.timeout_ms must be between 1 and {}", crate::objects::MAX_TIMEOUT_MS));
        }
        if self.admin_token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err("admin_token must be at least 16 characters".into());
        }
        if self.metrics_token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err("metrics_token must be at least 16 characters".into());
        }
        if let Some(url) = &self.otlp_endpoint {
            check_otlp_endpoint(url)?;
        }
        self.operators().map_err(|e| format!("operators: {e}"))?;
        if let (Some(a), Some(b)) = (&self.alert_webhook_url, &self.alerts.webhook_url)
            && a != b
        {
            return Err("alert_webhook_url and [alerts] webhook_url differ: keep [alerts] webhook_url".into());
        }
        if let Some(url) = self.webhook_url() {
            crate::objects::validate_url(url, &self.egress()).map_err(|e| format!("alerts webhook_url: {e}"))?;
        }
        self.alerts.check().map_err(|e| format!("[alerts]: {e}"))?;
        if let Some(path) = &self.delivery.ca_file {
            crate::tls::read_ca_file(path)?;
        }
        if let Some((cert, key)) = self.tls.files()? {
            crate::tls::ServingCert::load(cert, key)?;
        }
        Ok(())
    }

    /// Where alerts are POSTed: `[alerts] webhook_url`, else the top-level
    /// `alert_webhook_url`.
    pub fn webhook_url(&self) -> Option<&str> {
        self.alerts.webhook_url.as_deref().or(self.alert_webhook_url.as_deref())
    }

    /// The operators: `admin_token` as `admin`, and `[[operators]]`.
    pub fn operators(&self) -> Result<Operators, String> {
        Operators::from_config(self.admin_token.as_deref(), &self.operators)
    }

    /// The largest WAL record the engine writes: a message of
    /// `max_body_bytes` with its event overhead.
    pub fn max_record_bytes(&self) -> u32 {
        u32::try_from(self.max_body_bytes + limits::EVENT_OVERHEAD_BYTES).unwrap_or(u32::MAX)
    }

    /// The objects the file declares, for `objects::file::plan`.
    pub fn declared(&self) -> Declared<'_> {
        Declared {
            origin: self.origin.as_ref().and_then(|p| p.to_str()).unwrap_or("(none)"),
            sources: &self.sources,
            destinations: &self.destinations,
            subscriptions: &self.subscriptions,
            rules: DestinationRules { default_timeout_ms: self.delivery.timeout_ms, egress: self.egress() },
        }
    }

    /// The rules for outgoing requests.
    pub fn egress(&self) -> crate::egress::Egress {
        crate::egress::Egress { deny_private_networks: self.delivery.deny_private_networks }
    }

    /// The WAL directory inside the data directory.
    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("wal")
    }

    /// The history store's directory inside the data directory.
    pub fn history_dir(&self) -> PathBuf {
        self.data_dir.join("history")
    }
}

/// `otlp_endpoint` is an absolute `http://` or `https://` URL. It is not
/// held to the destinations' egress rules: a collector is the operator's own
/// infrastructure, usually on a private address.
fn check_otlp_endpoint(url: &str) -> Result<(), String> {
    let parsed: awc::http::Uri = url.parse().map_err(|e| format!("otlp_endpoint {url:?}: {e}"))?;
    match (parsed.scheme_str(), parsed.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(()),
        _ => Err(format!("otlp_endpoint {url:?} must be an http:// or https:// URL with a host")),
    }
}
