//! HTTP/1.1 on the wire for the mock receiver: request heads, chunked
//! bodies, answers, and the reset that ends a connection abruptly.

use std::{
    io::{self, BufRead, Read, Write},
    net::TcpStream,
    os::fd::AsRawFd,
};

use super::{MAX_BODY_BYTES, MAX_HEADERS, MAX_LINE_BYTES};

pub(super) struct Head {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
    /// Zero when `chunked`.
    pub(super) content_length: usize,
    pub(super) chunked: bool,
    pub(super) keep_alive: bool,
    pub(super) expects_continue: bool,
}

pub(super) fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// One line without its CRLF; `None` at a clean end of input.
pub(super) fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = String::new();
    if (&mut *reader).take(MAX_LINE_BYTES).read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let Some(line) = line.strip_suffix('\n') else { return Err(bad("a line is too long or cut short")) };
    Ok(Some(line.strip_suffix('\r').unwrap_or(line).to_owned()))
}

/// The request line and headers; `None` if the client closed the connection between requests.
pub(super) fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let line = match read_line(reader) {
        // A TLS client may close between requests without a close_notify.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        line => line?,
    };
    let Some(line) = line else { return Ok(None) };
    let [method, path, version] = line.split(' ').collect::<Vec<_>>()[..] else {
        return Err(bad(format!("bad request line {line:?}")));
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| bad("the headers were cut short"))?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| bad(format!("bad header {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        if headers.len() > MAX_HEADERS {
            return Err(bad("too many headers"));
        }
    }
    let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.to_ascii_lowercase());
    let chunked = get("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = if chunked { None } else { get("content-length") };
    let content_length = length.map_or(Ok(0), |v| v.parse::<usize>()).map_err(|_| bad("bad content-length"))?;
    if content_length > MAX_BODY_BYTES {
        return Err(bad(format!("a body of {content_length} bytes is over the limit")));
    }
    let connection = get("connection").unwrap_or_default();
    let keep_alive =
        if version == "HTTP/1.0" { connection.contains("keep-alive") } else { !connection.contains("close") };
    let expects_continue = get("expect").is_some_and(|v| v == "100-continue");
    let (method, path) = (method.to_owned(), path.to_owned());
    Ok(Some(Head { method, path, headers, content_length, chunked, keep_alive, expects_continue }))
}

pub(super) fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| bad("the chunks were cut short"))?;
        let digits = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(digits, 16).map_err(|_| bad(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            while !read_line(reader)?.ok_or_else(|| bad("the trailers were cut short"))?.is_empty() {}
            return Ok(body);
        }
        if size > MAX_BODY_BYTES - body.len() {
            return Err(bad("a chunked body is over the limit"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        if read_line(reader)? != Some(String::new()) {
            return Err(bad("a chunk does not end with CRLF"));
        }
    }
}

pub(super) fn write_all(mut stream: impl Write, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes)?;
    stream.flush()
}

pub(super) fn respond(stream: impl Write, status: u16, body: &str, keep_alive: bool) -> io::Result<()> {
    // Clients ignore the reason phrase.
    let reason = if (200..300).contains(&status) { "OK" } else { "Not OK" };
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nconnection: {connection}\r\n");
    // A redirection points elsewhere on this receiver.
    if (300..400).contains(&status) {
        head.push_str("location: /redirected\r\n");
    }
    // These statuses have no body, and a 204 no content-length either.
    let body = if matches!(status, 204 | 304) { "" } else { body };
    if status != 204 {
        head.push_str(&format!("content-type: application/json\r\ncontent-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    write_all(stream, &[head.as_bytes(), body.as_bytes()].concat())
}

/// Makes the close that follows send a RST instead of a FIN.
pub(super) fn set_linger_zero(stream: &TcpStream) -> io::Result<()> {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    let size = size_of::<libc::linger>() as libc::socklen_t;
    // SAFETY: the descriptor belongs to `stream`, which is open for the whole
    // call, and setsockopt only reads `size` bytes from `linger`, a live local
    // of exactly that size.
    let rc = unsafe {
        libc::setsockopt(stream.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, (&raw const linger).cast(), size)
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}
