//! jq transforms in child processes.
//!
//! jaq has no fuel, depth or memory budget: a program can loop before its
//! first output (`def f: f; f`, `last(range(1e18))`), allocate without end
//! (`[range(1e9)]`) or recurse until the stack overflows, which aborts the
//! whole process. A subscription's program is operator input, and one bad
//! program must neither stop the engine nor hold up other destinations. So
//! programs run in `ferrox transform-worker` children, one per processing
//! thread. Each job has a time limit: a child that overruns it is killed, one
//! that dies is noticed, and in both cases the job fails with a clear reason
//! (the log becomes `ProcessingFailed`, the query a 502) and the next job
//! gets a fresh child.
//!
//! The children speak a small framed protocol on stdin and stdout:
//!
//! ```text
//! request:  op u8 (0 prepare, 1 run) | program u32 len + bytes
//!           | has_ids u8 | message_id u64 | transmission_id u64
//!           | input u32 len + bytes                       (integers LE)
//! answer:   tag u8 (0 output, 1 nothing, 2 error) | u32 len + bytes
//! ```
//!
//! `prepare` is `request::prepare_body` (transform, then the Meta IDs);
//! `run` runs the program on a JSON document and answers its output.

use std::{
    collections::HashMap,
    io::{self, BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, mpsc},
    thread,
    time::Duration,
};

use crate::{delivery::request::prepare_body, transform::Transform};

/// What a child is asked to do with its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Transform a message body and set its Meta IDs.
    Prepare,
    /// Run the program on a JSON document.
    Run,
}

/// How often a child checks that its parent is still there.
const PARENT_CHECK: Duration = Duration::from_millis(100);
/// Compiled programs a child keeps.
const PROGRAMS_KEPT: usize = 64;
/// Largest frame part accepted: a body is at most the WAL's largest record.
const PART_BYTES_MAX: usize = ferrox_storage::DEFAULT_MAX_RECORD_BYTES as usize;

