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

use std::time::{Duration, Instant};

use voxnav::testkit::{
    BenchServer, bench_caller_script, cpu_ms_and_rss_kb, percentile, scripted_callers, temp_dir,
};

const VOXNAV: &str = env!("CARGO_BIN_EXE_voxnav");

fn main() {
    let levels: Vec<usize> = std::env::var("VOXNAV_BENCH_CALLERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 5, 10]);
    let dir = temp_dir("bench-live");
    let script = bench_caller_script(&dir);
    let server = BenchServer::start(VOXNAV, &[], &dir.join("server.err"));
    let pid = server.pid;
    let (_, idle_rss) = cpu_ms_and_rss_kb(pid);
    println!(
        "live calls on loopback, {} cores; server idle RSS {:.0} MB (models loaded)",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        idle_rss as f64 / 1024.0
    );
    println!("callers  turns  p50 ms  p95 ms  max ms  keypad offers  CPU/call  RSS/call MB");
    let mut best_under = 0;
    for &n in &levels {
        let offers_before = server.keypad_offers();
        let (cpu0, _) = cpu_ms_and_rss_kb(pid);
        let started = Instant::now();
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
        let mut latencies = scripted_callers(VOXNAV, server.port, &script, n);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak_rss = sampler.join().unwrap_or(0);
        let wall = started.elapsed();
        let (cpu1, _) = cpu_ms_and_rss_kb(pid);
        let offers = server.keypad_offers() - offers_before;
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
