//! Call records in PostgreSQL (a server of the test's own in a temporary directory,
//! `testkit::Postgres`):
//!
//! 1. The same calls written to SQLite and to PostgreSQL give the same statistics, call
//!    lists, call details, not-understood lists and trainers' review, for all hotlines and
//!    for one: the dashboard and the API read either the same way.
//! 2. The writer survives an outage: PostgreSQL stopped mid-stream, events go on arriving
//!    (nothing waits), the buffer holds what it can, the rest is dropped and counted; when the
//!    server is back the writer reconnects by itself, and every event not counted as dropped
//!    is in the database.

use std::sync::Arc;
use std::time::Duration;

use voxnav::ops::db::{Database, Records};
use voxnav::ops::records::{self, RecordEvent, RecordStore, WriterConfig};
use voxnav::ops::review;
use voxnav::ops::stats::{self, Range};
use voxnav::testkit::{Postgres, temp_dir};

/// A day of varied calls on two hotlines: self-service, transfers, abandoned calls, one in
/// progress; intents, knowledge answers, not-understood turns, keypad, survey scores,
/// latencies, callers who call again.
fn day_of_calls() -> Vec<RecordEvent> {
    let mut events = Vec::new();
    let base: u64 = 1_700_000_000_000;
    let callers = ["+15550100", "+15550101", "anonymous", "+15550102"];
    for i in 0..40u64 {
        let call_id = format!("call-{i:02}");
        let started = base + i * 600_000 + i;
        let hotline = if i % 3 == 0 { "ventas" } else { "shop" };
        events.push(RecordEvent::CallStarted {
            call_id: call_id.clone(),
            caller: callers[(i % 4) as usize].into(),
            hotline: hotline.into(),
            dialplan_version: 1 + i / 20,
            started_ms: started,
            server: Some(format!("node-{}", i % 3)),
        });
        let turns: Vec<serde_json::Value> = vec![
            serde_json::json!({"input": "(call start)", "decision": "dialplan", "node": "menu"}),
            match i % 5 {
                0 => serde_json::json!({"input": "where is my order", "decision": "dialplan",
                    "node": "order/ask", "intent": "order_status",
                    "latency": {"voice_to_voice_ms": 600 + i * 7}}),
                1 => serde_json::json!({"input": "purple elephants", "decision": "dialplan",
                    "node": "menu", "reason": "not understood: no intent matched",
                    "latency": {"detected_to_audio_ms": 300 + i, "endpoint_silence_ms": 700}}),
                2 => {
                    serde_json::json!({"input": "what is your returns policy", "decision": "answer",
                    "node": "menu", "kb": "returns", "score": 0.83})
                }
                3 => serde_json::json!({"input": "#dtmf 0", "decision": "transfer",
                    "node": "agent", "intent": "agent"}),
                _ => serde_json::json!({"input": "I want to speak to someone, now!",
                    "decision": "transfer", "node": "agent", "intent": "agent",
                    "reason": "not understood: out of scope"}),
            },
            serde_json::json!({"input": "#dtmf 4", "decision": "end", "node": "survey",
                "survey": 1 + i % 5}),
        ];
        for (k, record) in turns.into_iter().enumerate() {
            events.push(RecordEvent::Turn {
                call_id: call_id.clone(),
                at_ms: started + 1000 * k as u64,
                record,
            });
        }
        if i != 39 {
            let (outcome, reason) = match i % 5 {
                0 | 2 => ("self_served", None),
                3 => ("transferred", Some("caller pressed 0".to_string())),
                4 => ("failed", Some("angry caller".to_string())),
                _ => ("abandoned", None),
            };
            events.push(RecordEvent::CallEnded {
                call_id,
                ended_ms: started + 30_000 + i * 1000,
                outcome: outcome.into(),
                transfer_reason: reason,
            });
        }
    }
    events
}

/// Everything the API reads, from one database, as JSON (compared whole between engines).
fn everything(database: &Database) -> serde_json::Value {
    let range = Range {
        from_ms: 1_700_000_000_000,
        to_ms: 1_700_000_000_000 + 86_400_000,
    };
    let mut db = database.open().unwrap();
    let mut out = serde_json::json!({
        "summary": stats::summary(&mut db, range, 3_600_000).unwrap(),
        "calls": stats::calls(&mut db, range, None, 100).unwrap(),
        "transferred": stats::calls(&mut db, range, Some("transferred"), 5).unwrap(),
        "not_understood": stats::not_understood(&mut db, range, 100).unwrap(),
        "call": stats::call(&mut db, "call-07").unwrap(),
        "in_progress": stats::call(&mut db, "call-39").unwrap(),
        "missed": format!("{:?}", review::missed(&mut db, "shop", range).unwrap()),
    });
    let mut one: Records = database.open().unwrap();
    stats::only_hotline(&mut one, "ventas").unwrap();
    out["ventas"] = serde_json::json!(stats::summary(&mut one, range, 3_600_000).unwrap());
    out["ventas_calls"] = serde_json::json!(stats::calls(&mut one, range, None, 100).unwrap());
    out
}