fn write_part(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("frame part too large"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

fn read_u8(input: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    input.read_exact(&mut b)?;
    Ok(b[0])
}

fn read_u64(input: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    input.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_part(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b)?;
    let len = usize::try_from(u32::from_le_bytes(b)).map_err(io::Error::other)?;
    if len > PART_BYTES_MAX {
        return Err(io::Error::other(format!("frame part of {len} bytes")));
    }
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The child's side: answers requests until its input ends. Needs a thread
/// with `transform::STACK_BYTES` of stack.
pub fn serve(input: impl Read, output: impl Write) -> io::Result<()> {
    let (mut input, mut output) = (BufReader::new(input), BufWriter::new(output));
    let mut programs: HashMap<String, Transform> = HashMap::new();
    loop {
        let op = match read_u8(&mut input) {
            Ok(op) => op,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let program = String::from_utf8(read_part(&mut input)?).map_err(io::Error::other)?;
        let has_ids = read_u8(&mut input)? != 0;
        let ids = (read_u64(&mut input)?, read_u64(&mut input)?);
        let body = read_part(&mut input)?;
        if !programs.contains_key(&program) {
            if programs.len() >= PROGRAMS_KEPT {
                programs.clear();
            }
            match Transform::compile(&program) {
                Ok(t) => drop(programs.insert(program.clone(), t)),
                Err(e) => {
                    answer(&mut output, Err(format!("transform does not compile: {e}")))?;
                    continue;
                }
            }
        }
        let transform = programs.get(&program);
        let result = match op {
            0 => prepare_body(&body, transform, has_ids.then_some(ids)),
            _ => run(transform, &body),
        };
        answer(&mut output, result)?;
    }
}

fn run(transform: Option<&Transform>, input: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let value = serde_json::from_slice(input).map_err(|e| format!("input is not JSON: {e}"))?;
    let Some(transform) = transform else { return Ok(Some(input.to_vec())) };
    match transform.run(&value)? {
        Some(out) => serde_json::to_vec(&out).map(Some).map_err(|e| format!("could not encode the output: {e}")),
        None => Ok(None),
    }
}

fn answer(output: &mut impl Write, result: Result<Option<Vec<u8>>, String>) -> io::Result<()> {
    match result {
        Ok(Some(bytes)) => {
            output.write_all(&[0])?;
            write_part(output, &bytes)?;
        }
        Ok(None) => {
            output.write_all(&[1])?;
            write_part(output, &[])?;
        }
        Err(text) => {
            output.write_all(&[2])?;
            write_part(output, text.as_bytes())?;
        }
    }
    output.flush()
}

/// How to start a child: the `ferrox` executable and its arguments.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl WorkerCommand {
    /// This executable's `transform-worker` subcommand.
    pub fn current_exe() -> io::Result<Self> {
        Ok(Self::of(&std::env::current_exe()?))
    }

    /// `program`'s `transform-worker` subcommand, told this process's ID.
    pub fn of(program: &Path) -> Self {
        let args = vec!["transform-worker".to_owned(), "--parent".to_owned(), std::process::id().to_string()];
        Self { program: program.to_owned(), args }
    }
}

/// One child process and the thread reading its answers.
#[derive(Debug)]
struct Running {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    answers: mpsc::Receiver<io::Result<Result<Option<Vec<u8>>, String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The parent's side of one child, started on first use and replaced after
/// it overruns or dies. Used by one processing thread at a time.
#[derive(Debug)]
pub struct Sandbox {
    command: Arc<WorkerCommand>,
    limit: Duration,
    running: Option<Running>,
}

impl Sandbox {
    pub fn new(command: Arc<WorkerCommand>, limit: Duration) -> Self {
        Self { command, limit, running: None }
    }

    fn start(&self) -> Result<Running, String> {
        let mut child = Command::new(&self.command.program)
            .args(&self.command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start a processing worker ({}): {e}", self.command.program.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("a processing worker has no pipes".to_owned());
        };
        let (send, answers) = mpsc::sync_channel(1);
        thread::Builder::new()
            .name("transform-answers".to_owned())
            .spawn(move || {
                let mut stdout = BufReader::new(stdout);
                loop {
                    let answer = read_answer(&mut stdout);
                    let failed = answer.is_err();
                    if send.send(answer).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| format!("cannot start a reader thread: {e}"))?;
        Ok(Running { child, stdin: BufWriter::new(stdin), answers })
    }

    /// Runs `op` with `program` on `input`, within the time limit.
    pub fn call(
        &mut self,
        op: Op,
        program: &str,
        ids: Option<(u64, u64)>,
        input: &[u8],
    ) -> Result<Option<Vec<u8>>, String> {
        if self.running.is_none() {
            self.running = Some(self.start()?);
        }
        let Some(running) = self.running.as_mut() else { return Err("no processing worker".to_owned()) };
        let sent = (|| {
            let out = &mut running.stdin;
            out.write_all(&[match op {
                Op::Prepare => 0,
                Op::Run => 1,
            }])?;
            write_part(out, program.as_bytes())?;
            let (message_id, transmission_id) = ids.unwrap_or_default();
            out.write_all(&[u8::from(ids.is_some())])?;
            out.write_all(&message_id.to_le_bytes())?;
            out.write_all(&transmission_id.to_le_bytes())?;
            write_part(out, input)?;
            out.flush()
        })();
        let answer = match sent {
            Ok(()) => running.answers.recv_timeout(self.limit),
            Err(_) => running.answers.recv_timeout(Duration::from_secs(1)),
        };
        match answer {
            Ok(Ok(result)) => result,
            Err(mpsc::RecvTimeoutError::Timeout) if sent.is_ok() => {
                self.running = None;
                Err(format!("transform ran longer than {} ms and was stopped", self.limit.as_millis()))
            }
            _ => {
                let status = self.running.take().and_then(|mut r| r.child.wait().ok());
                let how = status.map_or_else(|| "ended".to_owned(), |s| s.to_string());
                Err(format!("transform crashed its worker process ({how}): it may recurse too deeply"))
            }
        }
    }
}

fn read_answer(input: &mut impl Read) -> io::Result<Result<Option<Vec<u8>>, String>> {
    let tag = read_u8(input)?;
    let bytes = read_part(input)?;
    Ok(match tag {
        0 => Ok(Some(bytes)),
        1 => Ok(None),
        _ => Err(String::from_utf8_lossy(&bytes).into_owned()),
    })
}

/// The `transform-worker` subcommand: serves on stdin and stdout from a
/// thread with the stack jq programs need. `parent` is the engine's process
/// ID (the one at start when not given).
pub fn worker_main(parent: Option<u32>) -> io::Result<()> {
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
        .stack_size(crate::transform::STACK_BYTES)
        .spawn(|| serve(io::stdin().lock(), io::stdout().lock()))?;
    worker.join().map_err(|_| io::Error::other("the transform worker panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(op: u8, program: &str, ids: Option<(u64, u64)>, input: &[u8]) -> Vec<u8> {
        let mut out = vec![op];
        write_part(&mut out, program.as_bytes()).unwrap();
        out.push(u8::from(ids.is_some()));
        let (a, b) = ids.unwrap_or_default();
        out.extend(a.to_le_bytes());
        out.extend(b.to_le_bytes());
        write_part(&mut out, input).unwrap();
        out
    }

    /// The child's loop, in this process, on a thread with its stack.
    fn served(requests: Vec<u8>) -> Vec<Result<Option<Vec<u8>>, String>> {
        let output = thread::Builder::new()
            .stack_size(crate::transform::STACK_BYTES)
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
        let mut requests = request(0, ".n *= 10", Some((7, 7 << 16)), body);
        requests.extend(request(1, ".n + 1", None, body));
        requests.extend(request(1, "empty", None, body));
        requests.extend(request(1, "error(\"no\")", None, body));
        requests.extend(request(1, "(((", None, body));
        requests.extend(request(1, ".", None, b"not json"));
        let answers = served(requests);
        let json = |a: &Result<Option<Vec<u8>>, String>| -> serde_json::Value {
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
        let full = request(1, ".", None, b"{}");
        for cut in 0..full.len() {
            let requests = full[..cut].to_vec();
            let mut output = Vec::new();
            let result = serve(&requests[..], &mut output);
            assert!(cut == 0 || result.is_err(), "a request cut at {cut} was answered");
            assert!(output.is_empty());
        }
    }
}
