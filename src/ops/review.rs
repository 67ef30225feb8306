//! The trainers' review queue: what callers said that the bot did not understand, read from the
//! call records, grouped by phrasing, each with what the caller said next (when they had to
//! repeat themselves, and what the repeat was understood as: the likely answer), whether the
//! call then went to a person, and the hotline's nearest intents and knowledge entries with
//! their scores. Phrasings a trainer already reviewed (the change log) are left out.

use std::collections::{BTreeMap, BTreeSet};

use super::db::Records;
use super::stats::{Range, SPOKEN, StatsError};
use crate::dialplan::engine::Hotline;

/// One not-understood turn, with its call's context.
#[derive(Debug, Clone, PartialEq)]
pub struct Missed {
    pub call_id: String,
    pub at_ms: u64,
    pub node: String,
    pub text: String,
    /// What the caller said next in the same call (they had to repeat), and what that was
    /// understood as (`intent:NAME`, `kb:ID`), if it was.
    pub repeated_as: Option<String>,
    pub repeat_understood_as: Option<String>,
    /// The call ended in a transfer to a person.
    pub transferred: bool,
}

/// Not-understood spoken turns of `hotline`'s calls started in `range`, newest first.
pub fn missed(db: &mut Records, hotline: &str, range: Range) -> Result<Vec<Missed>, StatsError> {
    let field = |key: &str| db.json_text("t.record", &[key]);
    let sql = format!(
        "SELECT t.call_id, t.at_ms, t.node, t.input, {}, {}, {}, \
                CASE WHEN c.outcome = 'transferred' THEN 1 ELSE 0 END \
         FROM turns t JOIN calls c USING (call_id) \
         WHERE c.hotline = ?1 AND c.started_ms >= ?2 AND c.started_ms < ?3 AND {SPOKEN} \
         ORDER BY t.call_id, t.seq",
        field("reason"),
        field("intent"),
        field("kb"),
    );
    type Row = (
        String,
        u64,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        bool,
    );
    let rows: Vec<Row> = (db.rows(
        &sql,
        &[hotline.into(), range.from_ms.into(), range.to_ms.into()],
    )?)
    .iter()
    .map(|r| {
        (
            r.text(0),
            r.count(1),
            r.text(2),
            r.text(3),
            r.text(4),
            r.opt_text(5),
            r.opt_text(6),
            r.int(7) != 0,
        )
    })
    .collect();
    let not_understood = |reason: &str| reason.starts_with("not understood");
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let (call_id, at_ms, node, text, reason, _, _, transferred) = row;
        if !not_understood(reason) {
            continue;
        }
        let next = rows.get(i + 1).filter(|n| &n.0 == call_id);
        let repeat_understood_as = next.filter(|n| !not_understood(&n.4)).and_then(|n| {
            n.6.as_ref()
                .map(|kb| format!("kb:{kb}"))
                .or_else(|| n.5.as_ref().map(|i| format!("intent:{i}")))
        });
        out.push(Missed {
            call_id: call_id.clone(),
            at_ms: *at_ms,
            node: node.clone(),
            text: text.clone(),
            repeated_as: next.map(|n| n.3.clone()),
            repeat_understood_as,
            transferred: *transferred,
        });
    }
    out.sort_by_key(|m| std::cmp::Reverse(m.at_ms));
    Ok(out)
}

/// An intent or knowledge entry and how near a phrasing is to it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Nearest {
    /// `intent:NAME` or `kb:ID` (what a review assigns).
    pub target: String,
    /// The intent's name, or the entry's topic.
    pub label: String,
    pub score: f32,
}

