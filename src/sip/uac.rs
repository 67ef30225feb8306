//! One outgoing call, sans-IO (RFC 3261 as a UAC over UDP): the agent leg of a transfer and
//! `voxnav call` both use it.
//!
//! ```text
//!   INVITE --1xx--> Proceeding --2xx--> ACK, Confirmed --BYE (either side)--> Done
//!     |                 \--cancel()--> CANCEL ... 487 --> ACK, Failed
//!     \--3xx-6xx--> ACK (same branch, 17.1.1.3), Failed
//!     \--no response by 64*T1 (Timer B)--> Failed 408
//! ```
//!
//! - The INVITE is resent at T1, 2*T1, ... until any response (Timer A, 17.1.1.2); CANCEL and
//!   BYE are non-INVITE client transactions resent at T1 doubling to T2 (Timer E) and abandoned
//!   at 64*T1 (Timer F, 17.1.2.2).
//! - A CANCEL is only sent once a provisional response arrived (9.1); cancelling before that
//!   waits for one. The ACK of a 2xx is its own transaction (new branch, 13.2.2.4) and is resent
//!   for every retransmitted 2xx; the ACK of a failure reuses the INVITE's branch.
//! - In the dialog: a BYE from the peer is answered 200 and ends the call; re-INVITE / UPDATE
//!   get 200 with our SDP (the call's media follows their new SDP); OPTIONS and INFO get 200.
//! - Record-Route (12.1.2): the 2xx's Record-Route values, reversed, are the route set; the
//!   ACK and BYE carry them as Route headers. Every request is sent to the peer the INVITE
//!   went to (the first hop of the route set when a proxy record-routed).
//! - Authentication (22.2): with credentials, a 401 or 407 to the INVITE is ACKed and the INVITE
//!   sent once more with the digest answer (`Authorization` / `Proxy-Authorization`, CSeq + 1,
//!   a new branch); a second challenge fails the call. Without credentials it fails at once.
//! - Not handled: TCP, forking (the first 2xx wins).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dialog::{contact_uri, tag_of};
use super::endpoint::Transmit;
use super::envelope::{Envelope, StartLine};
use super::framing::frame_datagram;
use super::sdp::{self, Negotiated};

/// RFC 3261 T2: the cap on non-INVITE retransmission intervals.
const T2: Duration = Duration::from_secs(4);

/// How to place the call.
#[derive(Debug, Clone)]
pub struct UacConfig {
    /// The Request-URI, e.g. `sip:agent@192.0.2.10:5060`.
    pub target: String,
    /// Where requests are sent (the URI's host and port, resolved by the driver).
    pub peer: SocketAddr,
    /// Our SIP socket (Via, Contact) and RTP socket (the SDP offer).
    pub local_sip: SocketAddr,
    pub local_rtp: SocketAddr,
    /// The user part of our From/Contact.
    pub from_user: String,
    /// Extra INVITE headers (name, value); values are sanitised to one line.
    pub headers: Vec<(String, String)>,
    pub call_id: String,
    pub local_tag: String,
    pub t1: Duration,
    /// Answers a digest challenge to the INVITE (an agent's phone dialling a feature code).
    pub credentials: Option<Credentials>,
}

/// A SIP account's user and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    // The password stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ user: {:?} }}", self.user)
    }
}

/// What happened to the call.
#[derive(Debug, Clone, PartialEq)]
pub enum UacEvent {
    /// 180 / 183: the far end is ringing or in progress.
    Progress(u16),
    /// 2xx with SDP: the media agreed.
    Answered(Negotiated),
    /// A re-INVITE or UPDATE changed the media.
    MediaChanged(Negotiated),
    /// The call never got up: the final status (408 for no response, 487 when cancelled).
    Failed { status: u16, reason: String },
    /// The peer hung up (BYE).
    RemoteHangup,
    /// Our BYE completed (or was given up after 64*T1).
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Calling,
    Proceeding,
    /// cancel() asked; CANCEL sent once there is a provisional response.
    Cancelling {
        sent: bool,
    },
    Confirmed,
    Terminating,
    Done,
}

/// A request being retransmitted.
#[derive(Debug, Clone)]
struct Resend {
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    /// None: double without cap (INVITE, Timer A); Some: cap (Timer E).
    cap: Option<Duration>,
    give_up: Instant,
}

impl Resend {
    fn new(bytes: Vec<u8>, now: Instant, t1: Duration, cap: Option<Duration>) -> Self {
        Self {
            bytes,
            next: now + t1,
            interval: t1,
            cap,
            give_up: now + 64 * t1,
        }
    }
}

