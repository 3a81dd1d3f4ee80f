//! The framed protocol between the engine and its `transform-worker`
//! children, on the children's stdin and stdout:
//!
//! ```text
//! request:  op u8 (0 prepare, 1 run) | program u32 len + bytes
//!           | has_ids u8 | message_id u64 | transmission_id u64
//!           | input u32 len + bytes                       (integers LE)
//! answer:   tag u8 (0 output, 1 nothing, 2 error) | u32 len + bytes
//! ```
//!
//! `prepare` is [`prepare_body`](super::body::prepare_body) (transform, then
//! the Meta IDs); `run` runs the program on a JSON document and answers its
//! output.

use std::io::{self, Read, Write};

/// What a child is asked to do with its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Transform a message body and set its Meta IDs.
    Prepare,
    /// Run the program on a JSON document.
    Run,
}

/// A child's answer: the output, `None` when the program gave `null` or
/// nothing, or the error text.
pub type Answer = Result<Option<Vec<u8>>, String>;

/// One request as the child reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub op: Op,
    pub program: String,
    pub ids: Option<(u64, u64)>,
    pub input: Vec<u8>,
}

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

/// Writes one request and flushes it.
pub fn write_request(
    out: &mut impl Write,
    op: Op,
    program: &str,
    ids: Option<(u64, u64)>,
    input: &[u8],
) -> io::Result<()> {
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
}

/// Reads one request; `None` when the input ended cleanly before it.
pub fn read_request(input: &mut impl Read) -> io::Result<Option<Request>> {
    let op = match read_u8(input) {
        Ok(0) => Op::Prepare,
        Ok(_) => Op::Run,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let program = String::from_utf8(read_part(input)?).map_err(io::Error::other)?;
    let has_ids = read_u8(input)? != 0;
    let ids = (read_u64(input)?, read_u64(input)?);
    let input = read_part(input)?;
    Ok(Some(Request { op, program, ids: has_ids.then_some(ids), input }))
}

/// Writes one answer and flushes it.
pub fn write_answer(output: &mut impl Write, answer: &Answer) -> io::Result<()> {
    match answer {
        Ok(Some(bytes)) => {
            output.write_all(&[0])?;
            write_part(output, bytes)?;
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

pub fn read_answer(input: &mut impl Read) -> io::Result<Answer> {
    let tag = read_u8(input)?;
    let bytes = read_part(input)?;
    Ok(match tag {
        0 => Ok(Some(bytes)),
        1 => Ok(None),
        _ => Err(String::from_utf8_lossy(&bytes).into_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip() {
        let mut wire = Vec::new();
        write_request(&mut wire, Op::Prepare, ".a", Some((7, 8)), b"{}").unwrap();
        write_request(&mut wire, Op::Run, "", None, b"").unwrap();
        let mut input = &wire[..];
        let first = Request { op: Op::Prepare, program: ".a".into(), ids: Some((7, 8)), input: b"{}".to_vec() };
        assert_eq!(read_request(&mut input).unwrap(), Some(first));
        let second = Request { op: Op::Run, program: String::new(), ids: None, input: Vec::new() };
        assert_eq!(read_request(&mut input).unwrap(), Some(second));
        assert_eq!(read_request(&mut input).unwrap(), None);
        let mut wire = Vec::new();
        for answer in [Ok(Some(b"x".to_vec())), Ok(None), Err("no".to_owned())] {
            write_answer(&mut wire, &answer).unwrap();
            assert_eq!(read_answer(&mut &wire[..]).unwrap(), answer);
            wire.clear();
        }
    }

    #[test]
    fn a_cut_request_is_an_error_and_a_huge_part_is_refused() {
        let mut full = Vec::new();
        write_request(&mut full, Op::Run, ".", None, b"{}").unwrap();
        for cut in 1..full.len() {
            assert!(read_request(&mut &full[..cut]).is_err(), "a request cut at {cut} was read");
        }
        let mut huge = vec![1u8];
        huge.extend(u32::MAX.to_le_bytes());
        assert!(read_request(&mut &huge[..]).is_err());
    }
}
