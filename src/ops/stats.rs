//! Reports over the call records (`ops::records`): what a contact-centre manager reads every
//! day. All queries take a time range on the call's start (Unix ms, `from` inclusive, `to`
//! exclusive) and only read; they run on their own connection (WAL lets them read while the
//! writer thread writes).
//!
//! Definitions (also in `docs/ops.md`):
//! - **containment (self-service) rate**: self-served calls / ended calls;
//! - **transfer rate**: calls that reached an agent / ended calls; `failed` calls needed a human
//!   but none answered and are counted apart;
//! - **average handling time**: mean of (ended - started) over ended calls;
//! - **drop-off** per node: of the calls that reached the node, how many were abandoned with it
//!   as their last turn's node;
//! - **not understood**: caller turns whose decision says "not understood" (no intent matched,
//!   or one the ask did not expect), spoken ones only (keypad and timers excluded);
//! - **satisfaction**: the survey scores given (a `rating` slot, the decision record's
//!   `survey`), their mean and count per score;
//! - **first-contact resolution**: of the ended calls from a known number (not `anonymous`)
//!   that asked about something (an intent other than `agent`/`goodbye`, or a knowledge
//!   entry), the share whose caller did not call again about any of the same things within
//!   `FCR_WINDOW_DAYS` days; a call younger than the window counts as resolved until a repeat
//!   comes;
//! - **voice-to-voice latency** (server side): the caller's last voiced frame -> first reply
//!   audio, from each timed turn's `latency` record (`voice_to_voice_ms`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::db::{DbError, Records, Row, Value};

/// A time range on the calls' start, in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Range {
    pub from_ms: u64,
    pub to_ms: u64,
}

/// Outcome counts of the ended calls.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    pub self_served: u64,
    pub transferred: u64,
    pub failed: u64,
    pub abandoned: u64,
}

/// A name with a count (transfer reasons, intents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    pub name: String,
    pub count: u64,
}

/// Drop-off at one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeDropOff {
    pub node: String,
    /// Calls with at least one turn at this node.
    pub reached: u64,
    /// Abandoned calls whose last turn was at this node.
    pub abandoned: u64,
    pub drop_off_rate: f64,
}

/// The survey answers of a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Survey {
    pub responses: u64,
    pub average: Option<f64>,
    /// How many gave each score, by score.
    pub by_score: Vec<Count>,
}

/// First-contact resolution of a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirstContact {
    pub window_days: u64,
    /// Ended calls from a known number about something.
    pub judged: u64,
    /// Of those, calls not followed by another about the same thing within the window.
    pub resolved: u64,
    pub rate: Option<f64>,
}

/// A repeat call within this many days means the first did not resolve its matter.
pub const FCR_WINDOW_DAYS: u64 = 7;

/// One time bucket of the series the dashboard charts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub start_ms: u64,
    pub calls: u64,
    pub containment_rate: Option<f64>,
    pub transfer_rate: Option<f64>,
    pub latency_p50_ms: Option<u64>,
    pub latency_p95_ms: Option<u64>,
}

/// The statistics of a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub range: Range,
    pub calls: u64,
    pub in_progress: u64,
    pub ended: u64,
    pub outcomes: Outcomes,
    pub containment_rate: Option<f64>,
    pub transfer_rate: Option<f64>,
    pub transfer_reasons: Vec<Count>,
    pub intents: Vec<Count>,
    pub average_handling_time_s: Option<f64>,
    pub caller_turns: u64,
    pub not_understood_turns: u64,
    pub not_understood_rate: Option<f64>,
    pub latency_p50_ms: Option<u64>,
    pub latency_p95_ms: Option<u64>,
    pub drop_off: Vec<NodeDropOff>,
    pub survey: Survey,
    pub first_contact: FirstContact,
    pub series: Vec<Bucket>,
}

