//! Call records with transcripts, in SQLite or PostgreSQL (`ops::db`; schema and the choice
//! between them: `docs/records.md`). One row per call, one per turn: each turn's whole
//! decision record (input, intent, decision, node, what was said, latency) as JSON, plus the
//! columns reports filter on.
//!
//! Writing never blocks a call: the call path puts events in a bounded buffer (a channel) and
//! a writer thread owns the connection. The writer commits whatever has arrived in one
//! transaction as soon as it arrives (one event when calls are few), so a process killed
//! mid-call (even with SIGKILL) keeps every finished turn; only the turn in flight is lost.
//! When the database is down the writer keeps the batch in hand and reconnects with back-off;
//! the buffer fills meanwhile, and once it is full new events are dropped, counted
//! (`voxnav_records_lost_total`) and logged, never waited for. `retention_days` prunes old
//! calls at start and every hour.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use super::db::{Database, DbError, Records, Value};

/// Events the buffer holds while the writer is behind or the database is down: at five
/// events a call, minutes of a busy node's calls.
pub const DEFAULT_BUFFER: usize = 50_000;

/// What the call path reports.
#[derive(Debug, Clone)]
pub enum RecordEvent {
    CallStarted {
        call_id: String,
        caller: String,
        hotline: String,
        dialplan_version: u64,
        started_ms: u64,
        /// The server that answered (`server_name:` in the config).
        server: Option<String>,
    },
    /// One decision record (`voxnav: decision` JSON).
    Turn {
        call_id: String,
        at_ms: u64,
        record: serde_json::Value,
    },
    CallEnded {
        call_id: String,
        ended_ms: u64,
        outcome: String,
        transfer_reason: Option<String>,
    },
    /// The call's transfer was answered by an agent of a queue after this wait.
    CallQueue {
        call_id: String,
        queue: String,
        agent: String,
        waited_ms: u64,
    },
    /// The agent's wrap-up of a call.
    WrapUp {
        call_id: String,
        agent: String,
        code: String,
        notes: String,
        at_ms: u64,
    },
    /// An agent's state changed.
    AgentState {
        agent: String,
        state: String,
        at_ms: u64,
        server: Option<String>,
    },
}

/// How the writer is doing: counters shared with the metrics (`Metrics::records_health`).
#[derive(Debug, Default)]
pub struct WriterHealth {
    /// Events written.
    pub written: Counter,
    /// Events dropped because the buffer was full.
    pub dropped: Counter,
    /// Events the database refused (a turn whose call was dropped, say).
    pub refused: Counter,
    /// 1 while the writer's connection is up.
    pub connected: Gauge<i64, AtomicI64>,
    /// Dropping has begun and was logged; cleared when the writer catches up.
    dropping: AtomicBool,
}

impl WriterHealth {
    pub fn new(
        written: Counter,
        dropped: Counter,
        refused: Counter,
        connected: Gauge<i64, AtomicI64>,
    ) -> Self {
        Self {
            written,
            dropped,
            refused,
            connected,
            dropping: AtomicBool::new(false),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.get() == 1
    }

    fn set_connected(&self, up: bool) {
        self.connected.set(i64::from(up));
    }
}

/// The handle calls write through (cheap to clone).
#[derive(Clone)]
pub struct RecordStore {
    tx: SyncSender<Message>,
    pub database: Database,
    pub health: Arc<WriterHealth>,
    /// This server's name, written with each call it answers.
    server: Option<String>,
}

/// How the writer keeps the records.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Calls older than this are pruned, at start and hourly.
    pub retention_days: u32,
    /// Events held while the database is down or slow; beyond it they are dropped (counted).
    pub buffer: usize,
    /// This server's name (records shared by several nodes tell them apart).
    pub server: Option<String>,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            retention_days: 90,
            buffer: DEFAULT_BUFFER,
            server: None,
        }
    }
}

enum Message {
    Event(RecordEvent),
    /// Answered once everything sent before it is written (or given up on).
    Flush(std::sync::mpsc::Sender<()>),
}

/// Errors opening the records.
#[derive(Debug, thiserror::Error)]
#[error("call records {database}: {error}")]
pub struct RecordError {
    database: String,
    error: DbError,
}

/// Opens a SQLite records file (creating it and its folder if needed) with the schema: for
/// tools and tests that read or write the records directly.
pub fn connect(path: &std::path::Path) -> Result<rusqlite::Connection, RecordError> {
    let database = Database::Sqlite(path.to_path_buf());
    match database.open() {
        Ok(Records::Sqlite(db)) => Ok(db),
        Ok(Records::Postgres(_)) => unreachable!("a path opens SQLite"),
        Err(error) => Err(RecordError {
            database: database.to_string(),
            error,
        }),
    }
}

