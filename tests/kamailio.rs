//! Several voxnav nodes behind Kamailio (Debian's `kamailio`, `deploy/kamailio/kamailio.cfg`),
//! all on loopback, with one PostgreSQL for everyone's call records: three nodes on
//! 127.0.0.2-4 answering a one-prompt hotline, Kamailio on 127.0.0.1 spreading calls over them
//! with the dispatcher and probing each with OPTIONS every second, SIPp calling through
//! Kamailio (ACK and BYE follow the route set), PostgreSQL in a temporary folder.
//!
//! 1. 300 calls are spread over the three nodes, and the third node is killed a third of the way
//!    into the run: Kamailio's probes find it down (the time is printed), no call is sent to it
//!    after that, and the only calls that fail are ones it had taken before it was found down
//!    (those in progress when it died); every call first routed after that succeeds. Every
//!    call the surviving nodes finished is in PostgreSQL under the node that answered it.
//! 2. The second node is drained during a run of 150: it answers OPTIONS and new INVITEs with
//!    503, Kamailio takes it out and fails its INVITEs over to the node left, no call fails,
//!    and the drained node exits by itself once its calls have ended, its records written.
//! 3. PostgreSQL is stopped for 30 s during 150 calls to the last node: they go on, and once it
//!    is back the node's records catch up by themselves, none dropped.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use voxnav::ops::db::Database;
use voxnav::testkit::{
    Kamailio, KillOnDrop, Postgres, free_udp_port, lines_of, temp_dir, wait_exit,
    wait_for_line as wait_for,
};

/// What each node answers: a greeting, then the caller hangs up (SIPp's BYE).
const HOTLINE: &str = "name: cluster\nhandlers: { no_input: bye, no_match: bye }\nstart: ask\n\
    nodes:\n  ask:\n    ask: { prompt: \"Hello.\" }\n    next: bye\n  bye: { hangup: \"Goodbye.\" }\n";

const TOKEN: &str = "nodes-token";

