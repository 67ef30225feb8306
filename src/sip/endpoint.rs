//! The SIP endpoint, sans-IO: bytes, a source address and `now` in; datagrams to send, events
//! for the driver (`poll_event`) and the next deadline (`poll_timeout`) out. The driver in
//! `net/` only moves bytes, binds RTP sockets and sleeps.
//!
//! What it does:
//! - malformed requests: the stateless rejection `validate` chose (400, 415, 416, 420, 501...);
//! - INVITE: SDP negotiated (`sdp`); 488 if no G.711, 503 + Retry-After over the call limit;
//!   otherwise 100 Trying and `IncomingCall` for the driver, which binds media and calls
//!   `answer_call` (200 with the SDP answer). An INVITE without SDP gets our offer in the 200 and
//!   the answer is read from the ACK. A re-INVITE in the dialog (hold/resume) is answered at once;
//! - ACK confirms the call; BYE (either side) ends it; INFO `application/dtmf-relay` gives digits;
//!   CANCEL before the answer gives 200 and 487; requests in unknown dialogs get 481;
//! - OPTIONS: 200 with Allow, Accept and Supported (RFC 3261 11.2);
//! - REGISTER: with an agents file, the agents' registrar (`registrar`): digest against the
//!   agent's own account (401 challenges; the To user must be the authenticated agent, 403
//!   otherwise), then the bindings and a 200 listing them. Without one, 405;
//! - INVITE to a feature code (`*1`, `*2`, `*9`) with an agents file: digest against the
//!   agents' accounts from any address (401 challenges), then an `IncomingCall` naming the
//!   agent, which the driver answers by changing the agent's state and saying so;
//! - other methods: 405 with Allow.
//!
//! Requests go through RFC 3261 server transactions (`transaction`), so retransmissions are
//! answered from the transaction and every final INVITE response is resent until its ACK; a 2xx
//! never ACKed ends the call with a BYE (13.3.1.4).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dialog::{Dialog, DialogState, contact_uri, tag_of};
use super::envelope::Envelope;
use super::sdp::{self, Negotiated, Offer};
use super::session_timer::{self, Negotiation};
use super::transaction::{Expired, Incoming, ServerTransactions, TimerConfig, TransactionKey};
use super::validate::{ACCEPTED_TYPES, ALLOWED_METHODS, SUPPORTED_OPTIONS, Verdict};
use super::{judge_datagram, response};

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

/// The transport a message arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    /// TCP inside TLS (RFC 3261 26.2.1; `sips:` and `;transport=tls`).
    Tls,
}

impl Transport {
    /// The Via transport token (RFC 3261 20.42).
    pub fn via_name(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    /// For reports and metrics labels.
    pub fn label(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

/// What the driver must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// An agent's registered contacts changed (registered, refreshed to another contact,
    /// un-registered, expired); `contacts` is what is left.
    AgentContacts {
        agent: String,
        contacts: Vec<String>,
    },
    /// A REGISTER answered with wrong credentials (an unknown user, a wrong password, a
    /// replay): `user` is the name it gave.
    AgentRefused {
        user: String,
        source: SocketAddr,
        /// REGISTER, or INVITE for a feature code.
        method: &'static str,
    },
    /// A new call: bind media and `answer_call` (or `reject_call`). `media` is None when the
    /// INVITE had no offer (ours goes in the 200; the answer arrives with the ACK).
    IncomingCall {
        call_id: String,
        /// The number dialled (`identity::dialled_number`): which hotline answers.
        dialled: Option<String>,
        media: Option<Negotiated>,
        /// Where the INVITE came from: the only IP media is sent to before RTP arrives.
        signalling: SocketAddr,
        /// The agent whose phone placed the call, proven by digest: a feature code
        /// (`routing::Requested::from_feature_code`) dialled from an agent's phone.
        agent: Option<String>,
    },
    /// The ACK arrived; `media` is set when it carried the SDP answer.
    CallConfirmed {
        call_id: String,
        media: Option<Negotiated>,
    },
    /// A re-INVITE changed the media (hold, resume, new address).
    MediaChanged { call_id: String, media: Negotiated },
    /// A digit from SIP INFO (`application/dtmf-relay`).
    Dtmf { call_id: String, digit: char },
    /// The caller did not refresh the session in time (RFC 4028); voxnav sent BYE.
    SessionExpired { call_id: String },
    /// The call is over; stop its media.
    CallEnded { call_id: String, reason: String },
    /// Our REFER was accepted (202): the PBX is calling the transfer target.
    ReferAccepted { call_id: String },
    /// Our REFER was refused (a final status), or never answered (408), or the PBX's call
    /// to the target failed (its NOTIFY's final status): the caller is still with us.
    ReferFailed {
        call_id: String,
        status: u16,
        reason: String,
    },
    /// The PBX's call to the transfer target answered (a NOTIFY with a 2xx sipfrag): the
    /// caller is theirs now.
    ReferSucceeded { call_id: String },
    /// Our registration to the registrar changed state.
    Registration {
        registrar: SocketAddr,
        state: super::register::RegistrationState,
    },
}

/// Wrong digest answers an address may give for one user name per `AUTH_FAILURE_WINDOW`;
/// after that its requests for that user go unanswered until the window has passed (a
/// password guesser gets a handful of tries a minute per account, and learns nothing from
/// silence).
const MAX_AUTH_FAILURES: u32 = 5;
const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered at once (older windows are forgotten first).
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Calls in progress before new INVITEs get 503.
    pub max_calls: usize,
    /// Seconds a refused caller should wait (Retry-After on 503).
    pub retry_after_secs: u32,
    pub timers: TimerConfig,
    /// Who may call (403 otherwise) and which numbers answer (404 otherwise).
    pub admission: super::admission::Admission,
    /// Register voxnav to a carrier's or a PBX's registrar (`register`).
    pub register: Option<super::register::RegisterConfig>,
    /// Whether calls' media may, must or must not be SRTP (`media.srtp`).
    pub srtp: super::sdp::SrtpPolicy,
    /// Trunks whose calls must be SRTP whatever `srtp` says (`media.srtp_required_from`).
    pub srtp_required_from: Vec<super::admission::Network>,
    /// Trunks whose calls must come over TLS (`sip.tls_required_from`): an INVITE from one of
    /// them over UDP or TCP gets 403.
    pub tls_required_from: Vec<super::admission::Network>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            max_calls: 100,
            retry_after_secs: 5,
            timers: TimerConfig::default(),
            admission: Default::default(),
            register: None,
            srtp: Default::default(),
            srtp_required_from: Vec::new(),
            tls_required_from: Vec::new(),
        }
    }
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
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    next_id: u64,
    seed: u64,
    /// Our SIP address as peers should reach it (Via sent-by, Contact).
    local: SocketAddr,
    /// Our TLS listener's address, if any (the Contact of calls over TLS).
    tls: Option<SocketAddr>,
    transactions: ServerTransactions,
    dialogs: HashMap<String, Dialog>,
    /// Calls with our BYE in flight: the only dialogs timers and responses need to look at,
    /// so no per-datagram work grows with the number of calls.
    byes: HashSet<String>,
    /// Calls with a REFER of ours in flight.
    refers: HashSet<String>,
    /// The SDP offer of each call's INVITE (to build the answer) or our own offer.
    offers: HashMap<String, Option<Offer>>,
    /// Session-timer deadlines (RFC 4028), soonest first; an entry is stale when the call has
    /// been refreshed since (its dialog holds a later deadline) and is skipped.
    session_deadlines: BinaryHeap<Reverse<(Instant, String)>>,
    events: VecDeque<EndpointEvent>,
    /// Draining for an upgrade: no new calls, OPTIONS says unavailable; calls go on.
    draining: bool,
    /// Checks the digest answers of peers outside the trunks (when accounts are configured).
    verifier: Option<super::digest::Verifier>,
    /// Our registration to a registrar, when configured.
    registration: Option<super::register::Registration>,
    /// The agents' registrar (`set_agents`): their accounts and their phones' bindings.
    agents: Option<AgentRegistrar>,
    /// Wrong digest answers per address and user name: (count, since when). Guessing an
    /// account's password is slowed to `MAX_AUTH_FAILURES` tries per `AUTH_FAILURE_WINDOW`
    /// from each address, and one phone with a wrong password does not lock out the others
    /// behind the same address (an office NAT).
    auth_failures: HashMap<(std::net::IpAddr, String), (u32, Instant)>,
    pub stats: EndpointStats,
}

/// Which accounts a digest answer is checked against.
#[derive(Debug, Clone, Copy)]
enum Accounts {
    /// `sip.digest`: peers calling from outside the trunks.
    Trunks,
    /// The agents file: agents' phones registering or dialling a feature code.
    Agents,
}

/// Who a new INVITE comes from, as far as the endpoint knows.
struct Caller {
    /// A trunk (listed, or proven by digest): its P-Asserted-Identity is believed.
    trusted: bool,
    /// An agent's phone, proven by digest (a feature code).
    agent: Option<String>,
}

/// What checking a digest answer decided.
#[derive(Debug)]
enum DigestOutcome {
    /// The user proved who they are.
    Accepted(String),
    /// 401 with these `WWW-Authenticate` headers; `wrong` names the user of a wrong answer.
    Challenge {
        headers: Vec<(String, String)>,
        wrong: Option<String>,
    },
    /// The address guessed this user's password wrong too often lately: no answer.
    Silenced,
}

/// The agents' accounts and their phones' bindings.
#[derive(Debug)]
struct AgentRegistrar {
    verifier: super::digest::Verifier,
    bindings: super::registrar::Bindings,
}

impl Endpoint {
    /// `seed` makes tags and branches unique across restarts (the driver passes the start time);
    /// `local` is the SIP address peers reach us on.
    pub fn new(seed: u64, local: SocketAddr, config: EndpointConfig) -> Self {
        // The nonces' clock starts here; only differences of `now` with it matter.
        let verifier = (config.admission.digest.clone())
            .map(|d| super::digest::Verifier::new(d, Instant::now()));
        // The first REGISTER is due as soon as the driver runs the timers.
        let registration = config.register.clone().map(|r| {
            super::register::Registration::new(r, local, seed, config.timers.t1, Instant::now())
        });
        Self {
            transactions: ServerTransactions::new(config.timers),
            config,
            next_id: 0,
            seed,
            local,
            tls: None,
            dialogs: HashMap::new(),
            byes: HashSet::new(),
            refers: HashSet::new(),
            offers: HashMap::new(),
            session_deadlines: BinaryHeap::new(),
            events: VecDeque::new(),
            verifier,
            registration,
            agents: None,
            auth_failures: HashMap::new(),
            draining: false,
            stats: EndpointStats::default(),
        }
    }

    fn unique(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        // Unique per process; the seed separates restarts (RFC 3261 19.3, 8.1.1.7).
        format!("{prefix}{:x}{:x}", self.seed, self.next_id)
    }

    /// The agents' accounts (from the agents file; None stops the registrar: REGISTER gets
    /// 405 again). A reload keeps the nonces issued and the bindings of agents still listed;
    /// an agent removed from the file loses its bindings at once.
    pub fn set_agents(&mut self, accounts: Option<super::digest::DigestConfig>, now: Instant) {
        let Some(accounts) = accounts else {
            if let Some(old) = self.agents.take() {
                let gone = old.bindings.registered_agents();
                for agent in gone {
                    self.events.push_back(EndpointEvent::AgentContacts {
                        agent,
                        contacts: Vec::new(),
                    });
                }
            }
            return;
        };
        match self.agents.as_mut() {
            Some(r) => {
                let users = accounts.users.clone();
                r.verifier.set_accounts(accounts);
                for agent in r.bindings.keep_only(|a| users.contains_key(a)) {
                    self.events.push_back(EndpointEvent::AgentContacts {
                        agent,
                        contacts: Vec::new(),
                    });
                }
            }
            None => {
                self.agents = Some(AgentRegistrar {
                    verifier: super::digest::Verifier::new(accounts, now),
                    bindings: Default::default(),
                });
            }
        }
    }

