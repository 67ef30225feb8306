//! The endpoint's answer to each received message, sans-IO: bytes, a source address and `now`
//! in; datagrams to send and the next deadline out. The driver in `net/` only moves bytes and
//! sleeps until `poll_timeout`.
//!
//! What it answers today (dialogs, SDP negotiation in calls and media come with the rest of the
//! SIP issue):
//! - malformed requests: the stateless rejection `validate` chose (400, 415, 416, 420, 501...);
//! - OPTIONS: 200 with Allow, Accept and Supported (RFC 3261 11.2), the usual keep-alive ping;
//! - CANCEL: 200, and 487 for the INVITE it cancels (9.2); 481 if it matches nothing;
//! - other valid requests: 480 Temporarily Unavailable with Retry-After, because no call
//!   handling exists yet; honest to the peer and retryable;
//! - ACK and responses: matched or dropped (no client transactions exist yet).
//!
//! Valid requests go through RFC 3261 server transactions (`transaction`): retransmitted
//! requests are answered from the transaction, final INVITE responses are retransmitted until
//! the ACK (Timer G/H), and every transaction ends by a timer, so none is left behind.

use std::net::SocketAddr;
use std::time::Instant;

use super::envelope::Envelope;
use super::transaction::{Incoming, ServerTransactions, TimerConfig, TransactionKey};
use super::validate::{ACCEPTED_TYPES, ALLOWED_METHODS, SUPPORTED_OPTIONS, Verdict};
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
    pub retransmissions: u64,
}

/// The SIP endpoint state.
#[derive(Debug, Default)]
pub struct Endpoint {
    next_tag: u64,
    seed: u64,
    transactions: ServerTransactions,
    pub stats: EndpointStats,
}

impl Endpoint {
    /// `seed` makes To tags unique across restarts (the driver passes the start time).
    pub fn new(seed: u64) -> Self {
        Self {
            next_tag: 0,
            seed,
            transactions: ServerTransactions::new(TimerConfig::default()),
            stats: EndpointStats::default(),
        }
    }

    fn tag(&mut self) -> String {
        self.next_tag += 1;
        // Unique per response of this process; the seed separates restarts (RFC 3261 19.3).
        format!("vx{:x}{:x}", self.seed, self.next_tag)
    }

    /// Live server transactions (for leak checks and metrics).
    pub fn transactions(&self) -> usize {
        self.transactions.len()
    }

    /// The next instant `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.transactions.poll_timeout()
    }

    /// Runs the timers due at `now`; returns retransmissions to send.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Transmit> {
        let (out, _expired) = self.transactions.handle_timeout(now);
        self.stats.retransmissions += out.len() as u64;
        out
    }

    /// Handles one datagram from `source` at `now`.
    pub fn handle_datagram(
        &mut self,
        datagram: &[u8],
        source: SocketAddr,
        now: Instant,
    ) -> Vec<Transmit> {
        self.stats.received += 1;
        let tag = self.tag();
        let judged = judge_datagram(datagram, source, &tag);
        match (&judged.verdict, judged.reply, judged.envelope) {
            (Verdict::Reject(_), Some((bytes, to)), _) => {
                self.stats.rejected += 1;
                vec![Transmit { to, bytes }]
            }
            (Verdict::Request, _, Some(env)) => {
                let method = env.method().unwrap_or_default().to_string();
                match self.transactions.on_request(&env, &method, source, now) {
                    Incoming::New(key) => self.answer_new(&env, &key, &method, &tag, source, now),
                    Incoming::Retransmission(out) => {
                        self.stats.retransmissions += out.len() as u64;
                        out
                    }
                    Incoming::Cancel { cancel, invite } => {
                        let mut out = self.reply(&env, &cancel, 200, "OK", &[], &tag, source, now);
                        // The 487 goes out in the INVITE's transaction (RFC 3261 9.2); it
                        // copies the INVITE's headers, which match the CANCEL's except CSeq.
                        let invite_env = with_cseq_method(&env, "INVITE");
                        out.extend(self.reply(
                            &invite_env,
                            &invite,
                            487,
                            "Request Terminated",
                            &[],
                            &tag,
                            source,
                            now,
                        ));
                        out
                    }
                    Incoming::CancelUnmatched(key) => self.reply(
                        &env,
                        &key,
                        481,
                        "Call/Transaction Does Not Exist",
                        &[],
                        &tag,
                        source,
                        now,
                    ),
                    Incoming::AckFor2xx(_) | Incoming::AckForFinal | Incoming::StrayAck => {
                        Vec::new()
                    }
                }
            }
            _ => {
                self.stats.dropped += 1;
                Vec::new()
            }
        }
    }

    fn answer_new(
        &mut self,
        env: &Envelope,
        key: &TransactionKey,
        method: &str,
        tag: &str,
        source: SocketAddr,
        now: Instant,
    ) -> Vec<Transmit> {
        if method == "OPTIONS" {
            let headers = [
                ("Allow".to_string(), ALLOWED_METHODS.join(", ")),
                ("Accept".to_string(), ACCEPTED_TYPES.join(", ")),
                ("Supported".to_string(), SUPPORTED_OPTIONS.join(", ")),
            ];
            return self.reply(env, key, 200, "OK", &headers, tag, source, now);
        }
        let headers = [("Retry-After".to_string(), "60".to_string())];
        self.reply(
            env,
            key,
            480,
            "Temporarily Unavailable",
            &headers,
            tag,
            source,
            now,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        env: &Envelope,
        key: &TransactionKey,
        status: u16,
        reason: &str,
        headers: &[(String, String)],
        tag: &str,
        source: SocketAddr,
        now: Instant,
    ) -> Vec<Transmit> {
        self.stats.answered += 1;
        let bytes = response::build(env, status, reason, tag, headers, source);
        let to = response::target(env, source);
        self.transactions.respond(key, status, bytes, to, now)
    }
}

