//! Call records with transcripts, in SQLite (schema and how to move to PostgreSQL:
//! `docs/records.md`). One row per call, one per turn: each turn's whole decision record
//! (input, intent, decision, node, what was said, latency) as JSON, plus the columns reports
//! filter on.
//!
//! Writing never blocks a call: the call path sends to a channel and a writer thread owns the
//! connection. Every message is its own transaction, committed as it comes, in WAL mode with
//! `synchronous=NORMAL`: a process killed mid-call (even with SIGKILL) keeps every finished
//! turn; only the turn in flight is lost. `retention_days` prunes old calls at start and every
//! hour.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use rusqlite::{Connection, params};

/// The schema (also in `docs/records.md`).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS calls (
    call_id          TEXT PRIMARY KEY,
    caller           TEXT NOT NULL,
    hotline          TEXT NOT NULL,
    dialplan_version INTEGER NOT NULL,
    started_ms       INTEGER NOT NULL,
    ended_ms         INTEGER,
    outcome          TEXT,
    transfer_reason  TEXT
);
CREATE INDEX IF NOT EXISTS calls_by_start ON calls (started_ms);
CREATE TABLE IF NOT EXISTS turns (
    call_id  TEXT NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    at_ms    INTEGER NOT NULL,
    input    TEXT NOT NULL,
    intent   TEXT,
    decision TEXT NOT NULL,
    node     TEXT NOT NULL,
    record   TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);
";

/// What the call path reports.
#[derive(Debug, Clone)]
pub enum RecordEvent {
    CallStarted {
        call_id: String,
        caller: String,
        hotline: String,
        dialplan_version: u64,
        started_ms: u64,
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
}

/// The handle calls write through (cheap to clone).
#[derive(Clone)]
pub struct RecordStore {
    tx: Sender<RecordEvent>,
    pub path: PathBuf,
}

/// Errors opening the database.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("call records {0}: {1}")]
    Open(String, rusqlite::Error),
    #[error("call records {0}: {1}")]
    Folder(String, std::io::Error),
}

/// Opens (creating if needed) the database with the schema, WAL and foreign keys.
pub fn connect(path: &Path) -> Result<Connection, RecordError> {
    let shown = path.display().to_string();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| RecordError::Folder(shown.clone(), e))?;
    }
    let db = Connection::open(path).map_err(|e| RecordError::Open(shown.clone(), e))?;
    db.busy_timeout(Duration::from_secs(5))
        .and_then(|_| {
            db.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
        })
        .and_then(|_| db.execute_batch(SCHEMA))
        .map_err(|e| RecordError::Open(shown, e))?;
    Ok(db)
}

impl RecordStore {
    /// Opens the store and starts its writer thread.
    pub fn open(path: &Path, retention_days: u32) -> Result<Self, RecordError> {
        let db = connect(path)?;
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("voxnav-records".into())
            .spawn(move || write_loop(db, rx, retention_days))
            .map_err(|e| RecordError::Folder(path.display().to_string(), e))?;
        Ok(Self {
            tx,
            path: path.to_path_buf(),
        })
    }

    /// Queues an event for the writer (never blocks).
    pub fn send(&self, event: RecordEvent) {
        let _ = self.tx.send(event);
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
            _ => {}
        }
    }
}

fn write_loop(db: Connection, rx: Receiver<RecordEvent>, retention_days: u32) {
    let prune = |db: &Connection| {
        let cutoff = super::live::now_ms().saturating_sub(u64::from(retention_days) * 86_400_000);
        if let Err(e) = db.execute("DELETE FROM calls WHERE started_ms < ?1", [cutoff as i64]) {
            tracing::error!("pruning call records failed: {e}");
        }
    };
    prune(&db);
    let mut last_prune = std::time::Instant::now();
    loop {
        let event = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(e) => e,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if last_prune.elapsed() > Duration::from_secs(3600) {
                    prune(&db);
                    last_prune = std::time::Instant::now();
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Err(e) = write(&db, &event) {
            tracing::error!("writing a call record failed: {e}");
        }
    }
}

/// Writes one event as the writer thread does (tests write records synchronously with it).
pub fn write(db: &Connection, event: &RecordEvent) -> rusqlite::Result<usize> {
    match event {
        RecordEvent::CallStarted {
            call_id,
            caller,
            hotline,
            dialplan_version,
            started_ms,
        } => db.execute(
            "INSERT OR REPLACE INTO calls (call_id, caller, hotline, dialplan_version, started_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                call_id,
                caller,
                hotline,
                *dialplan_version as i64,
                *started_ms as i64
            ],
        ),
        RecordEvent::Turn {
            call_id,
            at_ms,
            record,
        } => {
            let text = |k: &str| record[k].as_str().unwrap_or_default().to_string();
            db.execute(
                "INSERT INTO turns (call_id, seq, at_ms, input, intent, decision, node, record) \
                 VALUES (?1, (SELECT COUNT(*) FROM turns WHERE call_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    call_id,
                    *at_ms as i64,
                    text("input"),
                    record["intent"].as_str(),
                    text("decision"),
                    text("node"),
                    record.to_string()
                ],
            )
        }
        RecordEvent::CallEnded {
            call_id,
            ended_ms,
            outcome,
            transfer_reason,
        } => db.execute(
            "UPDATE calls SET ended_ms = ?2, outcome = ?3, transfer_reason = ?4 WHERE call_id = ?1",
            params![call_id, *ended_ms as i64, outcome, transfer_reason],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let store = RecordStore::open(&path, 30).unwrap();
        store.send(RecordEvent::CallStarted {
            call_id: "c1".into(),
            caller: "<sip:alice@192.0.2.1>".into(),
            hotline: "demo".into(),
            dialplan_version: 2,
            started_ms: super::super::live::now_ms(),
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
        // The writer is asynchronous: read until it has caught up.
        let db = connect(&path).unwrap();
        let mut outcome = None;
        for _ in 0..100 {
            outcome = db
                .query_row("SELECT outcome FROM calls WHERE call_id = 'c1'", [], |r| {
                    r.get::<_, Option<String>>(0)
                })
                .ok()
                .flatten();
            if outcome.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(outcome.as_deref(), Some("self_served"));
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
}
