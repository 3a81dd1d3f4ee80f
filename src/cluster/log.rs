//! The journal's records on one JetStream stream.

use std::time::Duration;

use async_nats::{
    HeaderMap,
    jetstream::{
        self,
        consumer::{DeliverPolicy, pull::OrderedConfig},
        context::PublishErrorKind,
        message::PublishMessage,
        stream::{Config, DiscardPolicy, RetentionPolicy, StorageType},
    },
};
use bytes::Bytes;
use futures_util::StreamExt;

use super::{ClusterError, is_token, opening};

/// The stream every node appends to and folds.
pub const STREAM: &str = "FERROX_JOURNAL";
/// Record subjects: `ferrox.journal.<key>`, where the key is `engine` for
/// records of the whole engine and a destination's ID for its outcomes.
const SUBJECT_PREFIX: &str = "ferrox.journal.";
/// The record kind, as the embedded log numbers it.
const KIND: &str = "Ferrox-Kind";
/// CRC-32 of the kind's two bytes and the payload, in lowercase hex.
const CRC: &str = "Ferrox-Crc";
/// How long the servers remember a `Nats-Msg-Id`, so that an append
/// repeated after a lost acknowledgement is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// What an append expects to follow; JetStream refuses it otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Nothing,
    /// The stream's last record is at this sequence (0: the stream is empty).
    LastSequence(u64),
    /// The last record on this record's subject is at this sequence (0: none).
    LastOnSubject(u64),
}

/// One record read back from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub sequence: u64,
    /// The subject's key: `engine` or a destination's ID.
    pub key: String,
    pub kind: u16,
    pub payload: Bytes,
    /// The `Nats-Msg-Id` it was appended under, or its batch's
    /// `Nats-Batch-Id`, if any.
    pub id: Option<String>,
}

/// The journal stream, shared by every node.
#[derive(Debug, Clone)]
pub struct ClusterLog {
    context: jetstream::Context,
    stream: jetstream::stream::Stream,
}

impl ClusterLog {
    /// The stream's settings, with `replicas` copies.
    fn config(replicas: usize) -> Config {
        Config {
            name: STREAM.into(),
            subjects: vec![format!("{SUBJECT_PREFIX}>")],
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::New,
            storage: StorageType::File,
            num_replicas: replicas,
            duplicate_window: DUPLICATE_WINDOW,
            allow_direct: true,
            allow_atomic_publish: true,
            ..Default::default()
        }
    }

    /// Opens the stream, creating it with `replicas` copies if it does not
    /// exist. A stream made with other settings is used as it is.
    pub async fn open(context: jetstream::Context, replicas: usize) -> Result<Self, ClusterError> {
        let config = Self::config(replicas);
        let stream = opening("opening the journal stream", || context.get_or_create_stream(config.clone())).await?;
        reachable(&context).await?;
        Ok(Self { context, stream })
    }

    /// Creates the stream, empty, to take its first record at sequence
    /// `first`: where a stream whose records below it were purged is
    /// copied to. Refused if the stream exists.
    pub async fn create_from(context: jetstream::Context, replicas: usize, first: u64) -> Result<Self, ClusterError> {
        let config = Config { first_sequence: Some(first), ..Self::config(replicas) };
        let stream = context
            .create_stream(config)
            .await
            .map_err(|e| ClusterError::jetstream("creating the journal stream", e))?;
        reachable(&context).await?;
        Ok(Self { context, stream })
    }