/// The state of one outgoing call.
#[derive(Debug)]
pub struct OutgoingCall {
    config: UacConfig,
    phase: Phase,
    branch: String,
    cseq: u32,
    /// The INVITE's CSeq (2 once it was sent again with credentials): its ACKs carry it.
    invite_cseq: u32,
    /// The INVITE went again with a digest answer (only once).
    authenticated: bool,
    invite: Resend,
    /// CANCEL or BYE in flight.
    request: Option<Resend>,
    remote_tag: String,
    /// The To header of the dialog (with the peer's tag), once answered.
    remote_to: String,
    remote_target: String,
    /// The route set of the dialog (RFC 3261 12.1.2: the 2xx's Record-Route, reversed).
    route_set: Vec<String>,
    ack: Option<Vec<u8>>,
    media: Option<Negotiated>,
    session_id: u64,
    next_branch: u32,
}

/// One header value on one line (a transcript may hold anything the caller said).
fn one_line(value: &str, max: usize) -> String {
    let flat: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out: String = flat.chars().take(max).collect();
    if flat.chars().count() > max {
        out.push_str("...");
    }
    out
}

/// An INVITE of ours, with our SDP offer.
fn invite_bytes(
    config: &UacConfig,
    session_id: u64,
    branch: &str,
    cseq: u32,
    authorization: Option<(&str, &str)>,
) -> Vec<u8> {
    let body = sdp::offer(config.local_rtp, session_id);
    let mut extra = String::new();
    for (name, value) in &config.headers {
        extra.push_str(&format!("{name}: {}\r\n", one_line(value, 900)));
    }
    if let Some((name, value)) = authorization {
        extra.push_str(&format!("{name}: {value}\r\n"));
    }
    format!(
        "INVITE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch={branch};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:{user}@{via}>;tag={tag}\r\nTo: <{target}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n\
         Contact: <sip:{user}@{via}>\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n\
         User-Agent: voxnav\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{body}",
        target = config.target,
        via = config.local_sip,
        user = config.from_user,
        tag = config.local_tag,
        call_id = config.call_id,
        len = body.len(),
    )
    .into_bytes()
}

/// The host and port of a `sip:` URI (default port 5060), for resolving where to send.
pub fn uri_host_port(uri: &str) -> Option<(String, u16)> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("SIP:"))?;
    let rest = rest.split([';', '?', '>']).next()?;
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => 5060,
        };
        return Some((host.to_string(), port));
    }
    match host_port.split_once(':') {
        Some((h, p)) if !h.is_empty() => Some((h.to_string(), p.parse().ok()?)),
        None if !host_port.is_empty() => Some((host_port.to_string(), 5060)),
        _ => None,
    }
}

fn status_of(env: &Envelope) -> Option<(u16, String)> {
    match &env.start {
        StartLine::Response { code, reason, .. } => Some((code.parse().ok()?, reason.clone())),
        _ => None,
    }
}

impl OutgoingCall {
    /// Builds the INVITE (with our SDP offer) to send now.
    pub fn invite(config: UacConfig, now: Instant) -> (Self, Transmit) {
        let session_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let branch = format!("z9hG4bKvxo{}", config.local_tag);
        let bytes = invite_bytes(&config, session_id, &branch, 1, None);
        let invite = Resend::new(bytes.clone(), now, config.t1, None);
        let to = config.peer;
        let call = Self {
            remote_target: config.target.clone(),
            config,
            phase: Phase::Calling,
            branch,
            cseq: 1,
            invite_cseq: 1,
            authenticated: false,
            invite,
            request: None,
            remote_tag: String::new(),
            remote_to: String::new(),
            route_set: Vec::new(),
            ack: None,
            media: None,
            session_id,
            next_branch: 0,
        };
        (call, Transmit { to, bytes })
    }

    /// The INVITE again with the answer to a 401's or 407's digest challenge (RFC 3261 22.2):
    /// None without credentials, after one try already, or with no challenge we can answer.
    fn authenticated_invite(
        &mut self,
        env: &Envelope,
        status: u16,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let credentials = self.config.credentials.as_ref()?;
        if self.authenticated || self.phase != Phase::Calling && self.phase != Phase::Proceeding {
            return None;
        }
        let (challenge_header, answer_header) = match status {
            401 => ("WWW-Authenticate", "Authorization"),
            _ => ("Proxy-Authenticate", "Proxy-Authorization"),
        };
        let cnonce = format!("{:x}", self.session_id ^ u64::from(self.invite_cseq) << 32);
        // The first challenge we can answer (a server may offer SHA-256 before MD5, RFC 8760).
        let answer = env.all(challenge_header).find_map(|c| {
            super::digest::answer(
                c,
                "INVITE",
                &self.config.target,
                &credentials.user,
                &credentials.password,
                &cnonce,
                1,
            )
        })?;
        self.authenticated = true;
        self.invite_cseq = self.cseq + 1;
        self.cseq = self.invite_cseq;
        self.branch = format!("{}a", self.branch);
        let bytes = invite_bytes(
            &self.config,
            self.session_id,
            &self.branch,
            self.invite_cseq,
            Some((answer_header, &answer)),
        );
        self.invite = Resend::new(bytes.clone(), now, self.config.t1, None);
        self.phase = Phase::Calling;
        Some(bytes)
    }