impl RecordStore {
    /// Opens the store and starts its writer thread. A SQLite file that cannot be opened is an
    /// error; a PostgreSQL server that does not answer yet is not (the writer connects when
    /// it does, and calls go on meanwhile).
    pub fn open(
        database: &Database,
        config: WriterConfig,
        health: Arc<WriterHealth>,
    ) -> Result<Self, RecordError> {
        let first = match database.open() {
            Ok(db) => Some(db),
            Err(error) if database.is_postgres() && error.is_connection() => {
                tracing::error!("call records {database}: {error}; retrying in the background");
                None
            }
            Err(error) => {
                return Err(RecordError {
                    database: database.to_string(),
                    error,
                });
            }
        };
        let (tx, rx) = sync_channel(config.buffer.max(1));
        health.set_connected(first.is_some());
        let writer = Writer {
            database: database.clone(),
            db: first,
            health: health.clone(),
            retention_days: config.retention_days,
            last_prune: None,
        };
        std::thread::Builder::new()
            .name("voxnav-records".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| RecordError {
                database: database.to_string(),
                error: DbError::Folder("(writer thread)".into(), e),
            })?;
        Ok(Self {
            tx,
            database: database.clone(),
            health,
            server: config.server,
        })
    }

    /// Queues an event for the writer, never waiting: with the buffer full it is dropped,
    /// counted, and the first drop of an episode logged.
    pub fn send(&self, event: RecordEvent) {
        match self.tx.try_send(Message::Event(event)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.health.dropped.inc();
                if !self.health.dropping.swap(true, Ordering::AcqRel) {
                    tracing::error!(
                        "call records {}: the write buffer is full (the database is down or \
                         slow); records are being dropped and counted until it catches up",
                        self.database
                    );
                }
            }
        }
    }

    /// Waits (up to `timeout`) until everything sent so far is written or given up on: at
    /// shutdown, so a drained node's last calls reach the database. False on timeout.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = std::sync::mpsc::channel();
        let deadline = Instant::now() + timeout;
        // The buffer may be full: keep offering the marker until the deadline.
        let mut marker = Message::Flush(done);
        loop {
            match self.tx.try_send(marker) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    marker = m;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        wait.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

/// Call records are kept by observing the server's reports: the call row at its start,
/// every decision record as a turn, the outcome at the end.
impl crate::report::Observer for RecordStore {
    fn observe(&self, report: &crate::report::Report) {
        use crate::report::Report;
        let now = super::live::now_ms();
        match report {
            Report::CallStarted {
                call_id,
                caller,
                hotline,
                dialplan_version,
            } => self.send(RecordEvent::CallStarted {
                call_id: call_id.clone(),
                caller: caller.clone(),
                hotline: hotline.clone(),
                dialplan_version: *dialplan_version,
                started_ms: now,
                server: self.server.clone(),
            }),
            Report::Turn {
                call_id, record, ..
            } => self.send(RecordEvent::Turn {
                call_id: call_id.clone(),
                at_ms: now,
                record: record.clone(),
            }),
            Report::CallEnded {
                call_id,
                outcome,
                transfer_reason,
                ..
            } => self.send(RecordEvent::CallEnded {
                call_id: call_id.clone(),
                ended_ms: now,
                outcome: outcome.name().into(),
                transfer_reason: transfer_reason.clone(),
            }),
            Report::QueueAnswered {
                call_id,
                queue,
                agent,
                waited,
            } => self.send(RecordEvent::CallQueue {
                call_id: call_id.clone(),
                queue: queue.clone(),
                agent: agent.clone(),
                waited_ms: waited.as_millis() as u64,
            }),
            Report::WrapUp {
                call_id,
                agent,
                code,
                notes,
            } => self.send(RecordEvent::WrapUp {
                call_id: call_id.clone(),
                agent: agent.clone(),
                code: code.clone(),
                notes: notes.clone(),
                at_ms: now,
            }),
            Report::AgentState { agent, state } => self.send(RecordEvent::AgentState {
                agent: agent.clone(),
                state: state.to_string(),
                at_ms: now,
                server: self.server.clone(),
            }),
            _ => {}
        }
    }
}

/// The most events one transaction carries.
const BATCH: usize = 500;
/// Reconnection back-off: from the first to the last, doubling.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The writer thread's state.
struct Writer {
    database: Database,
    db: Option<Records>,
    health: Arc<WriterHealth>,
    retention_days: u32,
    last_prune: Option<Instant>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Message>) {
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(m) => take(m, &mut batch, &mut flushes),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => take(m, &mut batch, &mut flushes),
                    Err(_) => break,
                }
            }
            // A batch short of the limit emptied the buffer: the writer has caught up.
            let caught_up = batch.len() < BATCH;
            self.write_all(&batch);
            batch.clear();
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
            if caught_up && self.health.dropping.load(Ordering::Acquire) {
                self.health.dropping.store(false, Ordering::Release);
                tracing::warn!(
                    "call records {}: writing again; {} records were dropped in all",
                    self.database,
                    self.health.dropped.get()
                );
            }
            self.prune_if_due();
        }
    }

    /// Writes a batch, reconnecting for as long as the database is down.
    fn write_all(&mut self, batch: &[RecordEvent]) {
        let mut pending = batch;
        let mut wait = RETRY_FIRST;
        let mut logged = false;
        while !pending.is_empty() {
            if !self.connect(&mut logged) {
                std::thread::sleep(wait);
                wait = (wait * 2).min(RETRY_MAX);
                continue;
            }
            let Some(db) = self.db.as_mut() else {
                continue;
            };
            let failed = match write_batch(db, pending) {
                Ok(()) => {
                    self.health.written.inc_by(pending.len() as u64);
                    return;
                }
                Err(e) if e.is_connection() => e,
                // A statement refused: write the events one by one so only the bad ones are
                // lost, and say so (the first one's reason, and how many).
                Err(_) => {
                    let (mut refused, mut first) = (0, None);
                    let mut gone = None;
                    for (i, event) in pending.iter().enumerate() {
                        match write(db, event) {
                            Ok(()) => {
                                self.health.written.inc();
                            }
                            Err(e) if e.is_connection() => {
                                gone = Some((i, e));
                                break;
                            }
                            Err(e) => {
                                refused += 1;
                                first.get_or_insert(e);
                            }
                        }
                    }
                    self.health.refused.inc_by(refused);
                    if let Some(e) = first {
                        tracing::error!(
                            "call records {}: {refused} event(s) refused, the first: {e}",
                            self.database
                        );
                    }
                    match gone {
                        // Gone mid-way: the rest waits for the next connection.
                        Some((i, e)) => {
                            pending = &pending[i..];
                            e
                        }
                        None => return,
                    }
                }
            };
            if !logged {
                tracing::error!("call records {}: {failed}; reconnecting", self.database);
                logged = true;
            }
            self.db = None;
            self.health.set_connected(false);
        }
    }

    /// Reconnects if there is no connection; whether there is one now.
    fn connect(&mut self, logged: &mut bool) -> bool {
        if self.db.is_none() {
            match self.database.open() {
                Ok(db) => {
                    if *logged || !self.health.is_connected() {
                        tracing::warn!("call records {}: connected", self.database);
                    }
                    self.db = Some(db);
                    self.health.set_connected(true);
                }
                Err(e) => {
                    if !*logged {
                        tracing::error!("call records {}: {e}; retrying", self.database);
                        *logged = true;
                    }
                    return false;
                }
            }
        }
        true
    }

    fn prune_if_due(&mut self) {
        if self
            .last_prune
            .is_some_and(|at| at.elapsed() < Duration::from_secs(3600))
        {
            return;
        }
        let Some(db) = self.db.as_mut() else {
            return;
        };
        self.last_prune = Some(Instant::now());
        let cutoff =
            super::live::now_ms().saturating_sub(u64::from(self.retention_days) * 86_400_000);
        if let Err(e) = db.execute("DELETE FROM calls WHERE started_ms < ?1", &[cutoff.into()]) {
            tracing::error!("pruning call records failed: {e}");
        }
    }
}

