//! RFC 3261 section 17.2 server transactions, sans-IO: requests and `now` in; what to retransmit,
//! what to tell the transaction user (TU), and the next deadline out. Timers are data.
//!
//! ```text
//! INVITE (17.2.1, with RFC 6026's Accepted state):
//!   Proceeding --2xx--> Accepted --ACK(same Call-ID, CSeq)--> Terminated   (2xx resent at
//!        |                  \--64*T1, no ACK--> Terminated + AckTimeout     T1,2T1..T2)
//!        +--3xx-6xx--> Completed --ACK--> Confirmed --Timer I--> Terminated
//!                          |  Timer G: resend final (T1 doubling to T2)
//!                          \--Timer H (64*T1): Terminated + AckTimeout
//! non-INVITE (17.2.2):
//!   Trying --1xx--> Proceeding --final--> Completed --Timer J (64*T1)--> Terminated
//!   (a retransmitted request is answered with the last response, never passed to the TU)
//! ```
//!
//! Matching (17.2.3): a branch with the `z9hG4bK` cookie matches by (branch, sent-by, method,
//! ACK counting as INVITE), and here also Call-ID and CSeq number (see `TransactionKey`); older
//! RFC 2543 branches by (Call-ID, CSeq, From tag, top Via).
//! CANCEL finds its INVITE by the same key with method INVITE (9.2).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dialog::tag_of;
use super::endpoint::Transmit;
use super::envelope::Envelope;

/// RFC 3261 timer values (17.1.1.1, table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Duration,
    /// Maximum duration a message remains in the network, 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Identifies a server transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionKey {
    /// RFC 3261 branch (magic cookie): branch, sent-by, method (ACK as INVITE), plus Call-ID and
    /// CSeq number, which a retransmission, its CANCEL and its non-2xx ACK all share: a client
    /// that reuses a branch for a different request (RFC 4475's cparam01/cparam02 do) gets a
    /// new transaction instead of another request's response.
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: String,
        call_id: String,
        cseq: u32,
    },
    /// RFC 2543 peers: Call-ID, CSeq number, From tag, top Via, method.
    Rfc2543 {
        call_id: String,
        cseq: u32,
        from_tag: String,
        via: String,
        method: String,
    },
}

/// Parameters of the top Via and the fields matching needs.
fn top_via(env: &Envelope) -> (String, String) {
    let via = env.get("Via").unwrap_or_default();
    let first = via.split(',').next().unwrap_or_default();
    let mut parts = first.split(';');
    let sent_by = parts
        .next()
        .and_then(|p| p.split_whitespace().last())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let branch = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("branch"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    (sent_by, branch)
}

fn cseq(env: &Envelope) -> (u32, String) {
    let value = env.get("CSeq").unwrap_or_default();
    let mut it = value.split_whitespace();
    let n = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    (n, it.next().unwrap_or_default().to_string())
}

impl TransactionKey {
    /// The key of the transaction `env` belongs to; `method` overrides the request's method
    /// (ACK and CANCEL look for their INVITE).
    pub fn of(env: &Envelope, method: &str) -> Self {
        let method = if method == "ACK" { "INVITE" } else { method }.to_string();
        let (sent_by, branch) = top_via(env);
        if branch.starts_with("z9hG4bK") {
            return Self::Rfc3261 {
                branch,
                sent_by,
                method,
                call_id: env.get("Call-ID").unwrap_or_default().to_string(),
                cseq: cseq(env).0,
            };
        }
        Self::Rfc2543 {
            call_id: env.get("Call-ID").unwrap_or_default().to_string(),
            cseq: cseq(env).0,
            from_tag: tag_of(env.get("From").unwrap_or_default()),
            via: env
                .get("Via")
                .unwrap_or_default()
                .split(',')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
            method,
        }
    }
}

/// Where a server transaction is (see the module diagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Trying,
    Proceeding,
    Accepted,
    Completed,
    Confirmed,
    Terminated,
}

/// The timers of RFC 3261 17.2 (and RFC 6026's 2xx retransmission in Accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Resend the final response (INVITE, Completed) or the 2xx (Accepted).
    G,
    /// Give up waiting for the ACK: 64*T1.
    H,
    /// Linger in Confirmed to absorb ACK retransmissions: T4.
    I,
    /// Linger in Completed (non-INVITE) to answer retransmissions: 64*T1.
    J,
}

