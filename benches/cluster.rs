//! One voxnav node alone against three behind Kamailio, in one run on loopback (issue 16's
//! proxy overhead). The same three nodes (127.0.0.2-4, records off, one media thread each)
//! and Kamailio (127.0.0.1, `deploy/kamailio/kamailio.cfg`) serve both sides: "direct" is
//! SIPp calling the first node, "via Kamailio" is SIPp calling the proxy, which spreads the
//! calls over all three and stays in their path (Record-Route: ACK and BYE pass through it).
//!
//! 1. Call setup rate: 1 s calls with G.711 both ways (the callers send silence) at 100, 200,
//!    400 and 800 calls/s for 10 s: calls completed and failed, SIPp's retransmissions, the
//!    time from INVITE to 200 (median and p95, SIPp measures whole ms), and the CPU the servers
//!    spent per call (the voxnav nodes and every Kamailio process).
//! 2. Concurrent media calls: 800 calls held together with RTP both ways: completed, the CPU of
//!    the servers in the steady part, and our RTP send timing (per-call p99 gap vs 20 ms).
//! 3. Failover detection: a node killed three times (and restarted): the time until Kamailio's
//!    probes take it out.
//!
//! Both sides share the machine's two cores with SIPp; the ratios are what to read.
//! `cargo bench --bench cluster` (about 3 minutes; needs sip-tester and kamailio).

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use voxnav::testkit::{
    Kamailio, SippTotals, cpu_ms_and_rss_kb, free_udp_port, median, percentile, temp_dir,
    wait_for_line,
};

/// Each node's hotline: a greeting, then silence until the caller hangs up (a minute before
/// a silent caller is asked again: longer than any call here).
const HOTLINE: &str = "name: cluster\nsettings: { no_input_ms: 60000 }\n\
    handlers: { no_input: bye, no_match: bye }\nstart: ask\n\
    nodes:\n  ask:\n    ask: { prompt: \"Hello.\" }\n    next: bye\n  bye: { hangup: \"Goodbye.\" }\n";

struct Node {
    child: Child,
    sip: SocketAddr,
    rtp_ports: String,
    dialplan: PathBuf,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn start(sip: SocketAddr, rtp_ports: &str, dialplan: &Path) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_voxnav"))
            .args(["serve", "--sip-listen", &sip.to_string()])
            .args(["--rtp-ports", rtp_ports, "--max-calls", "5000"])
            .args([
                "--media-threads",
                "1",
                "--asr-jobs",
                "1",
                "--records",
                "off",
            ])
            .arg("--dialplan")
            .arg(dialplan)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("voxnav serve");
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                sink.lock().unwrap().push(line);
            }
        });
        wait_for_line(&rx, "voxnav: ready", Duration::from_secs(30)).expect("the node is ready");
        Node {
            child,
            sip,
            rtp_ports: rtp_ports.to_string(),
            dialplan: dialplan.to_path_buf(),
            lines,
        }
    }

    /// The per-call media lines printed since the last call of this.
    fn take_media_lines(&self) -> Vec<String> {
        let mut lines = self.lines.lock().unwrap();
        let media = (lines.iter())
            .filter(|l| l.starts_with("voxnav: media "))
            .cloned()
            .collect();
        lines.clear();
        media
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every process of the servers: the nodes and Kamailio's main process with its children.
fn server_pids(nodes: &[Node], kamailio_pid: u32) -> Vec<u32> {
    let mut pids: Vec<u32> = nodes.iter().map(|n| n.child.id()).collect();
    pids.push(kamailio_pid);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // After the ")": state, then the parent's pid.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if parent == Some(kamailio_pid) {
            pids.push(pid);
        }
    }
    pids
}

fn cpu_ms(pids: &[u32]) -> u64 {
    pids.iter().map(|&p| cpu_ms_and_rss_kb(p).0).sum()
}

