//! Rows: what an ended log holds beyond its table entry (names, reason,
//! attempts), appended in the order logs end to rows files of
//! `ROWS_FILE_BYTES`. A row is framed with its length and CRC-32.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use ferrox_storage::MappedFile;

use super::{HistoryError, ahead::Ahead};
use crate::model::{Attempt, Id, LogStatus, LogType, TimestampMs};

/// Size of every rows file.
pub const ROWS_FILE_BYTES: u64 = 16 << 20;
const HEADER_BYTES: u64 = 4096;
const FRAME_BYTES: usize = 8;
const MAGIC: &[u8; 8] = b"FRXHROW\0";
const ROWS_VERSION: u32 = 1;
/// Rows of version 1 have no `resent_from`; version 2 (written only for
/// resent logs) ends with it.
const ROW_VERSION: u8 = 1;
const RESENT_ROW_VERSION: u8 = 2;
/// Largest row kept whole; a larger one keeps its attempts but drops the
/// oldest attempts' response bodies (see `Row::fit`).
pub const MAX_ROW_BYTES: usize = (ROWS_FILE_BYTES - HEADER_BYTES) as usize - FRAME_BYTES;

/// An ended log's detail.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: Id,
    pub first_attempt_id: Id,
    pub status: LogStatus,
    pub log_type: LogType,
    pub updated_at_ms: TimestampMs,
    pub data_model: String,
    pub event_type: String,
    pub reason: Option<String>,
    /// Each attempt with the journal position that recorded it.
    pub attempts: Vec<(u64, Attempt)>,
    /// The log this one was sent again from (SPEC §13).
    pub resent_from: Option<Id>,
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn text(&mut self, s: Option<&str>) {
        match s {
            None => self.u32(u32::MAX),
            Some(s) => {
                self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX - 1));
                self.0.extend_from_slice(s.as_bytes());
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("row ends early".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "short")?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "short")?))
    }
    fn u128(&mut self) -> Result<u128, String> {
        Ok(u128::from_le_bytes(self.take(16)?.try_into().map_err(|_| "short")?))
    }
    fn text(&mut self) -> Result<Option<String>, String> {
        match self.u32()? {
            u32::MAX => Ok(None),
            len => {
                let bytes = self.take(len as usize)?;
                Ok(Some(String::from_utf8(bytes.to_vec()).map_err(|_| "text is not UTF-8")?))
            }
        }
    }
}

impl Row {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(128));
        w.u8(if self.resent_from.is_some() { RESENT_ROW_VERSION } else { ROW_VERSION });
        w.u8(super::table::status_code_of(self.status));
        w.u8(match self.log_type {
            LogType::Async => 1,
            LogType::Query => 2,
        });
        w.u128(self.id.0);
        w.u128(self.first_attempt_id.0);
        w.u64(self.updated_at_ms as u64);
        w.text(Some(&self.data_model));
        w.text(Some(&self.event_type));
        w.text(self.reason.as_deref());
        w.u32(u32::try_from(self.attempts.len()).unwrap_or(u32::MAX));
        for (position, a) in &self.attempts {
            w.u64(*position);
            w.u128(a.id.0);
            w.u64(a.started_at_ms as u64);
            w.u64(a.duration_ms);
            w.u32(a.http_status.map_or(u32::MAX, u32::from));
            w.text(a.error.as_deref());
            w.text(a.response.as_deref());
        }
        if let Some(from) = self.resent_from {
            w.u128(from.0);
        }
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != ROW_VERSION && version != RESENT_ROW_VERSION {
            return Err(format!("row version {version} is not known to this build"));
        }
        let status = super::table::status_of(r.u8()?).ok_or("unknown status code")?;
        let log_type = match r.u8()? {
            1 => LogType::Async,
            2 => LogType::Query,
            _ => return Err("unknown log type code".into()),
        };
        let id = Id(r.u128()?);
        let first_attempt_id = Id(r.u128()?);
        let updated_at_ms = r.u64()? as i64;
        let data_model = r.text()?.ok_or("no data model")?;
        let event_type = r.text()?.ok_or("no event type")?;
        let reason = r.text()?;
        let count = r.u32()? as usize;
        let mut attempts = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let position = r.u64()?;
            let attempt = Attempt {
                id: Id(r.u128()?),
                started_at_ms: r.u64()? as i64,
                duration_ms: r.u64()?,
                http_status: match r.u32()? {
                    u32::MAX => None,
                    s => Some(u16::try_from(s).map_err(|_| "bad HTTP status")?),
                },
                error: r.text()?,
                response: r.text()?,
            };
            attempts.push((position, attempt));
        }
        let resent_from = if version == RESENT_ROW_VERSION { Some(Id(r.u128()?)) } else { None };
        if !r.0.is_empty() {
            return Err("bytes after the row".into());
        }
        Ok(Self {
            id,
            first_attempt_id,
            status,
            log_type,
            updated_at_ms,
            data_model,
            event_type,
            reason,
            attempts,
            resent_from,
        })
    }

    /// The row's bytes, within `MAX_ROW_BYTES`: a log retried for a very
    /// long time drops the response bodies of its oldest attempts first.
    pub fn fit(&self) -> Vec<u8> {
        let bytes = self.encode();
        if bytes.len() <= MAX_ROW_BYTES {
            return bytes;
        }
        let mut trimmed = self.clone();
        for i in 0..trimmed.attempts.len() {
            trimmed.attempts[i].1.response = None;
            if trimmed.encode().len() <= MAX_ROW_BYTES {
                break;
            }
        }
        let bytes = trimmed.encode();
        if bytes.len() <= MAX_ROW_BYTES {
            return bytes;
        }
        trimmed.attempts.drain(..trimmed.attempts.len() / 2);
        trimmed.fit()
    }
}

