//! voxnav registering itself to a carrier's or a PBX's registrar (RFC 3261 section 10.2), sans
//! IO: bytes out, responses in, timers as data.
//!
//! - One REGISTER client transaction at a time over UDP: resent at T1 doubling to T2 (Timer E),
//!   abandoned at 64*T1 (Timer F, 17.1.2.2) as a 408.
//! - A 401/407 challenge is answered with digest credentials (`digest::answer`, SHA-256 or
//!   MD5, whichever the registrar offers first that we know) once per challenge; a second
//!   challenge to an answered request means the credentials are wrong (unless `stale=true`).
//! - 2xx: registered for what the registrar granted (our Contact's `expires`, else Expires,
//!   else what we asked), refreshed at half that time (10.2.4 leaves the margin to us).
//! - Any failure (403, 500, a timeout, wrong credentials) is retried after a back-off that
//!   doubles from `retry_min` to `retry_max` (RFC 5626 section 4.5's shape), or after a 503's
//!   Retry-After.
//! - When voxnav stops, the binding is removed (Expires: 0, 10.2.2), best effort: the process
//!   does not wait for the answer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::endpoint::Transmit;
use super::envelope::{Envelope, StartLine};

/// RFC 3261 T2: the cap on non-INVITE retransmission intervals.
const T2: Duration = Duration::from_secs(4);

/// Where and as whom to register.
#[derive(Clone, PartialEq, Eq)]
pub struct RegisterConfig {
    /// The registrar's address (REGISTERs are sent there).
    pub registrar: SocketAddr,
    /// The Request-URI: the registrar's domain, `sip:carrier.example`.
    pub domain_uri: String,
    /// The address of record (To and From): `sip:voxnav@carrier.example`.
    pub aor: String,
    pub user: String,
    pub password: String,
    /// The registration time asked for, in seconds.
    pub expires: u32,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl std::fmt::Debug for RegisterConfig {
    /// The password is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterConfig")
            .field("registrar", &self.registrar)
            .field("aor", &self.aor)
            .field("user", &self.user)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Where the registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    /// A REGISTER is on its way (the first, or a retry).
    Registering,
    /// The registrar accepted us for `expires` seconds.
    Registered { expires: u32 },
    /// The last attempt failed with `status` (408: no answer); retried later.
    Failed { status: u16, reason: String },
}

impl RegistrationState {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Registering => "registering",
            Self::Registered { .. } => "registered",
            Self::Failed { .. } => "failed",
        }
    }
}

/// A REGISTER in flight.
#[derive(Debug)]
struct Pending {
    branch: String,
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    give_up: Instant,
    /// It carried credentials (a challenge to it means they are wrong).
    answered_challenge: bool,
}

/// The registration client.
#[derive(Debug)]
pub struct Registration {
    config: RegisterConfig,
    /// Our SIP address (Via, Contact).
    local: SocketAddr,
    call_id: String,
    from_tag: String,
    cseq: u32,
    branches: u64,
    t1: Duration,
    pending: Option<Pending>,
    /// When the next REGISTER is due (none while one is pending).
    due: Option<Instant>,
    failures: u32,
    /// The registrar's last challenge (reused for refreshes with a growing nonce count).
    challenge: Option<String>,
    nc: u32,
    state: RegistrationState,
    changes: VecDeque<RegistrationState>,
    /// Stopping: REGISTERs ask for Expires 0 and nothing is scheduled after them.
    leaving: bool,
}