/// One call in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRow {
    pub call_id: String,
    pub caller: String,
    pub hotline: String,
    pub dialplan_version: u64,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub outcome: Option<String>,
    pub transfer_reason: Option<String>,
    pub turns: u64,
    /// The voxnav server that answered it (records shared by several nodes).
    pub server: Option<String>,
    /// The queue of the agents file its transfer went to, the agent who answered and how
    /// long the caller waited (None: no agent answered a queued transfer).
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub queue_wait_ms: Option<u64>,
    /// The agent's wrap-up on the desktop: a code and notes (None: not wrapped up).
    pub wrap_up_code: Option<String>,
    pub wrap_up_notes: Option<String>,
}

/// One call with every turn's decision record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallDetail {
    #[serde(flatten)]
    pub call: CallRow,
    pub turns: Vec<serde_json::Value>,
}

/// A caller utterance the bot did not understand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotUnderstood {
    pub call_id: String,
    pub at_ms: u64,
    pub node: String,
    pub text: String,
    pub reason: String,
}

/// Reading the records failed.
#[derive(Debug, thiserror::Error)]
#[error("reading call records: {0}")]
pub struct StatsError(#[from] DbError);

/// Spoken turns (not keypad entries `#dtmf ...`, not events like `(no input)`,
/// `(call start)`, `(backend reply)`), of a query aliasing turns as `t`.
pub(super) const SPOKEN: &str = "t.input NOT LIKE '#dtmf%' AND t.input NOT LIKE '(%'";

/// The condition "the turn was not understood", of a query aliasing turns as `t`.
fn not_understood_sql(db: &Records) -> String {
    format!(
        "{} LIKE 'not understood%'",
        db.json_text("t.record", &["reason"])
    )
}

/// Narrows `db` (a connection of its own) to one hotline's calls ([`Records::only_hotline`]):
/// every statistic below is then computed the same way for one hotline as for all (each
/// query that reads turns joins them to `calls`).
pub fn only_hotline(db: &mut Records, hotline: &str) -> Result<(), StatsError> {
    Ok(db.only_hotline(hotline)?)
}

/// The `(from, to)` parameters of a range.
fn span(range: Range) -> [Value; 2] {
    [range.from_ms.into(), range.to_ms.into()]
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Server-side voice-to-voice latencies of the timed turns of calls started in the range,
/// with the start of their call: (call started_ms, latency ms).
fn latencies(db: &mut Records, range: Range) -> Result<Vec<(u64, u64)>, StatsError> {
    let number = |path: &[&str]| db.json_number("t.record", path);
    // `voice_to_voice_ms` since the call session; records of the first version kept the
    // fixed endpoint silence beside detected-to-audio instead.
    let sql = format!(
        "SELECT started_ms, v2v FROM (\
             SELECT c.started_ms, COALESCE({}, {} + {}) AS v2v \
             FROM turns t JOIN calls c USING (call_id) \
             WHERE c.started_ms >= ?1 AND c.started_ms < ?2) AS timed \
         WHERE v2v IS NOT NULL",
        number(&["latency", "voice_to_voice_ms"]),
        number(&["latency", "detected_to_audio_ms"]),
        number(&["latency", "endpoint_silence_ms"]),
    );
    let rows = db.rows(&sql, &span(range))?;
    Ok(rows.iter().map(|r| (r.count(0), r.count(1))).collect())
}

/// (name, count) rows, most first, then by name (in Rust: SQL's text order follows the
/// database's collation, which differs between engines).
fn counts(db: &mut Records, sql: &str, range: Range) -> Result<Vec<Count>, StatsError> {
    let rows = db.rows(sql, &span(range))?;
    let mut counts: Vec<Count> = (rows.iter())
        .map(|r| Count {
            name: r.text(0),
            count: r.count(1),
        })
        .collect();
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    Ok(counts)
}

fn survey(db: &mut Records, range: Range) -> Result<Survey, StatsError> {
    let sql = format!(
        "SELECT score, COUNT(*) FROM (\
             SELECT {} AS score FROM turns t JOIN calls c USING (call_id) \
             WHERE c.started_ms >= ?1 AND c.started_ms < ?2) AS answers \
         WHERE score IS NOT NULL GROUP BY score",
        db.json_text("t.record", &["survey"])
    );
    let mut by_score = counts(db, &sql, range)?;
    by_score.sort_by(|a, b| {
        let score = |c: &Count| c.name.parse::<f64>().unwrap_or(f64::MAX);
        score(a)
            .total_cmp(&score(b))
            .then_with(|| a.name.cmp(&b.name))
    });
    let responses: u64 = by_score.iter().map(|c| c.count).sum();
    let total: f64 = (by_score.iter())
        .map(|c| c.name.parse::<f64>().unwrap_or(0.0) * c.count as f64)
        .sum();
    Ok(Survey {
        responses,
        average: (responses > 0).then(|| total / responses as f64),
        by_score,
    })
}

/// A call from a known number and what it was about.
struct CallTopics {
    caller: String,
    started_ms: u64,
    ended: bool,
    /// Its intents (not the handlers' `agent` and `goodbye`) and knowledge entries, as
    /// `intent` and `kb:id`.
    topics: Vec<String>,
}

/// The calls from known numbers started in [`from_ms`, `to_ms`), by id.
fn topics_of_calls(
    db: &mut Records,
    from_ms: u64,
    to_ms: u64,
) -> Result<BTreeMap<String, CallTopics>, StatsError> {
    let mut calls: BTreeMap<String, CallTopics> = BTreeMap::new();
    let sql = format!(
        "SELECT c.call_id, c.caller, c.started_ms, c.ended_ms, t.intent, {} \
         FROM calls c LEFT JOIN turns t USING (call_id) \
         WHERE c.started_ms >= ?1 AND c.started_ms < ?2 AND c.caller != 'anonymous'",
        db.json_text("t.record", &["kb"])
    );
    for r in db.rows(&sql, &[from_ms.into(), to_ms.into()])? {
        let call = calls.entry(r.text(0)).or_insert_with(|| CallTopics {
            caller: r.text(1),
            started_ms: r.count(2),
            ended: r.opt_int(3).is_some(),
            topics: Vec::new(),
        });
        let topic = match (r.opt_text(4), r.opt_text(5)) {
            (Some(i), _) if i != "agent" && i != "goodbye" => Some(i),
            (_, Some(k)) => Some(format!("kb:{k}")),
            _ => None,
        };
        if let Some(t) = topic
            && !call.topics.contains(&t)
        {
            call.topics.push(t);
        }
    }
    Ok(calls)
}

fn first_contact(db: &mut Records, range: Range) -> Result<FirstContact, StatsError> {
    let window_ms = FCR_WINDOW_DAYS * 86_400_000;
    // Later calls up to a window past the range can reveal a repeat.
    let calls = topics_of_calls(db, range.from_ms, range.to_ms.saturating_add(window_ms))?;
    // Each caller's calls, oldest first: a repeat is only ever among the same number's.
    let mut by_caller: BTreeMap<&str, Vec<&CallTopics>> = BTreeMap::new();
    for call in calls.values() {
        by_caller.entry(&call.caller).or_default().push(call);
    }
    let (mut judged, mut resolved) = (0, 0);
    for calls in by_caller.values_mut() {
        calls.sort_by_key(|c| c.started_ms);
        for (i, call) in calls.iter().enumerate() {
            if call.started_ms >= range.to_ms || !call.ended || call.topics.is_empty() {
                continue;
            }
            judged += 1;
            let repeated = (calls[i + 1..].iter())
                .take_while(|later| later.started_ms <= call.started_ms + window_ms)
                .any(|later| {
                    later.started_ms > call.started_ms
                        && later.topics.iter().any(|t| call.topics.contains(t))
                });
            resolved += u64::from(!repeated);
        }
    }
    Ok(FirstContact {
        window_days: FCR_WINDOW_DAYS,
        judged,
        resolved,
        rate: rate(resolved, judged),
    })
}

/// The statistics of calls started in `range`, with a series in buckets of `bucket_ms`.
pub fn summary(db: &mut Records, range: Range, bucket_ms: u64) -> Result<Summary, StatsError> {
    let bucket_ms = bucket_ms.max(1);
    let mut outcomes = Outcomes::default();
    let (mut calls, mut in_progress, mut handling_ms) = (0u64, 0u64, 0u64);
    // Per bucket: (calls, ended, self-served, transferred).
    let mut buckets: BTreeMap<u64, [u64; 4]> = BTreeMap::new();
    {
        let rows = db.rows(
            "SELECT started_ms, ended_ms, outcome FROM calls WHERE started_ms >= ?1 AND started_ms < ?2",
            &span(range),
        )?;
        for r in rows {
            let started = r.count(0);
            let ended = r.opt_int(1);
            let outcome = r.opt_text(2);
            calls += 1;
            let b = buckets
                .entry(range.from_ms + (started - range.from_ms) / bucket_ms * bucket_ms)
                .or_default();
            b[0] += 1;
            let (Some(ended), Some(outcome)) = (ended, outcome) else {
                in_progress += 1;
                continue;
            };
            handling_ms += (ended as u64).saturating_sub(started);
            b[1] += 1;
            match outcome.as_str() {
                "self_served" => {
                    outcomes.self_served += 1;
                    b[2] += 1;
                }
                "transferred" => {
                    outcomes.transferred += 1;
                    b[3] += 1;
                }
                "failed" => outcomes.failed += 1,
                _ => outcomes.abandoned += 1,
            }
        }
    }
    let ended = calls - in_progress;
    let transfer_reasons = counts(
        db,
        "SELECT transfer_reason, COUNT(*) FROM calls \
         WHERE started_ms >= ?1 AND started_ms < ?2 AND transfer_reason IS NOT NULL \
         GROUP BY transfer_reason",
        range,
    )?;
    let intents = counts(
        db,
        &format!(
            "SELECT t.intent, COUNT(*) FROM turns t JOIN calls c USING (call_id) \
             WHERE c.started_ms >= ?1 AND c.started_ms < ?2 AND t.intent IS NOT NULL AND {SPOKEN} \
             GROUP BY t.intent"
        ),
        range,
    )?;
    let turns = db.row(
        &format!(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN {} THEN 1 ELSE 0 END), 0) \
             FROM turns t JOIN calls c USING (call_id) \
             WHERE c.started_ms >= ?1 AND c.started_ms < ?2 AND {SPOKEN}",
            not_understood_sql(db)
        ),
        &span(range),
    )?;
    let (caller_turns, not_understood_turns) = (turns.count(0), turns.count(1));
    let mut drop_off = {
        let rows = db.rows(
            "WITH in_range AS (SELECT call_id, outcome FROM calls WHERE started_ms >= ?1 AND started_ms < ?2), \
             last AS (SELECT t.call_id, t.node FROM turns t JOIN in_range r USING (call_id) \
                      WHERE r.outcome = 'abandoned' \
                        AND t.seq = (SELECT MAX(seq) FROM turns WHERE call_id = t.call_id)), \
             reached AS (SELECT t.node, COUNT(DISTINCT t.call_id) AS calls \
                         FROM turns t JOIN in_range USING (call_id) GROUP BY t.node) \
             SELECT reached.node, reached.calls, \
                    (SELECT COUNT(*) FROM last WHERE last.node = reached.node) AS dropped \
             FROM reached",
            &span(range),
        )?;
        (rows.iter())
            .map(|r| {
                let (reached, abandoned) = (r.count(1), r.count(2));
                NodeDropOff {
                    node: r.text(0),
                    reached,
                    abandoned,
                    drop_off_rate: rate(abandoned, reached).unwrap_or(0.0),
                }
            })
            .collect::<Vec<_>>()
    };
    // Ordered here, not in SQL: text order in SQL follows the database's collation, which
    // differs between engines (and PostgreSQL installs).
    drop_off.sort_by(|a, b| {
        (b.abandoned, b.reached)
            .cmp(&(a.abandoned, a.reached))
            .then_with(|| a.node.cmp(&b.node))
    });
    let latencies = latencies(db, range)?;
    let mut all: Vec<u64> = latencies.iter().map(|&(_, l)| l).collect();
    all.sort_unstable();
    let mut per_bucket: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (started, l) in latencies {
        per_bucket
            .entry(range.from_ms + (started - range.from_ms) / bucket_ms * bucket_ms)
            .or_default()
            .push(l);
    }
    let mut series = Vec::new();
    let mut start = range.from_ms;
    while start < range.to_ms && series.len() < 1000 {
        let [n, done, served, transferred] = buckets.get(&start).copied().unwrap_or_default();
        let mut l = per_bucket.remove(&start).unwrap_or_default();
        l.sort_unstable();
        series.push(Bucket {
            start_ms: start,
            calls: n,
            containment_rate: rate(served, done),
            transfer_rate: rate(transferred, done),
            latency_p50_ms: percentile(&l, 0.5),
            latency_p95_ms: percentile(&l, 0.95),
        });
        start += bucket_ms;
    }
    Ok(Summary {
        range,
        calls,
        in_progress,
        ended,
        containment_rate: rate(outcomes.self_served, ended),
        transfer_rate: rate(outcomes.transferred, ended),
        outcomes,
        transfer_reasons,
        intents,
        average_handling_time_s: (ended > 0).then(|| handling_ms as f64 / ended as f64 / 1000.0),
        caller_turns,
        not_understood_turns,
        not_understood_rate: rate(not_understood_turns, caller_turns),
        latency_p50_ms: percentile(&all, 0.5),
        latency_p95_ms: percentile(&all, 0.95),
        drop_off,
        survey: survey(db, range)?,
        first_contact: first_contact(db, range)?,
        series,
    })
}