/// A phrasing in the queue.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReviewItem {
    /// As first heard.
    pub text: String,
    /// How many times callers said it (same words, any case).
    pub count: usize,
    pub last_at_ms: u64,
    /// Up to five calls it was heard on, newest first.
    pub calls: Vec<String>,
    pub node: String,
    /// A call it was heard on ended with a person.
    pub transferred: bool,
    /// What the caller said next, and what that was understood as: the likely answer.
    pub repeated_as: Option<String>,
    pub suggestion: Option<String>,
    /// The three nearest intents and knowledge entries, nearest first.
    pub intents: Vec<Nearest>,
    pub knowledge: Vec<Nearest>,
}

/// How many nearest intents and entries an item shows.
const SHOWN: usize = 3;

/// The nearest intents and knowledge entries of `text` on `hotline`, with their scores
/// (intents: the router's combined probability; entries: the knowledge base's score).
pub fn nearest(hotline: &Hotline, text: &str) -> (Vec<Nearest>, Vec<Nearest>) {
    let e = hotline.embedder.embed(text);
    let (p, _) = hotline.router.scores(&e, text);
    let mut intents: Vec<Nearest> = hotline
        .router
        .intents()
        .iter()
        .zip(p)
        .map(|(name, score)| Nearest {
            target: format!("intent:{name}"),
            label: name.clone(),
            score,
        })
        .collect();
    let mut knowledge: Vec<Nearest> = hotline
        .kb
        .entries()
        .iter()
        .zip(hotline.kb.entry_scores(&e, text))
        .map(|(entry, score)| Nearest {
            target: format!("kb:{}", entry.id),
            label: entry.topic.clone(),
            score,
        })
        .collect();
    for list in [&mut intents, &mut knowledge] {
        list.sort_by(|a, b| b.score.total_cmp(&a.score));
        list.truncate(SHOWN);
        for n in list.iter_mut() {
            n.score = (n.score * 1000.0).round() / 1000.0;
        }
    }
    (intents, knowledge)
}

