//! Integration tests, one binary: each test starts the real `ferrox`
//! binary on a temporary data directory and talks to it over HTTP.

mod alert_email;
mod alerts;
mod audit;
mod auth;
mod bad_admin;
mod bad_input;
mod client;
mod config_file;
mod delivery;
mod delivery_ops;
mod disk_full;
mod egress;
mod fhir;
mod golden;
mod harness;
mod history;
mod https;
mod in_process;
mod log_detail;
mod logs;
mod look_ahead;
mod operator;
mod query;
mod receiver;
mod resend;
mod restart;
mod retention;
mod roles;
mod sandbox;
mod segments;
mod send;
mod smtp;
mod startup;
mod torture;
mod virtual_time;