/// A copy of a CANCEL's envelope with the CSeq method replaced, for the INVITE's 487.
fn with_cseq_method(env: &Envelope, method: &str) -> Envelope {
    let mut copy = env.clone();
    for h in &mut copy.headers {
        if h.name.eq_ignore_ascii_case("CSeq") {
            let number = h.value.split_whitespace().next().unwrap_or("0").to_string();
            h.value = format!("{number} {method}");
        }
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_get_200_with_capabilities_and_ack_gets_nothing() {
        let mut ep = Endpoint::new(7);
        let now = Instant::now();
        let src: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let options = "OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\nFrom: <sip:p@h>;tag=1\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let out = ep.handle_datagram(options.as_bytes(), src, now);
        let text = String::from_utf8(out[0].bytes.clone()).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
        assert!(text.contains("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO\r\n"));
        assert_eq!(out[0].to, src);
        let ack = options
            .replace("OPTIONS sip", "ACK sip")
            .replace("1 OPTIONS", "1 ACK");
        assert!(ep.handle_datagram(ack.as_bytes(), src, now).is_empty());
        assert!(ep.handle_datagram(b"\x00\xff garbage", src, now).is_empty());
        assert_eq!(
            ep.stats,
            EndpointStats {
                received: 3,
                rejected: 0,
                dropped: 1,
                answered: 1,
                retransmissions: 0
            }
        );
        // The OPTIONS transaction lingers for Timer J (64*T1), then nothing is left.
        assert_eq!(ep.transactions(), 1);
        ep.handle_timeout(now + std::time::Duration::from_secs(32));
        assert_eq!(ep.transactions(), 0);
    }
}

#[cfg(test)]
mod call_tests {
    use super::*;
    use std::time::Duration;

    const INVITE: &str = "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKinv1\r\nFrom: <sip:p@h>;tag=1\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: c2\r\nCSeq: 7 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn invite_final_response_is_retransmitted_until_ack_and_retransmitted_invites_reanswered() {
        let mut ep = Endpoint::new(1);
        let src: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let t0 = Instant::now();
        let first = ep.handle_datagram(INVITE.as_bytes(), src, t0);
        assert!(String::from_utf8_lossy(&first[0].bytes).starts_with("SIP/2.0 480 "));
        // The same INVITE again: the same response (same To tag), not a new transaction.
        let again = ep.handle_datagram(INVITE.as_bytes(), src, t0 + Duration::from_millis(100));
        assert_eq!(again, first);
        assert_eq!(ep.transactions(), 1);
        // Timer G resends at T1 until the ACK.
        assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_millis(500)));
        assert_eq!(ep.handle_timeout(t0 + Duration::from_millis(500)), first);
        let ack = INVITE
            .replace("INVITE sip", "ACK sip")
            .replace("7 INVITE", "7 ACK");
        assert!(
            ep.handle_datagram(ack.as_bytes(), src, t0 + Duration::from_secs(1))
                .is_empty()
        );
        assert!(
            ep.handle_timeout(t0 + Duration::from_secs(2)).is_empty(),
            "no resend after ACK"
        );
        ep.handle_timeout(t0 + Duration::from_secs(7));
        assert_eq!(ep.transactions(), 0);
    }

    #[test]
    fn cancel_gets_200_and_the_invite_487_only_while_pending() {
        let mut ep = Endpoint::new(1);
        let src: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let t0 = Instant::now();
        ep.handle_datagram(INVITE.as_bytes(), src, t0);
        // The INVITE was already answered (480), so the CANCEL finds nothing pending: 481.
        let cancel = INVITE
            .replace("INVITE sip", "CANCEL sip")
            .replace("7 INVITE", "7 CANCEL");
        let out = ep.handle_datagram(cancel.as_bytes(), src, t0);
        assert!(String::from_utf8_lossy(&out[0].bytes).starts_with("SIP/2.0 481 "));
    }
}
