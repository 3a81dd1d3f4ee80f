//! jq: subscriptions' programs and the processing that runs them (SPEC §4).
//!
//! A subscription's `transform` runs on a message before delivery and its
//! `response_transform` on a `/query` reply. Programs are compiled with jaq
//! ([`program`]). jaq has no budget of its own, so a program that loops,
//! allocates without end or recurses until its stack overflows would stall
//! or abort the process running it: the engine runs programs only in
//! `ferrox transform-worker` children ([`worker`]), one per processing
//! thread of the [`pool`], each driven by a [`sandbox`] that gives every job
//! a time limit and replaces a child that overran or died. The two sides
//! speak a small framed [`protocol`].
//!
//! Each destination's actor owns a processing [`stage`]: it prepares the
//! body of its queue's head ([`body`]: the transform, then the Meta IDs,
//! which [`meta_ids`] sets without parsing the rest of the body) and, ahead
//! of the head, the bodies of the logs after it ([`ahead`]).
//!
//! The only program the engine's own process compiles is the operator
//! API's check that a program compiles, bounded by the program's size.

mod ahead;
mod body;
mod meta_ids;
mod pool;
mod program;
mod protocol;
mod sandbox;
mod stage;
mod worker;

pub use self::{
    ahead::{AheadCounts, Preparation},
    body::prepare_body,
    meta_ids::set_meta_ids,
    pool::TransformPool,
    program::Transform,
    sandbox::WorkerCommand,
    stage::Processing,
    worker::worker_main,
};