    pub fn call_id(&self) -> &str {
        &self.config.call_id
    }

    /// The media agreed (after `Answered`).
    pub fn media(&self) -> Option<&Negotiated> {
        self.media.as_ref()
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    pub fn is_confirmed(&self) -> bool {
        self.phase == Phase::Confirmed
    }

    fn new_branch(&mut self) -> String {
        self.next_branch += 1;
        format!("{}x{}", self.branch, self.next_branch)
    }

    fn our_from(&self) -> String {
        format!(
            "<sip:{}@{}>;tag={}",
            self.config.from_user, self.config.local_sip, self.config.local_tag
        )
    }

    /// A request in the dialog (or the CANCEL / failure ACK of the INVITE transaction, sent
    /// before a route set exists).
    fn request(&self, method: &str, uri: &str, branch: &str, to: &str, cseq: u32) -> Vec<u8> {
        let routes = if self.route_set.is_empty() {
            String::new()
        } else {
            format!("Route: {}\r\n", self.route_set.join(", "))
        };
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch={branch};rport\r\nMax-Forwards: 70\r\n\
             {routes}From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:{user}@{via}>\r\nUser-Agent: voxnav\r\nContent-Length: 0\r\n\r\n",
            via = self.config.local_sip,
            from = self.our_from(),
            call_id = self.config.call_id,
            user = self.config.from_user,
        )
        .into_bytes()
    }

    fn send(&self, bytes: Vec<u8>) -> Transmit {
        Transmit {
            to: self.config.peer,
            bytes,
        }
    }

    /// Gives up on the call before it is answered (no answer in time, the caller hung up).
    pub fn cancel(&mut self, now: Instant) -> Vec<Transmit> {
        match self.phase {
            Phase::Calling => {
                // 9.1: no CANCEL before a provisional response; sent when one arrives.
                self.phase = Phase::Cancelling { sent: false };
                Vec::new()
            }
            Phase::Proceeding => self.send_cancel(now),
            Phase::Confirmed => self.hangup(now),
            _ => Vec::new(),
        }
    }

    /// Gives up now, whatever the state: before any response the call is abandoned locally
    /// (there is nothing to CANCEL yet, 9.1) and fails with 408; ringing, it is cancelled
    /// (the 487 reports the failure); answered, it is hung up.
    pub fn give_up(&mut self, now: Instant) -> (Vec<Transmit>, Vec<UacEvent>) {
        if matches!(
            self.phase,
            Phase::Calling | Phase::Cancelling { sent: false }
        ) {
            self.phase = Phase::Done;
            self.request = None;
            let failed = UacEvent::Failed {
                status: 408,
                reason: "no response from the far end".into(),
            };
            return (Vec::new(), vec![failed]);
        }
        (self.cancel(now), Vec::new())
    }

    fn send_cancel(&mut self, now: Instant) -> Vec<Transmit> {
        self.phase = Phase::Cancelling { sent: true };
        let to = format!("<{}>", self.config.target);
        let bytes = self.request(
            "CANCEL",
            &self.config.target,
            &self.branch.clone(),
            &to,
            self.invite_cseq,
        );
        self.request = Some(Resend::new(bytes.clone(), now, self.config.t1, Some(T2)));
        vec![self.send(bytes)]
    }

    /// Ends an answered call with a BYE (15.1.1).
    pub fn hangup(&mut self, now: Instant) -> Vec<Transmit> {
        if self.phase != Phase::Confirmed {
            return self.cancel(now);
        }
        self.phase = Phase::Terminating;
        self.cseq += 1;
        let branch = self.new_branch();
        let bytes = self.request(
            "BYE",
            &self.remote_target.clone(),
            &branch,
            &self.remote_to.clone(),
            self.cseq,
        );
        self.request = Some(Resend::new(bytes.clone(), now, self.config.t1, Some(T2)));
        vec![self.send(bytes)]
    }

    /// A datagram from the SIP socket.
    pub fn on_datagram(
        &mut self,
        datagram: &[u8],
        source: SocketAddr,
        now: Instant,
    ) -> (Vec<Transmit>, Vec<UacEvent>) {
        let Some(env) = frame_datagram(datagram)
            .ok()
            .and_then(|f| Envelope::scan(datagram, &f))
        else {
            return (Vec::new(), Vec::new());
        };
        if env.get("Call-ID") != Some(self.config.call_id.as_str()) {
            return (Vec::new(), Vec::new());
        }
        if env.is_response() {
            self.on_response(&env, now)
        } else {
            self.on_request(&env, source)
        }
    }

