//! Limits of the server, in one place, each with why. The rules on where
//! the engine may send (no credentials in URLs, `deny_private_networks`)
//! are in `egress`, with theirs.

/// Default largest request body (SPEC §9: 10 MiB): clinical documents with
/// attachments fit; anything larger belongs in a document store.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 << 20;
/// Bytes a message event takes beyond its body (IDs, names, logs), bounded
/// generously: a message's event is one WAL record.
pub const EVENT_OVERHEAD_BYTES: usize = 64 * 1024;
/// Largest `max_body_bytes` accepted: with its event overhead a body must
/// fit the WAL's largest record.
pub const MAX_BODY_BYTES_LIMIT: usize = ferrox_storage::DEFAULT_MAX_RECORD_BYTES as usize - EVENT_OVERHEAD_BYTES;
/// Capacity of the router's mailbox. A full mailbox makes senders wait
/// (back-pressure), it never drops.
pub const ROUTER_MAILBOX: usize = 4096;
/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;
/// Most destinations one message may fan out to.
pub const MAX_LOGS_PER_MESSAGE: usize = 256;
/// Most logs one replay resends (SPEC §13): its event is one journal
/// record (about 100 bytes a log, well within the largest record), and an
/// operator sees the count before sending more.
pub const MAX_REPLAY_LOGS: usize = 100_000;
/// Default page of `GET /api/v1/logs` when no `limit` is given.
pub const DEFAULT_LOG_PAGE: usize = 100;
/// Bodies waiting for the processing pool. Beyond this, destination
/// actors wait for room (back-pressure).
pub const PROCESSING_QUEUE: usize = 1024;
/// Processing threads: transforms are CPU work, one per core is enough.
pub const PROCESSING_WORKERS: usize = 2;
/// Logs after its head a destination prepares ahead (processing
/// look-ahead): enough to keep the pool busy through a receiver's answer
/// time, few enough that a subscription change throws little work away.
pub const PROCESSING_READ_AHEAD: usize = 32;
/// Look-ahead preparations one destination runs at once: as many as the
/// pool has workers keeps the pool busy for a lone destination, and no
/// destination's look-ahead puts more than that ahead of other
/// destinations' heads in the pool's queue.
pub const PROCESSING_AHEAD_JOBS: usize = PROCESSING_WORKERS;
/// Bytes of payloads in preparation and bodies kept ahead, per destination.
/// 32 typical messages (a few KiB each) fit many times over, so memory for
/// look-ahead stays small beside the queue itself; large messages are
/// prepared ahead a few at a time, or in their turn. The head is always
/// prepared, whatever its size.
pub const PROCESSING_READ_AHEAD_BYTES: usize = 8 << 20;
/// How often an idle destination actor looks at its queue without a hint,
/// a safety net should a hint be missed.
pub const DELIVERY_IDLE_CHECK_MS: u64 = 1000;
/// Arbiters (threads) the destination actors are spread over: one per core.
pub const DELIVERY_ARBITERS: usize = 2;
/// Capacity of a destination actor's mailbox (hints and operator actions).
pub const DESTINATION_MAILBOX: usize = 64;
/// Compiled transforms a destination actor keeps.
pub const TRANSFORM_CACHE: usize = 64;
/// How often events no one waits for (delivery outcomes, alerts) are
/// synced: the most they lag behind in durability.
pub const FLUSH_INTERVAL_MS: u64 = 10;
/// Journal records a restart may replay beyond what it must: once the
/// replay's start could move further than this, compaction writes a new
/// snapshot even if no segment can be deleted, so restart time follows
/// the work in hand, not the retention window.
pub const SNAPSHOT_REPLAY_RECORDS: u64 = 100_000;
/// Bytes of a query's reply its `Query` log keeps: whole for typical
/// replies, bounded because logs stay in memory.
pub const QUERY_REPLY_KEPT_BYTES: usize = 64 * 1024;
/// Alerts past retention kept because a channel has not sent them yet:
/// alerts come once per episode, so this many is weeks of a failing
/// channel, and no channel's outage grows memory without end.
pub const ALERTS_UNSENT_KEPT: usize = 10_000;
/// First wait before a destination's actor tries again to journal an
/// outcome the journal refused (a full disk): short, as space often comes
/// back soon.
pub const OUTCOME_RETRY_MIN_MS: u64 = 100;
/// Longest wait between those tries: the queue goes on within this long of
/// the journal taking writes again.
pub const OUTCOME_RETRY_MAX_MS: u64 = 2_000;
/// How often an alert channel with nothing to send looks for a new alert:
/// alerts come once per episode, so a fraction of a second late is soon.
pub const ALERT_POLL_MS: u64 = 200;
/// How often the queues with `alert_depth` or `alert_age_ms` are looked
/// at: a backlog is an alert of minutes, a second late is on time.
pub const BACKLOG_CHECK_MS: u64 = 1000;
/// First wait before an alert is sent again through a channel that failed.
pub const ALERT_RETRY_MIN_MS: u64 = 500;
/// Longest wait between tries of one alert: a channel that is down is
/// asked about once a minute, no more.
pub const ALERT_RETRY_MAX_MS: u64 = 60_000;
/// Longest an alert webhook may take to answer.
pub const ALERT_POST_TIMEOUT_MS: u64 = 10_000;
/// Default memory a jq worker process may use (`[delivery]
/// transform_memory_mb`): jaq has no memory budget, and a program such as
/// `[range(1e9)]` would take the machine down. The cap is the worker's data
/// (`RLIMIT_DATA`: heap and stacks, the 32 MiB transform stack included);
/// a transform of a 10 MiB message needs a few tens of MiB.
pub const TRANSFORM_MEMORY_MB: u64 = 512;
/// The least `transform_memory_mb` accepted: the worker's own stacks and
/// buffers take about 64 MiB.
pub const TRANSFORM_MEMORY_MB_MIN: u64 = 128;
/// The bytes of a worker's last words (its standard error) kept to tell
/// why it died: out of memory, or out of stack.
pub const WORKER_STDERR_KEPT_BYTES: usize = 4096;
/// Sign-in requests (`/auth/*`) one client address may make at once, and
/// then per minute: each checks a PBKDF2 hash, which is made to be slow,
/// and a source signs in once a day or so. Past it, 429.
pub const SIGN_IN_BURST: u32 = 20;
pub const SIGN_IN_PER_MINUTE: u32 = 60;
/// Requests with a missing or wrong operator token one client address may
/// make at once, and then per minute: enough for typos, too few to guess a
/// token. Past it, every operator request from the address is a 429.
pub const OPERATOR_FAILURES_BURST: u32 = 10;
pub const OPERATOR_FAILURES_PER_MINUTE: u32 = 10;
/// Client addresses the rate limits track: bounds their memory.
pub const THROTTLED_ADDRESSES_MAX: usize = 10_000;
/// Default longest a request body may take to arrive (`body_read_timeout_ms`):
/// a body dripped slowly would otherwise hold a connection and its buffer
/// for as long as the client likes. 10 MiB arrives in well under this on
/// any link an integration engine serves.
pub const BODY_READ_TIMEOUT_MS: u64 = 15_000;
/// Delivery outcomes a destination may have journaled but not yet synced
/// before it asks for a sync and waits for it: after a crash, each queue
/// sends again at most its log in flight and this many (their outcomes were
/// lost with the crash; receivers drop them by `webhook-id`). The flusher
/// syncs every 10 ms, so only a destination taking more than 3,200
/// deliveries a second ever waits: measured, strict FIFO at 10k/s lost
/// about 5% to it, and 16 cost twice that.
pub const UNSYNCED_OUTCOMES_MAX: usize = 32;
/// A console session unused this long ends: an unattended screen in a
/// clinic should not stay signed in through a shift change.
pub const CONSOLE_SESSION_IDLE_MS: i64 = 8 * 3600 * 1000;
/// A console session ends this long after sign-in however busy it is,
/// so a stolen cookie is worth at most a day.
pub const CONSOLE_SESSION_MAX_MS: i64 = 24 * 3600 * 1000;
/// Console sessions kept at once; signing in beyond this ends the one
/// unused longest. Sessions live in memory (about 200 bytes each).
pub const CONSOLE_SESSIONS: usize = 10_000;
/// Rows a console page shows by default.
pub const CONSOLE_PAGE: usize = 50;
/// How often queued spans are exported to the OTLP collector: often enough
/// that a trace shows up while an operator is still looking for it.
pub const OTLP_EXPORT_INTERVAL_MS: u64 = 1_000;
/// Longest one export to the collector may take; a collector that is down
/// costs the exporter's thread this, never a request.
pub const OTLP_EXPORT_TIMEOUT_MS: u64 = 5_000;
/// Spans queued for export at most (about 1 KB each); past it, new spans
/// are dropped until the collector catches up, so a collector outage
/// cannot grow the engine's memory.
pub const OTLP_QUEUED_SPANS: usize = 8_192;