    /// Appends a record under `key` and returns its sequence once a quorum
    /// of servers holds it. `id` names the append: repeating an append with
    /// the same `id` (after a lost acknowledgement) stores it once and
    /// answers the first sequence.
    pub async fn append(
        &self,
        key: &str,
        kind: u16,
        payload: Bytes,
        id: &str,
        expect: Expect,
    ) -> Result<u64, ClusterError> {
        if !is_token(key) {
            return Err(ClusterError::BadName(key.into()));
        }
        let mut headers = HeaderMap::new();
        headers.insert(KIND, kind.to_string().as_str());
        headers.insert(CRC, format!("{:08x}", checksum(kind, &payload)).as_str());
        let mut publish = PublishMessage::build().payload(payload).headers(headers).message_id(id);
        publish = match expect {
            Expect::Nothing => publish,
            Expect::LastSequence(sequence) => publish.expected_last_sequence(sequence),
            Expect::LastOnSubject(sequence) => publish.expected_last_subject_sequence(sequence),
        };
        let acknowledged = self
            .context
            .send_publish(format!("{SUBJECT_PREFIX}{key}"), publish)
            .await
            .map_err(|e| ClusterError::jetstream("appending", e))?
            .await;
        match acknowledged {
            Ok(ack) => Ok(ack.sequence),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                let expected = match expect {
                    Expect::LastSequence(s) | Expect::LastOnSubject(s) => s,
                    Expect::Nothing => 0,
                };
                Err(ClusterError::Conflict { expected })
            }
            Err(e) => Err(ClusterError::jetstream("appending", e)),
        }
    }

    /// Appends `records` under `key` as one atomic batch: all are stored,
    /// one after another, or none. Returns their sequences once a quorum
    /// holds them. `id` names the batch (at most 64 letters, digits, `-`
    /// or `_`); the stream takes at most 1,000 records in one batch. Unlike
    /// [`append`](Self::append), a batch repeated after a lost
    /// acknowledgement is stored again: a reader must know it by its ID.
    pub async fn append_batch(&self, key: &str, records: &[(u16, Bytes)], id: &str) -> Result<Vec<u64>, ClusterError> {
        self.batch(key, records, id, None).await
    }

    /// Like [`append_batch`](Self::append_batch), if the stream's last
    /// record is still at `after`: `Conflict` if another writer came first.
    pub async fn append_batch_after(
        &self,
        key: &str,
        records: &[(u16, Bytes)],
        id: &str,
        after: u64,
    ) -> Result<Vec<u64>, ClusterError> {
        self.batch(key, records, id, Some(after)).await
    }

    async fn batch(
        &self,
        key: &str,
        records: &[(u16, Bytes)],
        id: &str,
        after: Option<u64>,
    ) -> Result<Vec<u64>, ClusterError> {
        if !is_token(key) {
            return Err(ClusterError::BadName(key.into()));
        }
        if !is_token(id) {
            return Err(ClusterError::BadName(id.into()));
        }
        let Some(((last_kind, last_payload), ahead)) = records.split_last() else { return Ok(Vec::new()) };
        let subject = format!("{SUBJECT_PREFIX}{key}");
        let client = self.context.client();
        let headers = |n: usize, kind: u16, payload: &Bytes| {
            let mut headers = HeaderMap::new();
            headers.insert(KIND, kind.to_string().as_str());
            headers.insert(CRC, format!("{:08x}", checksum(kind, payload)).as_str());
            headers.insert("Nats-Batch-Id", id);
            headers.insert("Nats-Batch-Sequence", (n + 1).to_string().as_str());
            if let (0, Some(after)) = (n, after) {
                headers.insert("Nats-Expected-Last-Sequence", after.to_string().as_str());
            }
            headers
        };
        for (n, (kind, payload)) in ahead.iter().enumerate() {
            client
                .publish_with_headers(subject.clone(), headers(n, *kind, payload), payload.clone())
                .await
                .map_err(|e| ClusterError::jetstream("appending a batch", e))?;
        }
        let mut commit = headers(ahead.len(), *last_kind, last_payload);
        commit.insert("Nats-Batch-Commit", "1");
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            client.request_with_headers(subject, commit, last_payload.clone()),
        )
        .await
        .map_err(|_| ClusterError::jetstream("committing a batch", "no acknowledgement in 10 s"))?
        .map_err(|e| ClusterError::jetstream("committing a batch", e))?;
        let ack: BatchAck =
            serde_json::from_slice(&answer.payload).map_err(|e| ClusterError::jetstream("committing a batch", e))?;
        let count = records.len() as u64;
        match ack {
            BatchAck { error: Some(error), .. }
                if error.get("err_code").and_then(|c| c.as_u64()) == Some(WRONG_LAST_SEQUENCE) =>
            {
                Err(ClusterError::Conflict { expected: after.unwrap_or(0) })
            }
            BatchAck { error: Some(error), .. } => Err(ClusterError::jetstream("committing a batch", error)),
            BatchAck { seq: Some(seq), count: Some(stored), .. } if stored == count && seq >= count => {
                Ok((seq + 1 - count..=seq).collect())
            }
            other => Err(ClusterError::jetstream("committing a batch", format!("an unexpected answer {other:?}"))),
        }
    }

    /// The sequence of the stream's last record (0 if it holds none).
    pub async fn last_sequence(&self) -> Result<u64, ClusterError> {
        let info =
            self.stream.get_info().await.map_err(|e| ClusterError::jetstream("reading the stream's state", e))?;
        Ok(info.state.last_sequence)
    }

    /// The sequence of the stream's first record: where it starts once
    /// records below were purged (1 if none were; after the last if it
    /// holds none).
    pub async fn first_sequence(&self) -> Result<u64, ClusterError> {
        let info =
            self.stream.get_info().await.map_err(|e| ClusterError::jetstream("reading the stream's state", e))?;
        Ok(info.state.first_sequence.max(1))
    }

    /// Removes every record below `sequence` from the stream, on every
    /// server; returns how many there were.
    pub async fn purge_below(&self, sequence: u64) -> Result<u64, ClusterError> {
        let purged = self.stream.purge().sequence(sequence).await.map_err(|e| ClusterError::jetstream("purging", e))?;
        Ok(purged.purged)
    }

    /// The last record appended under `key`, if any, asked of the stream's
    /// leader.
    pub async fn last_on(&self, key: &str) -> Result<Option<Record>, ClusterError> {
        if !is_token(key) {
            return Err(ClusterError::BadName(key.into()));
        }
        match self.stream.get_last_raw_message_by_subject(&format!("{SUBJECT_PREFIX}{key}")).await {
            Ok(message) => {
                decode(message.sequence, message.subject.as_str(), Some(&message.headers), &message.payload).map(Some)
            }
            Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(ClusterError::jetstream("reading the last record of a subject", e)),
        }
    }

    /// The name of the server that leads the stream now.
    pub async fn leader(&self) -> Result<String, ClusterError> {
        let info =
            self.stream.get_info().await.map_err(|e| ClusterError::jetstream("reading the stream's state", e))?;
        info.cluster
            .and_then(|c| c.leader)
            .ok_or_else(|| ClusterError::JetStream { what: "reading the stream's leader", reason: "no leader".into() })
    }

    /// The records from `from` through the stream's last record as it
    /// stands now, in order, each checked against its CRC. A read cut off
    /// by a leader election (its consumer lost or timed out) goes on from
    /// the record after the last one received, for as long as opening the
    /// stream waits for an election.
    pub async fn read(&self, from: u64) -> Result<Vec<Record>, ClusterError> {
        let patience = tokio::time::Instant::now() + super::OPEN_PATIENCE;
        let through = loop {
            match self.last_sequence().await {
                Ok(through) => break through,
                Err(e) if tokio::time::Instant::now() >= patience => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let mut records = Vec::new();
        let mut next = from.max(1);
        while next <= through {
            match self.read_part(next, through, &mut records).await {
                Ok(()) => break,
                Err(damaged @ ClusterError::Damaged { .. }) => return Err(damaged),
                Err(e) if tokio::time::Instant::now() >= patience => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
            next = records.last().map_or(next, |r: &Record| r.sequence + 1);
        }
        Ok(records)
    }

    /// Appends the records from `from` through `through` to `records`,
    /// keeping those received before a failure.
    async fn read_part(&self, from: u64, through: u64, records: &mut Vec<Record>) -> Result<(), ClusterError> {
        let followed = self.follow(from).await?;
        let mut followed = std::pin::pin!(followed);
        while let Some(record) = followed.next().await {
            let record = record?;
            let sequence = record.sequence;
            records.push(record);
            if sequence >= through {
                break;
            }
        }
        Ok(())
    }
}

impl ClusterLog {
    /// The record at `sequence`, if the stream holds one there.
    /// Asked of the stream's leader, not of any server: a server that has
    /// not caught up could answer that an acknowledged record is not there.
    pub async fn get(&self, sequence: u64) -> Result<Option<Record>, ClusterError> {
        match self.stream.get_raw_message(sequence).await {
            Ok(message) => {
                decode(message.sequence, message.subject.as_str(), Some(&message.headers), &message.payload).map(Some)
            }
            Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(ClusterError::jetstream("reading a record", e)),
        }
    }

    /// Every record from `from` on, as it is appended, for as long as the
    /// stream is read: the fold of a running node.
    pub async fn follow(
        &self,
        from: u64,
    ) -> Result<impl futures_util::Stream<Item = Result<Record, ClusterError>> + use<>, ClusterError> {
        let consumer = self
            .stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from.max(1) },
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::jetstream("following the journal", e))?;
        let messages = consumer.messages().await.map_err(|e| ClusterError::jetstream("following the journal", e))?;
        let read = messages.map(|message| {
            let message = message.map_err(|e| ClusterError::jetstream("following the journal", e))?;
            let sequence =
                message.info().map_err(|e| ClusterError::jetstream("following the journal", e))?.stream_sequence;
            decode(sequence, message.subject.as_str(), message.headers.as_ref(), &message.payload)
        });
        // An ordered consumer that the client makes again before its first
        // record (after a leader change) starts at the stream's first
        // record: what comes before `from` is skipped.
        Ok(read.filter(move |record| std::future::ready(!matches!(record, Ok(r) if r.sequence < from))))
    }
}

