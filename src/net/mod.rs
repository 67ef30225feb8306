//! The only socket code: a thin driver that moves bytes between sockets and the sans-IO SIP
//! endpoint (`sip::endpoint`). UDP and TCP on one address, IPv4 or IPv6.
//!
//! TCP follows RFC 3261 18.3 framing (`frame_stream`): a partial message waits for more bytes;
//! a framing error (e.g. a negative Content-Length, RFC 4475 3.1.2.3) is unrecoverable on a
//! stream, so the connection is answered 400 where possible and closed. Responses to TCP
//! requests go back on the same connection (RFC 3261 18.2.2), and so does everything sent
//! later to that peer (a deferred 200, its retransmissions, our BYE): each open connection is
//! registered by its peer address in `Outbound`. A call whose connection has closed falls back
//! to UDP at the same address (RFC 3261 18.2.2 would open a new connection; not built).

pub mod backend;
pub mod call_media;
pub mod http;
pub mod leg;
pub mod media;
pub mod tls;
pub mod webphone;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use tokio::sync::{Notify, mpsc};

use crate::media::ports::PortPool;
use crate::media::session::{MediaEvent, RtpSession, SessionConfig};
use crate::report::{Report, Reporter};
use crate::sip::endpoint::{Endpoint, EndpointConfig, EndpointEvent, Transmit, Transport};
use crate::sip::framing::{self, StreamFrame};
use crate::sip::sdp::Negotiated;
pub use call_media::local_ip_towards;
use call_media::{Finish, MediaReport, TestBehaviour, ToCall};
use media::{MediaEngine, MediaHandle, MediaSockets};

/// Largest UDP datagram (65,535 minus the IPv4 and UDP headers is less; this covers both).
const MAX_DATAGRAM: usize = 65_535;
/// TCP connections open at once before new ones are refused.
const MAX_TCP_CONNECTIONS: usize = 1024;

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Binding the address failed (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The media driver's threads could not start.
    #[error(transparent)]
    Media(#[from] media::MediaError),
}

/// Asks the SIP side to end a call (BYE) with a reason for the log.
pub type HangupFn = Box<dyn FnOnce(String) + Send>;

/// Asks the call's peer (the PBX it came through) to transfer the caller to a SIP URI (REFER,
/// RFC 3515); the outcome arrives as `CallSignal`s.
pub type ReferFn = Box<dyn Fn(String) + Send>;

/// What a call's signalling tells its task, beside the media's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallSignal {
    /// The PBX accepted our REFER (202) and is calling the target.
    ReferAccepted,
    /// The PBX's call to the target answered: the caller is theirs.
    ReferSucceeded,
    /// The REFER was refused or not answered, or the PBX's call failed: the caller is still
    /// with us.
    ReferFailed { status: u16, reason: String },
}

/// An answered call handed to whatever runs it (the dialplan's call driver).
pub struct AnsweredCall {
    pub call_id: String,
    /// The number the caller dialled (which hotline answers), when the INVITE named one.
    pub dialled: Option<String>,
    /// Who is calling (P-Asserted-Identity or From, cleaned).
    pub caller: crate::sip::identity::CallerId,
    /// The agent whose phone dialled a feature code (`dialled`), proven by digest.
    pub agent: Option<String>,
    /// The call's RTP session on the media driver.
    pub media: MediaHandle,
    /// What the session reports: the caller's audio every 20 ms, keys, playback marks. The
    /// channel closes when the call's media ends (the caller hung up).
    pub events: mpsc::UnboundedReceiver<MediaEvent>,
    pub hangup: HangupFn,
    pub refer: ReferFn,
    /// The outcome of `refer`.
    pub signals: mpsc::UnboundedReceiver<CallSignal>,
}

/// Runs each answered call: the future is the call's task (tracked for shutdown).
pub type CallHandler = Arc<
    dyn Fn(AnsweredCall) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// How the server runs: SIP settings, media ports, answering.
