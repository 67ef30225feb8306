//! Prometheus metrics, kept in-process and rendered in the text exposition format (0.0.4) at
//! `/metrics`. Names follow Prometheus conventions (`voxnav_` prefix, `_total` counters, units
//! in names: `_seconds`); label values come from bounded sets only (decision kinds, outcomes,
//! the dialplan's own intent names, SIP status codes), never from caller input.
//!
//! One process-wide registry (`metrics()`): the call path only touches atomics or a short
//! mutex, never I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Off (`serve --no-metrics`): counters and histograms ignore updates, so `/metrics` shows
/// only the families; used to measure what counting costs (benches/ops_overhead.rs).
static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns counting on or off for the whole process.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Counters keyed by their label values.
#[derive(Default)]
pub struct CounterFamily {
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl CounterFamily {
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }

    pub fn add(&self, labels: &[&str], n: u64) {
        if !enabled() {
            return;
        }
        let key: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        *self
            .values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default() += n;
    }

    /// The current value for these labels (0 if never counted).
    pub fn get(&self, labels: &[&str]) -> u64 {
        let key: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    fn snapshot(&self) -> Vec<(Vec<String>, u64)> {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

/// Latency buckets (seconds): fine below a second, where turn latency lives.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0,
];

/// Histograms keyed by their label values, with `LATENCY_BUCKETS`.
#[derive(Default)]
pub struct HistogramFamily {
    values: Mutex<BTreeMap<Vec<String>, Histogram>>,
}

#[derive(Clone, Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl HistogramFamily {
    pub fn observe(&self, labels: &[&str], value: Duration) {
        if !enabled() {
            return;
        }
        let key: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        let secs = value.as_secs_f64();
        let mut all = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let h = all.entry(key).or_default();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Observations so far for these labels.
    pub fn count(&self, labels: &[&str]) -> u64 {
        let key: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .map_or(0, |h| h.count)
    }
}

/// Every metric voxnav exports.
#[derive(Default)]
pub struct Metrics {
    pub calls_active: AtomicI64,
    /// [transport]
    pub calls_total: CounterFamily,
    /// [outcome]: self_served, transferred, failed (no agent answered), abandoned
    pub call_outcomes_total: CounterFamily,
    /// [reason] of transfers (the dialplan's reasons: a bounded, configured set)
    pub transfers_total: CounterFamily,
    /// [result]: connected, failed
    pub transfer_attempts_total: CounterFamily,
    /// [decision]: answer, dialplan, transfer, end
    pub turns_total: CounterFamily,
    /// [intent] (the dialplan's intent names, or "none")
    pub intents_total: CounterFamily,
    /// [kind]: no_match, no_input, asr_unavailable
    pub fallbacks_total: CounterFamily,
    /// [stage]: asr, decide, reply_audio, detected_to_audio, voice_to_voice
    pub turn_latency_seconds: HistogramFamily,
    /// [engine]: asr, tts
    pub speech_queue_wait_seconds: HistogramFamily,
    /// [code] of SIP responses sent
    pub sip_responses_total: CounterFamily,
    /// [direction]: sent, received, concealed (played as concealment), lost (never arrived)
    pub rtp_packets_total: CounterFamily,
    /// [result]: ok, refused
    pub dialplan_reloads_total: CounterFamily,
    pub asr_queue_running: AtomicU64,
    pub asr_queue_waiting: AtomicU64,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The process-wide registry.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels_text(names: &[&str], values: &[String], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some((n, v)) = extra {
        parts.push(format!("{n}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn histogram(out: &mut String, name: &str, help: &str, label: &str, family: &HistogramFamily) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let all = family
        .values
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for (values, h) in all {
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let l = labels_text(&[label], &values, Some(("le", bound.to_string())));
            let _ = writeln!(out, "{name}_bucket{l} {}", h.buckets[i]);
        }
        let l = labels_text(&[label], &values, Some(("le", "+Inf".into())));
        let _ = writeln!(out, "{name}_bucket{l} {}", h.count);
        let l = labels_text(&[label], &values, None);
        let _ = writeln!(out, "{name}_sum{l} {}\n{name}_count{l} {}", h.sum, h.count);
    }
}

fn counter(out: &mut String, name: &str, help: &str, labels: &[&str], family: &CounterFamily) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (values, v) in family.snapshot() {
        let _ = writeln!(out, "{name}{} {v}", labels_text(labels, &values, None));
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        gauge(
            &mut out,
            "voxnav_calls_active",
            "Calls in progress.",
            self.calls_active.load(Ordering::Relaxed) as f64,
        );
        counter(
            &mut out,
            "voxnav_calls_total",
            "Calls answered.",
            &["transport"],
            &self.calls_total,
        );
        counter(
            &mut out,
            "voxnav_call_outcomes_total",
            "Finished calls by outcome.",
            &["outcome"],
            &self.call_outcomes_total,
        );
        counter(
            &mut out,
            "voxnav_transfers_total",
            "Transfers to a human, by the dialplan's reason.",
            &["reason"],
            &self.transfers_total,
        );
        counter(
            &mut out,
            "voxnav_transfer_attempts_total",
            "Agent legs placed, by result.",
            &["result"],
            &self.transfer_attempts_total,
        );
        counter(
            &mut out,
            "voxnav_turns_total",
            "Caller turns by decision.",
            &["decision"],
            &self.turns_total,
        );
        counter(
            &mut out,
            "voxnav_intents_total",
            "Intents recognised in caller turns.",
            &["intent"],
            &self.intents_total,
        );
        counter(
            &mut out,
            "voxnav_fallbacks_total",
            "Turns the bot could not use: no match, no input, recognition unavailable.",
            &["kind"],
            &self.fallbacks_total,
        );
        histogram(
            &mut out,
            "voxnav_turn_latency_seconds",
            "Per-turn latency by stage (endpoint detected -> ASR -> decision -> first reply audio).",
            "stage",
            &self.turn_latency_seconds,
        );
        histogram(
            &mut out,
            "voxnav_speech_queue_wait_seconds",
            "Time a recognition or synthesis waited for its engine and cores.",
            "engine",
            &self.speech_queue_wait_seconds,
        );
        counter(
            &mut out,
            "voxnav_sip_responses_total",
            "SIP responses sent, by status code.",
            &["code"],
            &self.sip_responses_total,
        );
        counter(
            &mut out,
            "voxnav_rtp_packets_total",
            "RTP packets of finished calls: sent, received, concealed (played as concealment), lost (never arrived).",
            &["direction"],
            &self.rtp_packets_total,
        );
        counter(
            &mut out,
            "voxnav_dialplan_reloads_total",
            "Dialplan reloads, by result (refused ones keep the old version serving).",
            &["result"],
            &self.dialplan_reloads_total,
        );
        gauge(
            &mut out,
            "voxnav_asr_queue_running",
            "Recognitions running.",
            self.asr_queue_running.load(Ordering::Relaxed) as f64,
        );
        gauge(
            &mut out,
            "voxnav_asr_queue_waiting",
            "Recognitions waiting for the engine.",
            self.asr_queue_waiting.load(Ordering::Relaxed) as f64,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms_in_the_text_format() {
        let m = Metrics::default();
        m.calls_total.inc(&["udp"]);
        m.turns_total.add(&["answer"], 2);
        m.intents_total.inc(&["say \"hi\""]);
        m.turn_latency_seconds
            .observe(&["asr"], Duration::from_millis(120));
        m.turn_latency_seconds
            .observe(&["asr"], Duration::from_millis(900));
        let text = m.render();
        assert!(
            text.contains("# TYPE voxnav_calls_total counter\n"),
            "{text}"
        );
        assert!(text.contains("voxnav_calls_total{transport=\"udp\"} 1\n"));
        assert!(text.contains("voxnav_turns_total{decision=\"answer\"} 2\n"));
        assert!(text.contains("voxnav_intents_total{intent=\"say \\\"hi\\\"\"} 1\n"));
        assert!(text.contains("voxnav_turn_latency_seconds_bucket{stage=\"asr\",le=\"0.2\"} 1\n"));
        assert!(text.contains("voxnav_turn_latency_seconds_bucket{stage=\"asr\",le=\"1\"} 2\n"));
        assert!(text.contains("voxnav_turn_latency_seconds_bucket{stage=\"asr\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("voxnav_turn_latency_seconds_count{stage=\"asr\"} 2\n"));
        assert!(text.contains("voxnav_calls_active 0\n"));
        assert_eq!(m.turns_total.get(&["answer"]), 2);
    }

    /// The Grafana dashboard in the repository only queries metrics voxnav exports.
    #[test]
    fn the_grafana_dashboard_uses_exported_metrics() {
        let dashboard = include_str!("../../docs/grafana/voxnav-dashboard.json");
        let exported = Metrics::default().render();
        let mut used = 0;
        for (i, _) in dashboard.match_indices("voxnav_") {
            let name: String = dashboard[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = name.strip_suffix("_bucket").unwrap_or(&name);
            if family == "voxnav_" {
                continue;
            }
            assert!(
                exported.contains(&format!("# TYPE {family} ")),
                "the dashboard queries {family}, which voxnav does not export"
            );
            used += 1;
        }
        assert!(used >= 15, "{used} queries");
    }
}
