//! Integration tests of the write-ahead log, one binary.

mod capture;
mod common;
mod concurrency;
mod corruption;
mod model;
mod segments;
