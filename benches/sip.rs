//! SIP message throughput: framing + scanning + validation (`judge_datagram`) and response
//! serialisation, messages per second, on a typical INVITE with SDP, an OPTIONS ping, and the
//! 50 RFC 4475 torture messages. Reference in the same process: framing alone.
//!
//! `cargo bench --bench sip`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voxnav::sip::{Envelope, framing, judge_datagram, response};
use voxnav::testkit::median;

const INVITE: &str = "INVITE sip:ivr@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK776asdhds;rport\r\nMax-Forwards: 70\r\nTo: <sip:ivr@192.0.2.10>\r\nFrom: \"Caller\" <sip:caller@192.0.2.20>;tag=1928301774\r\nCall-ID: a84b4c76e66710@pc33.example.com\r\nCSeq: 314159 INVITE\r\nContact: <sip:caller@192.0.2.20:5060>\r\nUser-Agent: bench\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\nSupported: timer\r\nContent-Type: application/sdp\r\nContent-Length: 190\r\n\r\nv=0\r\no=- 2890844526 2890844526 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n";

/// Messages per second of `f` over `messages`, median of 7 rounds of ~200 ms.
fn rate(messages: &[Vec<u8>], mut f: impl FnMut(&[u8])) -> f64 {
    let mut rates = Vec::new();
    for _ in 0..7 {
        let (start, mut n) = (Instant::now(), 0u64);
        while start.elapsed() < Duration::from_millis(200) {
            for m in messages {
                f(m);
            }
            n += messages.len() as u64;
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    median(rates)
}

fn main() {
    let src: SocketAddr = "192.0.2.20:5060".parse().unwrap();
    let options = INVITE
        .replace("INVITE sip", "OPTIONS sip")
        .replace("314159 INVITE", "1 OPTIONS");
    let options = options
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replace("Content-Length: 190", "Content-Length: 0")
        + "\r\n\r\n";
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/sip-torture-rfc4475");
    let torture: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    let sets: [(&str, Vec<Vec<u8>>); 3] = [
        ("INVITE with SDP", vec![INVITE.as_bytes().to_vec()]),
        ("OPTIONS", vec![options.into_bytes()]),
        ("RFC 4475 torture set", torture),
    ];
    println!(
        "{:<24} {:>16} {:>18} {:>10} {:>18}",
        "messages", "framing only/s", "frame+parse+judge/s", "vs ref", "serialise reply/s"
    );
    for (name, msgs) in &sets {
        if msgs.is_empty() {
            continue;
        }
        let reference = rate(msgs, |m| {
            black_box(framing::frame_datagram(black_box(m)).ok());
        });
        let judged = rate(msgs, |m| {
            black_box(judge_datagram(black_box(m), src, "tag1"));
        });
        let envs: Vec<Envelope> = msgs
            .iter()
            .filter_map(|m| {
                framing::frame_datagram(m)
                    .ok()
                    .and_then(|f| Envelope::scan(m, &f))
            })
            .collect();
        let serialise = rate(&vec![Vec::new(); envs.len()], {
            let mut i = 0;
            move |_| {
                black_box(response::build(
                    &envs[i % envs.len()],
                    200,
                    "OK",
                    "tag1",
                    &[],
                    src,
                ));
                i += 1;
            }
        });
        println!(
            "{name:<24} {reference:>16.0} {judged:>18.0} {:>9.3}x {serialise:>18.0}",
            judged / reference
        );
    }
}
