//! Telephony load on loopback with SIPp as the callers (bounded in count and time):
//!
//! 1. Concurrent calls with G.711 audio both ways (SIPp `uac` with `-rtp_echo` echoes our RTP
//!    back): for N = 100..800 calls held together, the server's CPU and memory during the
//!    steady part, per call, and its RTP send timing: each call reports the gap between
//!    consecutive packets against 20 ms (p99 per call, and the share of gaps off by > 2 ms:
//!    below 1% means the p99 over all packets is within 20 +/- 2 ms).
//! 2. Call rate: voxnav at a rate it sustains (1 s calls, RTP both ways) beside SIPp's own
//!    ceiling, SIPp `uac` against SIPp `uas` (no media), on the same machine and run.
//!
//! `cargo bench --bench media_load` (about 4 minutes; needs SIPp from sip-tester).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use voxnav::testkit::median;
use voxnav::testkit::{SippTotals, cpu_ms_and_rss_kb, free_udp_port};

struct Server {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        Self::start_with(1)
    }

    fn start_with(media_threads: usize) -> Server {
        let port = free_udp_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_voxnav"))
            .args(["serve", "--sip-listen", &format!("127.0.0.1:{port}")])
            .args(["--max-calls", "5000", "--rtp-ports", "30000-39999"])
            .args(["--media-threads", &media_threads.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("voxnav serve");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        Server { child, port, lines }
    }

    fn media_lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("voxnav: media "))
            .cloned()
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field(line: &str, name: &str) -> u64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == name)
        .and_then(|i| words.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Starts SIPp `uac` against `target`; `extra` are scenario options.
fn sipp_uac(target: &str, extra: &[&str], stat: &std::path::Path) -> Child {
    let (sip, media) = (free_udp_port(), free_udp_port() & !1);
    Command::new("sipp")
        .args(["-sn", "uac", "-i", "127.0.0.1", "-p", &sip.to_string()])
        .args(["-mp", &media.to_string()])
        .args(extra)
        .args([
            "-nostdin",
            "-buff_size",
            "4194304",
            "-recv_timeout",
            "10000",
        ])
        .args(["-timeout", "200", "-timeout_error"])
        .args(["-trace_stat", "-stf", stat.to_str().unwrap(), "-fd", "1"])
        .arg(target)
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp (sip-tester)")
}

fn concurrent_audio(calls: u64, idle: (u64, u64), media_threads: usize) {
    let server = Server::start_with(media_threads);
    let stat = std::env::temp_dir().join(format!("voxnav-bench-conc-{calls}.csv"));
    let _ = std::fs::remove_file(&stat);
    let ramp_rate = 200;
    let ramp = Duration::from_millis(calls * 1000 / ramp_rate);
    let steady = Duration::from_secs(10);
    // Each call lasts the ramp plus 15 s: all N overlap for at least the steady window.
    let hold = ramp + Duration::from_secs(15);
    let mut sipp = sipp_uac(
        &format!("127.0.0.1:{}", server.port),
        &[
            "-r",
            &ramp_rate.to_string(),
            "-l",
            &calls.to_string(),
            "-m",
            &calls.to_string(),
            "-d",
            &hold.as_millis().to_string(),
            "-rtp_echo",
        ],
        &stat,
    );
    let pid = server.child.id();
    std::thread::sleep(ramp + Duration::from_secs(2));
    let (cpu0, _) = cpu_ms_and_rss_kb(pid);
    let t0 = Instant::now();
    std::thread::sleep(steady);
    let (cpu1, rss) = cpu_ms_and_rss_kb(pid);
    let cpu_share = (cpu1 - cpu0) as f64 / t0.elapsed().as_millis() as f64;
    let _ = sipp.wait();
    std::thread::sleep(Duration::from_millis(500));
    let SippTotals {
        successful: ok,
        failed,
        ..
    } = SippTotals::read(&stat);
    let media = server.media_lines();
    let sent: u64 = media.iter().map(|l| field(l, "sent")).sum();
    let over: u64 = media.iter().map(|l| field(l, "gaps_over_2ms")).sum();
    let p99s: Vec<f64> = media
        .iter()
        .map(|l| field(l, "gap_p99_us") as f64 / 1000.0)
        .collect();
    let worst = p99s.iter().cloned().fold(0.0, f64::max);
    let rss_per_call = rss.saturating_sub(idle.1) as f64 / 1024.0 / calls as f64;
    println!(
        "{calls:>5} calls, {media_threads} media thread(s) | ok {ok:>4} failed {failed:>3} | server CPU {:>5.1}% of a core ({:.3}% per call) | \
         RSS {:>4} MB ({:.3} MB per call) | RTP gap vs 20 ms: per-call p99 median {:.1} ms, worst {:.1} ms; \
         gaps off by > 2 ms: {over} of {sent} ({:.3}%, all-packet p99 within 2 ms: {})",
        cpu_share * 100.0,
        cpu_share * 100.0 / calls as f64,
        rss / 1024,
        rss_per_call,
        median(p99s.clone()),
        worst,
        100.0 * over as f64 / sent.max(1) as f64,
        if over * 100 <= sent { "yes" } else { "no" },
    );
}

/// Runs `calls` 1 s calls at `rate` against `target`; returns (ok, failed, retransmissions).
fn call_rate(target: &str, rate: u64, seconds: u64, rtp: bool, name: &str) -> (u64, u64, u64) {
    let stat = std::env::temp_dir().join(format!("voxnav-bench-rate-{name}-{rate}.csv"));
    let _ = std::fs::remove_file(&stat);
    let calls = (rate * seconds).to_string();
    let rate_s = rate.to_string();
    let mut args = vec!["-r", &rate_s, "-m", &calls, "-d", "1000"];
    if rtp {
        args.push("-rtp_echo");
    }
    let mut sipp = sipp_uac(target, &args, &stat);
    let _ = sipp.wait();
    let t = SippTotals::read(&stat);
    (t.successful, t.failed, t.retransmissions)
}

fn main() {
    // The bench harness passes --bench; nothing to parse.
    println!(
        "== concurrent calls with G.711 both ways (SIPp uac -rtp_echo, loopback, 2 cores shared) =="
    );
    let idle = {
        let server = Server::start();
        std::thread::sleep(Duration::from_millis(500));
        cpu_ms_and_rss_kb(server.child.id())
    };
    println!("idle server RSS {} MB", idle.1 / 1024);
    for calls in [100, 400, 800, 1200, 1600] {
        concurrent_audio(calls, idle, 1);
    }
    // The busiest level again with a media thread per core.
    concurrent_audio(1600, idle, 2);

    println!("\n== call rate, 1 s calls, 20 s per run ==");
    let server = Server::start();
    let target = format!("127.0.0.1:{}", server.port);
    for rate in [1000, 1500] {
        let (ok, failed, retrans) = call_rate(&target, rate, 20, true, "voxnav");
        println!(
            "voxnav (RTP both ways) {rate:>5} calls/s: ok {ok} failed {failed} retransmissions {retrans}"
        );
    }
    drop(server);
    // SIPp's own ceiling: uac against a SIPp uas, no media.
    let uas_port = free_udp_port();
    let mut uas = Command::new("sipp")
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &uas_port.to_string()])
        .args(["-nostdin", "-buff_size", "4194304"])
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp uas");
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("127.0.0.1:{uas_port}");
    for rate in [1500, 3000, 4000] {
        let (ok, failed, retrans) = call_rate(&target, rate, 20, false, "sipp");
        println!(
            "SIPp uas (no media)    {rate:>5} calls/s: ok {ok} failed {failed} retransmissions {retrans}"
        );
    }
    let _ = uas.kill();
    let _ = uas.wait();
}
