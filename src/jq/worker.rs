//! The child's side: `ferrox transform-worker` answers requests of the
//! [`protocol`](super::protocol) on stdin and stdout until its input ends
//! or its parent is gone.

use std::{
    collections::HashMap,
    io::{self, BufReader, BufWriter, Read, Write},
    thread,
    time::Duration,
};

use super::{
    body::prepare_body,
    program::{STACK_BYTES, Transform},
    protocol::{Answer, Op, read_request, write_answer},
};

/// How often a child checks that its parent is still there.
const PARENT_CHECK: Duration = Duration::from_millis(100);
/// Compiled programs a child keeps.
const PROGRAMS_KEPT: usize = 64;

/// Answers requests until the input ends. Needs a thread with
/// [`STACK_BYTES`] of stack.
pub fn serve(input: impl Read, output: impl Write) -> io::Result<()> {
    let (mut input, mut output) = (BufReader::new(input), BufWriter::new(output));
    let mut programs: HashMap<String, Transform> = HashMap::new();
    while let Some(request) = read_request(&mut input)? {
        if !programs.contains_key(&request.program) {
            if programs.len() >= PROGRAMS_KEPT {
                programs.clear();
            }
            match Transform::compile(&request.program) {
                Ok(t) => drop(programs.insert(request.program.clone(), t)),
                Err(e) => {
                    write_answer(&mut output, &Err(format!("transform does not compile: {e}")))?;
                    continue;
                }
            }
        }
        let transform = programs.get(&request.program);
        let answer = match request.op {
            Op::Prepare => prepare_body(&request.input, transform, request.ids),
            Op::Run => run(transform, &request.input),
        };
        write_answer(&mut output, &answer)?;
    }
    Ok(())
}

fn run(transform: Option<&Transform>, input: &[u8]) -> Answer {
    let value = serde_json::from_slice(input).map_err(|e| format!("input is not JSON: {e}"))?;
    let Some(transform) = transform else { return Ok(Some(input.to_vec())) };
    match transform.run(&value)? {
        Some(out) => serde_json::to_vec(&out).map(Some).map_err(|e| format!("could not encode the output: {e}")),
        None => Ok(None),
    }
}

/// The `transform-worker` subcommand: serves on stdin and stdout from a
/// thread with the stack jq programs need. `parent` is the engine's process
/// ID (the one at start when not given); `memory_mb` caps the process's
/// data (its heap and stacks: `RLIMIT_DATA`), so a program that allocates
/// without end fails an allocation and ends this process, not the machine.
/// The engine starts workers with `MIMALLOC_ARENA_RESERVE=0`, so that the
/// allocator maps memory as it is used rather than reserving a large arena
/// up front, which the limit would not see.
pub fn worker_main(parent: Option<u32>, memory_mb: Option<u64>) -> io::Result<()> {
    if let Some(mb) = memory_mb {
        let bytes = mb.saturating_mul(1 << 20);
        let limit = rustix::process::Rlimit { current: Some(bytes), maximum: Some(bytes) };
        rustix::process::setrlimit(rustix::process::Resource::Data, limit)?;
    }
    // A program may loop without reading input again, so a closed pipe
    // would go unnoticed: the worker also ends when its parent is gone
    // (it is then re-parented), whatever the program is doing. The engine
    // names itself, since it may die before this line runs.
    let parent = parent.unwrap_or_else(std::os::unix::process::parent_id);
    if std::os::unix::process::parent_id() != parent {
        std::process::exit(2);
    }
    thread::Builder::new().name("parent-watch".to_owned()).spawn(move || {
        loop {
            thread::sleep(PARENT_CHECK);
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(2);
            }
        }
    })?;
    let worker = thread::Builder::new()
        .name("transform-worker".to_owned())
        .stack_size(STACK_BYTES)
        .spawn(|| serve(io::stdin().lock(), io::stdout().lock()))?;
    worker.join().map_err(|_| io::Error::other("the transform worker panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jq::protocol::{read_answer, write_request};

    fn request(op: Op, program: &str, ids: Option<(u64, u64)>, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_request(&mut out, op, program, ids, input).unwrap();
        out
    }

    /// The child's loop, in this process, on a thread with its stack.
    fn served(requests: Vec<u8>) -> Vec<Answer> {
        let output = thread::Builder::new()
            .stack_size(STACK_BYTES)
            .spawn(move || {
                let mut output = Vec::new();
                serve(&requests[..], &mut output).unwrap();
                output
            })
            .unwrap()
            .join()
            .unwrap();
        let mut input = &output[..];
        let mut answers = Vec::new();
        while !input.is_empty() {
            answers.push(read_answer(&mut input).unwrap());
        }
        answers
    }

    #[test]
    fn the_child_prepares_runs_filters_and_reports_errors() {
        let body = br#"{"Meta":{"DataModel":"PatientAdmin"},"n":2}"#;
        let mut requests = request(Op::Prepare, ".n *= 10", Some((7, 7 << 16)), body);
        requests.extend(request(Op::Run, ".n + 1", None, body));
        requests.extend(request(Op::Run, "empty", None, body));
        requests.extend(request(Op::Run, "error(\"no\")", None, body));
        requests.extend(request(Op::Run, "(((", None, body));
        requests.extend(request(Op::Run, ".", None, b"not json"));
        let answers = served(requests);
        let json = |a: &Answer| -> serde_json::Value {
            serde_json::from_slice(a.as_ref().unwrap().as_ref().unwrap()).unwrap()
        };
        assert_eq!(answers.len(), 6);
        assert_eq!(
            json(&answers[0]),
            serde_json::json!({"Meta":{"DataModel":"PatientAdmin","Transmission":{"ID":7<<16},"Message":{"ID":7}},"n":20})
        );
        assert_eq!(json(&answers[1]), serde_json::json!(3));
        assert_eq!(answers[2], Ok(None));
        assert!(answers[3].as_ref().unwrap_err().contains("no"), "{:?}", answers[3]);
        assert!(answers[4].as_ref().unwrap_err().contains("does not compile"), "{:?}", answers[4]);
        assert!(answers[5].as_ref().unwrap_err().contains("not JSON"), "{:?}", answers[5]);
    }

    #[test]
    fn a_cut_request_ends_the_child_cleanly_or_with_an_error() {
        let full = request(Op::Run, ".", None, b"{}");
        for cut in 0..full.len() {
            let requests = full[..cut].to_vec();
            let mut output = Vec::new();
            let result = serve(&requests[..], &mut output);
            assert!(cut == 0 || result.is_err(), "a request cut at {cut} was answered");
            assert!(output.is_empty());
        }
    }
}
