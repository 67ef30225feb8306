//! The endpoint's answer to each received message, sans-IO: bytes and a source address in,
//! datagrams to send out. The driver in `net/` only moves bytes.
//!
//! What it answers today (transactions, dialogs and calls come with the rest of the SIP issue):
//! - malformed requests: the stateless rejection `validate` chose (400, 415, 416, 420, 501...);
//! - OPTIONS: 200 with Allow, Accept and Supported (RFC 3261 11.2), the usual keep-alive ping;
//! - ACK: nothing (it is never answered);
//! - other valid requests: 480 Temporarily Unavailable with Retry-After, because no call
//!   handling exists yet; honest to the peer and retryable;
//! - responses: dropped (no client transactions exist yet to match them).

use std::net::SocketAddr;

use super::validate::{ACCEPTED_TYPES, ALLOWED_METHODS, Rejection, SUPPORTED_OPTIONS, Verdict};
use super::{judge_datagram, response};

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Counters for logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EndpointStats {
    pub received: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub answered: u64,
}

/// The SIP endpoint state (stateless so far: tag generation and counters).
#[derive(Debug, Default)]
pub struct Endpoint {
    next_tag: u64,
    seed: u64,
    pub stats: EndpointStats,
}

impl Endpoint {
    /// `seed` makes To tags unique across restarts (the driver passes the start time).
    pub fn new(seed: u64) -> Self {
        Self {
            next_tag: 0,
            seed,
            stats: EndpointStats::default(),
        }
    }

    fn tag(&mut self) -> String {
        self.next_tag += 1;
        // A cheap unique tag (RFC 3261 19.3 asks for 32 bits of randomness across calls; the
        // seed and counter make collisions between this process's responses impossible).
        format!("vx{:x}{:x}", self.seed, self.next_tag)
    }

    /// Handles one datagram from `source`.
    pub fn handle_datagram(&mut self, datagram: &[u8], source: SocketAddr) -> Vec<Transmit> {
        self.stats.received += 1;
        let tag = self.tag();
        let judged = judge_datagram(datagram, source, &tag);
        match (&judged.verdict, judged.reply, judged.envelope) {
            (Verdict::Reject(_), Some((bytes, to)), _) => {
                self.stats.rejected += 1;
                vec![Transmit { to, bytes }]
            }
            (Verdict::Request, _, Some(env)) => {
                let answer = match env.method() {
                    Some("ACK") | None => None,
                    Some("OPTIONS") => Some(Rejection {
                        status: 200,
                        reason: "OK",
                        headers: vec![
                            ("Allow".into(), ALLOWED_METHODS.join(", ")),
                            ("Accept".into(), ACCEPTED_TYPES.join(", ")),
                            ("Supported".into(), SUPPORTED_OPTIONS.join(", ")),
                        ],
                        why: "OPTIONS".into(),
                    }),
                    Some(_) => Some(Rejection {
                        status: 480,
                        reason: "Temporarily Unavailable",
                        headers: vec![("Retry-After".into(), "60".into())],
                        why: "no call handling yet".into(),
                    }),
                };
                match answer {
                    Some(a) => {
                        self.stats.answered += 1;
                        let bytes =
                            response::build(&env, a.status, a.reason, &tag, &a.headers, source);
                        vec![Transmit {
                            to: response::target(&env, source),
                            bytes,
                        }]
                    }
                    None => Vec::new(),
                }
            }
            _ => {
                self.stats.dropped += 1;
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_get_200_with_capabilities_and_ack_gets_nothing() {
        let mut ep = Endpoint::new(7);
        let src: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let options = "OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\nFrom: <sip:p@h>;tag=1\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let out = ep.handle_datagram(options.as_bytes(), src);
        let text = String::from_utf8(out[0].bytes.clone()).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
        assert!(text.contains("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO\r\n"));
        assert_eq!(out[0].to, src);
        let ack = options
            .replace("OPTIONS sip", "ACK sip")
            .replace("1 OPTIONS", "1 ACK");
        assert!(ep.handle_datagram(ack.as_bytes(), src).is_empty());
        assert!(ep.handle_datagram(b"\x00\xff garbage", src).is_empty());
        assert_eq!(
            ep.stats,
            EndpointStats {
                received: 3,
                rejected: 0,
                dropped: 1,
                answered: 1
            }
        );
    }
}