/// A free UDP port on a loopback address other than 127.0.0.1.
fn free_port_on(ip: &str) -> u16 {
    UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Node {
    process: KillOnDrop,
    name: String,
    sip: SocketAddr,
    admin: SocketAddr,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Node {
    /// Its SIP and admin addresses on `ip` (chosen before any node starts: each lists the
    /// others' admin APIs as its peers).
    fn addresses(ip: &str) -> (SocketAddr, SocketAddr) {
        let ip_addr: IpAddr = ip.parse().unwrap();
        (
            SocketAddr::new(ip_addr, free_port_on(ip)),
            SocketAddr::new(ip_addr, free_port_on(ip)),
        )
    }

    fn start(
        (sip, admin): (SocketAddr, SocketAddr),
        peers: &[(SocketAddr, SocketAddr)],
        rtp_ports: &str,
        dialplan: &std::path::Path,
        records: &str,
    ) -> Node {
        let name = format!("node-{}", sip.ip());
        let mut command = Command::new(env!("CARGO_BIN_EXE_voxnav"));
        command.args(["serve", "--sip-listen", &sip.to_string()]);
        for (_, peer) in peers.iter().filter(|(_, a)| *a != admin) {
            command.args(["--peer", &format!("http://{peer}")]);
        }
        let mut child = command
            .args(["--rtp-ports", rtp_ports])
            .args(["--admin-listen", &admin.to_string()])
            .args(["--admin-token", TOKEN])
            .arg("--dialplan")
            .arg(dialplan)
            .args([
                "--records",
                records,
                "--server-name",
                &name,
                "--asr-jobs",
                "1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("voxnav serve starts");
        let lines = lines_of(child.stdout.take().unwrap());
        wait_for(&lines, "voxnav: ready", Duration::from_secs(30)).expect("the node is ready");
        Node {
            process: KillOnDrop(child),
            name,
            sip,
            admin,
            lines,
        }
    }

    fn api(&self, method: &str, path: &str) -> (u16, String) {
        voxnav::net::http::fetch_with_headers(
            method,
            &format!("http://{}{path}", self.admin),
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            None,
            Duration::from_secs(5),
        )
        .expect("the node's admin API answers")
    }

    /// Calls this node has answered.
    fn calls(&self) -> u64 {
        let (_, text) = self.api("GET", "/metrics");
        voxnav::ops::metrics::sample(&text, "voxnav_calls_total{transport=\"udp\"}") as u64
    }

    fn child(&mut self) -> &mut Child {
        &mut self.process.0
    }
}

/// The finished calls PostgreSQL holds for `node`.
fn recorded(records: &Database, node: &str) -> u64 {
    let mut db = records.open().expect("PostgreSQL answers");
    db.row(
        "SELECT COUNT(*) FROM calls WHERE server = ?1 AND ended_ms IS NOT NULL",
        &[node.into()],
    )
    .unwrap()
    .count(0)
}

/// Waits (up to `limit`) until PostgreSQL holds `want` finished calls for `node`; the count.
fn wait_recorded(records: &Database, node: &str, want: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let n = recorded(records, node);
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a SIPp run through Kamailio did: its output, and the Call-IDs of the calls that ended
/// well (the scenario's `<log>` action after the 200 to the BYE).
struct Run {
    output: std::process::Output,
    completed: HashSet<String>,
}

/// `n` short calls through Kamailio at `rate` per second, logging completed calls to `log`;
/// SIPp runs in `log`'s folder, where the callers' silence is.
fn calls_through(proxy: SocketAddr, n: u32, rate: u32, log: &Path) -> Run {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/sip-test/uac_proxy.xml");
    let output = Command::new("sipp")
        .args(["-sf", scenario, "-i", "127.0.0.1"])
        .args(["-p", &free_udp_port().to_string()])
        .args(["-mp", &(free_udp_port() & !1).to_string()])
        .args(["-m", &n.to_string(), "-r", &rate.to_string(), "-l", "60"])
        .args(["-d", "300", "-timeout", "60", "-timeout_error", "-nostdin"])
        .arg("-trace_logs")
        .arg("-log_file")
        .arg(log)
        .arg(proxy.to_string())
        .current_dir(log.parent().unwrap())
        .output()
        .expect("sipp is installed (sip-tester)");
    let completed = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .skip_while(|w| *w != "completed")
                .nth(1)
        })
        .map(str::to_string)
        .collect();
    Run { output, completed }
}

fn assert_all_succeeded(run: &Run, what: &str) {
    let out = &run.output;
    assert!(
        out.status.success(),
        "{what}: some calls failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kamailio's log lines, kept as they are read: the test waits on some and then reads back
/// where each call was routed relative to them.
struct KamailioLog<'a> {
    lines: &'a Receiver<String>,
    seen: Vec<String>,
}

impl KamailioLog<'_> {
    /// Reads until a line containing `text` (within `limit`); its index in `seen`.
    fn wait_for(&mut self, text: &str, limit: Duration) -> Option<usize> {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line);
            if self.seen.last().unwrap().contains(text) {
                return Some(self.seen.len() - 1);
            }
        }
        None
    }

    /// Reads until `calls` calls have had their INVITE routed (within `limit`).
    fn wait_routed(&mut self, calls: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while first_routes(&self.seen).len() < calls {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => return,
            }
        }
    }
}

/// Where each call's INVITE was first routed: Call-ID -> (index of the log line, node URI),
/// from the proxy's "INVITE <Call-ID> to <node>" lines.
fn first_routes(lines: &[String]) -> HashMap<String, (usize, String)> {
    let mut routes = HashMap::new();
    for (at, line) in lines.iter().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = words.iter().position(|w| *w == "INVITE")
            && words.get(i + 2) == Some(&"to")
            && let (Some(call), Some(node)) = (words.get(i + 1), words.get(i + 3))
        {
            routes
                .entry(call.to_string())
                .or_insert((at, node.to_string()));
        }
    }
    routes
}

