//! The engine's side of one `transform-worker` child: started on first
//! use, given each job within a time limit, and replaced after it overruns
//! or dies, so that the job fails with a clear reason and the next one gets
//! a fresh child.

use std::{
    io::{self, BufRead, BufReader, BufWriter},
    path::{Path, PathBuf},
    process::{Child, ChildStderr, ChildStdin, Command, Stdio},
    sync::{Arc, mpsc},
    thread,
    time::Duration,
};

use super::protocol::{Answer, Op, read_answer, write_request};
use crate::limits;

/// How to start a child: the `ferrox` executable and its arguments.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl WorkerCommand {
    /// This executable's `transform-worker` subcommand, each worker mapping
    /// at most `memory_mb`.
    pub fn current_exe(memory_mb: u64) -> io::Result<Self> {
        Ok(Self::of(&std::env::current_exe()?, memory_mb))
    }

    /// `program`'s `transform-worker` subcommand, told this process's ID.
    pub fn of(program: &Path, memory_mb: u64) -> Self {
        let args =
            ["transform-worker", "--parent", &std::process::id().to_string(), "--memory-mb", &memory_mb.to_string()]
                .map(str::to_owned)
                .to_vec();
        Self { program: program.to_owned(), args }
    }

    /// The memory limit the workers are given, in MiB.
    fn memory_mb(&self) -> Option<u64> {
        let at = self.args.iter().position(|a| a == "--memory-mb")?;
        self.args.get(at + 1)?.parse().ok()
    }
}

/// One child process, the thread reading its answers and the one keeping
/// the end of its standard error.
#[derive(Debug)]
struct Running {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    answers: mpsc::Receiver<io::Result<Answer>>,
    /// Ends with the child; gives the last of what it wrote to stderr.
    last_words: Option<thread::JoinHandle<String>>,
}

/// Passes a child's standard error on to the engine's log, keeping the
/// last `WORKER_STDERR_KEPT_BYTES` of it.
fn keep_last_words(stderr: ChildStderr) -> io::Result<thread::JoinHandle<String>> {
    thread::Builder::new().name("transform-stderr".to_owned()).spawn(move || {
        let mut kept = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            tracing::warn!(target: "transform_worker", "{line}");
            kept.push_str(&line);
            kept.push('\n');
            if kept.len() > limits::WORKER_STDERR_KEPT_BYTES {
                let mut cut = kept.len() - limits::WORKER_STDERR_KEPT_BYTES;
                while !kept.is_char_boundary(cut) {
                    cut += 1;
                }
                kept.drain(..cut);
            }
        }
        kept
    })
}

/// Why a child died, from its exit and its last words.
fn why_dead(status: Option<std::process::ExitStatus>, last_words: &str, limit_mb: Option<u64>) -> String {
    let how = status.map_or_else(|| "ended".to_owned(), |s| s.to_string());
    if last_words.contains("memory allocation of") {
        let limit = limit_mb.map_or_else(String::new, |mb| format!(" of {mb} MiB"));
        format!("transform needed more memory than the limit{limit} and was stopped ({how})")
    } else if last_words.contains("overflowed its stack") {
        format!("transform recursed too deeply: it overflowed its worker's stack ({how})")
    } else {
        format!("transform crashed its worker process ({how}): it may recurse too deeply")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The parent's side of one child. Used by one processing thread at a time.
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
            // Memory is mapped as used, within the worker's limit (`worker_main`).
            .env("MIMALLOC_ARENA_RESERVE", "0")
            // Its last words must be the reason it died, not a backtrace.
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start a processing worker ({}): {e}", self.command.program.display()))?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err("a processing worker has no pipes".to_owned());
        };
        let last_words = keep_last_words(stderr).map_err(|e| format!("cannot start a reader thread: {e}"))?;
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
        Ok(Running { child, stdin: BufWriter::new(stdin), answers, last_words: Some(last_words) })
    }

    /// Runs `op` with `program` on `input`, within the time limit.
    pub fn call(&mut self, op: Op, program: &str, ids: Option<(u64, u64)>, input: &[u8]) -> Answer {
        if self.running.is_none() {
            self.running = Some(self.start()?);
        }
        let Some(running) = self.running.as_mut() else { return Err("no processing worker".to_owned()) };
        let sent = write_request(&mut running.stdin, op, program, ids, input);
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
                let Some(mut running) = self.running.take() else { return Err("no processing worker".to_owned()) };
                let status = running.child.wait().ok();
                // The child is gone, so its stderr is at its end.
                let last_words = running.last_words.take().and_then(|t| t.join().ok()).unwrap_or_default();
                Err(why_dead(status, &last_words, self.command.memory_mb()))
            }
        }
    }
}