#[derive(Debug)]
struct ServerTransaction {
    invite: bool,
    state: State,
    call_id: String,
    cseq: u32,
    last_response: Option<Vec<u8>>,
    response_to: SocketAddr,
    retransmit_interval: Duration,
    /// Deadlines of the running timers.
    timers: Vec<(Timer, Instant)>,
}

/// What a received request means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A new request: pass it to the TU, which must answer through `respond`.
    New(TransactionKey),
    /// A retransmission: send these bytes again (or nothing, if no response was sent yet).
    Retransmission(Vec<Transmit>),
    /// The ACK for a 2xx arrived: the call is established (RFC 3261 13.3.1.4).
    AckFor2xx(TransactionKey),
    /// The ACK for a non-2xx final response: absorbed.
    AckForFinal,
    /// An ACK matching nothing (RFC 3261 17.2.3 passes it to the TU core, which drops it).
    StrayAck,
    /// A CANCEL for a pending INVITE: answer the CANCEL 200 and the INVITE 487 (9.2).
    Cancel {
        cancel: TransactionKey,
        invite: TransactionKey,
    },
    /// A CANCEL that matches no pending INVITE: answer it 481 (9.2).
    CancelUnmatched(TransactionKey),
}

/// What a timer firing means for the TU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expired {
    /// No ACK came for the final response; after a 2xx the TU must send BYE (13.3.1.4).
    AckTimeout(TransactionKey),
}

/// All server transactions of the endpoint.
///
/// Nothing here scans every transaction per message: at 500 calls/s, transactions lingering for
/// Timer J number in the tens of thousands. Deadlines live in a min-heap (a timer that was
/// cancelled stays until it comes due and is then skipped, which bounds the heap to one
/// 64*T1 window), and INVITEs waiting for the ACK of their 2xx are indexed by Call-ID and CSeq.
#[derive(Debug, Default)]
pub struct ServerTransactions {
    config: TimerConfig,
    map: HashMap<TransactionKey, ServerTransaction>,
    deadlines: BinaryHeap<Reverse<(Instant, TransactionKey)>>,
    accepted: HashMap<(String, u32), TransactionKey>,
}

impl ServerTransactions {
    pub fn new(config: TimerConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Sets the running timers of `key`, replacing any before.
    fn arm(&mut self, key: &TransactionKey, timers: Vec<(Timer, Instant)>) {
        for (_, deadline) in &timers {
            self.deadlines.push(Reverse((*deadline, key.clone())));
        }
        if let Some(t) = self.map.get_mut(key) {
            t.timers = timers;
        }
    }

    fn remove(&mut self, key: &TransactionKey) {
        if let Some(t) = self.map.remove(key)
            && t.state == State::Accepted
        {
            self.accepted.remove(&(t.call_id, t.cseq));
        }
    }

    /// Live transactions (to check nothing leaks).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn state(&self, key: &TransactionKey) -> Option<State> {
        self.map.get(key).map(|t| t.state)
    }

    /// Classifies a validated request.
    pub fn on_request(
        &mut self,
        env: &Envelope,
        method: &str,
        source: SocketAddr,
        now: Instant,
    ) -> Incoming {
        match method {
            "ACK" => return self.on_ack(env, now),
            "CANCEL" => {
                let cancel = TransactionKey::of(env, "CANCEL");
                let invite = TransactionKey::of(env, "INVITE");
                if let Some(retransmit) = self.retransmission(&cancel) {
                    return retransmit;
                }
                self.insert(cancel.clone(), false, env, source);
                return match self.map.get(&invite).map(|t| t.state) {
                    Some(State::Proceeding) => Incoming::Cancel { cancel, invite },
                    _ => Incoming::CancelUnmatched(cancel),
                };
            }
            _ => {}
        }
        let key = TransactionKey::of(env, method);
        if let Some(retransmit) = self.retransmission(&key) {
            return retransmit;
        }
        let invite = method == "INVITE";
        self.insert(key.clone(), invite, env, source);
        Incoming::New(key)
    }

    fn insert(&mut self, key: TransactionKey, invite: bool, env: &Envelope, source: SocketAddr) {
        self.map.insert(
            key,
            ServerTransaction {
                invite,
                state: if invite {
                    State::Proceeding
                } else {
                    State::Trying
                },
                call_id: env.get("Call-ID").unwrap_or_default().to_string(),
                cseq: cseq(env).0,
                last_response: None,
                response_to: source,
                retransmit_interval: self.config.t1,
                timers: Vec::new(),
            },
        );
    }

