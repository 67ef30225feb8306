//! The registrar's cost (issue 15): REGISTERs with digest authentication through the sans-IO
//! endpoint (parse, validate, transaction, digest check, binding, the 200 built), for 200
//! agents, against OPTIONS (the cheapest request the endpoint answers) in the same process.
//!
//! - challenge: a REGISTER without credentials, answered 401 with two challenges (SHA-256
//!   and MD5, RFC 8760);
//! - SHA-256 / MD5: an answered REGISTER that binds (each with its own nonce count: a replay
//!   would be refused);
//! - OPTIONS: the reference.
//!
//! The answers are computed before the clock starts (they are the phones' work). One core:
//! the endpoint runs on one task. `cargo bench --bench registrar` (a few seconds).

use std::net::SocketAddr;
use std::time::Instant;

use voxnav::sip::digest::{Algorithm, DigestConfig, UserHashes, answer};
use voxnav::sip::endpoint::Endpoint;

const AGENTS: usize = 200;
const ROUNDS: usize = 7;
/// Requests per round and kind.
const PER_ROUND: usize = 4000;

fn accounts() -> DigestConfig {
    DigestConfig {
        realm: "voxnav".into(),
        users: (0..AGENTS)
            .map(|i| {
                let id = format!("a{i}");
                let hashes = UserHashes::from_password(&id, "voxnav", &format!("{id}-pw"));
                (id, hashes)
            })
            .collect(),
        algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        secret: [9; 32],
    }
}

fn register(agent: usize, seq: usize, auth: Option<&str>) -> Vec<u8> {
    let port = 20_000 + agent;
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKr{seq}\r\n\
         From: <sip:a{agent}@127.0.0.1>;tag=p{agent}\r\nTo: <sip:a{agent}@127.0.0.1>\r\n\
         Call-ID: reg-{agent}\r\nCSeq: {seq} REGISTER\r\nContact: <sip:a{agent}@127.0.0.1:{port}>\r\n\
         Expires: 600\r\n{}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        auth.map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default()
    )
    .into_bytes()
}

fn options(seq: usize) -> Vec<u8> {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKo{seq}\r\n\
         From: <sip:probe@127.0.0.1>;tag=o1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: opt-{seq}\r\n\
         CSeq: {seq} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn status(bytes: &[u8]) -> u16 {
    String::from_utf8_lossy(&bytes[8..11]).parse().unwrap_or(0)
}

/// Microseconds per request: the median of `ROUNDS` rounds, each on a fresh endpoint with
/// the requests `make(round)` builds before its clock starts; every answer must be `want`.
fn per_request(want: u16, make: impl Fn(&mut Endpoint, Instant) -> Vec<Vec<u8>>) -> f64 {
    let from: SocketAddr = "127.0.0.1:5070".parse().unwrap();
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t0 = Instant::now();
            let mut ep = Endpoint::new(1, "127.0.0.1:5060".parse().unwrap(), Default::default());
            ep.set_agents(Some(accounts()), t0);
            let requests = make(&mut ep, t0);
            let started = Instant::now();
            for r in &requests {
                let out = ep.handle_datagram(r, from, t0);
                assert_eq!(
                    status(&out[0].bytes),
                    want,
                    "{}",
                    String::from_utf8_lossy(&out[0].bytes)
                );
            }
            let elapsed = started.elapsed();
            while ep.poll_event().is_some() {}
            elapsed.as_secs_f64() * 1e6 / requests.len() as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

/// Answered REGISTERs: one challenge per agent first (untimed), then each agent's answers
/// with increasing nonce counts.
fn answered(which: usize) -> impl Fn(&mut Endpoint, Instant) -> Vec<Vec<u8>> {
    move |ep, t0| {
        let from: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let mut challenges = Vec::new();
        for agent in 0..AGENTS {
            let out = ep.handle_datagram(&register(agent, 1, None), from, t0);
            let text = String::from_utf8_lossy(&out[0].bytes).into_owned();
            let offered: Vec<String> = (text.lines())
                .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
                .map(str::to_string)
                .collect();
            challenges.push(offered[which].clone());
        }
        (0..PER_ROUND)
            .map(|i| {
                let agent = i % AGENTS;
                let nc = (i / AGENTS + 1) as u32;
                let id = format!("a{agent}");
                let a = answer(
                    &challenges[agent],
                    "REGISTER",
                    "sip:127.0.0.1",
                    &id,
                    &format!("{id}-pw"),
                    "bench",
                    nc,
                )
                .expect("an answer");
                register(agent, i + 2, Some(&a))
            })
            .collect()
    }
}

fn main() {
    let options_us = per_request(200, |_, _| (0..PER_ROUND).map(options).collect());
    let challenge_us = per_request(401, |_, _| {
        (0..PER_ROUND)
            .map(|i| register(i % AGENTS, i + 1, None))
            .collect()
    });
    let sha256_us = per_request(200, answered(0));
    let md5_us = per_request(200, answered(1));
    println!("registrar: {AGENTS} agents, {PER_ROUND} requests a round, median of {ROUNDS} rounds");
    println!("| request | us each | per second (one core) | against OPTIONS |");
    println!("|---|---|---|---|");
    for (name, us) in [
        ("OPTIONS (reference)", options_us),
        ("REGISTER, challenged (401)", challenge_us),
        ("REGISTER, digest SHA-256, bound (200)", sha256_us),
        ("REGISTER, digest MD5, bound (200)", md5_us),
    ] {
        println!(
            "| {name} | {us:.1} | {:.0} | {:.2}x |",
            1e6 / us,
            us / options_us
        );
    }
}
