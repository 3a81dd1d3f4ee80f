//! ferrox: a durable message engine for healthcare integration.
//!
//! Data flows one way: HTTP → router (validate, route, append to the
//! write-ahead log, answer once synced) → destination actors. See
//! `ARCHITECTURE.md` for the map.

#![forbid(unsafe_code)]

pub mod alerts;
pub mod auth;
pub mod backup;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod datamodels;
pub mod delivery;
pub mod egress;
pub mod error;
#[cfg(test)]
mod fixtures;
pub mod history;
pub mod http;
pub mod ids;
pub mod inbound;
pub mod journal;
pub mod jq;
pub mod lanes;
pub mod ledger;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod model;
pub mod objects;
pub mod operators;
#[cfg(test)]
mod powerloss;
pub mod retention;
pub mod router;
pub mod server;
pub mod signature;
pub mod state;
pub mod tls;
pub mod torture;
pub mod traces;
pub mod wal_dump;
pub mod wal_tool;