const CALL_COLUMNS: &str = "c.call_id, c.caller, c.hotline, c.dialplan_version, c.started_ms, \
     c.ended_ms, c.outcome, c.transfer_reason, (SELECT COUNT(*) FROM turns WHERE call_id = c.call_id), \
     c.server, c.queue, c.agent, c.queue_wait_ms, c.wrap_up_code, c.wrap_up_notes";

fn call_row(r: &Row) -> CallRow {
    CallRow {
        call_id: r.text(0),
        caller: r.text(1),
        hotline: r.text(2),
        dialplan_version: r.count(3),
        started_ms: r.count(4),
        ended_ms: r.opt_int(5).map(|v| v.max(0) as u64),
        outcome: r.opt_text(6),
        transfer_reason: r.opt_text(7),
        turns: r.count(8),
        server: r.opt_text(9),
        queue: r.opt_text(10),
        agent: r.opt_text(11),
        queue_wait_ms: r.opt_int(12).map(|v| v.max(0) as u64),
        wrap_up_code: r.opt_text(13),
        wrap_up_notes: r.opt_text(14),
    }
}

/// Calls started in `range`, newest first; `outcome` filters when given.
pub fn calls(
    db: &mut Records,
    range: Range,
    outcome: Option<&str>,
    limit: u32,
) -> Result<Vec<CallRow>, StatsError> {
    let mut params = span(range).to_vec();
    params.push(u64::from(limit).into());
    let filter = match outcome {
        Some(outcome) => {
            params.push(outcome.into());
            "AND c.outcome = ?4"
        }
        None => "",
    };
    let rows = db.rows(
        &format!(
            "SELECT {CALL_COLUMNS} FROM calls c WHERE c.started_ms >= ?1 AND c.started_ms < ?2 \
             {filter} ORDER BY c.started_ms DESC LIMIT ?3"
        ),
        &params,
    )?;
    Ok(rows.iter().map(call_row).collect())
}