#[test]
fn postgresql_records_read_exactly_as_sqlite_records_do() {
    let dir = temp_dir("postgres-parity");
    let pg = Postgres::start(&dir);
    let sqlite = Database::Sqlite(dir.join("records.db"));
    let postgres = Database::parse(&pg.url());
    for database in [&sqlite, &postgres] {
        let mut db = database.open().unwrap();
        for event in day_of_calls() {
            records::write(&mut db, &event).unwrap();
        }
    }
    let (a, b) = (everything(&sqlite), everything(&postgres));
    assert_eq!(a["summary"]["calls"], 40, "{}", a["summary"]);
    assert_eq!(a["summary"]["in_progress"], 1);
    assert!(a["summary"]["survey"]["responses"].as_u64().unwrap() > 0);
    assert!(a["summary"]["latency_p50_ms"].as_u64().is_some());
    assert!(!a["not_understood"].as_array().unwrap().is_empty());
    assert_eq!(a["ventas"]["calls"], 14);
    assert_eq!(a["ventas_calls"].as_array().unwrap().len(), 14);
    for key in a.as_object().unwrap().keys() {
        assert_eq!(
            a[key], b[key],
            "{key} differs between SQLite and PostgreSQL"
        );
    }
    // A second open finds the schema applied (nodes starting together take turns).
    let mut again = postgres.open().unwrap();
    let applied = again
        .row("SELECT COUNT(*) FROM voxnav_migrations", &[])
        .unwrap();
    assert_eq!(applied.int(0), 4, "the four schema steps");
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends the events of `n` calls (started, one turn, ended) numbered from `first`.
fn send_calls(store: &RecordStore, first: u64, n: u64) {
    // Started now: older calls would be pruned by the 90-day retention.
    let now = voxnav::ops::live::now_ms();
    for i in first..first + n {
        let call_id = format!("outage-{i:04}");
        store.send(RecordEvent::CallStarted {
            call_id: call_id.clone(),
            caller: "+15550100".into(),
            hotline: "shop".into(),
            dialplan_version: 1,
            started_ms: now + i,
            server: Some("node-a".into()),
        });
        store.send(RecordEvent::Turn {
            call_id: call_id.clone(),
            at_ms: now + i,
            record: serde_json::json!({"input": "(call start)", "decision": "dialplan", "node": "menu"}),
        });
        store.send(RecordEvent::CallEnded {
            call_id,
            ended_ms: now + 100 + i,
            outcome: "abandoned".into(),
            transfer_reason: None,
        });
    }
}

#[test]
fn the_writer_rides_out_a_postgresql_outage_and_counts_what_it_dropped() {
    let dir = temp_dir("postgres-outage");
    let pg = Postgres::start(&dir);
    let database = Database::parse(&pg.url());
    let buffer = 300;
    let config = WriterConfig {
        buffer,
        ..Default::default()
    };
    let store = RecordStore::open(&database, config, Arc::default()).unwrap();
    send_calls(&store, 0, 100);
    assert!(
        store.flush(Duration::from_secs(30)),
        "written before the outage"
    );
    assert_eq!(store.health.written.get(), 300);

    pg.stop();
    // During the outage: 200 calls' events (600) arrive; sending never waits. The writer
    // holds one batch in hand while it reconnects, the buffer takes 300, the rest is dropped.
    let sending = std::time::Instant::now();
    send_calls(&store, 100, 200);
    println!(
        "600 events sent during the outage in {} ms",
        sending.elapsed().as_millis()
    );
    let dropped = store.health.dropped.get();
    assert!(
        (1..=600 - buffer as u64 + 1).contains(&dropped),
        "beyond the buffer, events are dropped and counted: {dropped}"
    );
    assert!(
        !store.flush(Duration::from_millis(500)),
        "nothing is written while it is down"
    );

    pg.start_again();
    assert!(
        store.flush(Duration::from_secs(60)),
        "the writer reconnects by itself and catches up"
    );
    assert!(store.health.is_connected());
    send_calls(&store, 300, 10);
    assert!(store.flush(Duration::from_secs(30)));

    let mut db = database.open().unwrap();
    let events = |db: &mut Records| {
        let calls = db.row("SELECT COUNT(*) FROM calls", &[]).unwrap().int(0);
        let turns = db.row("SELECT COUNT(*) FROM turns", &[]).unwrap().int(0);
        let ended = db
            .row("SELECT COUNT(*) FROM calls WHERE ended_ms IS NOT NULL", &[])
            .unwrap()
            .int(0);
        (calls + turns + ended) as u64
    };
    let stored = events(&mut db);
    let refused = store.health.refused.get();
    println!(
        "outage: {dropped} events dropped, {refused} refused (turns or ends of calls whose \
         start was dropped), {stored} stored of {}",
        (100 + 200 + 10) * 3
    );
    // Every event is stored (and counted as written), dropped (counted) or refused (counted:
    // the turns and ends of calls whose start was dropped): none is lost unseen.
    assert_eq!(store.health.written.get(), stored);
    assert_eq!(stored + dropped + refused, (100 + 200 + 10) * 3);
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}
