//! `ferrox torture` (src/torture/): the real engine killed with SIGKILL
//! ten times at random moments under concurrent senders and failing
//! receivers; nothing acknowledged is lost or reordered, repeats keep their
//! `webhook-id`, and the log verifies after every kill.

use std::ffi::OsStr;

use crate::harness::{ferrox, seed};

#[test]
fn ten_kills_lose_nothing_and_reorder_nothing() {
    let seed = seed("torture").to_string();
    let out = ferrox(&[
        OsStr::new("torture"),
        OsStr::new("--kills"),
        OsStr::new("10"),
        OsStr::new("--seed"),
        OsStr::new(&seed),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the torture failed:\n{stdout}\n{stderr}");
    let summary = stdout.lines().find(|l| l.starts_with("kills=")).unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    let field = |name: &str| -> u64 {
        summary
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {summary:?}"))
    };
    assert_eq!((field("kills"), field("lost"), field("reordered")), (10, 0, 0), "{summary}");
    assert!(field("acked") > 100 && field("delivered") >= field("acked"), "too little traffic: {summary}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("kill ")).count(), 10, "{stdout}");
}