#[derive(Clone)]
pub struct ServeConfig {
    pub endpoint: EndpointConfig,
    /// RTP ports (even; RTCP on the next odd port).
    pub rtp_ports: PortPool,
    /// Ring (180 Ringing) this long before answering; zero answers at once. Gives callers
    /// (and tests) a window to CANCEL.
    pub ring: Duration,
    /// What runs each answered call; None runs the built-in test behaviour.
    pub calls: Option<CallHandler>,
    /// The media driver; None starts one thread of its own.
    pub media: Option<Arc<MediaEngine>>,
    /// Where SIP and media reports go.
    pub reporter: Reporter,
    /// Cancelled to drain: no new calls (503, OPTIONS too), the calls in progress go on, and
    /// serving stops once the last has ended.
    pub drain: CancellationToken,
    /// The agents' accounts, as the agents file says now (None: no registrar, REGISTER gets
    /// 405); a reload sends the new ones.
    pub agents: Option<tokio::sync::watch::Receiver<Option<crate::sip::digest::DigestConfig>>>,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("endpoint", &self.endpoint)
            .field("rtp_ports", &self.rtp_ports)
            .field("ring", &self.ring)
            .field("calls", &self.calls.is_some())
            .finish()
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            endpoint: EndpointConfig::default(),
            rtp_ports: PortPool::new(10_000..=20_000).expect("a valid default range"),
            ring: Duration::ZERO,
            calls: None,
            media: None,
            reporter: Reporter::default(),
            drain: CancellationToken::new(),
            agents: None,
        }
    }
}

/// The bound sockets, before serving starts (so callers can learn the port of `:0`).
pub struct SipListeners {
    udp: UdpSocket,
    tcp: TcpListener,
    /// SIP over TLS, when configured: its listener and certificates.
    tls: Option<(TcpListener, Arc<tls::Certificates>)>,
}

impl SipListeners {
    /// Binds UDP and TCP on `addr`; with port 0 the TCP port follows the UDP one.
    pub async fn bind(addr: SocketAddr) -> Result<Self, NetError> {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| NetError::Bind { addr, source })?;
        let local = udp
            .local_addr()
            .map_err(|source| NetError::Bind { addr, source })?;
        let tcp = TcpListener::bind(local)
            .await
            .map_err(|source| NetError::Bind {
                addr: local,
                source,
            })?;
        Ok(Self {
            udp,
            tcp,
            tls: None,
        })
    }

    /// Adds a SIP over TLS listener on `addr` with these certificates.
    pub async fn bind_tls(
        &mut self,
        addr: SocketAddr,
        certificates: tls::Certificates,
    ) -> Result<(), NetError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| NetError::Bind { addr, source })?;
        self.tls = Some((listener, Arc::new(certificates)));
        Ok(())
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// The TLS listener's address, if there is one.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serves until `shutdown` is cancelled, then hangs up every call (BYE) and waits for open
    /// connections to finish. `seed` makes tags unique across restarts.
    pub async fn serve(
        self,
        config: ServeConfig,
        seed: u64,
        shutdown: CancellationToken,
    ) -> Result<(), NetError> {
        let local = self
            .udp
            .local_addr()
            .unwrap_or_else(|_| "127.0.0.1:5060".parse().unwrap());
        // Peers need a reachable address in Via/Contact: the listen address, or loopback when
        // listening on all interfaces (per-call SDP uses the address facing the caller).
        let advertised = if local.ip().is_unspecified() {
            let ip = if local.is_ipv4() { "127.0.0.1" } else { "::1" };
            SocketAddr::new(ip.parse().unwrap(), local.port())
        } else {
            local
        };
        let mut core = Endpoint::new(seed, advertised, config.endpoint);
        if let Some(addr) = self.tls_local_addr() {
            core.set_tls_address(SocketAddr::new(advertised.ip(), addr.port()));
        }
        if let Some(agents) = &config.agents {
            core.set_agents(agents.borrow().clone(), Instant::now());
        }
        let endpoint = Arc::new(Mutex::new(core));
        let tracker = TaskTracker::new();
        tracker.spawn(drain_then_stop(
            endpoint.clone(),
            config.drain.clone(),
            shutdown.clone(),
        ));
        let engine = match config.media.clone() {
            Some(e) => e,
            None => MediaEngine::start(1)?,
        };
        let media = MediaState {
            calls: HashMap::new(),
            ports: config.rtp_ports,
            ring: config.ring,
            ringing: VecDeque::new(),
            handler: config.calls.clone(),
            engine,
            signals: HashMap::new(),
        };
        let outbound = Arc::new(Outbound {
            udp: self.udp,
            tcp: Mutex::new(HashMap::new()),
            reporter: config.reporter.clone(),
        });
        let wake = Arc::new(Notify::new());
        if let Some(agents) = config.agents.clone() {
            tracker.spawn(follow_agents(
                agents,
                endpoint.clone(),
                wake.clone(),
                shutdown.clone(),
            ));
        }
        let drained = CancellationToken::new();
        let udp = udp_loop(
            outbound.clone(),
            media,
            endpoint.clone(),
            wake.clone(),
            shutdown.clone(),
            tracker.clone(),
        );
        let done = drained.clone();
        tracker.spawn(async move {
            udp.await;
            done.cancel();
        });
        let shared = Shared {
            endpoint,
            outbound,
            wake,
            drained,
        };
        if let Some((listener, certificates)) = self.tls {
            tracker.spawn(tcp_accept_loop(
                listener,
                Some(certificates),
                shared.clone(),
                shutdown.clone(),
                tracker.clone(),
            ));
        }
        tracker.spawn(tcp_accept_loop(
            self.tcp,
            None,
            shared,
            shutdown.clone(),
            tracker.clone(),
        ));
        shutdown.cancelled().await;
        tracker.close();
        tracker.wait().await;
        Ok(())
    }
}