/// Client certificates whose TLS configurations and HTTP clients are kept
/// at once (per thread for clients): more than any deployment has
/// destinations with their own certificate, and the cache starts over
/// rather than grow if it is reached.
pub const CLIENT_CERTS_KEPT: usize = 256;

/// Longest `fifo_key` path, and most steps in it: a key names a field of
/// a message, a few steps deep.
pub const FIFO_KEY_BYTES: usize = 256;
pub const FIFO_KEY_STEPS: usize = 16;
/// Most logs of one destination in flight at once, across its lanes
/// (SPEC §18).
pub const MAX_IN_FLIGHT: u8 = 64;
/// Logs of a laned queue looked at, from its front, for lanes to start:
/// past it, logs wait until the ones before them move. A lane blocked
/// behind a longer run of its own logs holds up the lanes behind them,
/// as strict FIFO would; the bound keeps each look at the queue cheap.
pub const LANE_SCAN: usize = 16_384;
/// Most SENDs a cluster node appends in one atomic batch: JetStream takes
/// at most 1,000 messages in one, and a batch decided again after another
/// node came first should stay quick to decide.
pub const SEND_BATCH_MAX: usize = 256;
/// Most bytes of bodies in one batch of SENDs, so that a batch's commit
/// stays well within what a server holds for one.
pub const SEND_BATCH_BYTES_MAX: usize = 4 << 20;
/// Bytes of the newest journal records a cluster node keeps in memory, so
/// that the bodies its actors are about to deliver are not read back from
/// the servers.
pub const CLUSTER_RECENT_BYTES: usize = 64 << 20;
/// How long a cluster node waits for the records of a node that appended
/// before it to reach it, before its write is refused (503).
pub const CLUSTER_ARRIVAL_PATIENCE_MS: u64 = 10_000;
/// How long a cluster node keeps trying a batch the servers did not take
/// (a stream leader being elected after a server was lost) before the
/// SENDs in it are answered 503.
pub const CLUSTER_APPEND_PATIENCE_MS: u64 = 10_000;
