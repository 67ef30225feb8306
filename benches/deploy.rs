//! What production deployment costs, in one run:
//!
//! 1. Call record writes per second through the records writer (`RecordStore`: the bounded
//!    buffer, batched transactions), SQLite against PostgreSQL (a server of the bench's own in
//!    a temporary folder, default settings), rounds alternating. Each round sends the events
//!    of `VOXNAV_BENCH_CALLS` (default 2000) calls (start, 3 turns, end) as fast as the call
//!    path would, then waits for the writer to catch up (`flush`).
//! 2. SRTP per call: protecting and checking 20 ms G.711 packets (AES-CM-128, HMAC-SHA1-80)
//!    each way against copying them plain, as CPU per call-second (50 packets each way).
//! 3. TLS: full handshakes (TLS 1.3, ECDSA P-256 certificate, in memory, no socket) per
//!    second: the CPU a call over TLS adds when each call opens its own connection.
//!
//! `cargo bench --bench deploy` (about a minute).

use std::sync::Arc;
use std::time::{Duration, Instant};

use voxnav::media::srtp::{Inbound, MasterKey, Outbound};
use voxnav::ops::db::Database;
use voxnav::ops::records::{RecordEvent, RecordStore, WriterConfig};
use voxnav::testkit::{Postgres, median, temp_dir};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Events per second written by a store: `calls` calls' events sent, then flushed.
fn write_rate(database: &Database, calls: usize, round: usize) -> f64 {
    let store = RecordStore::open(
        database,
        WriterConfig {
            buffer: calls * 5 + 10,
            ..Default::default()
        },
        Arc::default(),
    )
    .expect("the records database");
    let now = voxnav::ops::live::now_ms();
    let started = Instant::now();
    for i in 0..calls {
        let call_id = format!("bench-{round}-{i}");
        store.send(RecordEvent::CallStarted {
            call_id: call_id.clone(),
            caller: "+15550100".into(),
            hotline: "bench".into(),
            dialplan_version: 1,
            started_ms: now,
            server: Some("bench".into()),
        });
        for (k, input) in ["(call start)", "where is my order", "4 7 2 1 9 8"]
            .iter()
            .enumerate()
        {
            store.send(RecordEvent::Turn {
                call_id: call_id.clone(),
                at_ms: now + k as u64,
                record: serde_json::json!({"input": input, "decision": "dialplan",
                    "node": "menu", "intent": "order_status",
                    "latency": {"voice_to_voice_ms": 640}}),
            });
        }
        store.send(RecordEvent::CallEnded {
            call_id,
            ended_ms: now + 60_000,
            outcome: "self_served".into(),
            transfer_reason: None,
        });
    }
    assert!(
        store.flush(Duration::from_secs(300)),
        "the writer caught up"
    );
    assert_eq!(store.health.dropped.get(), 0);
    (calls * 5) as f64 / started.elapsed().as_secs_f64()
}

fn records(dir: &std::path::Path) {
    let calls = env_number("VOXNAV_BENCH_CALLS", 2000);
    let pg = Postgres::start(dir);
    let sqlite = Database::Sqlite(dir.join("bench.db"));
    let postgres = Database::parse(&pg.url());
    let (mut s, mut p) = (Vec::new(), Vec::new());
    for round in 0..3 {
        s.push(write_rate(&sqlite, calls, round));
        p.push(write_rate(&postgres, calls, round));
    }
    let (s, p) = (median(s), median(p));
    println!(
        "record writes ({calls} calls x 5 events, median of 3 rounds): SQLite {s:.0}/s, \
         PostgreSQL {p:.0}/s (PostgreSQL/SQLite {:.2}); at 5 events a call, PostgreSQL keeps up \
         with {:.0} calls/s",
        p / s,
        p / 5.0
    );
}

/// CPU per call-second of SRTP (both directions) and of plain copies, in microseconds.
fn srtp() {
    let packets = 50_000usize;
    let key = MasterKey::random().unwrap();
    let packet = |seq: u16| {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0x55; 160]);
        p
    };
    // One protect (a packet sent) and one check (a packet received) per iteration; fresh
    // contexts each round, so sequence numbers start again.
    let run = |secure: bool| {
        let (mut tx, mut rx) = (Outbound::new(&key), Inbound::new(&key));
        let started = Instant::now();
        let mut checksum = 0u64;
        for i in 0..packets {
            let mut p = packet(i as u16);
            if secure {
                tx.protect_rtp(&mut p).unwrap();
                checksum += u64::from(rx.unprotect_rtp(&p).unwrap()[20]);
            } else {
                checksum += u64::from(p.clone()[20]);
            }
        }
        std::hint::black_box(checksum);
        started.elapsed().as_secs_f64() / packets as f64 * 1e6
    };
    let (mut plain, mut secure) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        plain.push(run(false));
        secure.push(run(true));
    }
    let (plain, secure) = (median(plain), median(secure));
    // A call-second: 50 packets sent and 50 received.
    println!(
        "SRTP: {secure:.2} us per packet protected and checked, plain copy {plain:.2} us \
         (x{:.0}); per call: {:.0} us of CPU a second ({:.3}% of a core): a core's worth is \
         about {:.0} SRTP calls",
        secure / plain.max(1e-9),
        secure * 50.0,
        secure * 50.0 / 1e4,
        1e6 / (secure * 50.0)
    );
}

/// Full TLS 1.3 handshakes per second, client and server in one process (both sides' CPU).
fn tls(dir: &std::path::Path) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("tls.pem"), cert.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
            )
            .unwrap(),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("tls.pem")).unwrap())
        .unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let handshakes = 300;
    let started = Instant::now();
    for _ in 0..handshakes {
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut c = rustls::ClientConnection::new(client.clone(), name).unwrap();
        let mut s = rustls::ServerConnection::new(server.clone()).unwrap();
        while c.is_handshaking() || s.is_handshaking() {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets().unwrap();
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut &buf[..]).unwrap();
            c.process_new_packets().unwrap();
        }
    }
    let each = started.elapsed().as_secs_f64() / handshakes as f64;
    println!(
        "TLS: {:.0} full handshakes/s in one process (both sides), {:.2} ms of CPU each; \
         a call that opens its own connection adds that once, and SIP messages on it cost \
         microseconds",
        1.0 / each,
        each * 1e3
    );
}

fn main() {
    let dir = temp_dir("bench-deploy");
    records(&dir);
    srtp();
    tls(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}