/// One call with its turns in order, or None.
pub fn call(db: &mut Records, call_id: &str) -> Result<Option<CallDetail>, StatsError> {
    let rows = db.rows(
        &format!("SELECT {CALL_COLUMNS} FROM calls c WHERE c.call_id = ?1"),
        &[call_id.into()],
    )?;
    let Some(call) = rows.first().map(call_row) else {
        return Ok(None);
    };
    let rows = db.rows(
        "SELECT at_ms, record FROM turns WHERE call_id = ?1 ORDER BY seq",
        &[call_id.into()],
    )?;
    let turns = (rows.iter())
        .map(|r| {
            let text = r.text(1);
            let mut record: serde_json::Value =
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
            if let Some(m) = record.as_object_mut() {
                m.insert("at_ms".into(), r.int(0).into());
            }
            record
        })
        .collect();
    Ok(Some(CallDetail { call, turns }))
}

/// What callers said that the bot did not understand, newest first: the raw material for new
/// intent examples.
pub fn not_understood(
    db: &mut Records,
    range: Range,
    limit: u32,
) -> Result<Vec<NotUnderstood>, StatsError> {
    let sql = format!(
        "SELECT t.call_id, t.at_ms, t.node, t.input, {} \
         FROM turns t JOIN calls c USING (call_id) \
         WHERE c.started_ms >= ?1 AND c.started_ms < ?2 AND {SPOKEN} AND {} \
         ORDER BY t.at_ms DESC, t.call_id, t.seq LIMIT ?3",
        db.json_text("t.record", &["reason"]),
        not_understood_sql(db)
    );
    let mut params = span(range).to_vec();
    params.push(u64::from(limit).into());
    let rows = db.rows(&sql, &params)?;
    Ok(rows
        .iter()
        .map(|r| NotUnderstood {
            call_id: r.text(0),
            at_ms: r.count(1),
            node: r.text(2),
            text: r.text(3),
            reason: r.text(4),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty records database in memory.
    fn records() -> Records {
        super::super::db::Database::in_memory()
    }

    fn call(db: &mut Records, id: &str, started: i64, ended: Option<i64>, outcome: Option<&str>) {
        let reason = (outcome == Some("transferred")).then_some("caller asked for a person");
        db.execute(
            "INSERT INTO calls VALUES (?1, 'sip:a@x', 'demo', 1, ?2, ?3, ?4, ?5, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
            &[
                id.into(),
                started.into(),
                ended.into(),
                outcome.into(),
                reason.into(),
            ],
        )
        .unwrap();
    }

    fn turn(db: &mut Records, id: &str, input: &str, node: &str, record: serde_json::Value) {
        db.execute(
            "INSERT INTO turns VALUES (?1, (SELECT COUNT(*) FROM turns WHERE call_id = ?1), 0, ?2, ?3, ?4, ?5, ?6)",
            &[
                id.into(),
                input.into(),
                record["intent"].as_str().into(),
                record["decision"].as_str().unwrap_or("dialplan").into(),
                node.into(),
                Value::Json(record.clone()),
            ],
        )
        .unwrap();
    }

    #[test]
    fn one_hotline_s_statistics_count_only_its_calls() {
        let mut db = records();
        call(&mut db, "a", 0, Some(60_000), Some("self_served"));
        call(&mut db, "b", 10, Some(120_010), Some("transferred"));
        turn(
            &mut db,
            "a",
            "where is my order",
            "menu",
            serde_json::json!({"intent": "order_status"}),
        );
        db.execute(
            "INSERT INTO calls VALUES ('z', 'sip:a@x', 'O''Brien''s line', 1, 20, 30, 'abandoned', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
            &[],
        )
        .unwrap();
        turn(
            &mut db,
            "z",
            "hours",
            "menu",
            serde_json::json!({"intent": "hours"}),
        );
        let range = Range {
            from_ms: 0,
            to_ms: 1_000_000,
        };
        let all = summary(&mut db, range, 1_000_000).unwrap();
        assert_eq!((all.calls, all.intents.len()), (3, 2));
        only_hotline(&mut db, "demo").unwrap();
        let demo = summary(&mut db, range, 1_000_000).unwrap();
        assert_eq!(
            (
                demo.calls,
                demo.outcomes.self_served,
                demo.outcomes.transferred
            ),
            (2, 1, 1)
        );
        assert_eq!(demo.intents.len(), 1);
        assert_eq!(calls(&mut db, range, None, 10).unwrap().len(), 2);
        // A name with quotes is a literal, not SQL.
        db.batch("DROP VIEW temp.calls").unwrap();
        only_hotline(&mut db, "O'Brien's line").unwrap();
        let obrien = summary(&mut db, range, 1_000_000).unwrap();
        assert_eq!((obrien.calls, obrien.outcomes.abandoned), (1, 1));
        assert_eq!(obrien.intents[0].name, "hours");
    }

    /// Four ended calls and one in progress: the numbers a manager would count by hand.
    #[test]
    fn summary_counts_what_a_manager_would_count_by_hand() {
        let mut db = records();
        let h: u64 = 3_600_000;
        let hi = h as i64;
        call(&mut db, "a", 0, Some(60_000), Some("self_served"));
        call(&mut db, "b", 10, Some(120_010), Some("transferred"));
        call(&mut db, "c", hi, Some(hi + 30_000), Some("abandoned"));
        call(&mut db, "d", hi + 5, Some(hi + 90_005), Some("self_served"));
        call(&mut db, "e", hi + 9, None, None);
        call(
            &mut db,
            "outside",
            5 * hi,
            Some(5 * hi + 1),
            Some("abandoned"),
        );
        let timed = |ms: u64| serde_json::json!({"intent": "order_status", "latency": {"voice_to_voice_ms": ms + 700}});
        turn(&mut db, "a", "(call start)", "menu", serde_json::json!({}));
        turn(&mut db, "a", "where is my order", "menu", timed(100));
        turn(&mut db, "b", "(call start)", "menu", serde_json::json!({}));
        turn(
            &mut db,
            "b",
            "purple elephants",
            "menu",
            serde_json::json!({"reason": "not understood: no intent matched", "latency": {"detected_to_audio_ms": 300, "endpoint_silence_ms": 700}}),
        );
        turn(
            &mut db,
            "b",
            "#dtmf 9",
            "menu",
            serde_json::json!({"reason": "not understood: keypad `9` means nothing here"}),
        );
        turn(&mut db, "c", "(call start)", "menu", serde_json::json!({}));
        turn(&mut db, "c", "where is my order", "order/ask", timed(200));
        turn(&mut db, "d", "(call start)", "menu", serde_json::json!({}));

        let s = summary(
            &mut db,
            Range {
                from_ms: 0,
                to_ms: 2 * h,
            },
            h,
        )
        .unwrap();
        assert_eq!((s.calls, s.ended, s.in_progress), (5, 4, 1));
        assert_eq!(
            s.outcomes,
            Outcomes {
                self_served: 2,
                transferred: 1,
                failed: 0,
                abandoned: 1
            }
        );
        assert_eq!(s.containment_rate, Some(0.5));
        assert_eq!(s.transfer_rate, Some(0.25));
        assert_eq!(
            s.transfer_reasons,
            [Count {
                name: "caller asked for a person".into(),
                count: 1
            }]
        );
        assert_eq!(
            s.intents,
            [Count {
                name: "order_status".into(),
                count: 2
            }]
        );
        // (60 + 120 + 30 + 90) s / 4
        assert_eq!(s.average_handling_time_s, Some(75.0));
        // Spoken caller turns only: the keypad one and the events are not counted.
        assert_eq!((s.caller_turns, s.not_understood_turns), (3, 1));
        assert_eq!(
            (s.latency_p50_ms, s.latency_p95_ms),
            (Some(900), Some(1000))
        );
        // Call c was abandoned at order/ask, the only call that reached it.
        assert_eq!(s.drop_off[0].node, "order/ask");
        assert_eq!((s.drop_off[0].reached, s.drop_off[0].abandoned), (1, 1));
        let menu = s.drop_off.iter().find(|d| d.node == "menu").unwrap();
        assert_eq!((menu.reached, menu.abandoned), (4, 0));
        assert_eq!(s.series.len(), 2);
        assert_eq!(
            (s.series[0].calls, s.series[0].containment_rate),
            (2, Some(0.5))
        );
        assert_eq!(s.series[0].transfer_rate, Some(0.5));
        assert_eq!(
            (s.series[1].calls, s.series[1].latency_p50_ms),
            (3, Some(900))
        );

        let heard = not_understood(
            &mut db,
            Range {
                from_ms: 0,
                to_ms: 2 * h,
            },
            10,
        )
        .unwrap();
        assert_eq!(heard.len(), 1);
        assert_eq!(
            (heard[0].call_id.as_str(), heard[0].text.as_str()),
            ("b", "purple elephants")
        );

        let list = calls(
            &mut db,
            Range {
                from_ms: 0,
                to_ms: 2 * h,
            },
            Some("self_served"),
            10,
        )
        .unwrap();
        let ids: Vec<&str> = list.iter().map(|c| c.call_id.as_str()).collect();
        assert_eq!(ids, ["d", "a"], "newest first, filtered");
        let detail = super::call(&mut db, "b").unwrap().unwrap();
        assert_eq!(detail.call.turns, 3);
        assert_eq!(
            detail.turns[1]["reason"],
            "not understood: no intent matched"
        );
        assert!(super::call(&mut db, "nope").unwrap().is_none());

        let empty = summary(
            &mut db,
            Range {
                from_ms: 10 * h,
                to_ms: 11 * h,
            },
            h,
        )
        .unwrap();
        assert_eq!(
            (empty.calls, empty.containment_rate, empty.latency_p50_ms),
            (0, None, None)
        );
    }

    /// Survey scores, and first-contact resolution by caller number and topic.
    #[test]
    fn survey_scores_and_first_contact_resolution() {
        let mut db = records();
        let day: i64 = 86_400_000;
        let mut from = |id: &str, caller: &str, started: i64, ended: bool, topic: &str| {
            db.execute(
                "INSERT INTO calls VALUES (?1, ?2, 'demo', 1, ?3, ?4, ?5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
                &[
                    id.into(),
                    caller.into(),
                    started.into(),
                    ended.then_some(started + 60_000).into(),
                    ended.then_some("self_served").into(),
                ],
            )
            .unwrap();
            let record = match topic.strip_prefix("kb:") {
                Some(kb) => serde_json::json!({ "kb": kb }),
                None => serde_json::json!({ "intent": topic }),
            };
            turn(&mut db, id, "something", "menu", record);
        };
        from("p1", "+15550100", 0, true, "order_status");
        from("p2", "+15550100", 2 * day, true, "order_status"); // p1 did not resolve it
        from("q1", "+15550123", 0, true, "return_refund");
        from("q2", "+15550123", day, true, "kb:warranty"); // another matter
        from("r1", "+15550199", 0, true, "order_status");
        from("r2", "+15550199", 9 * day, true, "order_status"); // outside the window
        from("s1", "anonymous", 0, true, "order_status"); // no number: not judged
        from("t1", "+15550111", 0, true, "agent"); // asked for a human only: not judged
        from("u1", "+15550112", 0, false, "order_status"); // in progress: not judged
        for (id, score) in [("p1", 4), ("q1", 5), ("r1", 5)] {
            turn(
                &mut db,
                id,
                "#dtmf 5",
                "bye",
                serde_json::json!({ "survey": score }),
            );
        }
        let s = summary(
            &mut db,
            Range {
                from_ms: 0,
                to_ms: 3 * day as u64,
            },
            day as u64,
        )
        .unwrap();
        assert_eq!(
            s.first_contact,
            FirstContact {
                window_days: 7,
                judged: 5,
                resolved: 4,
                rate: Some(0.8)
            }
        );
        assert_eq!(s.survey.responses, 3);
        assert!((s.survey.average.unwrap() - 14.0 / 3.0).abs() < 1e-9);
        let by_score: Vec<(&str, u64)> = (s.survey.by_score.iter())
            .map(|c| (c.name.as_str(), c.count))
            .collect();
        assert_eq!(by_score, [("4", 1), ("5", 2)]);
    }
}