    fn on_response(&mut self, env: &Envelope, now: Instant) -> (Vec<Transmit>, Vec<UacEvent>) {
        let Some((status, reason)) = status_of(env) else {
            return (Vec::new(), Vec::new());
        };
        let cseq = env.get("CSeq").unwrap_or_default();
        let method = (cseq.split_whitespace().nth(1))
            .unwrap_or_default()
            .to_ascii_uppercase();
        let mut out = Vec::new();
        let mut events = Vec::new();
        let number = cseq.split_whitespace().next().and_then(|n| n.parse().ok());
        if method == "INVITE" && number != Some(self.invite_cseq) {
            // The challenged INVITE's 401 again (our ACK was lost): ACK it on its own
            // transaction (17.1.1.3); the call goes on with the INVITE that answered it.
            if status >= 300 && number.is_some_and(|n| n < self.invite_cseq) {
                let branch = (env.get("Via"))
                    .and_then(|v| v.split(';').find_map(|p| p.trim().strip_prefix("branch=")))
                    .unwrap_or_default()
                    .to_string();
                let to = env.get("To").unwrap_or_default().to_string();
                let target = self.config.target.clone();
                let ack = self.request("ACK", &target, &branch, &to, number.unwrap_or(1));
                out.push(self.send(ack));
            }
            return (out, events);
        }
        match method.as_str() {
            "INVITE" => match status {
                100..=199 => {
                    if self.phase == Phase::Calling {
                        self.phase = Phase::Proceeding;
                    }
                    if self.phase == (Phase::Cancelling { sent: false }) {
                        out.extend(self.send_cancel(now));
                    }
                    // Timer A stops with any response (17.1.1.2); Timer B keeps running only
                    // until the first provisional, after which the far end owns the timing.
                    self.invite.next = now + Duration::from_secs(3600);
                    self.invite.give_up = now + Duration::from_secs(3600);
                    if status > 100 {
                        events.push(UacEvent::Progress(status));
                    }
                }
                200..=299 => {
                    if let Some(ack) = self.ack.clone() {
                        out.push(self.send(ack)); // a retransmitted 2xx: ACK again (13.2.2.4)
                        return (out, events);
                    }
                    self.remote_to = env.get("To").unwrap_or_default().to_string();
                    self.remote_tag = tag_of(&self.remote_to);
                    if let Some(uri) = env.get("Contact").and_then(contact_uri) {
                        self.remote_target = uri;
                    }
                    self.route_set = env
                        .all("Record-Route")
                        .flat_map(|v| super::validate::split_outside_quotes(v, ','))
                        .map(|r| r.trim().to_string())
                        .filter(|r| !r.is_empty())
                        .collect();
                    self.route_set.reverse();
                    let branch = self.new_branch();
                    let ack = self.request(
                        "ACK",
                        &self.remote_target.clone(),
                        &branch,
                        &self.remote_to.clone(),
                        self.invite_cseq,
                    );
                    self.ack = Some(ack.clone());
                    out.push(self.send(ack));
                    let cancelled = matches!(self.phase, Phase::Cancelling { .. });
                    self.phase = Phase::Confirmed;
                    self.request = None;
                    match sdp::parse(&env.body).and_then(|o| sdp::negotiate(&o)) {
                        Ok(m) if !cancelled => {
                            self.media = Some(m.clone());
                            events.push(UacEvent::Answered(m));
                        }
                        Ok(_) => {
                            // Answered while our CANCEL crossed it: the call is up, so end it.
                            out.extend(self.hangup(now));
                            events.push(UacEvent::Failed {
                                status: 487,
                                reason: "cancelled (answered as the CANCEL crossed)".into(),
                            });
                        }
                        Err(e) => {
                            out.extend(self.hangup(now));
                            events.push(UacEvent::Failed {
                                status: 488,
                                reason: format!("unusable SDP in the answer: {e}"),
                            });
                        }
                    }
                }
                _ => {
                    // 17.1.1.3: ACK the failure on the INVITE's branch, To from the response.
                    let to = env.get("To").unwrap_or_default().to_string();
                    let ack = self.request(
                        "ACK",
                        &self.config.target.clone(),
                        &self.branch.clone(),
                        &to,
                        self.invite_cseq,
                    );
                    out.push(self.send(ack));
                    if matches!(status, 401 | 407)
                        && let Some(invite) = self.authenticated_invite(env, status, now)
                    {
                        out.push(self.send(invite));
                        return (out, events);
                    }
                    if self.phase != Phase::Done {
                        self.phase = Phase::Done;
                        self.request = None;
                        events.push(UacEvent::Failed { status, reason });
                    }
                }
            },
            "BYE" if status >= 200 && self.phase == Phase::Terminating => {
                self.phase = Phase::Done;
                self.request = None;
                events.push(UacEvent::Ended);
            }
            "CANCEL" if status >= 200 => {
                // The 487 of the INVITE ends the call; stop resending the CANCEL.
                self.request = None;
            }
            _ => {}
        }
        (out, events)
    }