/// The rows files, and where the next row goes.
#[derive(Debug)]
pub struct Rows {
    dir: PathBuf,
    files: BTreeMap<u64, MappedFile>,
    /// Offset of the next row.
    end: u64,
    /// The next file, made ahead.
    ahead: Ahead,
}

fn rows_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:016x}.rows"))
}

fn header(number: u64) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&ROWS_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&number.to_le_bytes());
    let crc = crc32fast::hash(&h[..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

impl Rows {
    /// Opens the rows files in `dir`; the next row goes at `end`.
    pub fn open(dir: &Path, end: u64) -> Result<Self, HistoryError> {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(HistoryError::io(dir))? {
            let path = entry.map_err(HistoryError::io(dir))?.path();
            let Some(number) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".rows"))
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            else {
                continue;
            };
            let file = MappedFile::open(&path).map_err(HistoryError::io(&path))?;
            if file.len() as u64 != ROWS_FILE_BYTES || file.bytes()[..32] != header(number) {
                return Err(HistoryError::Damaged(format!("{}: bad header or size", path.display())));
            }
            files.insert(number, file);
        }
        let mut rows = Self { dir: dir.to_path_buf(), files, end: end.max(HEADER_BYTES), ahead: Ahead::default() };
        rows.end = rows.valid_end();
        Ok(rows)
    }

    /// Where the rows written after `end` stop: rows a crash left whole
    /// (the checkpoint does not cover them, but entries may point at them
    /// until a replay writes those entries again) are kept, not
    /// overwritten; the first torn or missing row ends them.
    fn valid_end(&self) -> u64 {
        let mut at = self.end;
        loop {
            if let Some(next) = self.frame_end(at) {
                at = next;
                continue;
            }
            let next_file = (at / ROWS_FILE_BYTES + 1) * ROWS_FILE_BYTES + HEADER_BYTES;
            match self.frame_end(next_file) {
                Some(next) => at = next,
                None => return at,
            }
        }
    }

    /// The end of a whole row at `offset`, if one is there.
    fn frame_end(&self, offset: u64) -> Option<u64> {
        let file = self.files.get(&(offset / ROWS_FILE_BYTES))?;
        let start = (offset % ROWS_FILE_BYTES) as usize;
        let bytes = file.bytes();
        let len = u32::from_le_bytes(bytes.get(start..start + 4)?.try_into().ok()?) as usize;
        let payload = bytes.get(start + FRAME_BYTES..start + FRAME_BYTES + len)?;
        let whole = len > 0 && crc32fast::hash(payload).to_le_bytes() == bytes[start + 4..start + 8];
        whole.then(|| offset + (FRAME_BYTES + len).next_multiple_of(8) as u64)
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    /// Waits for the file in the making, if any.
    pub fn settle(&mut self) {
        self.ahead.settle();
    }

    /// Appends a row; returns its offset.
    pub fn append(&mut self, row: &Row) -> Result<u64, HistoryError> {
        let bytes = row.fit();
        let framed = (FRAME_BYTES + bytes.len()).next_multiple_of(8) as u64;
        let mut at = self.end;
        if at % ROWS_FILE_BYTES + framed > ROWS_FILE_BYTES {
            at = (at / ROWS_FILE_BYTES + 1) * ROWS_FILE_BYTES + HEADER_BYTES;
        }
        let number = at / ROWS_FILE_BYTES;
        let file = match self.files.entry(number) {
            std::collections::btree_map::Entry::Occupied(file) => file.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let dir = &self.dir;
                let made = self.ahead.next_of(number, ROWS_FILE_BYTES, |n| rows_path(dir, n), |n| header(n).to_vec());
                slot.insert(made.map_err(|(path, e)| HistoryError::io(&path)(e))?)
            }
        };
        let start = (at % ROWS_FILE_BYTES) as usize;
        let out = &mut file.bytes_mut()[start..start + framed as usize];
        out[0..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        out[4..8].copy_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
        out[8..8 + bytes.len()].copy_from_slice(&bytes);
        out[8 + bytes.len()..].fill(0);
        self.end = at + framed;
        Ok(at)
    }

    /// The row at `offset`, checked.
    pub fn read(&self, offset: u64) -> Result<Row, HistoryError> {
        let damaged = |why: String| HistoryError::Damaged(format!("row at {offset}: {why}"));
        let file = self.files.get(&(offset / ROWS_FILE_BYTES)).ok_or_else(|| damaged("its file is gone".into()))?;
        let start = (offset % ROWS_FILE_BYTES) as usize;
        let bytes = file.bytes();
        let len = bytes
            .get(start..start + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
            .ok_or_else(|| damaged("past the end of its file".into()))?;
        let payload =
            bytes.get(start + FRAME_BYTES..start + FRAME_BYTES + len).ok_or_else(|| damaged("too long".into()))?;
        if crc32fast::hash(payload).to_le_bytes() != bytes[start + 4..start + 8] {
            return Err(damaged("checksum mismatch".into()));
        }
        Row::decode(payload).map_err(damaged)
    }

    /// Files written since `synced_end`, to sync.
    pub fn files_from(&self, synced_end: u64) -> impl Iterator<Item = &MappedFile> {
        self.files.range(synced_end / ROWS_FILE_BYTES..).map(|(_, f)| f)
    }

    /// Deletes the rows files wholly below `offset`.
    pub fn delete_below(&mut self, offset: u64) -> Result<usize, HistoryError> {
        let doomed: Vec<u64> = self.files.range(..offset / ROWS_FILE_BYTES).map(|(n, _)| *n).collect();
        for number in &doomed {
            if let Some(file) = self.files.remove(number) {
                let path = file.path().to_path_buf();
                drop(file);
                std::fs::remove_file(&path).map_err(HistoryError::io(&path))?;
            }
        }
        Ok(doomed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(attempts: usize, response_bytes: usize) -> Row {
        Row {
            id: Id(7),
            first_attempt_id: Id(8),
            status: LogStatus::Failed,
            log_type: LogType::Query,
            updated_at_ms: 1_700_000_000_123,
            data_model: "PatientAdmin".into(),
            event_type: "NewPatient".into(),
            reason: Some("skipped by an operator".into()),
            resent_from: None,
            attempts: (0..attempts)
                .map(|i| {
                    let attempt = Attempt {
                        id: Id(100 + i as u128),
                        started_at_ms: 5 + i as i64,
                        duration_ms: 3,
                        http_status: (i % 2 == 0).then_some(503),
                        error: (i % 2 == 1).then(|| "connection refused".into()),
                        response: Some("r".repeat(response_bytes)),
                    };
                    (40 + i as u64, attempt)
                })
                .collect(),
        }
    }

    #[test]
    fn rows_come_back_across_files_and_a_reopen() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut rows = Rows::open(dir.path(), 0).expect("opening");
        let small = row(2, 10);
        let big = row(3, 3 << 20);
        let offsets: Vec<u64> =
            [&small, &big, &small, &big, &small].iter().map(|r| rows.append(r).expect("appending")).collect();
        assert!(offsets[4] / ROWS_FILE_BYTES >= 1, "rows rolled to a second file");
        let end = rows.end();
        drop(rows);
        let rows = Rows::open(dir.path(), end).expect("reopening");
        assert_eq!(rows.read(offsets[0]).expect("reading"), small);
        assert_eq!(rows.read(offsets[3]).expect("reading"), big);
        assert_eq!(rows.read(offsets[4]).expect("reading"), small);
        assert!(rows.read(offsets[1] + 8).is_err(), "an offset inside a row is no row");
    }

    #[test]
    fn an_oversized_row_keeps_its_attempts_without_old_bodies() {
        let huge = row(5, 5 << 20);
        let fitted = Row::decode(&huge.fit()).expect("decoding");
        assert_eq!(fitted.attempts.len(), 5);
        assert!(fitted.attempts[0].1.response.is_none(), "the oldest body went");
        let kept = fitted.attempts[4].1.response.as_ref().map(String::len);
        assert_eq!(kept, Some(5 << 20), "the newest body stayed");
    }
}
