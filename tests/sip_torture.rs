//! RFC 4475 torture messages through the sans-IO SIP layer: each gets the verdict the RFC (and
//! `shared/data/sip-torture-rfc4475/README.md`) gives, every reply is itself a valid message
//! routed back to the sender, and nothing panics.

use std::net::SocketAddr;
use std::path::PathBuf;

use voxnav::sip::{Verdict, judge_datagram, validate};

/// The expected outcome per file: a status, "process" (valid, goes on to the transaction
/// layer), or "drop". Where the RFC allows a choice the one voxnav makes is noted.
const EXPECTED: &[(&str, &str)] = &[
    ("wsinv", "process"),
    ("intmeth", "501"),
    ("esc01", "process"),
    ("escnull", "process"),
    ("esc02", "501"),
    ("lwsdisp", "process"),
    ("longreq", "process"),
    ("dblreq", "process"),
    ("semiuri", "process"),
    ("transports", "process"),
    ("mpart01", "process"),
    ("unreason", "process"),
    ("noreason", "process"),
    ("badinv01", "400"),
    ("clerr", "400"),
    ("ncl", "400"),
    ("scalar02", "400"),
    ("scalarlg", "drop"),
    ("quotbal", "400"),
    ("ltgtruri", "400"),
    ("lwsruri", "400"),
    ("lwsstart", "400"), // may be rejected: we do
    ("trws", "400"),     // may be rejected or accepted: we reject
    ("escruri", "400"),
    ("baddate", "process"), // 400 or ignore the Date header: we ignore it
    ("regbadct", "400"),
    ("badaspec", "400"),
    ("baddn", "400"),
    ("badvers", "505"),
    ("mismatch01", "400"),
    ("mismatch02", "501"), // 501 or 400
    ("bigcode", "drop"),
    ("badbranch", "process"),
    ("insuf", "400"),
    ("unkscm", "416"),
    ("novelsc", "416"),
    ("unksm2", "process"), // process or reject
    ("bext01", "420"),
    ("invut", "415"),
    ("regaut01", "process"), // 401 or ignore the header: we ignore it
    ("multi01", "400"),
    ("mcl01", "400"),
    ("bcast", "drop"),
    ("zeromf", "process"),
    ("cparam01", "process"),
    ("cparam02", "process"),
    ("regescrt", "process"), // reject or ignore the header: we ignore it
    ("sdp01", "406"),
    ("inv2543", "process"), // process or 400
    ("test", "drop"),       // 400 or drop: it has no Via to send a 400 to
];

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/sip-torture-rfc4475")
}

fn outcome(v: &Verdict) -> String {
    match v {
        Verdict::Request | Verdict::Response => "process".into(),
        Verdict::Reject(r) => r.status.to_string(),
        Verdict::Drop(_) => "drop".into(),
    }
}

#[test]
fn every_torture_message_gets_its_verdict() {
    let source: SocketAddr = "192.0.2.99:5099".parse().unwrap();
    let mut wrong = Vec::new();
    for (name, expected) in EXPECTED {
        let bytes = std::fs::read(data_dir().join(format!("{name}.dat"))).expect("torture file");
        let judged = judge_datagram(&bytes, source, "vx1");
        let got = outcome(&judged.verdict);
        if got != *expected {
            wrong.push(format!(
                "{name}: expected {expected}, got {got} ({:?})",
                judged.verdict
            ));
        }
        match (&judged.verdict, &judged.reply) {
            (Verdict::Reject(r), Some((reply, to))) => {
                // The reply frames and scans, has the status, a routable Via, and copies the
                // request's Call-ID and CSeq verbatim (RFC 3261 8.2.6.2, even when they are
                // out of range as in scalar02), and goes back to the sender's IP.
                let text = String::from_utf8_lossy(reply);
                let frame = voxnav::sip::framing::frame_datagram(reply).expect("reply frames");
                let back = voxnav::sip::Envelope::scan(reply, &frame).expect("reply scans");
                assert!(back.is_response(), "{name}: {text}");
                assert!(
                    text.starts_with(&format!("SIP/2.0 {} ", r.status)),
                    "{name}: {text}"
                );
                assert!(back.count("Via") >= 1, "{name}: no Via in {text}");
                let request = judged
                    .envelope
                    .as_ref()
                    .expect("a rejected request was scanned");
                for h in ["Call-ID", "CSeq", "From"] {
                    assert_eq!(back.get(h), request.get(h), "{name}: {h}");
                }
                for (h, _) in &r.headers {
                    assert!(text.contains(&format!("{h}: ")), "{name}: {h} missing");
                }
                assert_eq!(to.ip(), source.ip(), "{name}");
            }
            (Verdict::Reject(_), None) => panic!("{name}: rejection without a reply"),
            (_, Some(_)) => panic!("{name}: a reply for a non-rejection"),
            _ => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Every file in the folder is covered by the table.
    let files = std::fs::read_dir(data_dir()).unwrap().filter(|e| {
        e.as_ref()
            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "dat"))
    });
    assert_eq!(files.count(), EXPECTED.len());
}

#[test]
fn truncations_and_byte_flips_of_torture_messages_never_panic() {
    let source: SocketAddr = "[2001:db8::9]:5060".parse().unwrap();
    for (name, _) in EXPECTED {
        let bytes = std::fs::read(data_dir().join(format!("{name}.dat"))).unwrap();
        for cut in (0..bytes.len()).step_by(7) {
            let _ = judge_datagram(&bytes[..cut], source, "t");
        }
        let mut flipped = bytes.clone();
        for i in (0..flipped.len()).step_by(13) {
            flipped[i] ^= 0xA5;
            let j = judge_datagram(&flipped, source, "t");
            if let Some(env) = j.envelope {
                let _ = validate(&env);
            }
        }
    }
}