    fn retransmission(&self, key: &TransactionKey) -> Option<Incoming> {
        let t = self.map.get(key)?;
        let resend = match (t.state, &t.last_response) {
            // Confirmed/Terminated absorb; Accepted resends its 2xx so a lost 200 is recovered
            // at once instead of at the next Timer G.
            (State::Confirmed | State::Terminated, _) | (_, None) => Vec::new(),
            (_, Some(bytes)) => vec![Transmit {
                to: t.response_to,
                bytes: bytes.clone(),
            }],
        };
        Some(Incoming::Retransmission(resend))
    }

    fn on_ack(&mut self, env: &Envelope, now: Instant) -> Incoming {
        // ACK for a non-2xx shares the INVITE's branch (17.1.1.3).
        let key = TransactionKey::of(env, "ACK");
        match self.map.get(&key).map(|t| t.state) {
            Some(State::Completed) => {
                if let Some(t) = self.map.get_mut(&key) {
                    t.state = State::Confirmed;
                }
                self.arm(&key, vec![(Timer::I, now + self.config.t4)]);
                return Incoming::AckForFinal;
            }
            Some(State::Confirmed) => return Incoming::AckForFinal,
            _ => {}
        }
        // ACK for a 2xx is a new transaction with its own branch: match by Call-ID and CSeq.
        let index = (
            env.get("Call-ID").unwrap_or_default().to_string(),
            cseq(env).0,
        );
        match self.accepted.get(&index).cloned() {
            Some(k) => {
                self.remove(&k);
                Incoming::AckFor2xx(k)
            }
            None => Incoming::StrayAck,
        }
    }

    /// The TU answers the request of transaction `key` with `bytes` (status `status`), sent to
    /// `to`. Returns what to send now.
    pub fn respond(
        &mut self,
        key: &TransactionKey,
        status: u16,
        bytes: Vec<u8>,
        to: SocketAddr,
        now: Instant,
    ) -> Vec<Transmit> {
        let config = self.config;
        let Some(t) = self.map.get_mut(key) else {
            return Vec::new();
        };
        if matches!(
            t.state,
            State::Completed | State::Confirmed | State::Terminated | State::Accepted
        ) {
            return Vec::new(); // a final response was already sent
        }
        t.last_response = Some(bytes.clone());
        t.response_to = to;
        t.retransmit_interval = config.t1;
        let resend_until_ack = vec![
            (Timer::G, now + config.t1),
            (Timer::H, now + 64 * config.t1),
        ];
        let timers = match (t.invite, status) {
            (_, 100..=199) => {
                if !t.invite {
                    t.state = State::Proceeding;
                }
                None
            }
            (true, 200..=299) => {
                t.state = State::Accepted;
                self.accepted
                    .insert((t.call_id.clone(), t.cseq), key.clone());
                Some(resend_until_ack)
            }
            (true, _) => {
                t.state = State::Completed;
                Some(resend_until_ack)
            }
            (false, _) => {
                t.state = State::Completed;
                Some(vec![(Timer::J, now + 64 * config.t1)])
            }
        };
        if let Some(timers) = timers {
            self.arm(key, timers);
        }
        vec![Transmit { to, bytes }]
    }