    fn on_request(&mut self, env: &Envelope, source: SocketAddr) -> (Vec<Transmit>, Vec<UacEvent>) {
        let method = env.method().unwrap_or_default().to_ascii_uppercase();
        let reply = |status: u16, reason: &str, body: Option<(&str, &[u8])>| Transmit {
            to: super::response::target(env, source),
            bytes: super::response::build_with_body(
                env,
                status,
                reason,
                &self.config.local_tag,
                &[],
                source,
                body,
            ),
        };
        let in_dialog = tag_of(env.get("From").unwrap_or_default()) == self.remote_tag
            && !self.remote_tag.is_empty();
        match method.as_str() {
            "ACK" => (Vec::new(), Vec::new()),
            _ if !in_dialog => (
                vec![reply(481, "Call/Transaction Does Not Exist", None)],
                Vec::new(),
            ),
            "BYE" => {
                let events = if matches!(self.phase, Phase::Confirmed | Phase::Terminating) {
                    vec![UacEvent::RemoteHangup]
                } else {
                    Vec::new()
                };
                self.phase = Phase::Done;
                self.request = None;
                (vec![reply(200, "OK", None)], events)
            }
            "INVITE" | "UPDATE" => {
                let parsed = sdp::parse(&env.body).and_then(|o| {
                    let n = sdp::negotiate(&o)?;
                    Ok((o, n))
                });
                match parsed {
                    Ok((offer, n)) => {
                        let answer =
                            sdp::answer(&offer, &n, self.config.local_rtp, self.session_id);
                        self.media = Some(n.clone());
                        (
                            vec![reply(
                                200,
                                "OK",
                                Some(("application/sdp", answer.as_bytes())),
                            )],
                            vec![UacEvent::MediaChanged(n)],
                        )
                    }
                    // A refresh without SDP keeps the media.
                    Err(_) if env.body.is_empty() => (vec![reply(200, "OK", None)], Vec::new()),
                    Err(_) => (vec![reply(488, "Not Acceptable Here", None)], Vec::new()),
                }
            }
            "OPTIONS" | "INFO" => (vec![reply(200, "OK", None)], Vec::new()),
            _ => (vec![reply(405, "Method Not Allowed", None)], Vec::new()),
        }
    }