/// Hands each new version of the agents' accounts to the endpoint, and wakes the driver for
/// the events that follows (bindings of agents removed from the file).
async fn follow_agents(
    mut agents: tokio::sync::watch::Receiver<Option<crate::sip::digest::DigestConfig>>,
    endpoint: Arc<Mutex<Endpoint>>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = agents.changed() => {
                if changed.is_err() {
                    return;
                }
                let accounts = agents.borrow_and_update().clone();
                lock(&endpoint).set_agents(accounts, Instant::now());
                wake.notify_one();
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Once `drain` is cancelled: the endpoint takes no new calls, and when the last call in
/// progress has ended, `shutdown` stops the server (an upgrade drops no call).
async fn drain_then_stop(
    endpoint: Arc<Mutex<Endpoint>>,
    drain: CancellationToken,
    shutdown: CancellationToken,
) {
    tokio::select! {
        _ = drain.cancelled() => {}
        _ = shutdown.cancelled() => return,
    }
    let calls = {
        let mut ep = lock(&endpoint);
        ep.drain();
        ep.calls()
    };
    tracing::info!(
        calls,
        "draining: no new calls; stopping when the last one ends"
    );
    status_line(format_args!("voxnav: draining, {calls} calls in progress"));
    // Calls end on SIP events the endpoint already handles; checking a few times a second is
    // enough to stop soon after the last.
    while lock(&endpoint).calls() > 0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
    status_line(format_args!("voxnav: drained"));
    shutdown.cancel();
}

fn lock(endpoint: &Mutex<Endpoint>) -> std::sync::MutexGuard<'_, Endpoint> {
    endpoint.lock().unwrap_or_else(|p| p.into_inner())
}

fn handle(
    endpoint: &Mutex<Endpoint>,
    bytes: &[u8],
    from: SocketAddr,
    transport: Transport,
) -> Vec<Transmit> {
    lock(endpoint).handle_message(bytes, from, transport, Instant::now())
}

/// Writes a status line to stdout, ignoring a closed pipe (`println!` would panic and take the
/// SIP loop down when whoever started the server stopped reading).
fn status_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Where datagrams go: the UDP socket, or the open TCP connection of the peer they are for.
struct Outbound {
    udp: UdpSocket,
    tcp: Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>,
    reporter: Reporter,
}

impl Outbound {
    async fn send(&self, out: Vec<Transmit>) {
        for t in out {
            if let Some(code) = response_code(&t.bytes) {
                self.reporter.report(Report::SipResponse { code });
            }
            let connection = self
                .tcp
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&t.to)
                .cloned();
            match connection {
                // A full queue means the peer stopped reading: drop rather than block SIP.
                Some(tx) => {
                    let _ = tx.try_send(t.bytes);
                }
                None => {
                    let _ = self.udp.send_to(&t.bytes, t.to).await;
                }
            }
        }
    }
}

