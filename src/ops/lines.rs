//! The `voxnav: KIND {json}` lines on stdout (what tests and log shippers read) and the
//! structured log events of a call's turns and transfers, kept by observing its reports.
//! Observers run on the emitting call's task, inside its `call{id=...}` span, so the log
//! events carry the call id.

use crate::report::{Observer, Report};

/// Prints call-started, decision, latency and transfer lines; logs turns and transfers.
#[derive(Debug, Default)]
pub struct StdoutLines;

/// One `voxnav: KIND {json}` line on stdout, ignoring a closed pipe.
fn print_record(kind: &str, json: &serde_json::Value) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "voxnav: {kind} {json}");
}

impl Observer for StdoutLines {
    fn observe(&self, report: &Report) {
        match report {
            Report::Turn { record, .. } => {
                print_record("decision", record);
                let text = |k: &str| record[k].as_str().unwrap_or_default();
                tracing::info!(
                    input = text("input"),
                    intent = record["intent"].as_str(),
                    decision = text("decision"),
                    reason = text("reason"),
                    node = text("node"),
                    "turn"
                );
            }
            Report::CallStarted {
                call_id,
                caller,
                hotline,
                dialplan_version,
            } => {
                let json = serde_json::json!({
                    "call": call_id,
                    "caller": caller,
                    "hotline": hotline,
                    "dialplan_version": dialplan_version,
                });
                print_record("call-started", &json);
            }
            Report::BargeIn { call_id, resumed } => {
                let json = serde_json::json!({ "call": call_id, "resumed": resumed });
                print_record("barge-in", &json);
            }
            Report::Latency { call_id, latency } => {
                print_record("latency", &latency.to_json(call_id));
            }
            Report::Transfer {
                call_id,
                status,
                agent,
                why,
                after,
                frames_to_agent,
                frames_to_caller,
            } => {
                let json = serde_json::json!({
                    "call": call_id,
                    "agent": agent,
                    "status": status.name(),
                    "why": why,
                    "after_ms": after.as_millis() as u64,
                    "frames_to_agent": frames_to_agent,
                    "frames_to_caller": frames_to_caller,
                });
                print_record("transfer", &json);
                tracing::info!(%agent, status = status.name(), %why, "transfer");
            }
            Report::Assist {
                call_id,
                text,
                intent,
                suggestion,
                latency,
            } => {
                let json = serde_json::json!({
                    "call": call_id,
                    "text": text,
                    "intent": intent,
                    "suggestion": suggestion,
                    "latency_ms": latency.as_millis() as u64,
                });
                print_record("assist", &json);
            }
            Report::AgentSaid {
                call_id,
                text,
                latency,
            } => {
                let json = serde_json::json!({
                    "call": call_id,
                    "text": text,
                    "latency_ms": latency.as_millis() as u64,
                });
                print_record("agent-said", &json);
            }
            Report::AsrUnavailable { why, .. } => {
                tracing::warn!("ASR unavailable, offering the keypad: {why}");
            }
            Report::Callback {
                id,
                queue,
                number,
                status,
                agent,
                why,
            } => {
                let json = serde_json::json!({
                    "id": id, "queue": queue, "number": number, "status": status,
                    "agent": agent, "why": why,
                });
                print_record("callback", &json);
            }
            Report::MessageSaved {
                call_id,
                queue,
                path,
                seconds,
            } => {
                let json = serde_json::json!({
                    "call": call_id, "queue": queue, "path": path, "seconds": seconds,
                });
                print_record("message", &json);
            }
            _ => {}
        }
    }
}
