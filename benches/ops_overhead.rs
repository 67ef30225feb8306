//! What operations cost on the call path: the same live calls against two servers in one run,
//! one with call records (SQLite), metrics and the admin API scraped every second (as
//! Prometheus and an open dashboard would: /metrics, /api/calls, /api/stats), one with
//! `--no-records --no-metrics` and no admin API. Rounds alternate between the two (OFF, ON,
//! OFF, ON, ...) so drift in the machine hits both alike.
//!
//! Reported per server: voice-to-voice p50/p95 on the callers' side (`voxnav call`), server
//! CPU per call, and the ratios ON/OFF. `VOXNAV_BENCH_ROUNDS` (default 3) rounds of
//! `VOXNAV_BENCH_CALLERS` (default 2) callers, 3 turns each.
//!
//! `cargo bench --bench ops_overhead` (about 4 minutes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use voxnav::testkit::{
    BenchServer, bench_caller_script, cpu_ms_and_rss_kb, free_udp_port, percentile,
    scripted_callers, temp_dir,
};

const VOXNAV: &str = env!("CARGO_BIN_EXE_voxnav");
const TOKEN: &str = "bench";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Latencies and CPU of one server over its rounds.
#[derive(Default)]
struct Tally {
    latencies: Vec<u64>,
    cpu_ms: u64,
    calls: usize,
}

impl Tally {
    fn row(&mut self, name: &str) -> (u64, f64) {
        self.latencies.sort_unstable();
        let p50 = percentile(&self.latencies, 0.5);
        let cpu = self.cpu_ms as f64 / self.calls.max(1) as f64;
        println!(
            "{name:<28} {:>5}  {p50:>6}  {:>6}  {cpu:>12.0}",
            self.latencies.len(),
            percentile(&self.latencies, 0.95),
        );
        (p50, cpu)
    }
}

fn main() {
    let rounds = env_number("VOXNAV_BENCH_ROUNDS", 3);
    let callers = env_number("VOXNAV_BENCH_CALLERS", 2);
    let dir = temp_dir("bench-ops");
    let script = bench_caller_script(&dir);
    let admin = format!("127.0.0.1:{}", free_udp_port());
    let records = dir.join("records.db");
    let on = BenchServer::start(
        VOXNAV,
        &[
            "--records",
            records.to_str().unwrap(),
            "--admin-listen",
            &admin,
            "--admin-token",
            TOKEN,
        ],
        &dir.join("on.err"),
    );
    let off = BenchServer::start(
        VOXNAV,
        &["--no-records", "--no-metrics"],
        &dir.join("off.err"),
    );
    // The scraper: what Prometheus (every 15 s, here every second) and a dashboard left open
    // (live calls every second, statistics) ask of the ON server.
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let auth = format!("Bearer {TOKEN}");
            let mut scrapes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for path in ["/metrics", "/api/calls", "/api/stats"] {
                    let answer = voxnav::net::http::fetch_with_headers(
                        "GET",
                        &format!("http://{admin}{path}"),
                        &[("Authorization", &auth)],
                        None,
                        Duration::from_secs(5),
                    );
                    assert!(matches!(answer, Ok((200, _))), "{path}: {answer:?}");
                    scrapes += 1;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            scrapes
        })
    };
    let (mut with_ops, mut without) = (Tally::default(), Tally::default());
    for round in 0..rounds {
        for (server, tally) in [(&off, &mut without), (&on, &mut with_ops)] {
            let (cpu0, _) = cpu_ms_and_rss_kb(server.pid);
            tally
                .latencies
                .extend(scripted_callers(VOXNAV, server.port, &script, callers));
            tally.cpu_ms += cpu_ms_and_rss_kb(server.pid).0 - cpu0;
            tally.calls += callers;
            std::thread::sleep(Duration::from_secs(2));
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    stop.store(true, Ordering::Relaxed);
    let scrapes = scraper.join().unwrap_or(0);
    let db = voxnav::ops::records::connect(&records).expect("the records database");
    let (calls, turns): (i64, i64) = db
        .query_row(
            "SELECT (SELECT COUNT(*) FROM calls), (SELECT COUNT(*) FROM turns)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    println!(
        "{rounds} rounds of {callers} callers per server, alternating; {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("server                       turns  p50 ms  p95 ms  CPU ms/call");
    let (p50_off, cpu_off) = without.row("records+metrics off");
    let (p50_on, cpu_on) = with_ops.row("records+metrics+API on");
    println!(
        "ratios on/off: p50 latency {:.3}, CPU per call {:.3}",
        p50_on as f64 / p50_off.max(1) as f64,
        cpu_on / cpu_off.max(1.0)
    );
    println!(
        "ON server wrote {calls} calls and {turns} turns; the scraper made {scrapes} admin requests"
    );
    let offers = off.keypad_offers() + on.keypad_offers();
    if offers > 0 {
        println!("WARNING: {offers} keypad offers (ASR queue): the rounds are not like for like");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