fn take(m: Message, batch: &mut Vec<RecordEvent>, flushes: &mut Vec<std::sync::mpsc::Sender<()>>) {
    match m {
        Message::Event(e) => batch.push(e),
        Message::Flush(done) => flushes.push(done),
    }
}

/// Writes events in one transaction.
fn write_batch(db: &mut Records, batch: &[RecordEvent]) -> Result<(), DbError> {
    if batch.len() == 1 {
        return write(db, &batch[0]);
    }
    db.batch("BEGIN")?;
    for event in batch {
        if let Err(e) = write(db, event) {
            let _ = db.batch("ROLLBACK");
            return Err(e);
        }
    }
    db.batch("COMMIT")
}

/// Writes one event as the writer thread does (tests write records synchronously with it).
/// The statements are the same on SQLite and PostgreSQL.
pub fn write(db: &mut Records, event: &RecordEvent) -> Result<(), DbError> {
    match event {
        RecordEvent::CallStarted {
            call_id,
            caller,
            hotline,
            dialplan_version,
            started_ms,
            server,
        } => db.execute(
            "INSERT INTO calls (call_id, caller, hotline, dialplan_version, started_ms, server) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (call_id) DO UPDATE SET caller = excluded.caller, \
             hotline = excluded.hotline, dialplan_version = excluded.dialplan_version, \
             started_ms = excluded.started_ms, server = excluded.server",
            &[
                call_id.into(),
                caller.into(),
                hotline.into(),
                (*dialplan_version).into(),
                (*started_ms).into(),
                server.as_ref().into(),
            ],
        ),
        RecordEvent::Turn {
            call_id,
            at_ms,
            record,
        } => {
            let text = |k: &str| Value::Text(record[k].as_str().unwrap_or_default().into());
            db.execute(
                "INSERT INTO turns (call_id, seq, at_ms, input, intent, decision, node, record) \
                 VALUES (?1, (SELECT COUNT(*) FROM turns WHERE call_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7)",
                &[
                    call_id.into(),
                    (*at_ms).into(),
                    text("input"),
                    record["intent"].as_str().into(),
                    text("decision"),
                    text("node"),
                    Value::Json(record.clone()),
                ],
            )
        }
        RecordEvent::CallEnded {
            call_id,
            ended_ms,
            outcome,
            transfer_reason,
        } => {
            let changed = db.execute(
                "UPDATE calls SET ended_ms = ?2, outcome = ?3, transfer_reason = ?4 WHERE call_id = ?1",
                &[
                    call_id.into(),
                    (*ended_ms).into(),
                    outcome.into(),
                    transfer_reason.as_ref().into(),
                ],
            )?;
            if changed == 0 {
                return Err(DbError::NoRow(format!(
                    "no call {call_id} to end (its start was never stored)"
                )));
            }
            Ok(1)
        }
        RecordEvent::CallQueue {
            call_id,
            queue,
            agent,
            waited_ms,
        } => db.execute(
            "UPDATE calls SET queue = ?2, agent = ?3, queue_wait_ms = ?4 WHERE call_id = ?1",
            &[
                call_id.into(),
                queue.into(),
                agent.into(),
                (*waited_ms).into(),
            ],
        ),
        // Only the agent who answered the call wraps it up.
        RecordEvent::WrapUp {
            call_id,
            agent,
            code,
            notes,
            at_ms,
        } => db.execute(
            "UPDATE calls SET wrap_up_code = ?3, wrap_up_notes = ?4, wrap_up_ms = ?5 \
             WHERE call_id = ?1 AND agent = ?2",
            &[
                call_id.into(),
                agent.into(),
                code.into(),
                notes.into(),
                (*at_ms).into(),
            ],
        ),
        RecordEvent::AgentState {
            agent,
            state,
            at_ms,
            server,
        } => db.execute(
            "INSERT INTO agent_states (agent, state, at_ms, server) VALUES (?1, ?2, ?3, ?4)",
            &[
                agent.into(),
                state.into(),
                (*at_ms).into(),
                server.as_ref().into(),
            ],
        ),
    }
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_part_of_a_call_and_agent_states_are_recorded() {
        let mut db = Database::in_memory();
        for event in [
            RecordEvent::CallStarted {
                call_id: "q1".into(),
                caller: "5551234".into(),
                hotline: "desk".into(),
                dialplan_version: 1,
                started_ms: 1000,
                server: None,
            },
            RecordEvent::AgentState {
                agent: "alice".into(),
                state: "ringing".into(),
                at_ms: 1500,
                server: Some("node-1".into()),
            },
            RecordEvent::CallQueue {
                call_id: "q1".into(),
                queue: "general".into(),
                agent: "alice".into(),
                waited_ms: 4200,
            },
            RecordEvent::AgentState {
                agent: "alice".into(),
                state: "on_call".into(),
                at_ms: 1600,
                server: Some("node-1".into()),
            },
            // Only the agent who answered may wrap it up.
            RecordEvent::WrapUp {
                call_id: "q1".into(),
                agent: "bob".into(),
                code: "spam".into(),
                notes: String::new(),
                at_ms: 1700,
            },
            RecordEvent::WrapUp {
                call_id: "q1".into(),
                agent: "alice".into(),
                code: "resolved".into(),
                notes: "refund explained".into(),
                at_ms: 1800,
            },
        ] {
            write(&mut db, &event).unwrap();
        }
        let call = crate::ops::stats::call(&mut db, "q1").unwrap().unwrap();
        assert_eq!(
            (
                call.call.queue.as_deref(),
                call.call.agent.as_deref(),
                call.call.queue_wait_ms
            ),
            (Some("general"), Some("alice"), Some(4200))
        );
        assert_eq!(
            (
                call.call.wrap_up_code.as_deref(),
                call.call.wrap_up_notes.as_deref()
            ),
            (Some("resolved"), Some("refund explained"))
        );
        let states = db
            .rows(
                "SELECT state, at_ms, server FROM agent_states WHERE agent = ?1 ORDER BY at_ms",
                &["alice".into()],
            )
            .unwrap();
        let states: Vec<(String, i64)> = states.iter().map(|r| (r.text(0), r.int(1))).collect();
        assert_eq!(
            states,
            [("ringing".to_string(), 1500), ("on_call".to_string(), 1600)]
        );
    }

    #[test]
    fn calls_and_turns_are_written_in_order_and_old_calls_pruned() {
        let dir = std::env::temp_dir().join(format!("voxnav-records-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("r.db");
        {
            let db = connect(&path).unwrap();
            // A call from 40 days ago: pruned at open with 30 days of retention.
            db.execute(
                "INSERT INTO calls (call_id, caller, hotline, dialplan_version, started_ms) VALUES ('old', 'x', 'h', 1, 1000)",
                [],
            )
            .unwrap();
        }
        let config = WriterConfig {
            retention_days: 30,
            server: Some("node-a".into()),
            ..Default::default()
        };
        let store =
            RecordStore::open(&Database::Sqlite(path.clone()), config, Arc::default()).unwrap();
        store.send(RecordEvent::CallStarted {
            call_id: "c1".into(),
            caller: "<sip:alice@192.0.2.1>".into(),
            hotline: "demo".into(),
            dialplan_version: 2,
            started_ms: super::super::live::now_ms(),
            server: Some("node-a".into()),
        });
        for (input, decision) in [
            ("(call start)", "dialplan"),
            ("where is my order", "answer"),
        ] {
            store.send(RecordEvent::Turn {
                call_id: "c1".into(),
                at_ms: 5,
                record: serde_json::json!({"input": input, "decision": decision, "node": "menu", "intent": null}),
            });
        }
        store.send(RecordEvent::CallEnded {
            call_id: "c1".into(),
            ended_ms: 9,
            outcome: "self_served".into(),
            transfer_reason: None,
        });
        // The writer is asynchronous: a flush waits until it has caught up.
        assert!(store.flush(Duration::from_secs(10)));
        assert_eq!(store.health.written.get(), 4);
        let db = connect(&path).unwrap();
        let (outcome, server): (Option<String>, Option<String>) = db
            .query_row(
                "SELECT outcome, server FROM calls WHERE call_id = 'c1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(outcome.as_deref(), Some("self_served"));
        assert_eq!(server.as_deref(), Some("node-a"));
        let turns: Vec<(i64, String)> = db
            .prepare("SELECT seq, input FROM turns WHERE call_id = 'c1' ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            turns,
            [(0, "(call start)".into()), (1, "where is my order".into())]
        );
        let old: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM calls WHERE call_id = 'old'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old, 0, "pruned by retention");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn with_the_database_down_events_beyond_the_buffer_are_dropped_and_counted_not_waited_for() {
        // Nothing listens on port 1: every connection is refused at once.
        let down = Database::parse("postgres://voxnav@127.0.0.1:1/records");
        let config = WriterConfig {
            buffer: 4,
            ..Default::default()
        };
        let store = RecordStore::open(&down, config, Arc::default()).unwrap();
        assert!(!store.health.is_connected());
        for i in 0..10 {
            store.send(RecordEvent::CallEnded {
                call_id: format!("c{i}"),
                ended_ms: 1,
                outcome: "abandoned".into(),
                transfer_reason: None,
            });
        }
        // The writer holds at most what was buffered when it took its batch (4) plus the one
        // that woke it; the buffer holds 4 more: at least one of ten was dropped.
        let dropped = store.health.dropped.get();
        assert!((1..=10).contains(&dropped), "{dropped}");
        assert_eq!(store.health.written.get(), 0);
        // A flush cannot complete while the database is down, and says so.
        assert!(!store.flush(Duration::from_millis(200)));
    }
}
