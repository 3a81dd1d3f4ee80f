//! The engine's side of one `transform-worker` child: started on first
//! use, given each job within a time limit, and replaced after it overruns
//! or dies, so that the job fails with a clear reason and the next one gets
//! a fresh child.

use std::{
    io::{self, BufReader, BufWriter},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, mpsc},
    thread,
    time::Duration,
};

use super::protocol::{Answer, Op, read_answer, write_request};

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
    answers: mpsc::Receiver<io::Result<Answer>>,
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
                let status = self.running.take().and_then(|mut r| r.child.wait().ok());
                let how = status.map_or_else(|| "ended".to_owned(), |s| s.to_string());
                Err(format!("transform crashed its worker process ({how}): it may recurse too deeply"))
            }
        }
    }
}