    /// When `on_timeout` wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut consider = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        if matches!(
            self.phase,
            Phase::Calling | Phase::Proceeding | Phase::Cancelling { .. }
        ) {
            consider(self.invite.next.min(self.invite.give_up));
        }
        if let Some(r) = &self.request {
            consider(r.next.min(r.give_up));
        }
        at
    }

    /// Retransmissions and give-ups due at `now`.
    pub fn on_timeout(&mut self, now: Instant) -> (Vec<Transmit>, Vec<UacEvent>) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        if matches!(
            self.phase,
            Phase::Calling | Phase::Proceeding | Phase::Cancelling { .. }
        ) {
            if now >= self.invite.give_up {
                // Timer B (or a CANCEL that never got its 487): the call failed.
                self.phase = Phase::Done;
                self.request = None;
                events.push(UacEvent::Failed {
                    status: 408,
                    reason: "no answer from the far end (Timer B)".into(),
                });
                return (out, events);
            }
            if now >= self.invite.next {
                self.invite.interval *= 2;
                self.invite.next = now + self.invite.interval;
                out.push(self.send(self.invite.bytes.clone()));
            }
        }
        if let Some(r) = self.request.as_mut() {
            if now >= r.give_up {
                self.request = None;
                if self.phase == Phase::Terminating {
                    self.phase = Phase::Done;
                    events.push(UacEvent::Ended);
                }
            } else if now >= r.next {
                r.interval = r.cap.map_or(r.interval * 2, |c| (r.interval * 2).min(c));
                r.next = now + r.interval;
                let bytes = r.bytes.clone();
                out.push(self.send(bytes));
            }
        }
        // A cancelled INVITE whose 487 never comes: give up at 64*T1 after the CANCEL.
        if matches!(self.phase, Phase::Cancelling { sent: true }) && self.request.is_none() {
            self.invite.give_up = self.invite.give_up.min(now + 64 * self.config.t1);
        }
        (out, events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> UacConfig {
        UacConfig {
            target: "sip:agent@127.0.0.1:5090".into(),
            peer: "127.0.0.1:5090".parse().unwrap(),
            local_sip: "127.0.0.1:40000".parse().unwrap(),
            local_rtp: "127.0.0.1:30000".parse().unwrap(),
            from_user: "voxnav".into(),
            headers: vec![(
                "X-Voxnav-Transcript".into(),
                "caller: I want\r\nan agent".into(),
            )],
            call_id: "leg-1".into(),
            local_tag: "t1".into(),
            t1: Duration::from_millis(500),
            credentials: None,
        }
    }

    fn text(t: &Transmit) -> String {
        String::from_utf8(t.bytes.clone()).unwrap()
    }

    fn response(status: &str, to_tag: &str, method: &str, sdp: &str) -> Vec<u8> {
        let tag = if to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={to_tag}")
        };
        let ct = if sdp.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".into()
        };
        format!(
            "SIP/2.0 {status}\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKvxot1\r\n\
             From: <sip:voxnav@127.0.0.1:40000>;tag=t1\r\nTo: <sip:agent@127.0.0.1:5090>{tag}\r\n\
             Call-ID: leg-1\r\nCSeq: 1 {method}\r\nContact: <sip:agent@127.0.0.1:5091>\r\n{ct}\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
        .into_bytes()
    }

    const ANSWER: &str = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    const PEER: &str = "127.0.0.1:5090";

    #[test]
    fn invite_ring_answer_ack_and_our_bye() {
        let t0 = Instant::now();
        let (mut call, invite) = OutgoingCall::invite(config(), t0);
        let inv = text(&invite);
        assert!(inv.starts_with("INVITE sip:agent@127.0.0.1:5090 SIP/2.0\r\n"));
        // The transcript header is one line.
        assert!(
            inv.contains("X-Voxnav-Transcript: caller: I want  an agent\r\n"),
            "{inv}"
        );
        assert!(inv.contains("m=audio 30000 RTP/AVP 0 8 101"));
        // Timer A: resent at T1, then 2*T1.
        let (out, _) = call.on_timeout(t0 + Duration::from_millis(500));
        assert_eq!(out.len(), 1);
        assert_eq!(call.poll_timeout(), Some(t0 + Duration::from_millis(1500)));
        let peer = PEER.parse().unwrap();
        let (_, ev) = call.on_datagram(&response("180 Ringing", "a1", "INVITE", ""), peer, t0);
        assert_eq!(ev, vec![UacEvent::Progress(180)]);
        let (out, ev) = call.on_timeout(t0 + Duration::from_secs(30));
        assert!(out.is_empty() && ev.is_empty(), "no resend after 1xx");
        let (out, ev) = call.on_datagram(&response("200 OK", "a1", "INVITE", ANSWER), peer, t0);
        let Some(UacEvent::Answered(m)) = ev.first() else {
            panic!("{ev:?}")
        };
        assert_eq!(m.remote, Some("127.0.0.1:6000".parse().unwrap()));
        let ack = text(&out[0]);
        assert!(
            ack.starts_with("ACK sip:agent@127.0.0.1:5091 SIP/2.0"),
            "{ack}"
        );
        assert!(ack.contains(";tag=a1") && ack.contains("CSeq: 1 ACK"));
        assert!(
            !ack.contains("branch=z9hG4bKvxot1;"),
            "2xx ACK has its own branch"
        );
        // A retransmitted 200 is ACKed again, with no new event.
        let (out, ev) = call.on_datagram(&response("200 OK", "a1", "INVITE", ANSWER), peer, t0);
        assert_eq!((out.len(), ev.len()), (1, 0));
        let out = call.hangup(t0);
        let bye = text(&out[0]);
        assert!(bye.starts_with("BYE sip:agent@127.0.0.1:5091") && bye.contains("CSeq: 2 BYE"));
        let (_, ev) = call.on_datagram(&response("200 OK", "a1", "BYE", ""), peer, t0);
        assert_eq!(ev, vec![UacEvent::Ended]);
        assert!(call.is_done());
    }

    /// A challenged INVITE (RFC 3261 22.2) with credentials: the 401 is ACKed on its own
    /// branch and CSeq, the INVITE goes again with CSeq 2, a new branch and an answer our own
    /// verifier accepts (SHA-256, the first challenge offered); the old 401 retransmitted is
    /// ACKed without ending the call; the 200 is ACKed with CSeq 2 and the BYE goes with 3.
    /// Without credentials, or challenged a second time, the call fails with the 401.
    #[test]
    fn a_digest_challenge_is_answered_once_with_credentials() {
        use crate::sip::digest::{Algorithm, DigestConfig, UserHashes, Verdict, Verifier};
        let t0 = Instant::now();
        let mut verifier = Verifier::new(
            DigestConfig {
                realm: "centre".into(),
                users: [(
                    "alice".to_string(),
                    UserHashes::from_password("alice", "centre", "alice-pw"),
                )]
                .into(),
                algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
                secret: [5; 32],
            },
            t0,
        );
        let offered = verifier.challenges(t0, false);
        let challenged = |cseq: u32| {
            let mut r =
                String::from_utf8(response("401 Unauthorized", "x1", "INVITE", "")).unwrap();
            for c in &offered {
                r = r.replace(
                    "Content-Length",
                    &format!("WWW-Authenticate: {c}\r\nContent-Length"),
                );
            }
            r.replace("CSeq: 1 ", &format!("CSeq: {cseq} "))
                .into_bytes()
        };
        let first = challenged(1);
        let peer = PEER.parse().unwrap();
        // No credentials: the challenge ends the call.
        let (mut call, _) = OutgoingCall::invite(config(), t0);
        let (out, ev) = call.on_datagram(&first, peer, t0);
        assert!(text(&out[0]).starts_with("ACK "));
        assert!(matches!(ev[..], [UacEvent::Failed { status: 401, .. }]));
        let credentials = Credentials {
            user: "alice".into(),
            password: "alice-pw".into(),
        };
        assert!(!format!("{credentials:?}").contains("alice-pw"));
        let (mut call, _) = OutgoingCall::invite(
            UacConfig {
                credentials: Some(credentials),
                ..config()
            },
            t0,
        );
        let (out, ev) = call.on_datagram(&first, peer, t0);
        assert!(ev.is_empty(), "{ev:?}");
        let ack = text(&out[0]);
        assert!(
            ack.starts_with("ACK ") && ack.contains("CSeq: 1 ACK"),
            "{ack}"
        );
        assert!(ack.contains("branch=z9hG4bKvxot1;"), "{ack}");
        let again = text(&out[1]);
        assert!(
            again.starts_with("INVITE ") && again.contains("CSeq: 2 INVITE"),
            "{again}"
        );
        assert!(
            !again.contains("branch=z9hG4bKvxot1;"),
            "a new branch: {again}"
        );
        let authorization = (again.lines())
            .find_map(|l| l.strip_prefix("Authorization: "))
            .expect("the INVITE carries the answer");
        assert!(
            authorization.contains("algorithm=SHA-256"),
            "{authorization}"
        );
        assert_eq!(
            verifier.check(authorization, "INVITE", t0),
            Verdict::Accepted("alice".into())
        );
        // Timer A runs for the new INVITE.
        let (out, _) = call.on_timeout(t0 + Duration::from_millis(500));
        assert!(text(&out[0]).contains("CSeq: 2 INVITE"));
        // The first 401 again: ACKed on its transaction, nothing else happens.
        let (out, ev) = call.on_datagram(&first, peer, t0);
        assert!(ev.is_empty() && text(&out[0]).contains("CSeq: 1 ACK"));
        let ok = String::from_utf8(response("200 OK", "a1", "INVITE", ANSWER))
            .unwrap()
            .replace("CSeq: 1 ", "CSeq: 2 ");
        let (out, ev) = call.on_datagram(ok.as_bytes(), peer, t0);
        assert!(matches!(ev[..], [UacEvent::Answered(_)]), "{ev:?}");
        assert!(text(&out[0]).contains("CSeq: 2 ACK"));
        assert!(text(&call.hangup(t0)[0]).contains("CSeq: 3 BYE"));
        // Challenged again after answering: the credentials are wrong; the call fails.
        let (mut call, _) = OutgoingCall::invite(
            UacConfig {
                credentials: Some(Credentials {
                    user: "alice".into(),
                    password: "guess".into(),
                }),
                ..config()
            },
            t0,
        );
        let (out, _) = call.on_datagram(&first, peer, t0);
        assert_eq!(out.len(), 2);
        let (_, ev) = call.on_datagram(&challenged(2), peer, t0);
        assert!(
            matches!(ev[..], [UacEvent::Failed { status: 401, .. }]),
            "{ev:?}"
        );
        assert!(call.is_done());
    }

    /// Through record-routing proxies: the ACK and BYE carry the 2xx's Record-Route reversed
    /// (RFC 3261 12.1.2), addressed to the peer's Contact.
    #[test]
    fn the_route_set_of_a_record_routed_answer() {
        let t0 = Instant::now();
        let (mut call, _) = OutgoingCall::invite(config(), t0);
        let peer = PEER.parse().unwrap();
        let ok = String::from_utf8(response("200 OK", "a1", "INVITE", ANSWER))
            .unwrap()
            .replacen(
                "Contact:",
                "Record-Route: <sip:10.0.0.2;lr>, <sip:10.0.0.1;lr>\r\nRecord-Route: <sip:127.0.0.1:5090;lr>\r\nContact:",
                1,
            );
        let (out, _) = call.on_datagram(ok.as_bytes(), peer, t0);
        let ack = text(&out[0]);
        let route = "Route: <sip:127.0.0.1:5090;lr>, <sip:10.0.0.1;lr>, <sip:10.0.0.2;lr>\r\n";
        assert!(
            ack.starts_with("ACK sip:agent@127.0.0.1:5091 ") && ack.contains(route),
            "{ack}"
        );
        assert_eq!(out[0].to, peer);
        let bye = text(&call.hangup(t0)[0]);
        assert!(bye.contains(route), "{bye}");
    }

    #[test]
    fn busy_is_acked_on_the_invite_branch_and_fails() {
        let t0 = Instant::now();
        let (mut call, _) = OutgoingCall::invite(config(), t0);
        let peer = PEER.parse().unwrap();
        let (out, ev) = call.on_datagram(&response("486 Busy Here", "b", "INVITE", ""), peer, t0);
        assert!(text(&out[0]).contains("branch=z9hG4bKvxot1;"));
        assert_eq!(
            ev,
            vec![UacEvent::Failed {
                status: 486,
                reason: "Busy Here".into()
            }]
        );
        assert!(call.is_done() && call.poll_timeout().is_none());
    }

    #[test]
    fn cancel_waits_for_a_provisional_then_487_fails_the_call() {
        let t0 = Instant::now();
        let (mut call, _) = OutgoingCall::invite(config(), t0);
        let peer = PEER.parse().unwrap();
        assert!(call.cancel(t0).is_empty(), "no CANCEL before a 1xx (9.1)");
        let (mut silent, _) = OutgoingCall::invite(config(), t0);
        let (out, ev) = silent.give_up(t0);
        assert!(out.is_empty() && silent.is_done());
        assert!(matches!(ev[..], [UacEvent::Failed { status: 408, .. }]));
        let (out, _) = call.on_datagram(&response("100 Trying", "", "INVITE", ""), peer, t0);
        let cancel = text(&out[0]);
        assert!(
            cancel.starts_with("CANCEL sip:agent@127.0.0.1:5090")
                && cancel.contains("CSeq: 1 CANCEL")
        );
        assert!(
            cancel.contains("branch=z9hG4bKvxot1;"),
            "same branch as the INVITE"
        );
        let (out, _) = call.on_timeout(t0 + Duration::from_millis(500));
        assert!(
            text(&out[0]).starts_with("CANCEL"),
            "CANCEL resent (Timer E)"
        );
        call.on_datagram(&response("200 OK", "", "CANCEL", ""), peer, t0);
        let (out, ev) = call.on_datagram(
            &response("487 Request Terminated", "x", "INVITE", ""),
            peer,
            t0,
        );
        assert!(text(&out[0]).starts_with("ACK"));
        assert!(matches!(ev[0], UacEvent::Failed { status: 487, .. }));
    }

    #[test]
    fn no_response_is_408_and_a_remote_bye_ends_the_call() {
        let t0 = Instant::now();
        let (mut call, _) = OutgoingCall::invite(config(), t0);
        let (_, ev) = call.on_timeout(t0 + Duration::from_secs(32));
        assert!(matches!(ev[0], UacEvent::Failed { status: 408, .. }));

        let (mut call, _) = OutgoingCall::invite(config(), t0);
        let peer: SocketAddr = PEER.parse().unwrap();
        call.on_datagram(&response("200 OK", "a1", "INVITE", ANSWER), peer, t0);
        let bye = "BYE sip:voxnav@127.0.0.1:40000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5091;branch=z9hG4bKb\r\n\
                   From: <sip:agent@127.0.0.1:5090>;tag=a1\r\nTo: <sip:voxnav@127.0.0.1:40000>;tag=t1\r\n\
                   Call-ID: leg-1\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n";
        let (out, ev) = call.on_datagram(bye.as_bytes(), peer, t0);
        assert!(text(&out[0]).starts_with("SIP/2.0 200 OK"));
        assert_eq!(ev, vec![UacEvent::RemoteHangup]);
        // Someone else's call is not ours.
        let other = bye.replace("leg-1", "other");
        assert_eq!(call.on_datagram(other.as_bytes(), peer, t0).0.len(), 0);
    }

    #[test]
    fn uri_host_ports() {
        assert_eq!(
            uri_host_port("sip:agent@127.0.0.1:5090;transport=udp"),
            Some(("127.0.0.1".into(), 5090))
        );
        assert_eq!(
            uri_host_port("sip:seat.example"),
            Some(("seat.example".into(), 5060))
        );
        assert_eq!(
            uri_host_port("sip:a@[::1]:5070"),
            Some(("::1".into(), 5070))
        );
        assert_eq!(uri_host_port("tel:+123"), None);
        assert_eq!(uri_host_port("sip:a@h:notaport"), None);
    }
}