impl Registration {
    /// The first REGISTER is due at `now`.
    pub fn new(
        config: RegisterConfig,
        local: SocketAddr,
        seed: u64,
        t1: Duration,
        now: Instant,
    ) -> Self {
        Self {
            config,
            local,
            call_id: format!("vxreg-{seed:x}"),
            from_tag: format!("vxr{seed:x}"),
            cseq: 0,
            branches: 0,
            t1,
            pending: None,
            due: Some(now),
            failures: 0,
            challenge: None,
            nc: 0,
            state: RegistrationState::Registering,
            changes: VecDeque::new(),
            leaving: false,
        }
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn state(&self) -> &RegistrationState {
        &self.state
    }

    pub fn registrar(&self) -> SocketAddr {
        self.config.registrar
    }

    /// State changes since the last call, oldest first.
    pub fn poll_change(&mut self) -> Option<RegistrationState> {
        self.changes.pop_front()
    }

    fn set_state(&mut self, state: RegistrationState) {
        if state != self.state {
            self.state = state.clone();
            self.changes.push_back(state);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self.pending.as_ref().map(|p| p.next.min(p.give_up));
        pending.into_iter().chain(self.due).min()
    }

    /// A REGISTER with credentials when a challenge is known.
    fn send_register(&mut self, now: Instant, answering: bool) -> Transmit {
        self.cseq += 1;
        self.branches += 1;
        let branch = format!("z9hG4bK{}r{}", self.from_tag, self.branches);
        let authorization = self
            .challenge
            .as_deref()
            .and_then(|c| {
                self.nc += 1;
                super::digest::answer(
                    c,
                    "REGISTER",
                    &self.config.domain_uri,
                    &self.config.user,
                    &self.config.password,
                    &format!("{}{}", self.from_tag, self.cseq),
                    self.nc,
                )
            })
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let c = &self.config;
        let expires = if self.leaving { 0 } else { c.expires };
        let bytes = format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\nMax-Forwards: 70\r\n\
             From: <{aor}>;tag={tag}\r\nTo: <{aor}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local}>;expires={expires}\r\nExpires: {expires}\r\n{authorization}\
             User-Agent: voxnav\r\nContent-Length: 0\r\n\r\n",
            uri = c.domain_uri,
            local = self.local,
            aor = c.aor,
            tag = self.from_tag,
            call_id = self.call_id,
            cseq = self.cseq,
            user = c.user,
        )
        .into_bytes();
        self.pending = Some(Pending {
            branch,
            bytes: bytes.clone(),
            next: now + self.t1,
            interval: self.t1,
            give_up: now + 64 * self.t1,
            answered_challenge: answering,
        });
        self.due = None;
        Transmit {
            to: self.config.registrar,
            bytes,
        }
    }

    /// Removes the binding as voxnav stops (Expires: 0), if it is registered.
    pub fn unregister(&mut self, now: Instant) -> Option<Transmit> {
        if !matches!(self.state, RegistrationState::Registered { .. }) || self.leaving {
            return None;
        }
        self.leaving = true;
        Some(self.send_register(now, false))
    }

    /// Runs what is due: the next REGISTER, a resend, or giving up on an unanswered one.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Transmit> {
        if let Some(p) = &mut self.pending {
            if now >= p.give_up {
                self.pending = None;
                self.fail(408, "the registrar did not answer".into(), None, now);
                return Vec::new();
            }
            if now >= p.next {
                p.interval = (p.interval * 2).min(T2);
                p.next = now + p.interval;
                return vec![Transmit {
                    to: self.config.registrar,
                    bytes: p.bytes.clone(),
                }];
            }
            return Vec::new();
        }
        match self.due {
            Some(at) if now >= at => vec![self.send_register(now, false)],
            _ => Vec::new(),
        }
    }

    fn fail(&mut self, status: u16, reason: String, retry_after: Option<Duration>, now: Instant) {
        self.failures += 1;
        let backoff = self.config.retry_min * 2u32.saturating_pow(self.failures - 1);
        let wait = retry_after.unwrap_or(backoff.min(self.config.retry_max));
        self.due = Some(now + wait);
        self.set_state(RegistrationState::Failed { status, reason });
    }

    /// Whether `env` is a response to our REGISTER (matched by Call-ID).
    pub fn owns(&self, env: &Envelope) -> bool {
        env.get("Call-ID") == Some(self.call_id.as_str())
    }

    /// A response to our REGISTER; returns what to send (an answer to a challenge).
    pub fn handle_response(&mut self, env: &Envelope, now: Instant) -> Vec<Transmit> {
        let Some(pending) = &self.pending else {
            return Vec::new();
        };
        let via = env.get("Via").unwrap_or_default();
        if !via.contains(&pending.branch) {
            return Vec::new(); // a late response to an earlier attempt
        }
        let StartLine::Response { code, reason, .. } = &env.start else {
            return Vec::new();
        };
        let status: u16 = code.parse().unwrap_or(0);
        if status < 200 {
            return Vec::new();
        }
        let answered = pending.answered_challenge;
        self.pending = None;
        match status {
            200..=299 if self.leaving => Vec::new(),
            200..=299 => {
                let granted = granted_expires(env, &self.local).unwrap_or(self.config.expires);
                self.failures = 0;
                // Refresh at half the granted time (at least a second).
                let half =
                    Duration::from_millis(u64::from(granted) * 500).max(Duration::from_secs(1));
                self.due = Some(now + half);
                self.set_state(RegistrationState::Registered { expires: granted });
                Vec::new()
            }
            401 | 407 => {
                let header = if status == 401 {
                    "WWW-Authenticate"
                } else {
                    "Proxy-Authenticate"
                };
                let challenge = env.all(header).find(|c| {
                    super::digest::params(c).is_some_and(|p| {
                        super::digest::Algorithm::parse(
                            p.get("algorithm").map_or("MD5", String::as_str),
                        )
                        .is_some()
                    })
                });
                let stale = challenge.and_then(super::digest::params).is_some_and(|p| {
                    p.get("stale")
                        .is_some_and(|s| s.eq_ignore_ascii_case("true"))
                });
                match challenge {
                    Some(c) if !answered || stale => {
                        self.challenge = Some(c.to_string());
                        self.nc = 0;
                        vec![self.send_register(now, true)]
                    }
                    Some(_) => {
                        self.challenge = None;
                        self.fail(
                            status,
                            "the registrar refused our credentials".into(),
                            None,
                            now,
                        );
                        Vec::new()
                    }
                    None => {
                        self.fail(status, "a challenge voxnav cannot answer".into(), None, now);
                        Vec::new()
                    }
                }
            }
            _ => {
                let retry_after = (status == 503)
                    .then(|| env.get("Retry-After"))
                    .flatten()
                    .and_then(|v| v.split(';').next()?.trim().parse().ok())
                    .map(Duration::from_secs);
                self.fail(status, reason.clone(), retry_after, now);
                Vec::new()
            }
        }
    }
}