/// The status code of a SIP response (None for requests).
fn response_code(bytes: &[u8]) -> Option<u16> {
    bytes
        .strip_prefix(b"SIP/2.0 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse().ok())
}

/// A call waiting to be answered (ringing).
struct Ringing {
    answer_at: Instant,
    call_id: String,
    dialled: Option<String>,
    media: Option<Negotiated>,
    signalling: SocketAddr,
    agent: Option<String>,
}

/// The driver's media side: each call's media session, the port pool, calls still ringing.
struct MediaState {
    /// Calls in progress: each call's session on the media driver.
    calls: HashMap<String, MediaHandle>,
    ports: PortPool,
    ring: Duration,
    /// In answer order (one ring duration for all, so first in is first due).
    ringing: VecDeque<Ringing>,
    handler: Option<CallHandler>,
    engine: Arc<MediaEngine>,
    /// Each handled call's `CallSignal`s.
    signals: HashMap<String, mpsc::UnboundedSender<CallSignal>>,
}

/// Tries to bind an RTP/RTCP pair from the pool on `ip`; ports other programs hold are skipped.
fn bind_media(ip: std::net::IpAddr, ports: &mut PortPool) -> Option<(MediaSockets, u16)> {
    for _ in 0..16 {
        let port = ports.allocate()?;
        let rtp = std::net::UdpSocket::bind(SocketAddr::new(ip, port));
        let rtcp = std::net::UdpSocket::bind(SocketAddr::new(ip, port + 1));
        match (rtp, rtcp) {
            (Ok(rtp), Ok(rtcp)) => {
                let sockets = MediaSockets {
                    rtp,
                    rtcp: Some(rtcp),
                };
                return Some((sockets, port));
            }
            _ => ports.release(port),
        }
    }
    None
}

/// Binds media for a call and answers it (or refuses it with 500 when no port is free).
async fn start_call(
    endpoint: &Mutex<Endpoint>,
    socket: &Outbound,
    state: &mut MediaState,
    call: Ringing,
    reports: &mpsc::UnboundedSender<MediaReport>,
    tracker: &TaskTracker,
) {
    let Ringing {
        call_id,
        dialled,
        media,
        signalling,
        agent,
        ..
    } = call;
    if !lock(endpoint).is_ringing(&call_id) {
        return; // cancelled while ringing
    }
    let peer_ip = media.as_ref().and_then(|m| m.remote).map(|r| r.ip());
    let fallback = socket
        .udp
        .local_addr()
        .map(|a| a.ip())
        .unwrap_or([127, 0, 0, 1].into());
    let ip = match peer_ip {
        Some(ip) => local_ip_towards(SocketAddr::new(ip, 9), fallback),
        None if fallback.is_unspecified() => [127, 0, 0, 1].into(),
        None => fallback,
    };
    let Some((sockets, port)) = bind_media(ip, &mut state.ports) else {
        let out = lock(endpoint).reject_call(&call_id, 500, "No Media Port", Instant::now());
        socket.send(out).await;
        return;
    };
    let local_rtp = sockets.rtp.local_addr().unwrap_or(SocketAddr::new(ip, 0));
    let caller = lock(endpoint).caller_of(&call_id);
    // Every log event of this call (its task, the jobs it starts) carries the call id.
    let span = tracing::info_span!("call", id = %call_id);
    let transport = (lock(endpoint).call_transport(&call_id)).map_or("udp", Transport::label);
    span.in_scope(
        || tracing::info!(caller = %caller.number, transport, rtp = %local_rtp, "call answered"),
    );
    let mut config = SessionConfig::answered_call(
        media::random_ssrc(&call_id),
        format!("voxnav@{}", local_rtp.ip()),
        signalling.ip(),
    );
    let finish = Finish {
        call_id: call_id.clone(),
        port,
        reports: reports.clone(),
    };
    let now = Instant::now();
    let handle = match state.handler.clone() {
        Some(handler) => {
            let session = RtpSession::new(config, media, now);
            let (events_tx, events) = mpsc::unbounded_channel();
            let handle = state.engine.add(
                sockets,
                session,
                Box::new(ToCall {
                    events: events_tx,
                    finish,
                }),
            );
            let hangup_reports = reports.clone();
            let id = call_id.clone();
            let (refer_reports, refer_id) = (reports.clone(), call_id.clone());
            let (signals_tx, signals) = mpsc::unbounded_channel();
            state.signals.insert(call_id.clone(), signals_tx);
            let call = AnsweredCall {
                call_id: call_id.clone(),
                dialled,
                caller,
                agent,
                media: handle.clone(),
                events,
                hangup: Box::new(move |why| {
                    let _ = hangup_reports.send(MediaReport::Hangup { call_id: id, why });
                }),
                refer: Box::new(move |target| {
                    let call_id = refer_id.clone();
                    let _ = refer_reports.send(MediaReport::Refer { call_id, target });
                }),
                signals,
            };
            tracker.spawn(handler(call).instrument(span));
            handle
        }
        None => {
            // The built-in test behaviour: no audio to hand over, digits still detected.
            config.deliver_audio = false;
            let mut session = RtpSession::new(config, media, now);
            session.play(&TestBehaviour::prompt());
            state
                .engine
                .add(sockets, session, Box::new(TestBehaviour { finish }))
        }
    };
    state.calls.insert(call_id.clone(), handle);
    socket.reporter.report(Report::CallAnswered {
        call_id: call_id.clone(),
        transport,
    });
    let out = lock(endpoint).answer_call(&call_id, local_rtp, Instant::now());
    socket.send(out).await;
}

/// Hands a signalling outcome to the call's task (if it still runs).
fn signal(state: &MediaState, call_id: &str, signal: CallSignal) {
    if let Some(tx) = state.signals.get(call_id) {
        let _ = tx.send(signal);
    }
}

/// Acts on the endpoint's events: media for new calls, updates, digits, stops.
async fn drain_events(
    endpoint: &Mutex<Endpoint>,
    socket: &Outbound,
    state: &mut MediaState,
    reports: &mpsc::UnboundedSender<MediaReport>,
    tracker: &TaskTracker,
) {
    loop {
        let Some(event) = lock(endpoint).poll_event() else {
            return;
        };
        match event {
            EndpointEvent::IncomingCall {
                call_id,
                dialled,
                media,
                signalling,
                agent,
            } => {
                let now = Instant::now();
                let call = Ringing {
                    answer_at: now + state.ring,
                    call_id,
                    dialled,
                    media,
                    signalling,
                    agent,
                };
                if state.ring.is_zero() {
                    start_call(endpoint, socket, state, call, reports, tracker).await;
                } else {
                    let out = lock(endpoint).ring(&call.call_id, now);
                    socket.send(out).await;
                    state.ringing.push_back(call);
                }
            }
            EndpointEvent::CallConfirmed {
                call_id,
                media: Some(media),
            }
            | EndpointEvent::MediaChanged { call_id, media } => {
                if let Some(h) = state.calls.get(&call_id) {
                    h.update(media);
                }
            }
            EndpointEvent::CallConfirmed { media: None, .. } => {}
            EndpointEvent::Dtmf { call_id, digit } => {
                if let Some(h) = state.calls.get(&call_id) {
                    h.signalled_digit(digit);
                }
            }
            EndpointEvent::ReferAccepted { call_id } => {
                signal(state, &call_id, CallSignal::ReferAccepted);
            }
            EndpointEvent::ReferSucceeded { call_id } => {
                signal(state, &call_id, CallSignal::ReferSucceeded);
            }
            EndpointEvent::ReferFailed {
                call_id,
                status,
                reason,
            } => signal(state, &call_id, CallSignal::ReferFailed { status, reason }),
            EndpointEvent::SessionExpired { call_id } => {
                tracing::warn!(call = %call_id, "session timer expired without a refresh; hanging up");
                status_line(format_args!(
                    "voxnav: call {call_id}: session timer expired without a refresh; hanging up"
                ));
            }
            EndpointEvent::Registration { registrar, state } => {
                use crate::sip::register::RegistrationState;
                let (status, detail) = match &state {
                    RegistrationState::Registered { expires } => (None, format!("for {expires} s")),
                    RegistrationState::Failed { status, reason } => (Some(*status), reason.clone()),
                    RegistrationState::Registering => (None, String::new()),
                };
                status_line(format_args!(
                    "voxnav: registration at {registrar}: {} {}{detail}",
                    state.name(),
                    status.map(|s| format!("{s} ")).unwrap_or_default()
                ));
                socket.reporter.report(Report::Registration {
                    registrar: registrar.to_string(),
                    state: state.name(),
                    status,
                    detail,
                });
            }
            EndpointEvent::AgentContacts { agent, contacts } => {
                if contacts.is_empty() {
                    status_line(format_args!("voxnav: agent {agent} unregistered"));
                } else {
                    status_line(format_args!(
                        "voxnav: agent {agent} registered: {}",
                        contacts.join(" ")
                    ));
                }
                socket
                    .reporter
                    .report(Report::AgentContacts { agent, contacts });
            }
            EndpointEvent::AgentRefused {
                user,
                source,
                method,
            } => {
                tracing::warn!(%user, %source, method, "agent's phone with wrong credentials");
                status_line(format_args!(
                    "voxnav: {method} as {user:?} from {source} refused: wrong credentials"
                ));
                socket.reporter.report(Report::AgentRefused);
            }
            EndpointEvent::CallEnded { call_id, reason } => {
                if let Some(h) = state.calls.remove(&call_id) {
                    h.stop();
                }
                tracing::info!(call = %call_id, %reason, "call ended");
                status_line(format_args!("voxnav: call {call_id} ended: {reason}"));
            }
        }
    }
}

async fn udp_loop(
    socket: Arc<Outbound>,
    mut state: MediaState,
    endpoint: Arc<Mutex<Endpoint>>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Unbounded: a media thread must never block on the SIP loop, and a lost `Finished`
    // would leak its port.
    let (report_tx, mut reports) = mpsc::unbounded_channel::<MediaReport>();
    // After SIGTERM: calls are hung up and given this long to finish.
    let mut draining_until: Option<Instant> = None;
    loop {
        if let Some(until) = draining_until
            && (state.calls.is_empty() || Instant::now() >= until)
        {
            for (_, h) in state.calls.drain() {
                h.stop();
            }
            return;
        }
        // Sleep until the endpoint's next timer (retransmissions, transaction ends), the next
        // ringing call to answer, or input.
        let deadline = [
            lock(&endpoint).poll_timeout(),
            draining_until,
            state.ringing.front().map(|r| r.answer_at),
        ]
        .into_iter()
        .flatten()
        .min();
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled(), if draining_until.is_none() => {
                let now = Instant::now();
                let mut out = Vec::new();
                for call in state.ringing.drain(..) {
                    out.extend(lock(&endpoint).reject_call(&call.call_id, 503, "Service Unavailable", now));
                }
                for call_id in state.calls.keys() {
                    out.extend(lock(&endpoint).hangup(call_id, now));
                }
                out.extend(lock(&endpoint).unregister(now));
                socket.send(out).await;
                draining_until = Some(Instant::now() + Duration::from_secs(3));
            }
            _ = timer => {
                let out = lock(&endpoint).handle_timeout(Instant::now());
                socket.send(out).await;
                while state.ringing.front().is_some_and(|r| r.answer_at <= Instant::now()) {
                    if let Some(call) = state.ringing.pop_front() {
                        start_call(&endpoint, &socket, &mut state, call, &report_tx, &tracker).await;
                    }
                }
            }
            // A TCP connection handled a message: its events (a new call...) are ours to run.
            _ = wake.notified() => {}
            r = socket.udp.recv_from(&mut buf) => {
                // ICMP errors from earlier sends surface as errors on some systems; keep serving.
                if let Ok((n, from)) = r {
                    let out = handle(&endpoint, &buf[..n], from, Transport::Udp);
                    socket.send(out).await;
                }
            }
            Some(report) = reports.recv() => match report {
                MediaReport::Hangup { call_id, why } => {
                    tracing::info!(call = %call_id, %why, "hanging up");
                    status_line(format_args!("voxnav: hanging up {call_id}: {why}"));
                    let out = lock(&endpoint).hangup(&call_id, Instant::now());
                    socket.send(out).await;
                }
                MediaReport::Refer { call_id, target } => {
                    tracing::info!(call = %call_id, %target, "REFER");
                    status_line(format_args!("voxnav: call {call_id}: REFER to {target}"));
                    let out = lock(&endpoint).refer(&call_id, &target, Instant::now());
                    socket.send(out).await;
                }
                MediaReport::Finished { call_id, port, counters } => {
                    state.ports.release(port);
                    state.signals.remove(&call_id);
                    // A call whose media ended by itself is over too.
                    state.calls.remove(&call_id);
                    // Tests read this line.
                    tracing::info!(call = %call_id, %counters, "media finished");
                    status_line(format_args!("voxnav: media {call_id}: {counters}"));
                    socket.reporter.report(Report::MediaFinished { call_id, counters });
                }
            },
        }
        drain_events(&endpoint, &socket, &mut state, &report_tx, &tracker).await;
    }
}