/// Waits until appends through this connection reach the stream: one
/// just made through another server is found by this one a moment later
/// (until then an append is answered "no stream found"). The probe expects
/// a last sequence no stream has, so the stream refuses it and stores
/// nothing.
async fn reachable(context: &jetstream::Context) -> Result<(), ClusterError> {
    let end = tokio::time::Instant::now() + super::OPEN_PATIENCE;
    loop {
        let probe = PublishMessage::build().payload(Bytes::new()).expected_last_sequence(u64::MAX);
        let answer = match context.send_publish(format!("{SUBJECT_PREFIX}{KEY_PROBE}"), probe).await {
            Ok(sent) => sent.await,
            Err(e) => return Err(ClusterError::jetstream("reaching the journal stream", e)),
        };
        match answer {
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound && tokio::time::Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                return Err(ClusterError::jetstream("reaching the journal stream", e));
            }
            _ => return Ok(()),
        }
    }
}

/// The subject key of the probe `reachable` sends (never stored).
const KEY_PROBE: &str = "probe";

/// JetStream's error code for an expected last sequence that is not the
/// stream's.
const WRONG_LAST_SEQUENCE: u64 = 10071;

/// The answer to a batch's commit.
#[derive(Debug, serde::Deserialize)]
struct BatchAck {
    seq: Option<u64>,
    count: Option<u64>,
    error: Option<serde_json::Value>,
}