/// The registration time a 2xx grants: our Contact's `expires` parameter, else the Expires
/// header (RFC 3261 10.2.4).
fn granted_expires(env: &Envelope, local: &SocketAddr) -> Option<u32> {
    let ours = local.to_string();
    let from_contact = env
        .all("Contact")
        .flat_map(|v| super::validate::split_outside_quotes(v, ','))
        .filter(|c| c.contains(&ours))
        .find_map(|c| {
            c.split(';')
                .skip(1)
                .find_map(|p| p.trim().strip_prefix("expires=")?.trim().parse().ok())
        });
    from_contact.or_else(|| env.get("Expires")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RegisterConfig {
        RegisterConfig {
            registrar: "127.0.0.1:5080".parse().unwrap(),
            domain_uri: "sip:carrier.example".into(),
            aor: "sip:voxnav@carrier.example".into(),
            user: "voxnav".into(),
            password: "s3cret".into(),
            expires: 600,
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(30),
        }
    }

    fn text(t: &Transmit) -> String {
        String::from_utf8(t.bytes.clone()).unwrap()
    }

    /// The registrar's answer to `request`.
    fn reply(request: &str, status: &str, extra: &str) -> Envelope {
        let via = request.lines().find(|l| l.starts_with("Via:")).unwrap();
        let cseq = request.lines().find(|l| l.starts_with("CSeq:")).unwrap();
        let raw = format!(
            "SIP/2.0 {status}\r\n{via}\r\nFrom: <sip:voxnav@carrier.example>;tag=x\r\n\
             To: <sip:voxnav@carrier.example>;tag=r\r\nCall-ID: vxreg-1\r\n{cseq}\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        let frame = super::super::framing::frame_datagram(raw.as_bytes()).unwrap();
        Envelope::scan(raw.as_bytes(), &frame).unwrap()
    }

    #[test]
    fn challenge_answer_register_refresh_and_back_off() {
        let t0 = Instant::now();
        let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let t1 = Duration::from_millis(500);
        let mut r = Registration::new(config(), local, 1, t1, t0);
        let first = text(&r.handle_timeout(t0)[0]);
        assert!(
            first.starts_with("REGISTER sip:carrier.example SIP/2.0\r\n"),
            "{first}"
        );
        assert!(first.contains("Contact: <sip:voxnav@127.0.0.1:5060>;expires=600\r\n"));
        assert!(!first.contains("Authorization"));
        // Timer E.
        assert_eq!(r.handle_timeout(t0 + t1).len(), 1);
        let challenge = "WWW-Authenticate: Digest realm=\"carrier\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"\r\n";
        let out = r.handle_response(&reply(&first, "401 Unauthorized", challenge), t0);
        let second = text(&out[0]);
        assert!(
            second.contains(
                "Authorization: Digest username=\"voxnav\", realm=\"carrier\", nonce=\"n1\""
            ),
            "{second}"
        );
        assert!(second.contains("CSeq: 2 REGISTER") && second.contains("nc=00000001"));
        let ok = reply(
            &second,
            "200 OK",
            "Contact: <sip:voxnav@127.0.0.1:5060>;expires=60\r\n",
        );
        r.handle_response(&ok, t0);
        assert_eq!(r.state(), &RegistrationState::Registered { expires: 60 });
        assert_eq!(
            r.poll_change(),
            Some(RegistrationState::Registered { expires: 60 })
        );
        // Refreshed at half the granted time, with the known challenge and the next count.
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        let refresh = text(&r.handle_timeout(t0 + Duration::from_secs(30))[0]);
        assert!(
            refresh.contains("nc=00000002") && refresh.contains("CSeq: 3 REGISTER"),
            "{refresh}"
        );
        // The registrar now refuses: failed, retried after 2 s, then 4 s.
        let t = t0 + Duration::from_secs(30);
        r.handle_response(&reply(&refresh, "403 Forbidden", ""), t);
        assert_eq!(
            r.state(),
            &RegistrationState::Failed {
                status: 403,
                reason: "Forbidden".into()
            }
        );
        assert_eq!(r.poll_timeout(), Some(t + Duration::from_secs(2)));
        let again = text(&r.handle_timeout(t + Duration::from_secs(2))[0]);
        let t = t + Duration::from_secs(2);
        r.handle_response(&reply(&again, "500 Server Error", ""), t);
        assert_eq!(r.poll_timeout(), Some(t + Duration::from_secs(4)));
        // Wrong credentials: a challenge to an answered REGISTER fails instead of looping.
        let next = text(&r.handle_timeout(t + Duration::from_secs(4))[0]);
        let t = t + Duration::from_secs(4);
        let out = r.handle_response(&reply(&next, "401 Unauthorized", challenge), t);
        let answered = text(&out[0]);
        r.handle_response(&reply(&answered, "401 Unauthorized", challenge), t);
        assert!(matches!(
            r.state(),
            RegistrationState::Failed { status: 401, .. }
        ));
        // No answer at all: 408 at Timer F.
        let lost = r.poll_timeout().unwrap();
        r.handle_timeout(lost);
        let give_up = lost + 64 * t1;
        r.handle_timeout(give_up);
        assert!(matches!(
            r.state(),
            RegistrationState::Failed { status: 408, .. }
        ));
        // A 503 with Retry-After sets the wait.
        let due = r.poll_timeout().unwrap();
        let busy = text(&r.handle_timeout(due)[0]);
        r.handle_response(
            &reply(&busy, "503 Service Unavailable", "Retry-After: 17\r\n"),
            due,
        );
        assert_eq!(r.poll_timeout(), Some(due + Duration::from_secs(17)));
        assert!(!format!("{:?}", config()).contains("s3cret"));
    }

    #[test]
    fn stopping_removes_the_binding() {
        let t0 = Instant::now();
        let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let mut r = Registration::new(config(), local, 1, Duration::from_millis(500), t0);
        assert!(
            r.unregister(t0).is_none(),
            "not registered yet: nothing to remove"
        );
        let first = text(&r.handle_timeout(t0)[0]);
        r.handle_response(&reply(&first, "200 OK", "Expires: 600\r\n"), t0);
        let bye = text(&r.unregister(t0).unwrap());
        assert!(bye.contains(";expires=0\r\nExpires: 0\r\n"), "{bye}");
        assert!(r.unregister(t0).is_none(), "once");
        r.handle_response(&reply(&bye, "200 OK", ""), t0);
        assert_eq!(r.poll_timeout(), None, "nothing scheduled after leaving");
    }
}
