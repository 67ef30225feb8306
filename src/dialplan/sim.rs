//! Conversations without a phone: caller lines in, one record per bot turn out. Used by
//! `voxnav simulate` (interactive or `--json`) and by `voxnav test` (scripted conversations).
//! Backend calls go through an injected function, so tests can run against the demo order
//! service or a fake.

use std::time::Duration;

use super::engine::{Action, CallEngine, Decision, Event};

/// Performs an HTTP request: (method, url, body, timeout) -> (status, body) or an error.
pub type HttpFn<'a> =
    &'a dyn Fn(&str, &str, Option<&str>, Duration) -> Result<(u16, String), String>;

/// A caller line as the simulator reads it: plain text is speech; `#dtmf 1234`, `#silence`,
/// `#hangup` are the other inputs, `#no-agent` says the transfer just made failed (busy, no
/// answer), and `#confidence 0.5 four seven two` is speech recognised with that confidence
/// (plain text has 0.95).
pub fn parse_line(line: &str) -> Option<Event> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    if let Some(d) = line.strip_prefix("#dtmf") {
        return Some(Event::Dtmf(d.trim().trim_end_matches('#').to_string()));
    }
    if let Some(rest) = line.strip_prefix("#confidence")
        && let Some((c, text)) = rest.trim().split_once(' ')
        && let Ok(confidence) = c.parse::<f32>()
    {
        return Some(Event::Speech {
            text: text.trim().to_string(),
            confidence: confidence.clamp(0.0, 1.0),
        });
    }
    match line {
        "#silence" => Some(Event::NoInput),
        "#hangup" => Some(Event::Hangup),
        "#no-agent" => Some(Event::TransferFailed("no agent answered".into())),
        _ => Some(Event::Speech {
            text: line.to_string(),
            confidence: 0.95,
        }),
    }
}

/// One bot turn: the merged record of the caller's event and of any backend replies it led to,
/// and every action in order.
#[derive(Debug, Clone)]
pub struct BotTurn {
    pub decision: Decision,
    pub actions: Vec<Action>,
}

/// Feeds one event, performs the HTTP requests it leads to, returns the merged turn.
pub fn step(engine: &mut CallEngine, event: Event, http: HttpFn) -> Option<BotTurn> {
    let first = engine.handle(event);
    let mut decision = first.decision?;
    let mut actions = first.actions;
    // Follow backend requests until the call waits for the caller again.
    for _ in 0..8 {
        let Some(Action::Http {
            method,
            url,
            body,
            timeout_ms,
        }) = actions.last().cloned()
        else {
            break;
        };
        let reply = http(
            &method,
            &url,
            body.as_deref(),
            Duration::from_millis(timeout_ms),
        );
        let event = match reply {
            Ok((status, body)) => Event::HttpResponse { status, body },
            Err(e) => Event::HttpFailed(e),
        };
        let next = engine.handle(event);
        actions.extend(next.actions);
        if let Some(d) = next.decision {
            decision.say.extend(d.say);
            decision.path.extend(d.path);
            decision.decision = d.decision;
            decision.action = d.action;
            if decision.kb.is_none() {
                decision.kb = d.kb;
            }
            if !d.reason.is_empty() {
                decision.reason = format!("{}; {}", decision.reason, d.reason);
            }
        }
    }
    Some(BotTurn { decision, actions })
}

/// The node a turn ended at (where the call now waits, or the last node walked).
pub fn last_node(d: &Decision) -> String {
    d.path.last().cloned().unwrap_or_default()
}

/// The turn as one JSON object (the `--json` output, one per line).
pub fn to_json(t: &BotTurn) -> serde_json::Value {
    let d = &t.decision;
    let transfer = t.actions.iter().find_map(|a| match a {
        Action::Transfer {
            target,
            reason,
            transcript,
            priority,
        } => Some(serde_json::json!({
            "target": target, "reason": reason, "transcript": transcript, "priority": priority
        })),
        _ => None,
    });
    let http = t.actions.iter().find_map(|a| match a {
        Action::Http { url, .. } => Some(url.clone()),
        _ => None,
    });
    serde_json::json!({
        "turn": d.turn,
        "input": d.input,
        "asr_confidence": d.asr_confidence.map(|c| (c * 1000.0).round() / 1000.0),
        "intent": d.intent,
        "confidence": (d.confidence * 1000.0).round() / 1000.0,
        "out_of_scope": d.out_of_scope,
        "slots": d.slots,
        "sentiment": d.sentiment,
        "decision": d.decision.name(),
        "reason": d.reason,
        "kb": d.kb,
        "kb_score": d.kb_score.map(|s| (s * 1000.0).round() / 1000.0),
        "survey": d.survey,
        "node": last_node(d),
        "path": d.path,
        "say": d.say.join(" "),
        "action": d.action,
        "transfer": transfer,
        "http": http,
    })
}