    /// The contacts an agent's phones have registered, with the seconds each has left.
    pub fn agent_contacts(&self, agent: &str, now: Instant) -> Vec<(String, u32)> {
        (self.agents.as_ref()).map_or_else(Vec::new, |r| r.bindings.current(agent, now))
    }

    /// Live server transactions (for leak checks and metrics).
    pub fn transactions(&self) -> usize {
        self.transactions.len()
    }

    /// Calls in progress.
    pub fn calls(&self) -> usize {
        self.dialogs.len()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    /// The next instant `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let bye = (self.byes.iter())
            .filter_map(|c| self.dialogs.get(c)?.bye.as_ref())
            .chain((self.refers.iter()).filter_map(|c| self.dialogs.get(c)?.refer.as_ref()))
            .map(|b| b.next.min(b.give_up));
        let session = self.session_deadlines.peek().map(|Reverse((at, _))| *at);
        let registration = self.registration.as_ref().and_then(|r| r.poll_timeout());
        let binding = (self.agents.as_ref()).and_then(|r| r.bindings.next_expiry());
        self.transactions
            .poll_timeout()
            .into_iter()
            .chain(bye)
            .chain(session)
            .chain(registration)
            .chain(binding)
            .min()
    }

    /// Runs the timers due at `now`; returns datagrams to send.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Transmit> {
        let (mut out, expired) = self.transactions.handle_timeout(now);
        if let Some(r) = self.registration.as_mut() {
            out.extend(r.handle_timeout(now));
        }
        self.registration_events();
        if let Some(r) = self.agents.as_mut() {
            for agent in r.bindings.expire(now) {
                let contacts = r.bindings.current(&agent, now);
                self.events.push_back(EndpointEvent::AgentContacts {
                    agent,
                    contacts: contacts.into_iter().map(|(uri, _)| uri).collect(),
                });
            }
        }
        self.stats.retransmissions += out.len() as u64;
        for Expired::AckTimeout(key) in expired {
            // A 2xx never ACKed: end the call with a BYE (RFC 3261 13.3.1.4).
            let call = self.dialogs.iter().find(|(_, d)| {
                d.state == DialogState::Answered && TransactionKey::of(&d.invite, "INVITE") == key
            });
            if let Some(call_id) = call.map(|(c, _)| c.clone()) {
                out.extend(self.hangup(&call_id, now));
            }
        }
        let t2 = self.config.timers.t2;
        let mut gone = Vec::new();
        for call_id in &self.byes {
            let Some(d) = self.dialogs.get_mut(call_id) else {
                continue;
            };
            let Some(bye) = d.bye.as_mut() else { continue };
            if now >= bye.give_up {
                gone.push(call_id.clone()); // Timer F: tear down locally all the same
            } else if now >= bye.next {
                out.push(Transmit {
                    to: d.peer,
                    bytes: bye.bytes.clone(),
                });
                bye.interval = (bye.interval * 2).min(t2);
                bye.next = now + bye.interval;
            }
        }
        for call_id in gone {
            self.end(&call_id, "BYE not answered");
        }
        // Our REFER, the same way (Timer E, then Timer F: the PBX never answered).
        let mut unanswered = Vec::new();
        for call_id in &self.refers {
            let Some(d) = self.dialogs.get_mut(call_id) else {
                continue;
            };
            let Some(refer) = d.refer.as_mut() else {
                continue;
            };
            if now >= refer.give_up {
                unanswered.push(call_id.clone());
            } else if now >= refer.next {
                out.push(Transmit {
                    to: d.peer,
                    bytes: refer.bytes.clone(),
                });
                refer.interval = (refer.interval * 2).min(t2);
                refer.next = now + refer.interval;
            }
        }
        for call_id in unanswered {
            self.refers.remove(&call_id);
            if let Some(d) = self.dialogs.get_mut(&call_id) {
                d.refer = None;
            }
            self.events.push_back(EndpointEvent::ReferFailed {
                call_id,
                status: 408,
                reason: "no answer to the REFER".into(),
            });
        }
        while let Some(Reverse((at, _))) = self.session_deadlines.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, call_id))) = self.session_deadlines.pop() else {
                break;
            };
            let current = self.dialogs.get(&call_id).and_then(|d| d.session_deadline);
            if current == Some(at) {
                // No refresh within the session interval: the caller is gone (RFC 4028 10).
                self.events.push_back(EndpointEvent::SessionExpired {
                    call_id: call_id.clone(),
                });
                out.extend(self.hangup(&call_id, now));
            }
        }
        out
    }

    /// (Re)starts a call's session timer after a 2xx that carries `Session-Expires`.
    fn arm_session_timer(&mut self, call_id: &str, now: Instant) {
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return;
        };
        let Some(interval) = d.session_interval else {
            return;
        };
        let at = now + session_timer::teardown_after(interval);
        d.session_deadline = Some(at);
        self.session_deadlines
            .push(Reverse((at, call_id.to_string())));
    }

    fn end(&mut self, call_id: &str, reason: &str) {
        if self.dialogs.remove(call_id).is_some() {
            self.offers.remove(call_id);
            self.byes.remove(call_id);
            self.refers.remove(call_id);
            self.events.push_back(EndpointEvent::CallEnded {
                call_id: call_id.to_string(),
                reason: reason.to_string(),
            });
        }
    }

    /// Asks the peer of an established call (a PBX) to transfer the caller to `refer_to`
    /// (RFC 3515). Its answer and the NOTIFYs that follow come back as `Refer*` events; a
    /// call not up (or with a REFER already in flight) gets `ReferFailed` at once.
    pub fn refer(&mut self, call_id: &str, refer_to: &str, now: Instant) -> Vec<Transmit> {
        let branch = self.unique("z9hG4bKvx");
        let tls_call = self.call_transport(call_id) == Some(Transport::Tls);
        let sent_by = self.tls.filter(|_| tls_call).unwrap_or(self.local);
        let (via, t1) = (sent_by.to_string(), self.config.timers.t1);
        match self.dialogs.get_mut(call_id) {
            Some(d) if d.state == DialogState::Confirmed && d.refer.is_none() => {
                let refer = d.refer(&via, branch, refer_to, now, t1);
                self.refers.insert(call_id.to_string());
                vec![refer]
            }
            // Answered, not yet ACKed: the REFER follows the ACK.
            Some(d) if d.state == DialogState::Answered && d.refer_on_ack.is_none() => {
                d.refer_on_ack = Some(refer_to.to_string());
                Vec::new()
            }
            _ => {
                self.events.push_back(EndpointEvent::ReferFailed {
                    call_id: call_id.to_string(),
                    status: 0,
                    reason: "the call is not up".into(),
                });
                Vec::new()
            }
        }
    }

    /// Hangs up a call from our side: BYE if it was answered, nothing otherwise.
    pub fn hangup(&mut self, call_id: &str, now: Instant) -> Vec<Transmit> {
        let branch = self.unique("z9hG4bKvx");
        // Our sent-by for the call's transport: the TLS listener for a call over TLS.
        let tls_call = self.call_transport(call_id) == Some(Transport::Tls);
        let sent_by = self.tls.filter(|_| tls_call).unwrap_or(self.local);
        let (via, t1) = (sent_by.to_string(), self.config.timers.t1);
        match self.dialogs.get_mut(call_id) {
            Some(d) if matches!(d.state, DialogState::Answered | DialogState::Confirmed) => {
                let bye = d.bye(&via, branch, now, t1);
                self.byes.insert(call_id.to_string());
                vec![bye]
            }
            _ => Vec::new(),
        }
    }

    /// The answer's media for an offer under the SRTP policy (`sdp::negotiate_secure`); our
    /// SRTP key comes from the kernel's random source.
    fn negotiate(
        &self,
        offer: &sdp::Offer,
        source: SocketAddr,
    ) -> Result<sdp::Negotiated, sdp::SdpError> {
        let required = (self.config.srtp_required_from.iter()).any(|n| n.contains(source.ip()));
        let policy = if required {
            sdp::SrtpPolicy::Required
        } else {
            self.config.srtp
        };
        sdp::negotiate_secure(offer, policy, &mut || {
            crate::media::srtp::MasterKey::random().ok()
        })
    }

    /// Answers an `IncomingCall` with 200 and SDP for media at `rtp` (our RTP address).
    pub fn answer_call(&mut self, call_id: &str, rtp: SocketAddr, now: Instant) -> Vec<Transmit> {
        let session = self.seed ^ self.next_id;
        let Some(d) = self
            .dialogs
            .get_mut(call_id)
            .filter(|d| d.state == DialogState::Offered)
        else {
            return Vec::new();
        };
        let body = match (self.offers.get(call_id).and_then(|o| o.as_ref()), &d.media) {
            (Some(offer), Some(agreed)) => sdp::answer(offer, agreed, rtp, session),
            _ => sdp::offer(rtp, session),
        };
        d.state = DialogState::Answered;
        d.local_rtp = Some(rtp);
        let transport = d.transport;
        let contact = match (transport, self.tls) {
            (Transport::Tls, Some(tls)) => format!("<sip:voxnav@{tls};transport=tls>"),
            _ => format!("<sip:voxnav@{}>", self.local),
        };
        let invite = d.invite.clone();
        let (tag, peer) = (d.local_tag.clone(), d.peer);
        let mut headers = vec![
            ("Contact".into(), contact),
            ("Allow".into(), ALLOWED_METHODS.join(", ")),
            ("Supported".into(), SUPPORTED_OPTIONS.join(", ")),
        ];
        headers.extend(
            d.session_interval
                .map_or_else(Vec::new, session_timer::response_headers),
        );
        let bytes = response::build_with_body(
            &invite,
            200,
            "OK",
            &tag,
            &headers,
            peer,
            Some(("application/sdp", body.as_bytes())),
        );
        self.stats.answered += 1;
        self.arm_session_timer(call_id, now);
        let key = TransactionKey::of(&invite, "INVITE");
        let to = response::target(&invite, peer);
        self.transactions.respond(&key, 200, bytes, to, now)
    }

    /// Sends 180 Ringing for an `IncomingCall` not yet answered (the driver answers later).
    pub fn ring(&mut self, call_id: &str, now: Instant) -> Vec<Transmit> {
        let Some(d) = self
            .dialogs
            .get(call_id)
            .filter(|d| d.state == DialogState::Offered)
        else {
            return Vec::new();
        };
        let contact = [(
            "Contact".to_string(),
            format!("<sip:voxnav@{}>", self.local),
        )];
        let bytes = response::build(&d.invite, 180, "Ringing", &d.local_tag, &contact, d.peer);
        let key = TransactionKey::of(&d.invite, "INVITE");
        let to = response::target(&d.invite, d.peer);
        self.transactions.respond(&key, 180, bytes, to, now)
    }

    /// True while a call is offered and not yet answered (nor cancelled).
    pub fn is_ringing(&self, call_id: &str) -> bool {
        self.dialogs
            .get(call_id)
            .is_some_and(|d| d.state == DialogState::Offered)
    }

    /// Who is calling (`identity::caller_id` of the INVITE), anonymous if the call is unknown.
    pub fn caller_of(&self, call_id: &str) -> super::identity::CallerId {
        self.dialogs
            .get(call_id)
            .map_or_else(super::identity::CallerId::anonymous, |d| {
                super::identity::caller_id(&d.invite, d.trusted)
            })
    }

    /// Stops taking calls (RFC 3261 section 21.5.4: 503 with Retry-After to new INVITEs and to
    /// OPTIONS, which is what a load balancer's probe reads as "send no more here"); calls in
    /// progress go on until they end.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Removes our registration's binding as voxnav stops (a REGISTER with Expires: 0).
    pub fn unregister(&mut self, now: Instant) -> Vec<Transmit> {
        (self.registration.as_mut())
            .and_then(|r| r.unregister(now))
            .into_iter()
            .collect()
    }

    /// Where the registration stands (None: not configured).
    pub fn registration(&self) -> Option<&super::register::RegistrationState> {
        self.registration.as_ref().map(|r| r.state())
    }

    fn registration_events(&mut self) {
        let Some(r) = self.registration.as_mut() else {
            return;
        };
        while let Some(state) = r.poll_change() {
            self.events.push_back(EndpointEvent::Registration {
                registrar: r.registrar(),
                state,
            });
        }
    }

    /// The transport the call came on.
    pub fn call_transport(&self, call_id: &str) -> Option<Transport> {
        self.dialogs.get(call_id).map(|d| d.transport)
    }

    /// Where peers reach us over TLS, when a TLS listener is up: the Contact of calls that
    /// came over TLS names it, so their requests to us stay on TLS.
    pub fn set_tls_address(&mut self, addr: SocketAddr) {
        self.tls = Some(addr);
    }

    /// Our Contact for a call on `transport`.
    fn contact_for(&self, transport: Transport) -> String {
        match (transport, self.tls) {
            (Transport::Tls, Some(tls)) => format!("<sip:voxnav@{tls};transport=tls>"),
            _ => format!("<sip:voxnav@{}>", self.local),
        }
    }

    /// Refuses an `IncomingCall` (e.g. no RTP port): `status` with `reason`.
    pub fn reject_call(
        &mut self,
        call_id: &str,
        status: u16,
        reason: &str,
        now: Instant,
    ) -> Vec<Transmit> {
        let Some(d) = self.dialogs.remove(call_id) else {
            return Vec::new();
        };
        self.offers.remove(call_id);
        let key = TransactionKey::of(&d.invite, "INVITE");
        let bytes = response::build(&d.invite, status, reason, &d.local_tag, &[], d.peer);
        self.transactions.respond(
            &key,
            status,
            bytes,
            response::target(&d.invite, d.peer),
            now,
        )
    }

    /// Handles one UDP datagram from `source` at `now`.
    pub fn handle_datagram(
        &mut self,
        datagram: &[u8],
        source: SocketAddr,
        now: Instant,
    ) -> Vec<Transmit> {
        self.handle_message(datagram, source, Transport::Udp, now)
    }

    /// Handles one framed message from `source`, received over `transport`, at `now`.
    pub fn handle_message(
        &mut self,
        datagram: &[u8],
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Vec<Transmit> {
        self.stats.received += 1;
        let tag = self.unique("vx");
        let judged = judge_datagram(datagram, source, &tag);
        match (&judged.verdict, judged.reply, judged.envelope) {
            (Verdict::Reject(_), Some((bytes, to)), _) => {
                self.stats.rejected += 1;
                vec![Transmit { to, bytes }]
            }
            (Verdict::Request, _, Some(env)) => self.on_request(&env, &tag, source, transport, now),
            (Verdict::Response, _, Some(env)) => {
                if let Some(r) = self.registration.as_mut().filter(|r| r.owns(&env)) {
                    let out = r.handle_response(&env, now);
                    self.registration_events();
                    return out;
                }
                self.on_response(&env);
                Vec::new()
            }
            _ => {
                self.stats.dropped += 1;
                Vec::new()
            }
        }
    }

    fn on_response(&mut self, env: &Envelope) {
        // A final response to our BYE (matched by branch) ends the call.
        let via = env.get("Via").unwrap_or_default();
        let is_final = matches!(&env.start, super::envelope::StartLine::Response { code, .. } if !code.starts_with('1'));
        let call_id = env.get("Call-ID").unwrap_or_default().to_string();
        let ours = self
            .dialogs
            .get(&call_id)
            .and_then(|d| d.bye.as_ref())
            .is_some_and(|b| via.contains(&b.branch));
        if is_final && ours {
            self.end(&call_id, "hung up by voxnav");
        }
        // The final response to our REFER: 202 (or any 2xx) accepted, else refused.
        let refer = (self.dialogs.get_mut(&call_id))
            .filter(|d| d.refer.as_ref().is_some_and(|r| via.contains(&r.branch)));
        if let (true, Some(d)) = (is_final, refer) {
            d.refer = None;
            self.refers.remove(&call_id);
            if let super::envelope::StartLine::Response { code, reason, .. } = &env.start {
                let status: u16 = code.parse().unwrap_or(0);
                self.events.push_back(if (200..300).contains(&status) {
                    EndpointEvent::ReferAccepted { call_id }
                } else {
                    EndpointEvent::ReferFailed {
                        call_id,
                        status,
                        reason: reason.to_string(),
                    }
                });
            }
        }
    }

    fn on_request(
        &mut self,
        env: &Envelope,
        tag: &str,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Vec<Transmit> {
        let method = env.method().unwrap_or_default().to_string();
        match self.transactions.on_request(env, &method, source, now) {
            Incoming::New(key) => {
                self.on_new_request(env, &key, &method, tag, source, transport, now)
            }
            Incoming::Retransmission(out) => {
                self.stats.retransmissions += out.len() as u64;
                out
            }
            Incoming::Cancel { cancel, invite } => {
                let call_id = env.get("Call-ID").unwrap_or_default().to_string();
                let mut out = self.reply(env, &cancel, 200, "OK", &[], tag, source, now);
                // The 487 goes out in the INVITE's transaction (RFC 3261 9.2), with its To tag.
                if let Some(d) = self
                    .dialogs
                    .get(&call_id)
                    .filter(|d| d.state == DialogState::Offered)
                {
                    let (invite_env, local_tag) = (d.invite.clone(), d.local_tag.clone());
                    out.extend(self.reply(
                        &invite_env,
                        &invite,
                        487,
                        "Request Terminated",
                        &[],
                        &local_tag,
                        source,
                        now,
                    ));
                    self.end(&call_id, "cancelled by the caller");
                }
                out
            }
            Incoming::CancelUnmatched(key) => self.reply(
                env,
                &key,
                481,
                "Call/Transaction Does Not Exist",
                &[],
                tag,
                source,
                now,
            ),
            Incoming::AckFor2xx(_) => self.on_ack(env, now),
            Incoming::AckForFinal | Incoming::StrayAck => Vec::new(),
        }
    }

    /// A NOTIFY of our REFER's subscription: its `message/sipfrag` body starts with the
    /// status line of the PBX's call to the target. 1xx is progress; 2xx, the transfer
    /// happened; 3xx-6xx, it failed (the caller is still with us).
    fn on_refer_notify(&mut self, env: &Envelope, call_id: String) {
        let is_refer = (env.get("Event").unwrap_or_default().split(';').next())
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("refer"));
        if !is_refer {
            return;
        }
        let body = String::from_utf8_lossy(&env.body);
        let line = body.lines().next().unwrap_or_default();
        let mut parts = line.splitn(3, ' ');
        let (version, status, reason) = (parts.next(), parts.next(), parts.next());
        let Some(status) = status.and_then(|s| s.parse::<u16>().ok()) else {
            return;
        };
        if version != Some("SIP/2.0") || status < 200 {
            return;
        }
        self.events.push_back(if status < 300 {
            EndpointEvent::ReferSucceeded { call_id }
        } else {
            EndpointEvent::ReferFailed {
                call_id,
                status,
                reason: format!("the PBX's call failed: {}", reason.unwrap_or_default()),
            }
        });
    }

    fn on_ack(&mut self, env: &Envelope, now: Instant) -> Vec<Transmit> {
        let call_id = env.get("Call-ID").unwrap_or_default().to_string();
        let Some(d) = self.dialogs.get_mut(&call_id) else {
            return Vec::new();
        };
        let first_ack = d.state == DialogState::Answered;
        if first_ack {
            d.state = DialogState::Confirmed;
        }
        // INVITE without SDP: the answer to our offer comes in the ACK (RFC 3261 13.2.1).
        let media = (!env.body.is_empty())
            .then(|| sdp::parse(&env.body).ok())
            .flatten()
            .and_then(|answer| sdp::negotiate(&answer).ok());
        if media.is_some() {
            d.media = media.clone();
        }
        let refer_to = d.refer_on_ack.take().filter(|_| first_ack);
        // The ACK of a re-INVITE's 200 changes nothing.
        if first_ack || media.is_some() {
            self.events.push_back(EndpointEvent::CallConfirmed {
                call_id: call_id.clone(),
                media,
            });
        }
        match refer_to {
            Some(uri) => self.refer(&call_id, &uri, now),
            None => Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_new_request(
        &mut self,
        env: &Envelope,
        key: &TransactionKey,
        method: &str,
        tag: &str,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Vec<Transmit> {
        let call_id = env.get("Call-ID").unwrap_or_default().to_string();
        let to_tag = tag_of(env.get("To").unwrap_or_default());
        let in_dialog = !to_tag.is_empty();
        let known = self.dialogs.get(&call_id).is_some_and(|d| {
            d.local_tag == to_tag && d.remote_tag == tag_of(env.get("From").unwrap_or_default())
        });
        // Requests of a call we took come from its peer (a CANCEL, the ACK, a BYE).
        let of_our_call = self
            .dialogs
            .get(&call_id)
            .is_some_and(|d| d.peer.ip() == source.ip());
        // An agent's phone registering: its own account, whatever its address.
        if method == "REGISTER" && self.agents.is_some() {
            return self.on_register(env, key, tag, source, now);
        }
        // An agent's phone dialling a feature code: the agent proves who they are the same way.
        if method == "INVITE" && !in_dialog && self.agents.is_some() {
            let dialled = super::identity::dialled_number(env).unwrap_or_default();
            if crate::routing::Requested::from_feature_code(&dialled).is_some() {
                return self.on_feature_code(env, key, &call_id, tag, source, transport, now);
            }
        }
        // A listed trunk (or any peer, with no list) is trusted for its asserted identity; a
        // peer outside the list must prove who it is, and is trusted once it has.
        let mut trusted = self.config.admission.admits(source.ip());
        if !trusted && !of_our_call {
            if let Err(refusal) = self.authenticate(env, key, method, tag, source, now) {
                return refusal;
            }
            trusted = true;
        }
        match method {
            "OPTIONS" if self.draining => self.unavailable(env, key, tag, source, now),
            "OPTIONS" => {
                let headers = [
                    ("Allow".to_string(), ALLOWED_METHODS.join(", ")),
                    ("Accept".to_string(), ACCEPTED_TYPES.join(", ")),
                    ("Supported".to_string(), SUPPORTED_OPTIONS.join(", ")),
                ];
                self.reply(env, key, 200, "OK", &headers, tag, source, now)
            }
            "INVITE" if in_dialog && known => self.on_reinvite(env, key, &call_id, source, now),
            "INVITE" if !in_dialog => {
                let caller = Caller {
                    trusted,
                    agent: None,
                };
                self.on_invite(env, key, &call_id, tag, source, transport, caller, now)
            }
            "BYE" if known => {
                let out = self.reply(env, key, 200, "OK", &[], &to_tag, source, now);
                self.end(&call_id, "caller hung up");
                out
            }
            // UPDATE (RFC 3311): a session refresh (RFC 4028) or, with SDP, a media change.
            "UPDATE" if known && !env.body.is_empty() => {
                self.on_reinvite(env, key, &call_id, source, now)
            }
            "UPDATE" if known => {
                let headers = self.refresh_session(env, &call_id, now);
                self.reply(env, key, 200, "OK", &headers, &to_tag, source, now)
            }
            "INFO" if known => {
                let digit = dtmf_relay_digit(env);
                let out = self.reply(env, key, 200, "OK", &[], &to_tag, source, now);
                if let Some(digit) = digit {
                    self.events
                        .push_back(EndpointEvent::Dtmf { call_id, digit });
                }
                out
            }
            // How the PBX's call for our REFER goes (RFC 3515 2.4.5): the sipfrag's status.
            "NOTIFY" if known => {
                let out = self.reply(env, key, 200, "OK", &[], &to_tag, source, now);
                self.on_refer_notify(env, call_id);
                out
            }
            "INVITE" | "BYE" | "INFO" | "UPDATE" | "NOTIFY" => self.reply(
                env,
                key,
                481,
                "Call/Transaction Does Not Exist",
                &[],
                tag,
                source,
                now,
            ),
            _ => {
                let allow = [("Allow".to_string(), ALLOWED_METHODS.join(", "))];
                self.reply(
                    env,
                    key,
                    405,
                    "Method Not Allowed",
                    &allow,
                    tag,
                    source,
                    now,
                )
            }
        }
    }

    /// Checks a request's digest answer against the trunks' or the agents' accounts (RFC 3261
    /// 22.2): the user it proves, a fresh challenge (naming the user of a wrong answer), or
    /// silence for an address that guessed that user's password wrong too often lately.
    fn check_digest(
        &mut self,
        accounts: Accounts,
        env: &Envelope,
        method: &str,
        ip: std::net::IpAddr,
        now: Instant,
    ) -> DigestOutcome {
        use super::digest::Verdict;
        let answer = env.get("Authorization");
        let user = (answer.and_then(super::digest::params))
            .and_then(|p| p.get("username").cloned())
            .unwrap_or_default();
        let key = (ip, user);
        if answer.is_some() {
            match self.auth_failures.get(&key).copied() {
                Some((_, since)) if now.saturating_duration_since(since) >= AUTH_FAILURE_WINDOW => {
                    self.auth_failures.remove(&key);
                }
                Some((count, _)) if count >= MAX_AUTH_FAILURES => return DigestOutcome::Silenced,
                _ => {}
            }
        }
        let verifier = match accounts {
            Accounts::Trunks => self.verifier.as_mut(),
            Accounts::Agents => self.agents.as_mut().map(|r| &mut r.verifier),
        };
        let Some(verifier) = verifier else {
            return DigestOutcome::Silenced;
        };
        let verdict = answer.map_or(Verdict::Refused, |a| verifier.check(a, method, now));
        if let Verdict::Accepted(user) = verdict {
            self.auth_failures.remove(&key);
            return DigestOutcome::Accepted(user);
        }
        let headers = (verifier
            .challenges(now, verdict == Verdict::Stale)
            .into_iter())
        .map(|c| ("WWW-Authenticate".to_string(), c))
        .collect();
        // A wrong answer counts; a first request without one is the normal start.
        let wrong = answer.is_some() && verdict == Verdict::Refused;
        if wrong {
            if self.auth_failures.len() >= MAX_TRACKED_ADDRESSES {
                self.auth_failures.retain(|_, (_, since)| {
                    now.saturating_duration_since(*since) < AUTH_FAILURE_WINDOW
                });
            }
            self.auth_failures.entry(key.clone()).or_insert((0, now)).0 += 1;
        }
        DigestOutcome::Challenge {
            headers,
            wrong: wrong.then_some(key.1),
        }
    }

    /// A REGISTER from an agent's phone (RFC 3261 10.3): authenticated against the agents'
    /// accounts (401 with SHA-256 and MD5 challenges), only for the agent's own address of
    /// record (403), then applied to the bindings; the 200 lists them with their lifetimes.
    fn on_register(
        &mut self,
        env: &Envelope,
        key: &TransactionKey,
        tag: &str,
        source: SocketAddr,
        now: Instant,
    ) -> Vec<Transmit> {
        use super::registrar::{MIN_EXPIRES, RegisterError, read_request};
        let agent = match self.agent_digest(env, key, "REGISTER", tag, source, now) {
            Ok(agent) => agent,
            Err(refusal) => return refusal,
        };
        let Some(registrar) = self.agents.as_mut() else {
            return Vec::new();
        };
        // The address of record is the To header's (10.3 step 5): an agent binds only their own.
        let to_user = super::registrar::aor_user(env.get("To").unwrap_or_default());
        if to_user.as_deref() != Some(agent.as_str()) {
            self.stats.rejected += 1;
            return self.reply(env, key, 403, "Forbidden", &[], tag, source, now);
        }
        let request = read_request(
            env.all("Contact"),
            env.get("Expires"),
            env.get("Call-ID").unwrap_or_default(),
            env.get("CSeq").unwrap_or_default(),
        );
        let before = registrar.bindings.current(&agent, now);
        let applied = request.and_then(|r| registrar.bindings.apply(&agent, &r, now));
        match applied {
            Ok(bindings) => {
                let uris = |list: &[(String, u32)]| -> Vec<String> {
                    list.iter().map(|(u, _)| u.clone()).collect()
                };
                let mut changed_before = uris(&before);
                let mut after = uris(&bindings);
                changed_before.sort();
                after.sort();
                if changed_before != after {
                    self.events.push_back(EndpointEvent::AgentContacts {
                        agent: agent.clone(),
                        contacts: uris(&bindings),
                    });
                }
                let headers: Vec<(String, String)> = (bindings.iter())
                    .map(|(uri, left)| ("Contact".to_string(), format!("<{uri}>;expires={left}")))
                    .collect();
                self.reply(env, key, 200, "OK", &headers, tag, source, now)
            }
            Err(e) => {
                self.stats.rejected += 1;
                let (status, reason) = e.status();
                let mut headers = Vec::new();
                if e == RegisterError::IntervalTooBrief {
                    headers.push(("Min-Expires".to_string(), MIN_EXPIRES.to_string()));
                }
                if let RegisterError::Bad(why) = e {
                    headers.push(("Warning".to_string(), format!("399 voxnav \"{why}\"")));
                }
                self.reply(env, key, status, reason, &headers, tag, source, now)
            }
        }
    }

    /// An INVITE to a feature code (`*2`) from an agent's phone: challenged like its REGISTER
    /// (RFC 3261 22.2: 401, then the INVITE again with `Authorization`), whatever address it
    /// comes from, then answered as a call of that agent; the driver makes the change and says
    /// it.
    #[allow(clippy::too_many_arguments)]
    fn on_feature_code(
        &mut self,
        env: &Envelope,
        key: &TransactionKey,
        call_id: &str,
        tag: &str,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Vec<Transmit> {
        match self.agent_digest(env, key, "INVITE", tag, source, now) {
            Ok(agent) => {
                // Its P-Asserted-Identity is not a trunk's word: the agent is who it is.
                let caller = Caller {
                    trusted: false,
                    agent: Some(agent),
                };
                self.on_invite(env, key, call_id, tag, source, transport, caller, now)
            }
            Err(refusal) => refusal,
        }
    }

    /// The agent an agent's phone proves it is (Ok), or what to answer (Err): 401 with fresh
    /// challenges (a wrong answer reported as `AgentRefused`), or nothing for an address that
    /// guessed wrong too often.
    fn agent_digest(
        &mut self,
        env: &Envelope,
        key: &TransactionKey,
        method: &'static str,
        tag: &str,
        source: SocketAddr,
        now: Instant,
    ) -> Result<String, Vec<Transmit>> {
        match self.check_digest(Accounts::Agents, env, method, source.ip(), now) {
            DigestOutcome::Accepted(agent) => Ok(agent),
            DigestOutcome::Silenced => {
                self.stats.dropped += 1;
                Err(Vec::new())
            }
            DigestOutcome::Challenge { headers, wrong } => {
                if let Some(user) = wrong {
                    self.events.push_back(EndpointEvent::AgentRefused {
                        user,
                        source,
                        method,
                    });
                }
                self.stats.rejected += 1;
                Err(self.reply(env, key, 401, "Unauthorized", &headers, tag, source, now))
            }
        }
    }

    /// A request from outside the trunks: let in with a right digest answer (Ok), else the
    /// answer to send (Err): 403 without accounts, 401 with fresh challenges, or nothing for
    /// an address that guessed wrong too often.
    fn authenticate(
        &mut self,
        env: &Envelope,
        key: &TransactionKey,
        method: &str,
        tag: &str,
        source: SocketAddr,
        now: Instant,
    ) -> Result<(), Vec<Transmit>> {
        if self.verifier.is_none() {
            self.stats.rejected += 1;
            return Err(self.reply(env, key, 403, "Forbidden", &[], tag, source, now));
        }
        match self.check_digest(Accounts::Trunks, env, method, source.ip(), now) {
            DigestOutcome::Accepted(_) => Ok(()),
            // An address that guessed wrong too often is not answered at all for a while.
            DigestOutcome::Silenced => {
                self.stats.dropped += 1;
                Err(Vec::new())
            }
            DigestOutcome::Challenge { headers, .. } => {
                self.stats.rejected += 1;
                Err(self.reply(env, key, 401, "Unauthorized", &headers, tag, source, now))
            }
        }
    }

    /// 503 with Retry-After: over the call limit, or draining.
    fn unavailable(
        &mut self,
        env: &Envelope,
        key: &TransactionKey,
        tag: &str,
        source: SocketAddr,
        now: Instant,
    ) -> Vec<Transmit> {
        let retry = [(
            "Retry-After".to_string(),
            self.config.retry_after_secs.to_string(),
        )];
        self.reply(
            env,
            key,
            503,
            "Service Unavailable",
            &retry,
            tag,
            source,
            now,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn on_invite(
        &mut self,
        env: &Envelope,
        key: &TransactionKey,
        call_id: &str,
        tag: &str,
        source: SocketAddr,
        transport: Transport,
        caller: Caller,
        now: Instant,
    ) -> Vec<Transmit> {
        let tls_required = (self.config.tls_required_from.iter()).any(|n| n.contains(source.ip()));
        if tls_required && transport != Transport::Tls {
            self.stats.rejected += 1;
            let warning = [(
                "Warning".to_string(),
                "399 voxnav \"this trunk must call over TLS\"".to_string(),
            )];
            return self.reply(env, key, 403, "Forbidden", &warning, tag, source, now);
        }
        let Caller { trusted, agent } = caller;
        let dialled = super::identity::dialled_number(env);
        // A feature code is no hotline's number; it was checked before (`on_feature_code`).
        if agent.is_none() && !self.config.admission.answers(dialled.as_deref()) {
            self.stats.rejected += 1;
            let warning = [(
                "Warning".to_string(),
                format!(
                    "399 voxnav \"no hotline answers {}\"",
                    dialled.as_deref().unwrap_or("a call without a number")
                ),
            )];
            return self.reply(env, key, 404, "Not Found", &warning, tag, source, now);
        }
        if self.draining || self.dialogs.len() >= self.config.max_calls {
            return self.unavailable(env, key, tag, source, now);
        }
        let (offer, media) = if env.body.is_empty() {
            (None, None)
        } else {
            match sdp::parse(&env.body).and_then(|o| self.negotiate(&o, source).map(|n| (o, n))) {
                Ok((offer, agreed)) => (Some(offer), Some(agreed)),
                Err(e @ (sdp::SdpError::NoCommonCodec | sdp::SdpError::Security(_))) => {
                    let why = match e {
                        sdp::SdpError::Security(why) => why,
                        _ => "only PCMU and PCMA",
                    };
                    // 305: incompatible media format (RFC 3261 20.43).
                    let warning = [("Warning".to_string(), format!("305 voxnav \"{why}\""))];
                    return self.reply(
                        env,
                        key,
                        488,
                        "Not Acceptable Here",
                        &warning,
                        tag,
                        source,
                        now,
                    );
                }
                Err(e) => {
                    let warning = [("Warning".to_string(), format!("399 voxnav \"{e}\""))];
                    return self.reply(env, key, 400, "Bad Request", &warning, tag, source, now);
                }
            }
        };
        let session_interval = match session_timer::negotiate(env) {
            Negotiation::None => None,
            Negotiation::Use(interval) => Some(interval),
            Negotiation::TooSmall => {
                // RFC 4028 8.1: refuse with our minimum so the caller can retry with it.
                let min_se = [("Min-SE".to_string(), session_timer::MIN_SE.to_string())];
                return self.reply(
                    env,
                    key,
                    422,
                    "Session Interval Too Small",
                    &min_se,
                    tag,
                    source,
                    now,
                );
            }
        };
        let remote_target = env
            .get("Contact")
            .and_then(contact_uri)
            .unwrap_or_else(|| format!("sip:{source}"));
        let local_to = env.get("To").unwrap_or_default();
        let dialog = Dialog {
            call_id: call_id.to_string(),
            local_tag: tag.to_string(),
            remote_tag: tag_of(env.get("From").unwrap_or_default()),
            remote_name_addr: env.get("From").unwrap_or_default().to_string(),
            local_name_addr: format!("{local_to};tag={tag}"),
            remote_target,
            route_set: env.all("Record-Route").map(str::to_string).collect(),
            peer: source,
            trusted,
            transport,
            state: DialogState::Offered,
            local_cseq: 0,
            media: media.clone(),
            local_rtp: None,
            invite: env.clone(),
            bye: None,
            refer: None,
            refer_on_ack: None,
            session_interval,
            session_deadline: None,
        };
        self.dialogs.insert(call_id.to_string(), dialog);
        self.offers.insert(call_id.to_string(), offer);
        self.events.push_back(EndpointEvent::IncomingCall {
            call_id: call_id.to_string(),
            dialled,
            media,
            signalling: source,
            agent,
        });
        // 100 Trying stops the caller's INVITE retransmissions while media is set up (17.2.1).
        self.reply(env, key, 100, "Trying", &[], tag, source, now)
    }

    fn on_reinvite(
        &mut self,
        env: &Envelope,
        key: &TransactionKey,
        call_id: &str,
        source: SocketAddr,
        now: Instant,
    ) -> Vec<Transmit> {
        let to_tag = tag_of(env.get("To").unwrap_or_default());
        let parsed = sdp::parse(&env.body).and_then(|o| self.negotiate(&o, source).map(|n| (o, n)));
        let Ok((offer, agreed)) = parsed else {
            return self.reply(
                env,
                key,
                488,
                "Not Acceptable Here",
                &[],
                &to_tag,
                source,
                now,
            );
        };
        let session = self.seed ^ self.next_id;
        let contact =
            self.contact_for((self.dialogs.get(call_id)).map_or(Transport::Udp, |d| d.transport));
        let Some(rtp) = self.dialogs.get(call_id).and_then(|d| d.local_rtp) else {
            // An offer while ours is still pending (RFC 3261 14.2).
            return self.reply(env, key, 491, "Request Pending", &[], &to_tag, source, now);
        };
        // Our media address is unchanged; only direction or codec can move (hold, resume).
        let body = sdp::answer(&offer, &agreed, rtp, session);
        let mut headers = vec![("Contact".to_string(), contact)];
        headers.extend(self.refresh_session(env, call_id, now));
        let bytes = response::build_with_body(
            env,
            200,
            "OK",
            &to_tag,
            &headers,
            source,
            Some(("application/sdp", body.as_bytes())),
        );
        if let Some(d) = self.dialogs.get_mut(call_id) {
            d.media = Some(agreed.clone());
        }
        self.offers.insert(call_id.to_string(), Some(offer));
        self.events.push_back(EndpointEvent::MediaChanged {
            call_id: call_id.to_string(),
            media: agreed,
        });
        self.stats.answered += 1;
        let to = response::target(env, source);
        self.transactions.respond(key, 200, bytes, to, now)
    }

    /// A re-INVITE or UPDATE in a call with a session timer refreshes it (RFC 4028 9-10): the
    /// request may change the interval; the 2xx repeats it and the timer restarts.
    fn refresh_session(
        &mut self,
        env: &Envelope,
        call_id: &str,
        now: Instant,
    ) -> Vec<(String, String)> {
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return Vec::new();
        };
        let Some(current) = d.session_interval else {
            return Vec::new();
        };
        let interval = match session_timer::negotiate(env) {
            Negotiation::Use(interval) => interval,
            _ => current,
        };
        d.session_interval = Some(interval);
        self.arm_session_timer(call_id, now);
        session_timer::response_headers(interval)
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
        if status >= 200 {
            self.stats.answered += 1;
        }
        let bytes = response::build(env, status, reason, tag, headers, source);
        let to = response::target(env, source);
        self.transactions.respond(key, status, bytes, to, now)
    }
}

/// The digit of an `application/dtmf-relay` INFO body (`Signal=5`).
fn dtmf_relay_digit(env: &Envelope) -> Option<char> {
    let ctype = env.get("Content-Type")?.to_ascii_lowercase();
    if !ctype.starts_with("application/dtmf-relay") {
        return None;
    }
    String::from_utf8_lossy(&env.body).lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        let d = v.trim().chars().next()?;
        (k.trim().eq_ignore_ascii_case("signal")
            && super::super::media::dtmf::event_of(d).is_some())
        .then(|| d.to_ascii_uppercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

    fn src() -> SocketAddr {
        "127.0.0.1:5070".parse().unwrap()
    }

    fn endpoint() -> Endpoint {
        Endpoint::new(
            7,
            "127.0.0.1:5060".parse().unwrap(),
            EndpointConfig::default(),
        )
    }

    fn endpoint_with_max_calls(max_calls: usize) -> Endpoint {
        Endpoint::new(
            1,
            "127.0.0.1:5060".parse().unwrap(),
            EndpointConfig {
                max_calls,
                ..Default::default()
            },
        )
    }

    fn request(
        method: &str,
        call: &str,
        cseq: u32,
        to_tag: &str,
        branch: &str,
        body: &str,
    ) -> Vec<u8> {
        let to_tag = if to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={to_tag}")
        };
        let ctype = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".into()
        };
        format!(
            "{method} sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{branch}\r\n\
             From: <sip:caller@127.0.0.1>;tag=c1\r\nTo: <sip:ivr@127.0.0.1>{to_tag}\r\nCall-ID: {call}\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:caller@127.0.0.1:5070>\r\nMax-Forwards: 70\r\n\
             {ctype}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn text(t: &Transmit) -> String {
        String::from_utf8_lossy(&t.bytes).into_owned()
    }

    fn status(t: &Transmit) -> u16 {
        text(t)[8..11].parse().unwrap()
    }

    /// INVITE -> 100, IncomingCall; answer -> 200 with SDP; returns (endpoint, our To tag).
    fn answered(ep: &mut Endpoint, call: &str, t0: Instant) -> String {
        let out = ep.handle_datagram(&request("INVITE", call, 1, "", call, SDP), src(), t0);
        assert_eq!(status(&out[0]), 100);
        // Skip events left from earlier steps of the test.
        let (call_id, m) = std::iter::from_fn(|| ep.poll_event())
            .find_map(|e| match e {
                EndpointEvent::IncomingCall {
                    call_id,
                    dialled,
                    media: Some(m),
                    signalling,
                    agent,
                } => {
                    assert_eq!(dialled.as_deref(), Some("ivr"));
                    assert_eq!(agent, None, "a caller, not an agent's phone");
                    assert_eq!(signalling, src());
                    Some((call_id, m))
                }
                _ => None,
            })
            .expect("an IncomingCall event");
        assert_eq!(
            (call_id.as_str(), m.codec_pt, m.dtmf_pt),
            (call, 0, Some(101))
        );
        let out = ep.answer_call(call, "127.0.0.1:20000".parse().unwrap(), t0);
        let ok = text(&out[0]);
        assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: application/sdp\r\n")
                && ok.contains("m=audio 20000 RTP/AVP 0 101\r\n")
        );
        assert!(ok.contains("Contact: <sip:voxnav@127.0.0.1:5060>\r\n"));
        to_tag(&ok)
    }

    /// Our To tag in a response voxnav sent.
    fn to_tag(response: &str) -> String {
        response
            .lines()
            .find(|l| l.starts_with("To:"))
            .and_then(|l| l.split("tag=").nth(1))
            .unwrap()
            .to_string()
    }

    #[test]
    fn options_get_200_and_garbage_is_dropped() {
        let mut ep = endpoint();
        let now = Instant::now();
        let out = ep.handle_datagram(&request("OPTIONS", "o1", 1, "", "o1", ""), src(), now);
        assert!(
            text(&out[0])
                .contains("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, NOTIFY\r\n")
        );
        assert!(text(&out[0]).contains("Supported: timer\r\n"));
        assert!(
            ep.handle_datagram(b"\x00\xff garbage", src(), now)
                .is_empty()
        );
        assert_eq!(
            ep.handle_datagram(&request("REGISTER", "r1", 1, "", "r1", ""), src(), now)
                .iter()
                .map(status)
                .collect::<Vec<_>>(),
            vec![405]
        );
        ep.handle_timeout(now + Duration::from_secs(32));
        assert_eq!(ep.transactions(), 0);
    }

    #[test]
    fn call_is_answered_confirmed_and_ended_by_the_caller() {
        let mut ep = endpoint();
        let t0 = Instant::now();
        let tag = answered(&mut ep, "call-a", t0);
        // The 200 is resent until the ACK.
        assert_eq!(ep.handle_timeout(t0 + Duration::from_millis(500)).len(), 1);
        ep.handle_datagram(
            &request("ACK", "call-a", 1, &tag, "ack", ""),
            src(),
            t0 + Duration::from_millis(600),
        );
        assert!(matches!(
            ep.poll_event(),
            Some(EndpointEvent::CallConfirmed { media: None, .. })
        ));
        assert!(ep.handle_timeout(t0 + Duration::from_secs(2)).is_empty());
        // INFO with a digit, then BYE.
        let info = String::from_utf8(request("INFO", "call-a", 2, &tag, "inf", ""))
            .unwrap()
            .replace("Content-Length: 0\r\n\r\n", "Content-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\nSignal=5\r\nDuration=160\r\n");
        assert_eq!(
            status(&ep.handle_datagram(info.as_bytes(), src(), t0)[0]),
            200
        );
        assert_eq!(
            ep.poll_event(),
            Some(EndpointEvent::Dtmf {
                call_id: "call-a".into(),
                digit: '5'
            })
        );
        let out = ep.handle_datagram(&request("BYE", "call-a", 3, &tag, "bye", ""), src(), t0);
        assert_eq!(status(&out[0]), 200);
        assert!(matches!(
            ep.poll_event(),
            Some(EndpointEvent::CallEnded { .. })
        ));
        assert_eq!(ep.calls(), 0);
        // A BYE for a call that no longer exists: 481.
        let out = ep.handle_datagram(&request("BYE", "call-a", 4, &tag, "bye2", ""), src(), t0);
        assert_eq!(status(&out[0]), 481);
    }

    #[test]
    fn voxnav_hangs_up_with_a_retransmitted_bye_and_gives_up_at_timer_f() {
        let mut ep = endpoint();
        let t0 = Instant::now();
        let tag = answered(&mut ep, "call-b", t0);
        ep.handle_datagram(&request("ACK", "call-b", 1, &tag, "ackb", ""), src(), t0);
        let bye = ep.hangup("call-b", t0);
        let b = text(&bye[0]);
        assert!(
            b.starts_with("BYE sip:caller@127.0.0.1:5070 SIP/2.0\r\n"),
            "{b}"
        );
        assert!(b.contains(&format!(";tag={tag}")) && b.contains("CSeq: 1 BYE"));
        assert_eq!(
            ep.handle_timeout(t0 + Duration::from_millis(500)).len(),
            1,
            "Timer E resend"
        );
        // The answer to our BYE ends the call.
        let branch = b
            .split("branch=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        let ok = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\nFrom: <sip:ivr@127.0.0.1>;tag={tag}\r\nTo: <sip:caller@127.0.0.1>;tag=c1\r\nCall-ID: call-b\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
        );
        ep.handle_datagram(ok.as_bytes(), src(), t0 + Duration::from_secs(1));
        assert!(ep.calls() == 0);
        // Unanswered, the BYE is abandoned at 64*T1 and the call torn down anyway.
        let tag = answered(&mut ep, "call-c", t0);
        ep.handle_datagram(&request("ACK", "call-c", 1, &tag, "ackc", ""), src(), t0);
        ep.hangup("call-c", t0);
        ep.handle_timeout(t0 + Duration::from_secs(33));
        assert_eq!(ep.calls(), 0);
    }

    /// Thousands of calls ending every way a call can end leave nothing behind: no dialog,
    /// transaction, offer, pending BYE or session deadline.
    #[test]
    fn thousands_of_calls_leave_no_state_behind() {
        let mut ep = endpoint_with_max_calls(10_000);
        let t0 = Instant::now();
        for i in 0..3000u32 {
            let call = format!("many-{i}");
            let now = t0 + Duration::from_millis(i as u64);
            match i % 4 {
                // Caller hangs up.
                0 => {
                    let tag = answered(&mut ep, &call, now);
                    ep.handle_datagram(&request("ACK", &call, 1, &tag, "a", ""), src(), now);
                    ep.handle_datagram(&request("BYE", &call, 2, &tag, "b", ""), src(), now);
                }
                // voxnav hangs up, with a session timer armed.
                1 => {
                    let invite = invite_with(&call, "Supported: timer\r\nSession-Expires: 90\r\n");
                    ep.handle_datagram(&invite, src(), now);
                    let ok =
                        text(&ep.answer_call(&call, "127.0.0.1:20000".parse().unwrap(), now)[0]);
                    let tag = to_tag(&ok);
                    ep.handle_datagram(&request("ACK", &call, 1, &tag, "a", ""), src(), now);
                    ep.hangup(&call, now);
                }
                // Cancelled before the answer.
                2 => {
                    ep.handle_datagram(&request("INVITE", &call, 1, "", &call, SDP), src(), now);
                    ep.handle_datagram(&request("CANCEL", &call, 1, "", &call, ""), src(), now);
                }
                // Answered, never ACKed: BYE at 64*T1, never answered either.
                _ => {
                    answered(&mut ep, &call, now);
                }
            }
            while ep.poll_event().is_some() {}
        }
        // Long after every timer (Timer F/H, BYE give-up, session deadlines).
        for s in [40u64, 80, 200] {
            ep.handle_timeout(t0 + Duration::from_secs(s));
            while ep.poll_event().is_some() {}
        }
        assert_eq!(ep.calls(), 0);
        assert_eq!(ep.transactions(), 0);
        assert!(ep.offers.is_empty() && ep.byes.is_empty());
        assert!(ep.session_deadlines.is_empty());
    }

    /// An INVITE asking for a session timer (RFC 4028) with `extra` headers.
    fn invite_with(call: &str, extra: &str) -> Vec<u8> {
        String::from_utf8(request("INVITE", call, 1, "", call, SDP))
            .unwrap()
            .replace(
                "Max-Forwards: 70\r\n",
                &format!("Max-Forwards: 70\r\n{extra}"),
            )
            .into_bytes()
    }

    #[test]
    fn session_timer_refused_below_min_se_accepted_refreshed_and_enforced() {
        let mut ep = endpoint();
        let t0 = Instant::now();
        // Below Min-SE: 422 with our minimum (RFC 4028 8.1).
        let out = ep.handle_datagram(
            &invite_with("st-small", "Supported: timer\r\nSession-Expires: 30\r\n"),
            src(),
            t0,
        );
        assert_eq!(status(&out[0]), 422);
        assert!(text(&out[0]).contains("Min-SE: 90\r\n"));
        assert_eq!(ep.calls(), 0);
        // Accepted: the 200 carries the interval, refresher=uac and Require: timer.
        let out = ep.handle_datagram(
            &invite_with(
                "st",
                "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
            ),
            src(),
            t0,
        );
        assert_eq!(status(&out[0]), 100);
        let ok = text(&ep.answer_call("st", "127.0.0.1:20000".parse().unwrap(), t0)[0]);
        assert!(
            ok.contains("Session-Expires: 90;refresher=uac\r\nRequire: timer\r\n"),
            "{ok}"
        );
        let tag = to_tag(&ok);
        ep.handle_datagram(&request("ACK", "st", 1, &tag, "ack", ""), src(), t0);
        // A refresh by UPDATE at 50 s moves the teardown from 60 s to 110 s.
        let update = ep.handle_datagram(
            &request("UPDATE", "st", 2, &tag, "upd", ""),
            src(),
            t0 + Duration::from_secs(50),
        );
        assert_eq!(status(&update[0]), 200);
        assert!(text(&update[0]).contains("Session-Expires: 90;refresher=uac\r\n"));
        let at_60 = ep.handle_timeout(t0 + Duration::from_secs(61));
        assert!(
            at_60.iter().all(|t| !text(t).starts_with("BYE")),
            "refreshed: no BYE yet"
        );
        assert_eq!(ep.calls(), 1);
        let at_110 = ep.handle_timeout(t0 + Duration::from_secs(111));
        assert!(text(&at_110[0]).starts_with("BYE "), "{}", text(&at_110[0]));
        assert!(std::iter::from_fn(|| ep.poll_event()).any(|e| e
            == EndpointEvent::SessionExpired {
                call_id: "st".into()
            }));
        // Without `timer` in Supported (a proxy added the header): no session timer.
        ep.handle_datagram(&invite_with("st2", "Session-Expires: 1800\r\n"), src(), t0);
        let ok = text(&ep.answer_call("st2", "127.0.0.1:20002".parse().unwrap(), t0)[0]);
        assert!(!ok.contains("Session-Expires"), "{ok}");
    }

    #[test]
    fn cancel_before_answer_codec_mismatch_and_call_limit() {
        let mut ep = endpoint_with_max_calls(1);
        let t0 = Instant::now();
        ep.handle_datagram(&request("INVITE", "call-d", 1, "", "d", SDP), src(), t0);
        // Over the limit: 503 with Retry-After.
        let out = ep.handle_datagram(&request("INVITE", "call-e", 1, "", "e", SDP), src(), t0);
        assert_eq!(status(&out[0]), 503);
        assert!(text(&out[0]).contains("Retry-After: 5\r\n"));
        // CANCEL before the answer: 200 for the CANCEL, 487 for the INVITE.
        let out = ep.handle_datagram(&request("CANCEL", "call-d", 1, "", "d", ""), src(), t0);
        assert_eq!(out.iter().map(status).collect::<Vec<_>>(), vec![200, 487]);
        assert!(text(&out[1]).contains("CSeq: 1 INVITE"));
        assert_eq!(ep.calls(), 0);
        // No G.711 offered: 488.
        let g729 = SDP.replace("RTP/AVP 0 101", "RTP/AVP 18");
        let out = ep.handle_datagram(&request("INVITE", "call-f", 1, "", "f", &g729), src(), t0);
        assert_eq!(status(&out[0]), 488);
    }

    #[test]
    fn a_trunk_that_must_use_tls_and_srtp_is_refused_over_udp_or_in_the_clear() {
        let net = |s: &str| s.parse::<crate::sip::admission::Network>().unwrap();
        let mut ep = Endpoint::new(
            1,
            "127.0.0.1:5060".parse().unwrap(),
            EndpointConfig {
                tls_required_from: vec![net("127.0.0.1")],
                srtp_required_from: vec![net("127.0.0.1")],
                ..Default::default()
            },
        );
        let t0 = Instant::now();
        // Over UDP: 403, whatever the offer.
        let out = ep.handle_datagram(&request("INVITE", "call-u", 1, "", "u", SDP), src(), t0);
        assert_eq!(status(&out[0]), 403);
        assert!(
            text(&out[0]).contains("must call over TLS"),
            "{}",
            text(&out[0])
        );
        // Over TLS with a plain offer: 488, SRTP is required of this trunk.
        let out = ep.handle_message(
            &request("INVITE", "call-t", 1, "", "t", SDP),
            src(),
            Transport::Tls,
            t0,
        );
        assert_eq!(status(&out[0]), 488);
        // Another address, plain over UDP: the server-wide policy (optional) lets it in.
        let other: SocketAddr = "192.0.2.7:5070".parse().unwrap();
        let out = ep.handle_datagram(&request("INVITE", "call-o", 1, "", "o", SDP), other, t0);
        assert_ne!(status(&out[0]), 403);
        assert_ne!(status(&out[0]), 488);
    }

    #[test]
    fn a_plain_offer_where_srtp_is_required_gets_488_saying_so() {
        let mut ep = Endpoint::new(
            1,
            "127.0.0.1:5060".parse().unwrap(),
            EndpointConfig {
                srtp: super::super::sdp::SrtpPolicy::Required,
                ..Default::default()
            },
        );
        let out = ep.handle_datagram(
            &request("INVITE", "call-s", 1, "", "s", SDP),
            src(),
            Instant::now(),
        );
        assert_eq!(status(&out[0]), 488);
        assert!(
            text(&out[0]).contains("Warning: 305 voxnav \"SRTP is required here"),
            "{}",
            text(&out[0])
        );
        assert_eq!(ep.calls(), 0);
    }

    #[test]
    fn trunks_outside_the_list_get_403_and_unknown_numbers_404() {
        let mut ep = endpoint_admitting("127.0.0.0/8");
        let t0 = Instant::now();
        let outsider: SocketAddr = "192.0.2.66:5070".parse().unwrap();
        for method in ["INVITE", "OPTIONS"] {
            let out = ep.handle_datagram(&request(method, "x", 1, "", "x", SDP), outsider, t0);
            assert_eq!(status(&out[0]), 403, "{method}");
        }
        // A trunk dialling a number no hotline answers.
        let out = ep.handle_datagram(&request("INVITE", "y", 1, "", "y", SDP), src(), t0);
        assert_eq!(status(&out[0]), 404);
        assert!(
            text(&out[0]).contains("no hotline answers ivr"),
            "{}",
            text(&out[0])
        );
        assert_eq!(ep.calls(), 0);
        assert_eq!(ep.poll_event(), None);
        // The number a hotline answers.
        let invite = String::from_utf8(request("INVITE", "z", 1, "", "z", SDP))
            .unwrap()
            .replacen("INVITE sip:ivr@", "INVITE sip:4000@", 1);
        let out = ep.handle_datagram(invite.as_bytes(), src(), t0);
        assert_eq!(status(&out[0]), 100);
        assert!(matches!(
            ep.poll_event(),
            Some(EndpointEvent::IncomingCall { dialled: Some(d), .. }) if d == "4000"
        ));
    }

    /// REFER (RFC 3515): asked for before the ACK it waits for it; it carries Refer-To,
    /// Referred-By and our Contact in the dialog; 202 is accepted; NOTIFYs are answered 200
    /// and their sipfrag's final status reported; a REFER nobody answers fails with 408.
    #[test]
    fn a_refer_waits_for_the_ack_and_its_notifies_report_the_pbx_call() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        let tag = answered(&mut ep, "r1", t0);
        // Before the ACK: nothing yet.
        assert!(ep.refer("r1", "sip:support@192.0.2.30", t0).is_empty());
        let ack = request("ACK", "r1", 1, &tag, "ack", "");
        let out = ep.handle_datagram(&ack, src(), t0);
        let refer = text(&out[0]);
        assert!(
            refer.starts_with("REFER sip:caller@127.0.0.1:5070 SIP/2.0\r\n"),
            "{refer}"
        );
        for header in [
            "Refer-To: <sip:support@192.0.2.30>\r\n",
            "Referred-By: <sip:ivr@127.0.0.1>\r\n",
            "Contact: <sip:voxnav@127.0.0.1:5060>\r\n",
            "CSeq: 1 REFER\r\n",
            "From: <sip:ivr@127.0.0.1>;tag=",
            "To: <sip:caller@127.0.0.1>;tag=c1\r\n",
        ] {
            assert!(refer.contains(header), "{header} in {refer}");
        }
        while ep.poll_event().is_some() {}
        // A second REFER while one is in flight is refused at once.
        assert!(ep.refer("r1", "sip:other@192.0.2.30", t0).is_empty());
        assert!(matches!(
            ep.poll_event(),
            Some(EndpointEvent::ReferFailed { status: 0, .. })
        ));
        let branch = refer
            .split("branch=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        let accepted = format!(
            "SIP/2.0 202 Accepted\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
             From: <sip:ivr@127.0.0.1>;tag={tag}\r\nTo: <sip:caller@127.0.0.1>;tag=c1\r\n\
             Call-ID: r1\r\nCSeq: 1 REFER\r\nContent-Length: 0\r\n\r\n"
        );
        assert!(
            ep.handle_datagram(accepted.as_bytes(), src(), t0)
                .is_empty()
        );
        assert!(
            matches!(ep.poll_event(), Some(EndpointEvent::ReferAccepted { call_id }) if call_id == "r1")
        );
        let notify = |cseq: u32, frag: &str| {
            format!(
                "NOTIFY sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKn{cseq}\r\n\
                 From: <sip:caller@127.0.0.1>;tag=c1\r\nTo: <sip:ivr@127.0.0.1>;tag={tag}\r\nCall-ID: r1\r\n\
                 CSeq: {cseq} NOTIFY\r\nEvent: refer\r\nSubscription-State: active\r\nMax-Forwards: 70\r\n\
                 Content-Type: message/sipfrag;version=2.0\r\nContent-Length: {}\r\n\r\n{frag}",
                frag.len()
            )
            .into_bytes()
        };
        let out = ep.handle_datagram(&notify(2, "SIP/2.0 100 Trying\r\n"), src(), t0);
        assert_eq!(status(&out[0]), 200);
        assert!(ep.poll_event().is_none(), "progress is not an outcome");
        let out = ep.handle_datagram(&notify(3, "SIP/2.0 200 OK\r\n"), src(), t0);
        assert_eq!(status(&out[0]), 200);
        assert!(
            matches!(ep.poll_event(), Some(EndpointEvent::ReferSucceeded { call_id }) if call_id == "r1")
        );

        // Nobody answers a REFER: resent (Timer E), then failed with 408 at 64*T1.
        let tag = answered(&mut ep, "r2", t0);
        ep.handle_datagram(&request("ACK", "r2", 1, &tag, "ack2", ""), src(), t0);
        assert_eq!(ep.refer("r2", "sip:support@192.0.2.30", t0).len(), 1);
        while ep.poll_event().is_some() {}
        let resent = ep.handle_timeout(t0 + Duration::from_millis(600));
        assert!(resent.iter().any(|t| text(t).starts_with("REFER ")));
        ep.handle_timeout(t0 + Duration::from_secs(40));
        let failed = std::iter::from_fn(|| ep.poll_event())
            .any(|e| matches!(e, EndpointEvent::ReferFailed { status: 408, call_id, .. } if call_id == "r2"));
        assert!(failed);
    }

    /// The `WWW-Authenticate` values of a 401.
    fn challenges(response: &str) -> Vec<&str> {
        (response.lines())
            .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
            .collect()
    }

    /// An endpoint that takes calls for 4000 from `trunks` only.
    fn endpoint_admitting(trunks: &str) -> Endpoint {
        Endpoint::new(
            1,
            "127.0.0.1:5060".parse().unwrap(),
            EndpointConfig {
                admission: crate::sip::admission::Admission {
                    trunks: vec![trunks.parse().unwrap()],
                    numbers: Some(["4000".to_string()].into()),
                    digest: None,
                },
                ..Default::default()
            },
        )
    }

    /// Accounts for agents `names`, each with the password NAME-pw, realm "centre".
    fn agent_accounts(names: &[&str]) -> crate::sip::digest::DigestConfig {
        use crate::sip::digest::{Algorithm, DigestConfig, UserHashes};
        DigestConfig {
            realm: "centre".into(),
            users: (names.iter())
                .map(|n| {
                    (
                        n.to_string(),
                        UserHashes::from_password(n, "centre", &format!("{n}-pw")),
                    )
                })
                .collect(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            secret: [3; 32],
        }
    }

    /// An agent's phone dialling a feature code (`*2`): challenged whatever its address (it
    /// is no trunk, and `*2` is no hotline's number), a wrong password refused and reported,
    /// the right one answered as a call that names the agent. Without an agents file `*2` is
    /// just a number no hotline answers.
    #[test]
    fn feature_codes_from_agents_phones_are_challenged_and_name_the_agent() {
        use crate::sip::digest::answer;
        let mut ep = endpoint_admitting("192.0.2.1/32");
        let t0 = Instant::now();
        let phone: SocketAddr = "198.51.100.7:5070".parse().unwrap();
        let invite = |call: &str, cseq: u32, auth: Option<&str>| {
            let auth = (auth.map(|a| format!("Authorization: {a}\r\n"))).unwrap_or_default();
            String::from_utf8(request(
                "INVITE",
                call,
                cseq,
                "",
                &format!("{call}{cseq}"),
                SDP,
            ))
            .unwrap()
            .replace("sip:ivr@", "sip:*2@")
            .replace(
                "Max-Forwards: 70\r\n",
                &format!("{auth}Max-Forwards: 70\r\n"),
            )
            .into_bytes()
        };
        // Without agents: an outsider is refused like any.
        let out = ep.handle_datagram(&invite("f0", 1, None), phone, t0);
        assert_eq!(status(&out[0]), 403);
        ep.set_agents(Some(agent_accounts(&["alice"])), t0);
        let out = ep.handle_datagram(&invite("f1", 1, None), phone, t0);
        assert_eq!(status(&out[0]), 401, "{}", text(&out[0]));
        let challenge = text(&out[0]);
        let offered = challenges(&challenge);
        let uri = "sip:*2@127.0.0.1";
        let wrong = answer(offered[1], "INVITE", uri, "alice", "guess", "c", 1).unwrap();
        let out = ep.handle_datagram(&invite("f1", 2, Some(&wrong)), phone, t0);
        assert_eq!(status(&out[0]), 401);
        assert!(matches!(
            ep.poll_event(),
            Some(EndpointEvent::AgentRefused { user, .. }) if user == "alice"
        ));
        assert_eq!(ep.calls(), 0);
        let right = answer(offered[1], "INVITE", uri, "alice", "alice-pw", "c", 2).unwrap();
        let out = ep.handle_datagram(&invite("f1", 3, Some(&right)), phone, t0);
        assert_eq!(status(&out[0]), 100);
        assert!(matches!(
            ep.poll_event(),
            Some(EndpointEvent::IncomingCall { dialled: Some(d), agent: Some(a), .. })
                if d == "*2" && a == "alice"
        ));
        // A code that is none (`*7`) goes the ordinary way: no hotline answers it.
        let other = String::from_utf8(invite("f2", 1, None))
            .unwrap()
            .replace("sip:*2@", "sip:*7@");
        let out = ep.handle_datagram(other.as_bytes(), "192.0.2.1:5060".parse().unwrap(), t0);
        assert_eq!(status(&out[0]), 404);
    }

    /// Agents' phones register (RFC 3261 10.3) with digest against their own account: the
    /// first REGISTER is challenged, the answer binds the contact (200 listing it, an event
    /// for the driver); a wrong password or another agent's address of record binds nothing;
    /// Expires 0 un-registers; an agent removed from the file loses its bindings.
    #[test]
    fn agents_register_with_digest_and_only_their_own_address() {
        use crate::sip::digest::answer;
        let accounts = agent_accounts;
        let mut ep = Endpoint::new(1, "127.0.0.1:5060".parse().unwrap(), Default::default());
        let t0 = Instant::now();
        let register = |to: &str, cseq: u32, expires: u32, auth: Option<&str>| {
            format!(
                "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKr{cseq}\r\n\
                 From: <sip:{to}@127.0.0.1>;tag=p1\r\nTo: <sip:{to}@127.0.0.1>\r\nCall-ID: reg-{to}\r\n\
                 CSeq: {cseq} REGISTER\r\nContact: <sip:{to}@127.0.0.1:5070>\r\nExpires: {expires}\r\n{}\
                 Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default()
            )
            .into_bytes()
        };
        // No agents file: not a registrar.
        let out = ep.handle_datagram(&register("alice", 1, 600, None), src(), t0);
        assert_eq!(status(&out[0]), 405);
        ep.set_agents(Some(accounts(&["alice", "bob"])), t0);
        let out = ep.handle_datagram(&register("alice", 2, 600, None), src(), t0);
        assert_eq!(status(&out[0]), 401);
        let challenge = text(&out[0]);
        let offered = challenges(&challenge);
        assert!(offered[0].contains("realm=\"centre\"") && offered.len() == 2);
        let uri = "sip:127.0.0.1";
        // A wrong password: challenged again, nothing bound, the refusal reported.
        let a = answer(offered[0], "REGISTER", uri, "alice", "guess", "c", 1).unwrap();
        let out = ep.handle_datagram(&register("alice", 3, 600, Some(&a)), src(), t0);
        assert_eq!(status(&out[0]), 401);
        assert!(ep.agent_contacts("alice", t0).is_empty());
        assert!(matches!(
            ep.poll_event(),
            Some(EndpointEvent::AgentRefused { user, .. }) if user == "alice"
        ));
        // Bob's right password cannot bind Alice's address of record.
        let a = answer(offered[0], "REGISTER", uri, "bob", "bob-pw", "c", 1).unwrap();
        let out = ep.handle_datagram(&register("alice", 4, 600, Some(&a)), src(), t0);
        assert_eq!(status(&out[0]), 403);
        // Alice's own: bound, listed in the 200 with its lifetime, reported. (Counts are per
        // nonce: Bob's answer used 1.)
        let a = answer(offered[1], "REGISTER", uri, "alice", "alice-pw", "c", 2).unwrap();
        let out = ep.handle_datagram(&register("alice", 5, 600, Some(&a)), src(), t0);
        assert_eq!(status(&out[0]), 200, "{}", text(&out[0]));
        assert!(
            text(&out[0]).contains("Contact: <sip:alice@127.0.0.1:5070>;expires=600"),
            "{}",
            text(&out[0])
        );
        assert!(matches!(
            ep.poll_event(),
            Some(EndpointEvent::AgentContacts { agent, contacts })
                if agent == "alice" && contacts == ["sip:alice@127.0.0.1:5070"]
        ));
        // The same answer again is a replay: refused.
        let out = ep.handle_datagram(&register("alice", 6, 600, Some(&a)), src(), t0);
        assert_eq!(status(&out[0]), 401);
        // Too brief an interval: 423 with Min-Expires.
        let a = answer(offered[1], "REGISTER", uri, "alice", "alice-pw", "c", 3).unwrap();
        let out = ep.handle_datagram(&register("alice", 7, 10, Some(&a)), src(), t0);
        assert_eq!(status(&out[0]), 423);
        assert!(text(&out[0]).contains("Min-Expires: 60"));
        // The binding expires by itself on the endpoint's timer.
        assert!(ep.poll_timeout().unwrap() <= t0 + Duration::from_secs(600));
        while ep.poll_event().is_some() {}
        ep.handle_timeout(t0 + Duration::from_secs(601));
        assert!(matches!(
            ep.poll_event(),
            Some(EndpointEvent::AgentContacts { agent, contacts })
                if agent == "alice" && contacts.is_empty()
        ));
        // Registered again on a fresh nonce (the first is stale by now), then un-registered
        // with Expires: 0.
        let t1 = t0 + Duration::from_secs(602);
        let out = ep.handle_datagram(&register("alice", 8, 600, None), src(), t1);
        let challenge = text(&out[0]);
        let offered = challenges(&challenge);
        let a = answer(offered[1], "REGISTER", uri, "alice", "alice-pw", "c", 1).unwrap();
        let out = ep.handle_datagram(&register("alice", 9, 600, Some(&a)), src(), t1);
        assert_eq!(status(&out[0]), 200);
        let a = answer(offered[1], "REGISTER", uri, "alice", "alice-pw", "c", 2).unwrap();
        let out = ep.handle_datagram(&register("alice", 10, 0, Some(&a)), src(), t1);
        assert_eq!(status(&out[0]), 200);
        assert!(ep.agent_contacts("alice", t1).is_empty());
        // A phone guessing Bob's password from Alice's address is silenced after five tries,
        // and Alice's phone behind the same address (an office NAT) is not.
        for i in 0..6 {
            let a = answer(offered[1], "REGISTER", uri, "bob", "guess", "c", 10 + i).unwrap();
            let out = ep.handle_datagram(&register("bob", 20 + i, 600, Some(&a)), src(), t1);
            assert_eq!(out.len(), usize::from(i < 5), "bob's attempt {i}");
        }
        // Registered again; the agents file then drops Alice: her binding goes with her.
        let a = answer(offered[1], "REGISTER", uri, "alice", "alice-pw", "c", 3).unwrap();
        let out = ep.handle_datagram(&register("alice", 11, 600, Some(&a)), src(), t1);
        assert_eq!(
            status(&out[0]),
            200,
            "Alice is not silenced by Bob's guesser"
        );
        while ep.poll_event().is_some() {}
        ep.set_agents(Some(accounts(&["bob"])), t1);
        assert!(ep.agent_contacts("alice", t1).is_empty());
        assert!(matches!(
            ep.poll_event(),
            Some(EndpointEvent::AgentContacts { agent, contacts })
                if agent == "alice" && contacts.is_empty()
        ));
    }

    /// A peer outside the trunks with digest credentials: challenged (401 with SHA-256 and
    /// MD5), let in with the right answer, trusted for its P-Asserted-Identity; the wrong
    /// password and an unknown user get the same challenge.
    #[test]
    fn a_peer_outside_the_trunks_is_challenged_and_let_in_with_its_credentials() {
        use crate::sip::digest::{Algorithm, DigestConfig, UserHashes, answer};
        let mut ep = Endpoint::new(
            1,
            "127.0.0.1:5060".parse().unwrap(),
            EndpointConfig {
                admission: crate::sip::admission::Admission {
                    trunks: vec!["10.0.0.0/8".parse().unwrap()],
                    numbers: None,
                    digest: Some(DigestConfig {
                        realm: "voxnav".into(),
                        users: [(
                            "pbx".to_string(),
                            UserHashes::from_password("pbx", "voxnav", "s3cret"),
                        )]
                        .into(),
                        algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
                        secret: [1; 32],
                    }),
                },
                ..Default::default()
            },
        );
        let t0 = Instant::now();
        let invite = |call: &str, auth: Option<String>| {
            let raw = String::from_utf8(request("INVITE", call, 1, "", call, SDP)).unwrap();
            let extra = format!(
                "P-Asserted-Identity: <sip:+15550100@pbx>\r\n{}",
                auth.map(|a| format!("Authorization: {a}\r\n"))
                    .unwrap_or_default()
            );
            raw.replacen("Call-ID:", &format!("{extra}Call-ID:"), 1)
        };
        let out = ep.handle_datagram(invite("a1", None).as_bytes(), src(), t0);
        let challenge = text(&out[0]);
        assert_eq!(status(&out[0]), 401, "{challenge}");
        let offered = challenges(&challenge);
        assert_eq!(offered.len(), 2, "{challenge}");
        assert!(offered[0].contains("algorithm=SHA-256") && offered[1].contains("algorithm=MD5"));
        let uri = "sip:ivr@127.0.0.1";
        let refusal = |user: &str, password: &str, call: &str, ep: &mut Endpoint| {
            let a = answer(offered[0], "INVITE", uri, user, password, "c", 1).unwrap();
            let out = ep.handle_datagram(invite(call, Some(a)).as_bytes(), src(), t0);
            let t = text(&out[0]);
            (
                status(&out[0]),
                t.lines()
                    .filter(|l| l.starts_with("WWW-Authenticate"))
                    .count(),
            )
        };
        assert_eq!(refusal("pbx", "guess", "a2", &mut ep), (401, 2));
        assert_eq!(refusal("mallory", "s3cret", "a3", &mut ep), (401, 2));
        assert_eq!(ep.calls(), 0);
        // A guesser gets five wrong answers a minute; then silence, even for the right one.
        let guesser: SocketAddr = "127.0.0.9:5070".parse().unwrap();
        for i in 0..6 {
            let a = answer(
                offered[0],
                "INVITE",
                uri,
                "pbx",
                &format!("guess{i}"),
                "c",
                1,
            )
            .unwrap();
            let out = ep.handle_datagram(invite(&format!("g{i}"), Some(a)).as_bytes(), guesser, t0);
            assert_eq!(out.len(), usize::from(i < 5), "attempt {i}");
        }
        let right = |call: &str, at: Instant, ep: &mut Endpoint| {
            let probe = format!("{call}-probe");
            let fresh = text(&ep.handle_datagram(invite(&probe, None).as_bytes(), src(), at)[0]);
            let challenge = fresh
                .lines()
                .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
                .unwrap()
                .to_string();
            let a = answer(&challenge, "INVITE", uri, "pbx", "s3cret", "c", 1).unwrap();
            ep.handle_datagram(invite(call, Some(a)).as_bytes(), guesser, at)
        };
        assert!(right("g6", t0, &mut ep).is_empty(), "still silenced");
        let later = t0 + Duration::from_secs(61);
        let out = right("g7", later, &mut ep);
        assert_eq!(
            status(&out[0]),
            100,
            "a minute later the right answer gets in"
        );
        ep.handle_datagram(&request("CANCEL", "g7", 1, "", "g7", ""), guesser, later);
        while ep.poll_event().is_some() {}
        // The right answer (MD5, as older PBXs choose): the call is taken and its identity
        // believed.
        let good = answer(offered[1], "INVITE", uri, "pbx", "s3cret", "c", 1).unwrap();
        let out = ep.handle_datagram(invite("a4", Some(good)).as_bytes(), src(), t0);
        assert_eq!(status(&out[0]), 100);
        assert_eq!(ep.calls(), 1);
        assert_eq!(ep.caller_of("a4").number, "+15550100");
        // The rest of the call comes from the same peer without credentials.
        while ep.poll_event().is_some() {}
        let ok = text(&ep.answer_call("a4", "127.0.0.1:20002".parse().unwrap(), t0)[0]);
        let tag = tag_of(ok.lines().find(|l| l.starts_with("To:")).unwrap());
        let out = ep.handle_datagram(&request("BYE", "a4", 2, &tag, "b4", ""), src(), t0);
        assert_eq!(status(&out[0]), 200);
        assert_eq!(ep.calls(), 0);
    }

    /// Behind a record-routing proxy (RFC 3261 12.1.1): the 200 copies the Record-Route
    /// values, and our BYE carries them as its route set.
    #[test]
    fn record_route_is_copied_and_our_bye_follows_the_route_set() {
        let mut ep = endpoint();
        let t0 = Instant::now();
        let invite = String::from_utf8(request("INVITE", "rr", 1, "", "rr", SDP))
            .unwrap()
            .replacen(
                "Call-ID:",
                "Record-Route: <sip:127.0.0.1:5080;lr>, <sip:10.0.0.1;lr>\r\nRecord-Route: <sip:10.0.0.2;lr>\r\nCall-ID:",
                1,
            );
        ep.handle_datagram(invite.as_bytes(), src(), t0);
        while ep.poll_event().is_some() {}
        let ok = text(&ep.answer_call("rr", "127.0.0.1:20002".parse().unwrap(), t0)[0]);
        assert!(
            ok.contains("Record-Route: <sip:127.0.0.1:5080;lr>, <sip:10.0.0.1;lr>\r\nRecord-Route: <sip:10.0.0.2;lr>\r\n"),
            "{ok}"
        );
        let bye = text(&ep.hangup("rr", t0)[0]);
        assert!(
            bye.contains(
                "Route: <sip:127.0.0.1:5080;lr>, <sip:10.0.0.1;lr>, <sip:10.0.0.2;lr>\r\n"
            ),
            "{bye}"
        );
        // Without a proxy on the path, no Route.
        let tag = answered(&mut ep, "plain", t0);
        let bye = text(&ep.hangup("plain", t0)[0]);
        assert!(!bye.contains("Route:") && !tag.is_empty(), "{bye}");
    }

    #[test]
    fn a_draining_endpoint_keeps_its_calls_and_takes_no_new_ones() {
        let mut ep = endpoint();
        let t0 = Instant::now();
        let tag = answered(&mut ep, "kept", t0);
        ep.drain();
        assert!(ep.is_draining());
        for (method, call) in [("OPTIONS", "probe"), ("INVITE", "new")] {
            let out = ep.handle_datagram(&request(method, call, 1, "", call, SDP), src(), t0);
            assert_eq!(status(&out[0]), 503, "{method}");
            assert!(text(&out[0]).contains("Retry-After: 5\r\n"));
        }
        // The call in progress goes on, and ends normally.
        let out = ep.handle_datagram(&request("BYE", "kept", 2, &tag, "kb", ""), src(), t0);
        assert_eq!(status(&out[0]), 200);
        assert_eq!(ep.calls(), 0);
    }

    #[test]
    fn a_call_over_tcp_sends_its_bye_with_a_tcp_via() {
        let mut ep = endpoint();
        let t0 = Instant::now();
        let out = ep.handle_message(
            &request("INVITE", "tcp-1", 1, "", "t1", SDP),
            src(),
            Transport::Tcp,
            t0,
        );
        assert_eq!(status(&out[0]), 100);
        let ok = text(&ep.answer_call("tcp-1", "127.0.0.1:20000".parse().unwrap(), t0)[0]);
        let tag = to_tag(&ok);
        ep.handle_message(
            &request("ACK", "tcp-1", 1, &tag, "ack", ""),
            src(),
            Transport::Tcp,
            t0,
        );
        let bye = text(&ep.hangup("tcp-1", t0)[0]);
        assert!(bye.contains("Via: SIP/2.0/TCP 127.0.0.1:5060;"), "{bye}");
    }

    #[test]
    fn reinvite_hold_and_invite_without_sdp() {
        let mut ep = endpoint();
        let t0 = Instant::now();
        let tag = answered(&mut ep, "call-g", t0);
        ep.handle_datagram(&request("ACK", "call-g", 1, &tag, "ackg", ""), src(), t0);
        ep.poll_event();
        let hold = format!("{SDP}a=sendonly\r\n");
        let out = ep.handle_datagram(
            &request("INVITE", "call-g", 2, &tag, "hold", &hold),
            src(),
            t0,
        );
        let ok = text(&out[0]);
        assert!(
            ok.starts_with("SIP/2.0 200 OK") && ok.contains("a=recvonly\r\n"),
            "{ok}"
        );
        assert!(
            ok.contains("m=audio 20000 "),
            "same media port after re-INVITE: {ok}"
        );
        assert!(matches!(
            ep.poll_event(),
            Some(EndpointEvent::MediaChanged { .. })
        ));

        // No offer in the INVITE: our offer goes in the 200, the answer comes in the ACK.
        let out = ep.handle_datagram(&request("INVITE", "call-h", 1, "", "h", ""), src(), t0);
        assert_eq!(status(&out[0]), 100);
        assert_eq!(
            ep.poll_event(),
            Some(EndpointEvent::IncomingCall {
                call_id: "call-h".into(),
                dialled: Some("ivr".into()),
                media: None,
                signalling: src(),
                agent: None,
            })
        );
        let ok = text(&ep.answer_call("call-h", "127.0.0.1:20002".parse().unwrap(), t0)[0]);
        assert!(ok.contains("m=audio 20002 RTP/AVP 0 8 101\r\n"), "{ok}");
        let tag = ok
            .lines()
            .find(|l| l.starts_with("To:"))
            .and_then(|l| l.split("tag=").nth(1))
            .unwrap()
            .to_string();
        let answer = SDP.replace("RTP/AVP 0 101", "RTP/AVP 8");
        let ack = String::from_utf8(request("ACK", "call-h", 1, &tag, "ackh", ""))
            .unwrap()
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!(
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer}",
                    answer.len()
                ),
            );
        ep.handle_datagram(ack.as_bytes(), src(), t0);
        let Some(EndpointEvent::CallConfirmed { media: Some(m), .. }) = ep.poll_event() else {
            panic!()
        };
        assert_eq!(m.codec_pt, 8);
    }
}
