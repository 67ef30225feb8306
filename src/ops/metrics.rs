//! Prometheus metrics, written by the maintained `prometheus-client` crate (OpenMetrics text
//! exposition at `/metrics`). One registry per server, filled by observing the server's
//! reports (`report::Report`): nothing on the call path knows about metrics. Names follow
//! Prometheus conventions (`voxnav_` prefix, `_total` counters, units in names); label values
//! come from bounded sets only (decision kinds, outcomes, the dialplan's own intent names,
//! SIP status codes), never from caller input.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::report::{Observer, Report, TransferStatus};

/// Latency buckets (seconds): fine below a second, where turn latency lives.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0,
];

/// One label name and its value.
type Labels = Vec<(&'static str, String)>;
type Counters = Family<Labels, Counter>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Every metric voxnav exports.
pub struct Metrics {
    registry: Registry,
    /// Every family's full name and type, as the exposition names them (an empty family
    /// has no lines in it).
    families: Vec<(String, &'static str)>,
    calls_active: Gauge<i64, std::sync::atomic::AtomicI64>,
    calls: Counters,
    call_outcomes: Counters,
    transfers: Counters,
    transfer_attempts: Counters,
    turns: Counters,
    turn_ends: Counters,
    barge_ins: Counters,
    recognitions: Counters,
    intents: Counters,
    fallbacks: Counters,
    turn_latency: Histograms,
    speech_queue_wait: Histograms,
    sip_responses: Counters,
    rtp_packets: Counters,
    dialplan_reloads: Counters,
    asr_running: Gauge<u64, AtomicU64>,
    asr_waiting: Gauge<u64, AtomicU64>,
    registered: Gauge<i64, std::sync::atomic::AtomicI64>,
    registration_failures: Counters,
    agents_registered: Gauge<i64, std::sync::atomic::AtomicI64>,
    agent_register_refusals: Counter,
    /// Which agents have contacts (the gauge's value is its length).
    agents_with_contacts: std::sync::Mutex<std::collections::BTreeSet<String>>,
    record_writes: Counters,
    queue_messages: Counters,
    queue_callbacks: Counters,
    records_connected: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn label(name: &'static str, value: impl Into<String>) -> Labels {
    vec![(name, value.into())]
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("voxnav");
        let mut families = Vec::new();
        let mut family = |name: &str, kind: &'static str| {
            families.push((format!("voxnav_{name}"), kind));
        };
        for gauge in [
            "calls_active",
            "asr_queue_running",
            "asr_queue_waiting",
            "registered",
            "records_connected",
            "agents_registered",
        ] {
            family(gauge, "gauge");
        }
        for counter in [
            "calls",
            "call_outcomes",
            "transfers",
            "transfer_attempts",
            "turns",
            "turn_ends",
            "barge_ins",
            "recognitions",
            "intents",
            "fallbacks",
            "sip_responses",
            "rtp_packets",
            "dialplan_reloads",
            "registration_failures",
            "record_writes",
            "agent_register_refusals",
            "queue_messages",
            "queue_callbacks",
        ] {
            family(counter, "counter");
        }
        for histogram in ["turn_latency_seconds", "speech_queue_wait_seconds"] {
            family(histogram, "histogram");
        }
        let calls_active = Gauge::default();
        r.register("calls_active", "Calls in progress", calls_active.clone());
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let f = Counters::default();
            r.register(name, help, f.clone());
            f
        };
        let histogram = |r: &mut Registry, name: &str, help: &str| {
            let f = Histograms::new_with_constructor(latency_histogram as fn() -> Histogram);
            r.register(name, help, f.clone());
            f
        };
        let calls = counter(&mut r, "calls", "Calls answered");
        let call_outcomes = counter(
            &mut r,
            "call_outcomes",
            "Finished calls by hotline and outcome",
        );
        let transfers = counter(
            &mut r,
            "transfers",
            "Transfers to a human, by the dialplan's reason",
        );
        let transfer_attempts =
            counter(&mut r, "transfer_attempts", "Agent legs placed, by result");
        let turns = counter(&mut r, "turns", "Caller turns by decision");
        let turn_ends = counter(
            &mut r,
            "turn_ends",
            "Caller turns by what ended them: the end-of-turn model, a long enough number, the silence rule, the cap",
        );
        let barge_ins = counter(
            &mut r,
            "barge_ins",
            "Prompts the caller's speech held: interrupted (a request), resumed (a backchannel, cough, noise)",
        );
        let recognitions = counter(
            &mut r,
            "recognitions",
            "Recognitions by engine (moonshine: overflow from a long Whisper queue)",
        );
        let intents = counter(&mut r, "intents", "Intents recognised in caller turns");
        let fallbacks = counter(
            &mut r,
            "fallbacks",
            "Turns the bot could not use: no match, no input, recognition unavailable",
        );
        let turn_latency = histogram(
            &mut r,
            "turn_latency_seconds",
            "Per-turn latency by stage (end of voice -> turn over -> ASR -> decision -> first reply audio)",
        );
        let speech_queue_wait = histogram(
            &mut r,
            "speech_queue_wait_seconds",
            "Time a recognition or synthesis waited for its engine and cores",
        );
        let sip_responses = counter(
            &mut r,
            "sip_responses",
            "SIP responses sent, by status code",
        );
        let rtp_packets = counter(
            &mut r,
            "rtp_packets",
            "RTP packets of finished calls: sent, received, concealed (played as concealment), lost (never arrived)",
        );
        let dialplan_reloads = counter(
            &mut r,
            "dialplan_reloads",
            "Dialplan reloads, by result (refused ones keep the old version serving)",
        );
        let asr_running = Gauge::default();
        r.register(
            "asr_queue_running",
            "Recognitions running",
            asr_running.clone(),
        );
        let asr_waiting = Gauge::default();
        r.register(
            "asr_queue_waiting",
            "Recognitions waiting for the engine",
            asr_waiting.clone(),
        );
        let registered = Gauge::default();
        r.register(
            "registered",
            "1 while voxnav is registered to its registrar (sip.register), else 0",
            registered.clone(),
        );
        let registration_failures = counter(
            &mut r,
            "registration_failures",
            "Failed registrations by the registrar's status (408: no answer)",
        );
        let agents_registered = Gauge::default();
        r.register(
            "agents_registered",
            "Agents with at least one phone registered",
            agents_registered.clone(),
        );
        let agent_register_refusals = Counter::default();
        r.register(
            "agent_register_refusals",
            "REGISTERs refused for wrong credentials (unknown user, wrong password, replay)",
            agent_register_refusals.clone(),
        );
        let record_writes = counter(
            &mut r,
            "record_writes",
            "Call record events by result: written, dropped (the buffer was full while the \
             database was down or slow), refused (by the database)",
        );
        let queue_messages = counter(
            &mut r,
            "queue_messages",
            "Callers' messages saved by voicemail nodes, by queue",
        );
        let queue_callbacks = counter(
            &mut r,
            "queue_callbacks",
            "Callbacks by queue and step: requested, agent_missed, connected, failed (the caller \
             did not answer)",
        );
        let records_connected = Gauge::default();
        r.register(
            "records_connected",
            "1 while the call records writer is connected to its database, else 0",
            records_connected.clone(),
        );
        Self {
            registry: r,
            families,
            record_writes,
            queue_messages,
            queue_callbacks,
            records_connected,
            registered,
            registration_failures,
            agents_registered,
            agent_register_refusals,
            agents_with_contacts: Default::default(),
            calls_active,
            calls,
            call_outcomes,
            transfers,
            transfer_attempts,
            turns,
            turn_ends,
            barge_ins,
            recognitions,
            intents,
            fallbacks,
            turn_latency,
            speech_queue_wait,
            sip_responses,
            rtp_packets,
            dialplan_reloads,
            asr_running,
            asr_waiting,
        }
    }

    /// The call records writer's counters, exported here (`ops::records`).
    pub fn records_health(&self) -> std::sync::Arc<super::records::WriterHealth> {
        let result = |r: &str| {
            self.record_writes
                .get_or_create(&label("result", r))
                .clone()
        };
        std::sync::Arc::new(super::records::WriterHealth::new(
            result("written"),
            result("dropped"),
            result("refused"),
            self.records_connected.clone(),
        ))
    }

    /// Every family exported: (name, type).
    pub fn families(&self) -> &[(String, &'static str)] {
        &self.families
    }

    /// Exports the ACD's queues and agents, read at each scrape:
    /// `voxnav_queue_waiting{queue}`, `voxnav_queue_longest_wait_seconds{queue}`,
    /// `voxnav_queue_agents{queue,state}`, `voxnav_queue_calls_total{queue,event}` (offered,
    /// answered, answered_in_time: within `routing::SERVICE_LEVEL`, abandoned, timed_out,
    /// agent_lost),
    /// `voxnav_queue_talk_seconds_total{queue}`, `voxnav_agent_calls_total{agent}` and
    /// `voxnav_agent_talk_seconds_total{agent}`. Labels are the agents file's queue names and
    /// agent ids.
    pub fn watch_queues(&mut self, acd: std::sync::Arc<crate::routing::Acd>) {
        for (name, kind) in QueueCollector::FAMILIES {
            self.families.push((format!("voxnav_{name}"), kind));
        }
        self.registry
            .register_collector(Box::new(QueueCollector(acd)));
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    fn observe_latency(&self, stage: &'static str, d: Duration) {
        self.turn_latency
            .get_or_create(&label("stage", stage))
            .observe(d.as_secs_f64());
    }

    /// Metrics of one decision record.
    fn count_turn(&self, record: &serde_json::Value) {
        let text = |k: &str| record[k].as_str().unwrap_or_default().to_string();
        let (input, decision, reason) = (text("input"), text("decision"), text("reason"));
        if input == "(call start)" {
            return;
        }
        self.turns.get_or_create(&label("decision", decision)).inc();
        if let Some(intent) = record["intent"].as_str() {
            self.intents.get_or_create(&label("intent", intent)).inc();
        }
        if input == "(silence)" {
            self.fallbacks
                .get_or_create(&label("kind", "no_input"))
                .inc();
        } else if reason.starts_with("not understood") {
            self.fallbacks
                .get_or_create(&label("kind", "no_match"))
                .inc();
        }
    }
}

impl Observer for Metrics {
    fn observe(&self, report: &Report) {
        match report {
            Report::CallAnswered { transport, .. } => {
                self.calls_active.inc();
                self.calls
                    .get_or_create(&label("transport", *transport))
                    .inc();
            }
            Report::MediaFinished { counters, .. } => {
                self.calls_active.dec();
                for (direction, n) in [
                    ("sent", counters.sent),
                    ("received", counters.received),
                    ("concealed", counters.concealed),
                    ("lost", counters.lost),
                    // SRTP/SRTCP packets refused (bad tag: a wrong key or an altered packet,
                    // or a replay): never decoded.
                    ("rejected", counters.srtp_rejected),
                ] {
                    self.rtp_packets
                        .get_or_create(&label("direction", direction))
                        .inc_by(n);
                }
            }
            Report::SipResponse { code } => {
                self.sip_responses
                    .get_or_create(&label("code", code.to_string()))
                    .inc();
            }
            Report::DialplanReload { ok } => {
                let result = if *ok { "ok" } else { "refused" };
                self.dialplan_reloads
                    .get_or_create(&label("result", result))
                    .inc();
            }
            Report::Turn { record, .. } => self.count_turn(record),
            Report::Latency { latency, .. } => {
                self.turn_ends
                    .get_or_create(&label("by", latency.ended_by.name()))
                    .inc();
                self.observe_latency("end_of_turn", latency.end_of_turn);
                self.observe_latency("asr", latency.asr);
                self.observe_latency("decide", latency.decide);
                self.observe_latency("reply_audio", latency.reply_audio);
                self.observe_latency("detected_to_audio", latency.detected_to_audio());
                self.observe_latency("voice_to_voice", latency.voice_to_voice());
            }
            Report::BargeIn { resumed, .. } => {
                let result = if *resumed { "resumed" } else { "interrupted" };
                self.barge_ins.get_or_create(&label("result", result)).inc();
            }
            Report::TransferRequested { reason, .. } => {
                self.transfers.get_or_create(&label("reason", reason)).inc();
            }
            Report::Transfer { status, .. } => {
                let result = match status {
                    TransferStatus::Connected => "connected",
                    TransferStatus::Failed => "failed",
                    _ => return,
                };
                self.transfer_attempts
                    .get_or_create(&label("result", result))
                    .inc();
            }
            Report::AsrUnavailable { .. } => {
                self.fallbacks
                    .get_or_create(&label("kind", "asr_unavailable"))
                    .inc();
            }
            Report::EngineWait { engine, waited } => {
                self.speech_queue_wait
                    .get_or_create(&label("engine", *engine))
                    .observe(waited.as_secs_f64());
            }
            Report::Recognized { engine } => {
                self.recognitions
                    .get_or_create(&label("engine", *engine))
                    .inc();
            }
            Report::AsrQueue { running, waiting } => {
                self.asr_running.set(*running as u64);
                self.asr_waiting.set(*waiting as u64);
            }
            Report::CallEnded {
                hotline, outcome, ..
            } => {
                // Hotlines are few (the server config lists them): a bounded label.
                self.call_outcomes
                    .get_or_create(&vec![
                        ("hotline", hotline.clone()),
                        ("outcome", outcome.name().to_string()),
                    ])
                    .inc();
            }
            Report::CallStarted { .. } => {}
            Report::AgentContacts { agent, contacts } => {
                let mut agents =
                    (self.agents_with_contacts.lock()).unwrap_or_else(|p| p.into_inner());
                if contacts.is_empty() {
                    agents.remove(agent);
                } else {
                    agents.insert(agent.clone());
                }
                self.agents_registered.set(agents.len() as i64);
            }
            Report::MessageSaved { queue, .. } => {
                self.queue_messages
                    .get_or_create(&label("queue", queue))
                    .inc();
            }
            // Read from the ACD at each scrape (`watch_queues`).
            Report::AgentState { .. } | Report::QueueAnswered { .. } => {}
            // The desktop's: in the call records and the live view.
            Report::WrapUp { .. } | Report::Assist { .. } | Report::AgentSaid { .. } => {}
            Report::Callback { queue, status, .. } => {
                if matches!(
                    *status,
                    "requested" | "agent_missed" | "connected" | "failed"
                ) {
                    let labels = vec![("queue", queue.clone()), ("status", status.to_string())];
                    self.queue_callbacks.get_or_create(&labels).inc();
                }
            }
            Report::AgentRefused => {
                self.agent_register_refusals.inc();
            }
            Report::Registration { state, status, .. } => {
                self.registered.set(i64::from(*state == "registered"));
                if let Some(status) = status {
                    self.registration_failures
                        .get_or_create(&label("status", status.to_string()))
                        .inc();
                }
            }
        }
    }
}

/// The value of one sample line (`name{labels}`) in an exposition, 0 if absent.
pub fn sample(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The ACD's figures at each scrape (`Metrics::watch_queues`).
#[derive(Debug)]
struct QueueCollector(std::sync::Arc<crate::routing::Acd>);

impl QueueCollector {
    const FAMILIES: [(&'static str, &'static str); 7] = [
        ("queue_waiting", "gauge"),
        ("queue_longest_wait_seconds", "gauge"),
        ("queue_agents", "gauge"),
        ("queue_calls", "counter"),
        ("queue_talk_seconds", "counter"),
        ("agent_calls", "counter"),
        ("agent_talk_seconds", "counter"),
    ];
}

impl prometheus_client::collector::Collector for QueueCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let queues = self.0.queues();
        let q = |name: &str| label("queue", name);
        let mut family = encoder.encode_descriptor(
            "queue_waiting",
            "Callers waiting in the queue for an agent.",
            None,
            MetricType::Gauge,
        )?;
        for f in &queues {
            ConstGauge::new(f.waiting as i64).encode(family.encode_family(&q(&f.name))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "queue_longest_wait_seconds",
            "How long the queue's first caller has waited.",
            None,
            MetricType::Gauge,
        )?;
        for f in &queues {
            let waited = f.longest_wait.as_secs_f64();
            ConstGauge::new(waited).encode(family.encode_family(&q(&f.name))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "queue_agents",
            "The queue's agents per state.",
            None,
            MetricType::Gauge,
        )?;
        for f in &queues {
            for (state, n) in &f.agents {
                let labels = vec![("queue", f.name.clone()), ("state", state.to_string())];
                ConstGauge::new(*n as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "queue_calls",
            "Callers of the queue: offered, answered, answered_in_time (service level), \
             abandoned, timed_out, agent_lost (the agent's phone went silent mid-call).",
            None,
            MetricType::Counter,
        )?;
        for f in &queues {
            let t = &f.totals;
            for (event, n) in [
                ("offered", t.offered),
                ("answered", t.answered),
                ("answered_in_time", t.answered_in_time),
                ("abandoned", t.abandoned),
                ("timed_out", t.timed_out),
                ("agent_lost", t.agent_lost),
            ] {
                let labels = vec![("queue", f.name.clone()), ("event", event.to_string())];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "queue_talk_seconds",
            "Agents' talking time on the queue's calls.",
            None,
            MetricType::Counter,
        )?;
        for f in &queues {
            let talk = f.totals.talk.as_secs_f64();
            ConstCounter::new(talk).encode(family.encode_family(&q(&f.name))?)?;
        }
        let agents = self.0.agent_totals();
        let mut family = encoder.encode_descriptor(
            "agent_calls",
            "Calls the agent finished talking on.",
            None,
            MetricType::Counter,
        )?;
        for (agent, (calls, _)) in &agents {
            ConstCounter::new(*calls).encode(family.encode_family(&label("agent", agent))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "agent_talk_seconds",
            "The agent's talking time.",
            None,
            MetricType::Counter,
        )?;
        for (agent, (_, talk)) in &agents {
            let talk = talk.as_secs_f64();
            ConstCounter::new(talk).encode(family.encode_family(&label("agent", agent))?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Outcome, TurnEnd, TurnLatency};

    #[test]
    fn reports_become_counters_gauges_and_histograms() {
        let m = Metrics::new();
        m.observe(&Report::CallAnswered {
            call_id: "a".into(),
            transport: "udp",
        });
        m.observe(&Report::Turn {
            call_id: "a".into(),
            record: serde_json::json!({"input": "hi", "decision": "answer", "intent": "say \"hi\"", "reason": ""}),
            transcript: vec![],
        });
        for ms in [120, 900] {
            m.observe(&Report::Latency {
                call_id: "a".into(),
                latency: TurnLatency {
                    end_of_turn: Duration::from_millis(200),
                    asr: Duration::from_millis(ms),
                    decide: Duration::ZERO,
                    reply_audio: Duration::ZERO,
                    speculative: false,
                    ended_by: TurnEnd::Model,
                },
            });
        }
        m.observe(&Report::CallEnded {
            call_id: "a".into(),
            hotline: "demo".into(),
            outcome: Outcome::SelfServed,
            transfer_reason: None,
        });
        let text = m.render();
        assert!(text.contains("# TYPE voxnav_calls counter\n"), "{text}");
        assert!(text.contains("voxnav_calls_total{transport=\"udp\"} 1\n"));
        assert!(text.contains("voxnav_calls_active 1\n"));
        assert!(text.contains("voxnav_turns_total{decision=\"answer\"} 1\n"));
        assert!(text.contains("voxnav_intents_total{intent=\"say \\\"hi\\\"\"} 1\n"));
        assert!(text.contains("voxnav_turn_ends_total{by=\"model\"} 2\n"));
        assert!(
            text.contains("voxnav_turn_latency_seconds_bucket{le=\"0.2\",stage=\"asr\"} 1\n")
                || text
                    .contains("voxnav_turn_latency_seconds_bucket{stage=\"asr\",le=\"0.2\"} 1\n")
        );
        assert_eq!(
            sample(&text, "voxnav_turn_latency_seconds_count{stage=\"asr\"}"),
            2.0
        );
        assert_eq!(
            sample(
                &text,
                "voxnav_call_outcomes_total{hotline=\"demo\",outcome=\"self_served\"}"
            ),
            1.0
        );
    }

    /// The list of families is the registry's: each shows up with its type once it has values.
    #[test]
    fn the_family_list_matches_the_exposition() {
        let m = Metrics::new();
        for r in [
            Report::CallAnswered {
                call_id: "a".into(),
                transport: "udp",
            },
            Report::MediaFinished {
                call_id: "a".into(),
                counters: Default::default(),
            },
            Report::SipResponse { code: 200 },
            Report::DialplanReload { ok: true },
            Report::Callback {
                id: "callback-c1".into(),
                queue: "general".into(),
                number: "5551234".into(),
                status: "requested",
                agent: String::new(),
                why: String::new(),
            },
            Report::MessageSaved {
                call_id: "c1".into(),
                queue: "general".into(),
                path: "records/messages/general/c1.wav".into(),
                seconds: 4.0,
            },
            Report::TransferRequested {
                call_id: "a".into(),
                reason: "r".into(),
            },
            Report::AsrUnavailable {
                call_id: "a".into(),
                why: "x".into(),
            },
            Report::BargeIn {
                call_id: "a".into(),
                resumed: false,
            },
            Report::EngineWait {
                engine: "asr",
                waited: Duration::ZERO,
            },
            Report::Recognized { engine: "whisper" },
            Report::Registration {
                registrar: "192.0.2.50:5060".into(),
                state: "failed",
                status: Some(403),
                detail: "Forbidden".into(),
            },
            Report::CallEnded {
                call_id: "a".into(),
                hotline: "demo".into(),
                outcome: Outcome::Abandoned,
                transfer_reason: None,
            },
            Report::Transfer {
                call_id: "a".into(),
                status: TransferStatus::Connected,
                agent: "sip:a@b".into(),
                why: String::new(),
                after: Duration::ZERO,
                frames_to_agent: 0,
                frames_to_caller: 0,
            },
            Report::Turn {
                call_id: "a".into(),
                record: serde_json::json!({"input": "x", "decision": "answer", "intent": "i", "reason": ""}),
                transcript: vec![],
            },
            Report::Latency {
                call_id: "a".into(),
                latency: TurnLatency {
                    end_of_turn: Duration::ZERO,
                    asr: Duration::ZERO,
                    decide: Duration::ZERO,
                    reply_audio: Duration::ZERO,
                    speculative: false,
                    ended_by: TurnEnd::Silence,
                },
            },
        ] {
            m.observe(&r);
        }
        m.records_health();
        let text = m.render();
        for (name, kind) in m.families() {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}: {text}"
            );
        }
        assert_eq!(text.matches("# TYPE ").count(), m.families().len());
    }

    #[test]
    fn the_queues_and_agents_are_read_at_each_scrape() {
        use crate::routing::{Acd, Requested};
        let source = format!(
            "agents:\n  ann:\n    queues: [billing]\n{}",
            crate::agents::hash_lines("ann", "voxnav", "pw")
        );
        let book = crate::agents::load_str("agents.yaml", &source).unwrap();
        let acd = std::sync::Arc::new(Acd::new(&book, Duration::from_secs(5)));
        let mut m = Metrics::new();
        m.watch_queues(acd.clone());
        acd.wait("billing", "c1", 0);
        acd.wait("billing", "c2", 0);
        acd.leave("c2", crate::routing::Leaving::Abandoned);
        acd.request("ann", Requested::Available).unwrap();
        let text = m.render();
        for line in [
            "voxnav_queue_waiting{queue=\"billing\"} 1\n",
            "voxnav_queue_agents{queue=\"billing\",state=\"available\"} 1\n",
            "voxnav_queue_calls_total{queue=\"billing\",event=\"offered\"} 2\n",
            "voxnav_queue_calls_total{queue=\"billing\",event=\"abandoned\"} 1\n",
            "voxnav_agent_calls_total{agent=\"ann\"} 0\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        for (name, kind) in QueueCollector::FAMILIES {
            assert!(
                text.contains(&format!("# TYPE voxnav_{name} {kind}\n")),
                "{name}: {text}"
            );
            assert!(m.families().contains(&(format!("voxnav_{name}"), kind)));
        }
    }

    /// The Grafana dashboard in the repository only queries metrics voxnav exports.
    #[test]
    fn the_grafana_dashboard_uses_exported_metrics() {
        let dashboard = include_str!("../../docs/grafana/voxnav-dashboard.json");
        let metrics = Metrics::new();
        let exported = metrics.families();
        let mut used = 0;
        for (i, _) in dashboard.match_indices("voxnav_") {
            let name: String = dashboard[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // OpenMetrics names a family without the sample suffixes.
            let family = ["_bucket", "_total", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            if family == "voxnav_" {
                continue;
            }
            assert!(
                exported.iter().any(|(name, _)| name == family),
                "the dashboard queries {family}, which voxnav does not export"
            );
            used += 1;
        }
        assert!(used >= 15, "{used} queries");
    }
}