    /// The earliest deadline, for the driver's sleep (possibly a cancelled timer's: the wake-up
    /// then does nothing).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines
            .peek()
            .map(|Reverse((deadline, _))| *deadline)
    }

    /// Fires every timer due at `now`: retransmissions to send, and expiries for the TU.
    /// Terminated transactions are removed.
    pub fn handle_timeout(&mut self, now: Instant) -> (Vec<Transmit>, Vec<Expired>) {
        let config = self.config;
        let (mut out, mut expired) = (Vec::new(), Vec::new());
        let mut due_keys = Vec::new();
        while let Some(Reverse((deadline, _))) = self.deadlines.peek() {
            if *deadline > now {
                break;
            }
            let Some(Reverse((_, key))) = self.deadlines.pop() else {
                break;
            };
            if !due_keys.contains(&key) {
                due_keys.push(key);
            }
        }
        for key in due_keys {
            let Some(t) = self.map.get_mut(&key) else {
                continue;
            };
            let due: Vec<Timer> = t
                .timers
                .iter()
                .filter(|(_, d)| *d <= now)
                .map(|(k, _)| *k)
                .collect();
            let mut rearm = None;
            for timer in due {
                t.timers.retain(|(k, _)| *k != timer);
                match timer {
                    Timer::G => {
                        if let Some(bytes) = &t.last_response {
                            out.push(Transmit {
                                to: t.response_to,
                                bytes: bytes.clone(),
                            });
                        }
                        // 17.2.1: double up to T2 (also for 2xx, 13.3.1.4).
                        t.retransmit_interval = (t.retransmit_interval * 2).min(config.t2);
                        rearm = Some(now + t.retransmit_interval);
                    }
                    Timer::H => {
                        expired.push(Expired::AckTimeout(key.clone()));
                        t.state = State::Terminated;
                    }
                    Timer::I | Timer::J => t.state = State::Terminated,
                }
            }
            if t.state == State::Terminated {
                self.remove(&key);
            } else if let Some(next) = rearm {
                t.timers.push((Timer::G, next));
                self.deadlines.push(Reverse((next, key)));
            }
        }
        (out, expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::framing::frame_datagram;

    fn env(msg: &str) -> Envelope {
        Envelope::scan(msg.as_bytes(), &frame_datagram(msg.as_bytes()).unwrap()).unwrap()
    }

    fn request_bytes(method: &str, branch: &str) -> Vec<u8> {
        format!(
            "{method} sip:ivr@h SIP/2.0\r\nVia: SIP/2.0/UDP c.example:5060;branch={branch}\r\nFrom: <sip:a@b>;tag=f1\r\nTo: <sip:ivr@h>\r\nCall-ID: call-1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn request(method: &str, branch: &str, cseq_method: &str) -> Envelope {
        env(&format!(
            "{method} sip:ivr@h SIP/2.0\r\nVia: SIP/2.0/UDP c.example:5060;branch={branch}\r\nFrom: <sip:a@b>;tag=f1\r\nTo: <sip:ivr@h>\r\nCall-ID: call-1\r\nCSeq: 1 {cseq_method}\r\nContent-Length: 0\r\n\r\n"
        ))
    }

    fn src() -> SocketAddr {
        "192.0.2.1:5060".parse().unwrap()
    }

    #[test]
    fn invite_2xx_is_retransmitted_doubling_to_t2_until_the_ack() {
        let mut tx = ServerTransactions::new(TimerConfig::default());
        let t0 = Instant::now();
        let invite = request("INVITE", "z9hG4bKa", "INVITE");
        let Incoming::New(key) = tx.on_request(&invite, "INVITE", src(), t0) else {
            panic!()
        };
        assert_eq!(tx.respond(&key, 200, b"200".to_vec(), src(), t0).len(), 1);
        // Retransmissions at 0.5, 1.5, 3.5, 7.5, 11.5 s: intervals 0.5, 1, 2, 4, 4.
        let mut sent = Vec::new();
        let mut now = t0;
        while let Some(next) = tx.poll_timeout() {
            if next > t0 + Duration::from_secs(12) {
                break;
            }
            now = next;
            let (out, _) = tx.handle_timeout(now);
            if !out.is_empty() {
                sent.push((now - t0).as_millis());
            }
        }
        assert_eq!(sent, vec![500, 1500, 3500, 7500, 11500]);
        // A retransmitted INVITE gets the 200 again; the ACK (new branch) ends it.
        assert_eq!(
            tx.on_request(&invite, "INVITE", src(), now),
            Incoming::Retransmission(vec![Transmit {
                to: src(),
                bytes: b"200".to_vec()
            }])
        );
        let ack = request("ACK", "z9hG4bKack", "ACK");
        assert_eq!(
            tx.on_request(&ack, "ACK", src(), now),
            Incoming::AckFor2xx(key)
        );
        assert!(tx.is_empty());
        assert_eq!(tx.on_request(&ack, "ACK", src(), now), Incoming::StrayAck);
    }

    #[test]
    fn lost_ack_after_2xx_times_out_at_64_t1() {
        let mut tx = ServerTransactions::new(TimerConfig::default());
        let t0 = Instant::now();
        let Incoming::New(key) = tx.on_request(
            &request("INVITE", "z9hG4bKb", "INVITE"),
            "INVITE",
            src(),
            t0,
        ) else {
            panic!()
        };
        tx.respond(&key, 200, b"200".to_vec(), src(), t0);
        let (_, expired) = tx.handle_timeout(t0 + Duration::from_secs(32));
        assert_eq!(expired, vec![Expired::AckTimeout(key)]);
        assert!(tx.is_empty());
    }

    #[test]
    fn invite_error_response_then_ack_then_timer_i() {
        let mut tx = ServerTransactions::new(TimerConfig::default());
        let t0 = Instant::now();
        let invite = request("INVITE", "z9hG4bKc", "INVITE");
        let Incoming::New(key) = tx.on_request(&invite, "INVITE", src(), t0) else {
            panic!()
        };
        tx.respond(&key, 486, b"486".to_vec(), src(), t0);
        assert_eq!(tx.state(&key), Some(State::Completed));
        // ACK for a non-2xx uses the INVITE's branch.
        assert_eq!(
            tx.on_request(&request("ACK", "z9hG4bKc", "ACK"), "ACK", src(), t0),
            Incoming::AckForFinal
        );
        assert_eq!(tx.state(&key), Some(State::Confirmed));
        let (out, _) = tx.handle_timeout(t0 + Duration::from_secs(1));
        assert!(out.is_empty(), "no retransmission after the ACK");
        tx.handle_timeout(t0 + Duration::from_secs(5));
        assert!(tx.is_empty());
    }

    #[test]
    fn non_invite_answers_retransmissions_then_lingers_for_timer_j() {
        let mut tx = ServerTransactions::new(TimerConfig::default());
        let t0 = Instant::now();
        let options = request("OPTIONS", "z9hG4bKd", "OPTIONS");
        let Incoming::New(key) = tx.on_request(&options, "OPTIONS", src(), t0) else {
            panic!()
        };
        // Before the TU answers, a retransmission is absorbed silently.
        assert_eq!(
            tx.on_request(&options, "OPTIONS", src(), t0),
            Incoming::Retransmission(vec![])
        );
        tx.respond(&key, 200, b"ok".to_vec(), src(), t0);
        assert_eq!(
            tx.respond(&key, 500, b"late".to_vec(), src(), t0),
            vec![],
            "one final response only"
        );
        assert!(
            matches!(tx.on_request(&options, "OPTIONS", src(), t0), Incoming::Retransmission(v) if v.len() == 1)
        );
        let (out, _) = tx.handle_timeout(t0 + Duration::from_secs(31));
        assert!(out.is_empty() && tx.len() == 1);
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert!(tx.is_empty());
    }

    #[test]
    fn cancel_finds_its_pending_invite_and_rfc2543_branches_match() {
        let mut tx = ServerTransactions::new(TimerConfig::default());
        let t0 = Instant::now();
        let invite = request("INVITE", "z9hG4bKe", "INVITE");
        let Incoming::New(inv) = tx.on_request(&invite, "INVITE", src(), t0) else {
            panic!()
        };
        let cancel = request("CANCEL", "z9hG4bKe", "CANCEL");
        let Incoming::Cancel { invite: found, .. } = tx.on_request(&cancel, "CANCEL", src(), t0)
        else {
            panic!()
        };
        assert_eq!(found, inv);
        let stray = request("CANCEL", "z9hG4bKzzz", "CANCEL");
        assert!(matches!(
            tx.on_request(&stray, "CANCEL", src(), t0),
            Incoming::CancelUnmatched(_)
        ));
        // RFC 4475 badbranch: a branch without the cookie still matches its retransmission.
        let old = request("OPTIONS", "390skdjuw", "OPTIONS");
        assert!(matches!(
            tx.on_request(&old, "OPTIONS", src(), t0),
            Incoming::New(_)
        ));
        assert!(matches!(
            tx.on_request(&old, "OPTIONS", src(), t0),
            Incoming::Retransmission(_)
        ));
        // A reused branch with another Call-ID is a new request, not a retransmission.
        let first = env(&String::from_utf8_lossy(&request_bytes(
            "OPTIONS",
            "z9hG4bKe2",
        )));
        let reused = env(
            &String::from_utf8_lossy(&request_bytes("OPTIONS", "z9hG4bKe2"))
                .replace("call-1", "call-2"),
        );
        assert!(matches!(
            tx.on_request(&first, "OPTIONS", src(), t0),
            Incoming::New(_)
        ));
        assert!(matches!(
            tx.on_request(&reused, "OPTIONS", src(), t0),
            Incoming::New(_)
        ));
        assert!(matches!(
            tx.on_request(&reused, "OPTIONS", src(), t0),
            Incoming::Retransmission(_)
        ));
    }
}