fn checksum(kind: u16, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&kind.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// A stream message as a record, refused if its headers or CRC are wrong.
fn decode(sequence: u64, subject: &str, headers: Option<&HeaderMap>, payload: &Bytes) -> Result<Record, ClusterError> {
    let damaged = |reason: String| ClusterError::Damaged { sequence, reason };
    let key = subject.strip_prefix(SUBJECT_PREFIX).ok_or_else(|| damaged(format!("subject {subject:?}")))?;
    let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
    let kind = header(KIND).and_then(|k| k.parse::<u16>().ok()).ok_or_else(|| damaged(format!("no {KIND} header")))?;
    let crc = header(CRC)
        .and_then(|c| u32::from_str_radix(&c, 16).ok())
        .ok_or_else(|| damaged(format!("no {CRC} header")))?;
    let actual = checksum(kind, payload);
    if crc != actual {
        return Err(damaged(format!("CRC {actual:08x} where the record says {crc:08x}")));
    }
    let id = header("Nats-Msg-Id").or_else(|| header("Nats-Batch-Id"));
    Ok(Record { sequence, key: key.into(), kind, payload: payload.clone(), id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(kind: &str, crc: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(KIND, kind);
        headers.insert(CRC, crc);
        headers
    }

    #[test]
    fn a_record_reads_back_only_when_its_crc_matches() {
        let payload = Bytes::from_static(b"{\"Meta\":{}}");
        let crc = format!("{:08x}", checksum(7, &payload));
        let record = decode(5, "ferrox.journal.engine", Some(&headers("7", &crc)), &payload).expect("intact");
        assert_eq!((record.sequence, record.key.as_str(), record.kind), (5, "engine", 7));

        let flipped = Bytes::from_static(b"{\"Meta\":{]}");
        let error = decode(5, "ferrox.journal.engine", Some(&headers("7", &crc)), &flipped).expect_err("damaged");
        assert!(error.to_string().contains("stream record 5: CRC"), "{error}");
        let error = decode(5, "ferrox.journal.engine", Some(&headers("8", &crc)), &payload).expect_err("kind");
        assert!(error.to_string().contains("CRC"), "{error}");
        let error = decode(5, "ferrox.journal.engine", None, &payload).expect_err("no headers");
        assert!(error.to_string().contains("no Ferrox-Kind header"), "{error}");
        let error = decode(5, "elsewhere.engine", Some(&headers("7", &crc)), &payload).expect_err("subject");
        assert!(error.to_string().contains("subject"), "{error}");
    }
}
