//! jq programs run in worker processes (`src/jq/`): a program that loops,
//! allocates past the memory limit, or recurses until its stack overflows,
//! fails its own log or query with a clear reason; the engine keeps running
//! and other destinations keep flowing.

use serde_json::{Value, json};

use crate::{
    delivery::{Dest, Sent, Setup, eventually, log, logs_in_order, send, set_transform, wait_first_seen, wait_status},
    harness::ADMIN_TOKEN,
    query::{patient_query, query, start_with},
    receiver::Receiver,
};

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// Runs until the time limit: the first output never comes.
const LOOPS: &str = "last(range(1e18))";
/// Recurses until the worker's stack overflows and it aborts.
const OVERFLOWS: &str = "def f: 1 + f; f";
/// Asks for a gigabyte at once: past the memory limit the tests set.
const HOGS: &str = "\"x\" * 1000000000 | length";
/// The memory limit of these tests' workers, in MiB.
const MEMORY_MB: u64 = 320;

#[test]
fn a_runaway_or_crashing_transform_fails_its_log_and_holds_up_no_one() {
    let witness_receiver = Receiver::start();
    let mut witness = Dest::new(9, "production", witness_receiver.url("/witness"));
    witness.transform = Some(".Seen = true".to_owned());
    let receivers = [Receiver::start(), Receiver::start(), Receiver::start()];
    let bad: Vec<Dest> = [LOOPS, OVERFLOWS, HOGS]
        .iter()
        .zip(&receivers)
        .zip(1..)
        .map(|((program, r), n)| {
            let mut d = Dest::new(n, "production", r.url("/bad"));
            d.transform = Some((*program).to_owned());
            d
        })
        .collect();
    let destinations = [bad.clone(), vec![witness.clone()]].concat();
    let setup = Setup {
        destinations,
        transform_timeout_ms: Some(500),
        transform_memory_mb: Some(MEMORY_MB),
        ..Setup::default()
    };
    let server = setup.start();
    let token = server.token();
    let sent: Vec<Sent> = (0..3).map(|n| send(&server, &token, &format!("runaway-{n}"))).collect();

    // The witness's transform runs on the same pool, and it got everything.
    let received = wait_first_seen(&witness_receiver, &logs_in_order(&sent, &witness));
    assert!(received.iter().all(|r| r.json()["Seen"] == true), "the witness's transform ran");
    let reasons = ["ran longer than 500 ms", "overflowed its worker's stack", "more memory than the limit of 320 MiB"];
    for ((dest, receiver), reason) in bad.iter().zip(&receivers).zip(reasons) {
        let expected = logs_in_order(&sent, dest);
        let head = wait_status(&server, &expected[0], "ProcessingFailed");
        assert!(text(&head["reason"]).contains(reason), "{}: {head}", dest.name);
        assert_eq!(log(&server, &expected[1])["status"], "Pending", "{}: a log passed the halted head", dest.name);
        assert!(receiver.received().is_empty(), "{}: a halted queue delivered", dest.name);

        // Fixed, the queue delivers everything in order.
        set_transform(&server, dest, ".Fixed = true");
        let r = server.admin_as(Some(ADMIN_TOKEN), "POST", &format!("/logs/{}/retry", expected[0]), None);
        assert_eq!(r.status, 200, "{}", r.text);
        let received = wait_first_seen(receiver, &expected);
        assert!(received.iter().all(|r| r.json()["Fixed"] == true), "{}: the fixed transform ran", dest.name);
    }
    // Still serving, and the witness still delivers after the crashes.
    let after = send(&server, &token, "after");
    wait_status(&server, &after.log(&witness), "Succeeded");
}

#[test]
fn a_query_whose_transform_runs_away_is_a_502_and_the_engine_keeps_serving() {
    let receiver = Receiver::start();
    let looping = "0e0e0101-0000-4000-8000-000000000000";
    let crashing = "0e0e0102-0000-4000-8000-000000000000";
    let fine = "0e0e0103-0000-4000-8000-000000000000";
    let server = start_with(
        &[
            (looping, receiver.url("/q"), Some(LOOPS), None, 5000),
            (crashing, receiver.url("/q"), None, Some(OVERFLOWS), 5000),
            (fine, receiver.url("/q"), None, Some(".Fine = true"), 5000),
        ],
        "[delivery]\ntransform_timeout_ms = 500\n",
    );
    let (status, body) = query(&server, &patient_query(Some(looping)));
    assert_eq!(status, 400, "the outbound transform failed before sending: {body}");
    assert!(body.to_string().contains("ran longer than 500 ms"), "{body}");
    let (status, body) = query(&server, &patient_query(Some(crashing)));
    assert_eq!(status, 502, "{body}");
    assert!(body.to_string().contains("overflowed its worker's stack"), "{body}");
    let (status, body) = eventually("a query after the crash", || {
        let answer = query(&server, &patient_query(Some(fine)));
        (answer.0 != 503).then_some(answer)
    });
    assert_eq!((status, &body["Fine"]), (200, &json!(true)), "{body}");
}

/// Processes whose parent is `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // The fourth field of stat, after the parenthesised name.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after_name.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent)
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

#[test]
fn a_worker_stuck_in_a_program_ends_with_a_crashed_engine() {
    let receiver = Receiver::start();
    let mut dest = Dest::new(1, "production", receiver.url("/stuck"));
    dest.transform = Some(LOOPS.to_owned());
    // The limit is far away: only the engine's death can end the worker.
    let mut server =
        Setup { destinations: vec![dest.clone()], transform_timeout_ms: Some(600_000), ..Setup::default() }.start();
    let token = server.token();
    let _sent = send(&server, &token, "stuck");
    let engine = u32::try_from(server.pid()).expect("a process ID");
    let workers =
        eventually("a worker process running the program", || Some(children_of(engine)).filter(|c| !c.is_empty()));
    server.kill9();
    eventually("the orphaned worker to end", || workers.iter().all(|&pid| !alive(pid)).then_some(()));
}