#[test]
fn calls_spread_over_nodes_behind_kamailio_survive_a_drain_and_a_dead_node() {
    let dir = temp_dir("kamailio");
    let pg = Postgres::start(&dir);
    let records = Database::parse(&pg.url());
    let dialplan = dir.join("cluster.yaml");
    std::fs::write(&dialplan, HOTLINE).unwrap();
    std::fs::write(dir.join("silence.ulaw"), [0xFFu8; 8000]).unwrap();
    let addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4"].map(Node::addresses);
    let mut nodes = [
        Node::start(
            addresses[0],
            &addresses,
            "30000-30999",
            &dialplan,
            &pg.url(),
        ),
        Node::start(
            addresses[1],
            &addresses,
            "31000-31999",
            &dialplan,
            &pg.url(),
        ),
        Node::start(
            addresses[2],
            &addresses,
            "32000-32999",
            &dialplan,
            &pg.url(),
        ),
    ];
    let proxy = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), free_udp_port());
    let sips: Vec<SocketAddr> = nodes.iter().map(|n| n.sip).collect();
    let kamailio = Kamailio::start(&dir, proxy, &sips, 64).expect("kamailio answers");
    let mut log = KamailioLog {
        lines: &kamailio.lines,
        seen: Vec::new(),
    };

    // 1. 300 calls spread over the three nodes; the third is killed a third of the way in.
    let run_log = dir.join("spread.log");
    let caller = std::thread::spawn(move || calls_through(proxy, 300, 30, &run_log));
    let deadline = Instant::now() + Duration::from_secs(30);
    while nodes[2].calls() < 30 {
        assert!(Instant::now() < deadline, "the run reaches the third node");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Instant::now();
    nodes[2].child().kill().unwrap();
    let dead = format!("sip:{}", nodes[2].sip);
    let down_at = log
        .wait_for(
            &format!("voxnav node {dead} is down"),
            Duration::from_secs(10),
        )
        .expect("Kamailio finds the dead node");
    println!(
        "the dead node was taken out {} ms after it died (probe interval 1 s, probe timeout 2 s)",
        killed.elapsed().as_millis()
    );
    let run = caller.join().unwrap();
    log.wait_routed(300, Duration::from_secs(10));
    let routes = first_routes(&log.seen);
    assert_eq!(routes.len(), 300, "every call reached Kamailio");
    let mut failed: Vec<(&String, &(usize, String))> = (routes.iter())
        .filter(|(call, _)| !run.completed.contains(*call))
        .collect();
    failed.sort_by_key(|(_, (at, _))| *at);
    for (call, (at, node)) in &failed {
        assert!(
            *node == dead && *at < down_at,
            "call {call} failed, but it was first routed to {node} (line {at}; the dead node \
             was out at line {down_at}):\n{}",
            String::from_utf8_lossy(&run.output.stdout)
        );
    }
    let after_down = routes.values().filter(|(at, _)| *at > down_at).count();
    assert!(
        after_down > 0,
        "calls were still coming once the node was out"
    );
    let to_dead_after = (log.seen[down_at..].iter())
        .filter(|l| l.contains(" INVITE ") && l.trim_end().ends_with(&format!(" to {dead}")))
        .count();
    // The down line comes from Kamailio's timer process and routing lines from its two
    // workers (children=2): a worker that chose the node a moment before it was marked down
    // may write its line just after. That is at most one line per worker; more would be
    // calls sent to a node known dead.
    assert!(
        to_dead_after <= 2,
        "{to_dead_after} INVITEs went to the dead node once it was out"
    );
    let failovers = (log.seen.iter())
        .filter(|l| l.contains("failed over"))
        .count();
    println!(
        "300 calls, node killed mid-run: {} completed, {} failed (all taken by the dead node \
         before it was found down), {failovers} INVITEs failed over from it, {after_down} calls \
         first routed after it was out (all completed)",
        run.completed.len(),
        failed.len()
    );
    let taken: Vec<u64> = nodes[..2].iter().map(Node::calls).collect();
    println!("calls per surviving node: {taken:?}");
    assert!(taken.iter().all(|&n| n > 0), "{taken:?}");
    for (node, &n) in nodes.iter().zip(&taken) {
        let stored = wait_recorded(&records, &node.name, n, Duration::from_secs(20));
        assert_eq!(stored, n, "{}'s calls are all in PostgreSQL", node.name);
    }
    // Any node's API shows everyone's records (one database).
    let (status, body) = nodes[0].api("GET", "/api/records/calls?limit=1000");
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    for (node, &n) in nodes.iter().zip(&taken) {
        let theirs = (listed["calls"].as_array().unwrap().iter())
            .filter(|c| c["server"] == node.name.as_str())
            .count();
        assert_eq!(
            theirs as u64, n,
            "{}'s records through the first node",
            node.name
        );
    }

    // 2. Drain the second node while calls come in: none fails, and it exits by itself.
    let first_before = nodes[0].calls();
    let before = nodes[1].calls();
    let run_log = dir.join("drain.log");
    let caller = std::thread::spawn(move || calls_through(proxy, 150, 30, &run_log));
    // Meanwhile the first node's cluster view lists the calls in progress on the second, and
    // names the dead node as unreachable.
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen_elsewhere = loop {
        let (status, body) = nodes[0].api("GET", "/api/cluster/calls");
        assert_eq!(status, 200, "{body}");
        let view: serde_json::Value = serde_json::from_str(&body).unwrap();
        let servers = view["servers"].as_array().unwrap();
        assert_eq!(servers.len(), 3, "{view}");
        let unreachable: Vec<&serde_json::Value> =
            servers.iter().filter(|s| !s["error"].is_null()).collect();
        assert_eq!(unreachable.len(), 1, "{view}");
        assert_eq!(
            unreachable[0]["url"],
            format!("http://{}", nodes[2].admin),
            "{view}"
        );
        let elsewhere = (view["calls"].as_array().unwrap().iter())
            .filter_map(|c| c["server"].as_str())
            .filter(|s| *s == nodes[1].name)
            .count();
        if elsewhere > 0 {
            break elsewhere;
        }
        assert!(
            Instant::now() < deadline,
            "another node's live call shows: {view}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("the first node's cluster view showed {seen_elsewhere} calls on the second");
    let deadline = Instant::now() + Duration::from_secs(20);
    while nodes[1].calls() < before + 10 {
        assert!(Instant::now() < deadline, "the run reaches the node");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(nodes[1].api("POST", "/api/drain").0, 200);
    let down = format!("voxnav node sip:{} is down", nodes[1].sip);
    log.wait_for(&down, Duration::from_secs(10))
        .expect("Kamailio takes the drained node out");
    assert_all_succeeded(&caller.join().unwrap(), "a node drained during the run");
    wait_for(&nodes[1].lines, "voxnav: drained", Duration::from_secs(10))
        .expect("the drained node finishes its calls");
    let status =
        wait_exit(nodes[1].child(), Duration::from_secs(20)).expect("the drained node exits");
    assert!(status.success(), "{status}");
    // It flushed its records before exiting: every call it answered is in PostgreSQL.
    let drained_calls = before + 150 - (nodes[0].calls() - first_before);
    assert_eq!(
        recorded(&records, &nodes[1].name),
        drained_calls,
        "the drained node's calls are all recorded"
    );

    // 3. PostgreSQL stops for the 30 s the next calls take (5 a second): calls go on
    //    regardless, all on the node left.
    let left_before = nodes[0].calls();
    pg.stop();
    let outage = Instant::now();
    let run = calls_through(proxy, 150, 5, &dir.join("outage.log"));
    println!(
        "150 calls while PostgreSQL was down ({} ms)",
        outage.elapsed().as_millis()
    );
    assert_all_succeeded(&run, "with PostgreSQL down");
    let (_, metrics) = nodes[0].api("GET", "/metrics");
    let sample = |name: &str| voxnav::ops::metrics::sample(&metrics, name);
    assert_eq!(
        sample("voxnav_records_connected"),
        0.0,
        "the node saw the outage"
    );
    pg.start_again();
    let left = nodes[0].calls();
    assert_eq!(left - left_before, 150, "all on the node left");
    let stored = wait_recorded(&records, &nodes[0].name, left, Duration::from_secs(60));
    assert_eq!(
        stored, left,
        "the records caught up once PostgreSQL was back"
    );
    let (_, metrics) = nodes[0].api("GET", "/metrics");
    let sample = |name: &str| voxnav::ops::metrics::sample(&metrics, name);
    assert_eq!(sample("voxnav_records_connected"), 1.0);
    assert_eq!(
        sample("voxnav_record_writes_total{result=\"dropped\"}"),
        0.0,
        "the buffer held the outage's records"
    );
    println!(
        "records in PostgreSQL per node: {:?}",
        nodes
            .iter()
            .map(|n| (n.name.clone(), recorded(&records, &n.name)))
            .collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
