//! A real SMTP server for the tests, on 127.0.0.1: it speaks the protocol
//! (RFC 5321: greeting, EHLO/HELO, MAIL, RCPT, DATA with dot-stuffing,
//! RSET, NOOP, QUIT) and keeps every message it accepts. It can be told to
//! answer MAIL with a temporary failure (451), as a server in trouble does.

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

/// One message accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, as sent (dot-stuffing undone).
    pub data: String,
}

impl Mail {
    /// A header's value (unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut().filter(|_| line.starts_with([' ', '\t'])) {
                v.push_str(line.trim_start());
                continue;
            }
            if value.is_some() {
                break;
            }
            let (key, rest) = line.split_once(':')?;
            if key.eq_ignore_ascii_case(name) {
                value = Some(rest.trim().to_owned());
            }
        }
        value
    }

    /// The body, soft line breaks of quoted-printable undone.
    pub fn body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        body.replace("=\r\n", "").replace("=3D", "=")
    }
}

#[derive(Clone)]
pub struct Sink {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    failing: Arc<AtomicBool>,
}

impl Sink {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the SMTP sink");
        let port = listener.local_addr().expect("its address").port();
        let sink = Self { port, mails: Arc::default(), failing: Arc::default() };
        let serving = sink.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = serving.clone();
                thread::spawn(move || {
                    let _ = sink.session(stream);
                });
            }
        });
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().clone()
    }

    /// Answers MAIL with 451 (try again later) while `failing`.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Waits until the mails satisfy `condition`; panics after `patience`.
    pub fn wait_for(&self, what: &str, patience: Duration, condition: impl Fn(&[Mail]) -> bool) -> Vec<Mail> {
        let deadline = Instant::now() + patience;
        loop {
            let mails = self.mails();
            if condition(&mails) {
                return mails;
            }
            assert!(Instant::now() < deadline, "no {what} within {patience:?}; mails: {mails:#?}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn session(&self, stream: TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut out = stream.try_clone()?;
        let mut lines = BufReader::new(stream);
        let mut reply = |text: &str| out.write_all(format!("{text}\r\n").as_bytes());
        reply("220 sink.test ESMTP ready")?;
        let (mut from, mut to) = (None::<String>, Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_owned();
            let verb = command.split([' ', ':']).next().unwrap_or_default().to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" => reply("250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8")?,
                "HELO" => reply("250 sink.test")?,
                "MAIL" if self.failing.load(Ordering::SeqCst) => reply("451 4.3.0 try again later")?,
                "MAIL" => {
                    from = Some(address(&command));
                    to.clear();
                    reply("250 2.1.0 ok")?;
                }
                "RCPT" if from.is_some() => {
                    to.push(address(&command));
                    reply("250 2.1.5 ok")?;
                }
                "RCPT" => reply("503 5.5.1 MAIL first")?,
                "DATA" if from.is_some() && !to.is_empty() => {
                    reply("354 end with <CRLF>.<CRLF>")?;
                    let mut data = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line)? == 0 {
                            return Ok(());
                        }
                        if line == ".\r\n" {
                            break;
                        }
                        data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    }
                    let mail = Mail { from: from.take().unwrap_or_default(), to: std::mem::take(&mut to), data };
                    self.mails.lock().push(mail);
                    reply("250 2.0.0 queued")?;
                }
                "DATA" => reply("503 5.5.1 MAIL and RCPT first")?,
                "RSET" => {
                    from = None;
                    to.clear();
                    reply("250 2.0.0 ok")?;
                }
                "NOOP" => reply("250 2.0.0 ok")?,
                "QUIT" => {
                    reply("221 2.0.0 bye")?;
                    return Ok(());
                }
                _ => reply("502 5.5.2 command not implemented")?,
            }
        }
    }
}

/// The address in `MAIL FROM:<a>` or `RCPT TO:<a>`.
fn address(command: &str) -> String {
    command.split_once('<').and_then(|(_, rest)| rest.split_once('>')).map(|(a, _)| a.to_owned()).unwrap_or_default()
}
