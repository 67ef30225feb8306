//! Voice-to-voice latency of live calls with 1, 2, 5 and 10 callers talking at once
//! (`VOXNAV_BENCH_CALLERS=1,2,3` to choose), measured on the callers' side by `voxnav call`:
//! last voiced caller packet -> first voiced bot packet, over G.711 RTP on loopback.
//!
//! Each caller barges into the greeting with a question, then asks two more (espeak-ng
//! speech: knowledge-base answers and an intent), so every turn is recognised by Whisper,
//! routed, and answered from the prompt cache. Callers start 400 ms apart. Reported per level:
//! p50/p95/max latency, turns the server answered with the keypad offer instead (ASR queue
//! too long, counted from its log), and the server's CPU and memory per call.
//!
//! `cargo bench --bench live_calls` (about 4 minutes).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use voxnav::testkit::{KillOnDrop, cpu_ms_and_rss_kb, espeak_wav, free_udp_port, temp_dir};

const VOXNAV: &str = env!("CARGO_BIN_EXE_voxnav");

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let levels: Vec<usize> = std::env::var("VOXNAV_BENCH_CALLERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 5, 10]);
    let dir = temp_dir("bench-live");
    espeak_wav("what are your opening hours", &dir, "hours");
    espeak_wav("how much is shipping", &dir, "shipping");
    espeak_wav("I want to return an item", &dir, "refund");
    let script = dir.join("caller.yaml");
    std::fs::write(
        &script,
        "turns:\n  - wav: hours.wav\n    at_ms: 1500\n  - wav: shipping.wav\n  - wav: refund.wav\n",
    )
    .unwrap();

    let port = free_udp_port();
    let log = dir.join("server.err");
    let mut child = Command::new(VOXNAV)
        .args(["serve", "--sip-listen", &format!("127.0.0.1:{port}")])
        .args(["--dialplan", "dialplans/hotline.yaml", "--demo-orders"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("voxnav serve");
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let _server = KillOnDrop(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(first.contains("SIP listening"), "{first}");
    std::thread::spawn(move || lines.for_each(drop));
    // Let the prompt cache fill (one TTS thread, ~13 s) so every level sees the same server.
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("fixed prompts synthesised")
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, idle_rss) = cpu_ms_and_rss_kb(pid);
    println!(
        "live calls on loopback, {} cores; server idle RSS {:.0} MB (models loaded)",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        idle_rss as f64 / 1024.0
    );
    println!("callers  turns  p50 ms  p95 ms  max ms  keypad offers  CPU/call  RSS/call MB");
    let mut best_under = 0;
    for &n in &levels {
        let offers_before = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("ASR unavailable")
            .count();
        let (cpu0, _) = cpu_ms_and_rss_kb(pid);
        let started = Instant::now();
        let mut peak_rss = 0u64;
        let callers: Vec<_> = (0..n)
            .map(|i| {
                std::thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 400 }));
                Command::new(VOXNAV)
                    .args(["call", &format!("sip:ivr@127.0.0.1:{port}")])
                    .arg("--script")
                    .arg(&script)
                    .args(["--json", "--no-transcribe"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("voxnav call")
            })
            .collect();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    peak = peak.max(cpu_ms_and_rss_kb(pid).1);
                    std::thread::sleep(Duration::from_millis(200));
                }
                peak
            })
        };
        let mut latencies = Vec::new();
        for c in callers {
            let out = c.wait_with_output().expect("caller ends");
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(json) = text.lines().find_map(|l| l.strip_prefix("voxnav call ")) {
                let v: serde_json::Value = serde_json::from_str(json).unwrap();
                latencies.extend(
                    v["voice_to_voice_ms"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|x| x.as_u64()),
                );
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        peak_rss = peak_rss.max(sampler.join().unwrap_or(0));
        let wall = started.elapsed();
        let (cpu1, _) = cpu_ms_and_rss_kb(pid);
        let offers = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("ASR unavailable")
            .count()
            - offers_before;
        latencies.sort_unstable();
        let p95 = percentile(&latencies, 0.95);
        let cpu_share = (cpu1 - cpu0) as f64 / wall.as_millis() as f64;
        println!(
            "{n:>7}  {:>5}  {:>6}  {:>6}  {:>6}  {offers:>13}  {:>7.1}%  {:>11.1}",
            latencies.len(),
            percentile(&latencies, 0.5),
            p95,
            latencies.last().copied().unwrap_or(0),
            100.0 * cpu_share / n as f64,
            peak_rss.saturating_sub(idle_rss) as f64 / 1024.0 / n as f64,
        );
        if p95 < 1500 && offers == 0 && !latencies.is_empty() {
            best_under = best_under.max(n);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    println!(
        "largest level tried with p95 < 1.5 s and no keypad offers: {best_under} talking callers"
    );
    println!(
        "(reference: GPU/cloud voice bots report 500-800 ms; 700 ms of it here is the endpointer's \
         end-of-speech silence)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