/// What a TCP connection task shares with the UDP loop.
#[derive(Clone)]
struct Shared {
    endpoint: Arc<Mutex<Endpoint>>,
    outbound: Arc<Outbound>,
    wake: Arc<Notify>,
    /// Cancelled when the UDP loop has finished draining calls after SIGTERM: connections
    /// stay open until then so BYEs for calls over TCP can still be written.
    drained: CancellationToken,
}

/// How long a TLS handshake may take: a peer that connects and says nothing (or garbage)
/// does not hold a connection slot longer.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// Accepts SIP over TCP, or over TLS with `tls`'s certificates (RFC 3261 26.2.1).
async fn tcp_accept_loop(
    listener: TcpListener,
    tls: Option<Arc<tls::Certificates>>,
    shared: Shared,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        if open.load(std::sync::atomic::Ordering::Relaxed) >= MAX_TCP_CONNECTIONS {
            continue; // dropping the stream closes it
        }
        open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (shared, open, tls) = (shared.clone(), open.clone(), tls.clone());
        tracker.spawn(async move {
            let (tx, rx) = mpsc::channel(64);
            match tls {
                None => {
                    lock_peers(&shared.outbound).insert(peer, tx);
                    tcp_connection(stream, peer, &shared, rx, Transport::Tcp).await;
                    lock_peers(&shared.outbound).remove(&peer);
                }
                Some(certificates) => {
                    let handshake = certificates.acceptor().accept(stream);
                    match tokio::time::timeout(TLS_HANDSHAKE, handshake).await {
                        Ok(Ok(stream)) => {
                            lock_peers(&shared.outbound).insert(peer, tx);
                            tcp_connection(stream, peer, &shared, rx, Transport::Tls).await;
                            lock_peers(&shared.outbound).remove(&peer);
                        }
                        // Garbage, a plain SIP message, a client that refuses our
                        // certificate, or silence: the connection is closed, nothing else.
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
}

fn lock_peers(
    outbound: &Outbound,
) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>> {
    outbound.tcp.lock().unwrap_or_else(|p| p.into_inner())
}

/// One TCP connection: frames and handles incoming messages, and writes whatever the endpoint
/// sends to this peer (direct replies, and later ones through `outgoing`).
async fn tcp_connection<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    shared: &Shared,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    transport: Transport,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // Handle every whole message already buffered.
        loop {
            match framing::frame_stream(&buf) {
                Ok(StreamFrame::Complete(frame)) => {
                    let message = frame.message(&buf).to_vec();
                    buf.drain(..frame.consumed());
                    for t in handle(&shared.endpoint, &message, peer, transport) {
                        if stream.write_all(&t.bytes).await.is_err() {
                            return;
                        }
                    }
                    // TLS keeps records in its buffer until flushed (a no-op for TCP).
                    if stream.flush().await.is_err() {
                        return;
                    }
                    shared.wake.notify_one();
                }
                Ok(StreamFrame::Incomplete { keepalive }) => {
                    buf.drain(..keepalive);
                    break;
                }
                Err(_) => {
                    // Unrecoverable framing: answer what can be answered (the endpoint sees the
                    // bytes as a datagram and rejects them with 400), then close.
                    for t in handle(&shared.endpoint, &buf, peer, transport) {
                        let _ = stream.write_all(&t.bytes).await;
                    }
                    let _ = stream.flush().await;
                    return;
                }
            }
        }
        tokio::select! {
            _ = shared.drained.cancelled() => return,
            Some(bytes) = outgoing.recv() => {
                if stream.write_all(&bytes).await.is_err() || stream.flush().await.is_err() {
                    return;
                }
            }
            r = stream.read(&mut chunk) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
        }
    }
}