fn field(line: &str, name: &str) -> u64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    (words.iter().position(|w| *w == name))
        .and_then(|i| words.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What one SIPp run saw.
struct Run {
    totals: SippTotals,
    /// INVITE to 200, each call, in ms.
    setup_ms: Vec<u64>,
}

/// `calls` calls of `hold` at `rate` a second to `target` through the record-routing caller
/// scenario (RTP both ways: the caller sends silence).
fn sipp(target: SocketAddr, rate: u64, calls: u64, hold: Duration, dir: &Path) -> Run {
    let work = dir.join(format!("sipp-{target}-{rate}-{calls}").replace([':', '.'], "_"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(dir.join("silence.ulaw"), work.join("silence.ulaw")).unwrap();
    let stat = work.join("stat.csv");
    let status = Command::new("sipp")
        .arg("-sf")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sip-test/uac_proxy.xml"
        ))
        .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
        .args(["-mp", &(free_udp_port() & !1).to_string()])
        .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
        .args(["-l", &calls.to_string()])
        .args(["-d", &hold.as_millis().to_string()])
        .args([
            "-nostdin",
            "-buff_size",
            "4194304",
            "-recv_timeout",
            "10000",
        ])
        .args(["-timeout", "120", "-timeout_error"])
        .args(["-trace_stat", "-fd", "1", "-stf"])
        .arg(&stat)
        .args(["-trace_rtt", "-rtt_freq", "1"])
        .arg(target.to_string())
        .current_dir(&work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sipp (sip-tester)");
    let _ = status;
    let mut setup_ms = Vec::new();
    for entry in std::fs::read_dir(&work).unwrap().flatten() {
        if entry.file_name().to_string_lossy().ends_with("_rtt.csv") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            setup_ms.extend(
                (text.lines().skip(1))
                    .filter_map(|l| l.split(';').nth(1))
                    .filter_map(|v| v.parse::<f64>().ok())
                    .map(|v| v as u64),
            );
        }
    }
    setup_ms.sort_unstable();
    Run {
        totals: SippTotals::read(&stat),
        setup_ms,
    }
}

fn main() {
    let dir = temp_dir("cluster-bench");
    let dialplan = dir.join("cluster.yaml");
    std::fs::write(&dialplan, HOTLINE).unwrap();
    // The callers' side of the media (the scenario loops it): silence, so no call ends a
    // turn and waits on recognition; what is measured is SIP, RTP and the proxy.
    std::fs::write(dir.join("silence.ulaw"), [0xFFu8; 8000]).unwrap();
    let sip = |ip: &str| {
        let ip: IpAddr = ip.parse().unwrap();
        let port = UdpSocket::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        SocketAddr::new(ip, port)
    };
    let mut nodes = vec![
        Node::start(sip("127.0.0.2"), "30000-33999", &dialplan),
        Node::start(sip("127.0.0.3"), "34000-37999", &dialplan),
        Node::start(sip("127.0.0.4"), "38000-41999", &dialplan),
    ];
    let proxy = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), free_udp_port());
    let sips: Vec<SocketAddr> = nodes.iter().map(|n| n.sip).collect();
    let kamailio = Kamailio::start(&dir, proxy, &sips, 256).expect("kamailio answers");
    let kamailio_pid = std::fs::read_to_string(dir.join("kamailio.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .expect("kamailio wrote its pid");
    let pids = server_pids(&nodes, kamailio_pid);
    let sides = [
        ("direct, one node", nodes[0].sip),
        ("via Kamailio, three", proxy),
    ];

    println!("== call setup: 1 s calls, RTP both ways, 10 s per rate ==");
    for rate in [100u64, 200, 400, 800] {
        let mut per_call_cpu = Vec::new();
        for (name, target) in sides {
            let cpu0 = cpu_ms(&pids);
            let run = sipp(target, rate, rate * 10, Duration::from_secs(1), &dir);
            let cpu = cpu_ms(&pids) - cpu0;
            let per_call = cpu as f64 / (rate * 10) as f64;
            per_call_cpu.push(per_call);
            println!(
                "{rate:>4} calls/s {name:<20} | ok {:>5} failed {:>3} retransmissions {:>4} | \
                 INVITE->200 median {} ms p95 {} ms | server CPU {per_call:.2} ms per call",
                run.totals.successful,
                run.totals.failed,
                run.totals.retransmissions,
                percentile(&run.setup_ms, 0.5),
                percentile(&run.setup_ms, 0.95),
            );
        }
        println!(
            "{rate:>4} calls/s server CPU per call via Kamailio / direct: {:.2}x",
            per_call_cpu[1] / per_call_cpu[0]
        );
    }

    println!("\n== concurrent media calls: 800 held together, G.711 both ways ==");
    for (name, target) in sides {
        for node in &nodes {
            node.take_media_lines();
        }
        let calls = 800u64;
        let ramp_rate = 200;
        let ramp = Duration::from_millis(calls * 1000 / ramp_rate);
        let steady = Duration::from_secs(10);
        let hold = ramp + Duration::from_secs(15);
        let dir_for_run = dir.clone();
        let caller = std::thread::spawn(move || sipp(target, ramp_rate, calls, hold, &dir_for_run));
        std::thread::sleep(ramp + Duration::from_secs(2));
        let cpu0 = cpu_ms(&pids);
        let t0 = Instant::now();
        std::thread::sleep(steady);
        let cpu_share = (cpu_ms(&pids) - cpu0) as f64 / t0.elapsed().as_millis() as f64;
        let run = caller.join().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let media: Vec<String> = nodes.iter().flat_map(Node::take_media_lines).collect();
        let p99s: Vec<f64> = (media.iter())
            .map(|l| field(l, "gap_p99_us") as f64 / 1000.0)
            .collect();
        let sent: u64 = media.iter().map(|l| field(l, "sent")).sum();
        let over: u64 = media.iter().map(|l| field(l, "gaps_over_2ms")).sum();
        println!(
            "{name:<20} | ok {:>4} failed {:>3} | server CPU {:>5.1}% of a core | RTP gap per-call \
             p99 median {:.1} ms, worst {:.1} ms; gaps off by > 2 ms {:.3}%",
            run.totals.successful,
            run.totals.failed,
            cpu_share * 100.0,
            median(p99s.clone()),
            p99s.iter().cloned().fold(0.0, f64::max),
            100.0 * over as f64 / sent.max(1) as f64,
        );
    }

    println!("\n== failover detection: the third node killed, then restarted ==");
    let mut detection = Vec::new();
    for _ in 0..3 {
        let node = nodes.pop().unwrap();
        let (sip_addr, ports, plan) = (node.sip, node.rtp_ports.clone(), node.dialplan.clone());
        let killed = Instant::now();
        drop(node);
        wait_for_line(
            &kamailio.lines,
            &format!("voxnav node sip:{sip_addr} is down"),
            Duration::from_secs(10),
        )
        .expect("Kamailio takes the dead node out");
        detection.push(killed.elapsed().as_millis() as f64);
        nodes.push(Node::start(sip_addr, &ports, &plan));
        wait_for_line(
            &kamailio.lines,
            &format!("voxnav node sip:{sip_addr} is up"),
            Duration::from_secs(10),
        )
        .expect("Kamailio takes the node back");
    }
    println!(
        "taken out after {detection:?} ms (median {:.0} ms; OPTIONS every 1 s, 2 s without an \
         answer is down)",
        median(detection.clone())
    );
    drop(kamailio);
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}