/// The queue: `missed` grouped by phrasing (any case), without the `reviewed` ones, most heard
/// first (then newest), at most `limit` items.
pub fn queue(
    missed: &[Missed],
    hotline: &Hotline,
    reviewed: &BTreeSet<String>,
    limit: usize,
) -> Vec<ReviewItem> {
    let mut groups: BTreeMap<String, Vec<&Missed>> = BTreeMap::new();
    for m in missed {
        let key = m.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let key = key.to_lowercase();
        if !key.is_empty() && !reviewed.contains(&key) {
            groups.entry(key).or_default().push(m);
        }
    }
    let mut items: Vec<ReviewItem> = groups
        .into_values()
        .map(|heard| {
            // `missed` is newest first, so is each group.
            let newest = heard[0];
            let first = heard[heard.len() - 1];
            let repeat = heard.iter().find(|m| m.repeat_understood_as.is_some());
            let mut calls: Vec<String> = Vec::new();
            for m in &heard {
                if !calls.contains(&m.call_id) && calls.len() < 5 {
                    calls.push(m.call_id.clone());
                }
            }
            let (intents, knowledge) = nearest(hotline, &first.text);
            ReviewItem {
                text: first.text.clone(),
                count: heard.len(),
                last_at_ms: newest.at_ms,
                calls,
                node: newest.node.clone(),
                transferred: heard.iter().any(|m| m.transferred),
                repeated_as: repeat
                    .or(heard.iter().find(|m| m.repeated_as.is_some()))
                    .and_then(|m| m.repeated_as.clone()),
                suggestion: repeat.and_then(|m| m.repeat_understood_as.clone()),
                intents,
                knowledge,
            }
        })
        .collect();
    items.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_at_ms.cmp(&a.last_at_ms)));
    items.truncate(limit);
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlu::intent::BagOfWords;
    use std::sync::Arc;

    const PLAN: &str = "name: shop\nintents:\n  refund:\n    examples: [I want my money back, refund please, give me a refund]\n  track:\n    examples: [where is my order, track my parcel, has my order shipped]\nknowledge:\n  - id: hours\n    topic: our opening hours\n    questions: [when are you open, what are your hours]\n    answer: \"Nine to five.\"\nhandlers: { no_input: end, no_match: end }\nstart: ask\nnodes:\n  ask:\n    ask: { prompt: \"Say something.\" }\n    next: end\n  end: { hangup: \"Bye.\" }\n";

    fn record(db: &mut Records, call: &str, outcome: &str, turns: &[(&str, serde_json::Value)]) {
        // Calls a, b, c start a second apart.
        let started = 1000 * (1 + i64::from(call.as_bytes()[0] - b'a'));
        db.execute(
            "INSERT INTO calls VALUES (?1, '+1555', 'shop', 1, ?2, NULL, ?3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
            &[call.into(), started.into(), outcome.into()],
        )
        .unwrap();
        for (seq, (input, r)) in turns.iter().enumerate() {
            db.execute(
                "INSERT INTO turns VALUES (?1, ?2, ?3, ?4, ?5, 'dialplan', 'ask', ?6)",
                &[
                    call.into(),
                    (seq as i64).into(),
                    (started + seq as i64).into(),
                    (*input).into(),
                    r["intent"].as_str().into(),
                    crate::ops::db::Value::Json(r.clone()),
                ],
            )
            .unwrap();
        }
    }

    #[test]
    fn missed_phrasings_are_grouped_with_the_repeat_that_was_understood_and_their_neighbours() {
        let mut db = crate::ops::db::Database::in_memory();
        let nope = serde_json::json!({ "reason": "not understood: out of scope" });
        let track = serde_json::json!({ "reason": "intent `track` (0.9)", "intent": "track" });
        // Call a: missed, then the repeat is understood as `track`.
        record(
            &mut db,
            "a",
            "self_served",
            &[
                ("where's my stuff at", nope.clone()),
                ("where is my order", track.clone()),
            ],
        );
        // Call b: the same words (another case), missed twice, then a person.
        record(
            &mut db,
            "b",
            "transferred",
            &[
                ("Where's my stuff at", nope.clone()),
                ("#dtmf 0", nope.clone()),
                ("uh the thing", nope.clone()),
            ],
        );
        // Call c: understood at once: not in the queue.
        record(&mut db, "c", "self_served", &[("where is my order", track)]);
        let all = Range {
            from_ms: 0,
            to_ms: 10_000,
        };
        let missed = missed(&mut db, "shop", all).unwrap();
        assert_eq!(missed.len(), 3, "{missed:?}");
        assert!(missed.iter().all(|m| m.call_id != "c"));
        let hotline = Hotline::build(
            crate::dialplan::load_str("t", PLAN).unwrap(),
            Arc::new(BagOfWords),
        );
        let items = queue(&missed, &hotline, &BTreeSet::new(), 10);
        assert_eq!(items.len(), 2);
        let stuff = &items[0];
        assert_eq!(
            (stuff.text.as_str(), stuff.count),
            ("where's my stuff at", 2)
        );
        assert_eq!(stuff.calls.len(), 2);
        assert!(stuff.transferred, "call b went to a person");
        assert_eq!(stuff.repeated_as.as_deref(), Some("where is my order"));
        assert_eq!(stuff.suggestion.as_deref(), Some("intent:track"));
        assert_eq!(stuff.intents.len(), 2);
        assert_eq!(stuff.knowledge[0].target, "kb:hours");
        assert_eq!(stuff.knowledge[0].label, "our opening hours");
        assert!(stuff.intents[0].score >= stuff.intents[1].score);
        // In call b the keypad press between is not a spoken repeat: the repeat is "uh the thing".
        assert_eq!(items[1].text, "uh the thing");
        assert_eq!(items[1].repeated_as, None);
        // Reviewed phrasings leave the queue; another hotline's calls were never in it.
        let reviewed: BTreeSet<String> = ["where's my stuff at".to_string()].into();
        assert_eq!(queue(&missed, &hotline, &reviewed, 10).len(), 1);
        assert!(super::missed(&mut db, "other", all).unwrap().is_empty());
    }
}
