//! The agent desk's browser phone (issue 15): an agent talks in the browser over WebRTC
//! instead of a registered softphone. The webrtc-rs family's sans-IO `rtc` crate does ICE,
//! DTLS-SRTP (RFC 8827) and RTP; this file is its thin I/O driver (one UDP socket and one
//! tokio task per phone) and the call logic around it.
//!
//! The desk's page makes the offer when the agent logs in (`POST /api/desk/phone`, the whole
//! offer with its candidates: no trickle) and keeps the connection up for the whole shift,
//! like a registered softphone: a call then starts with the media path already open. Audio is
//! G.711 mu-law (PCMU), which every WebRTC endpoint must offer (RFC 7874 section 3), so the
//! bridge needs no transcoding: 20 ms packets, as on the SIP legs.
//!
//! A call on the phone is a `Leg` (`net::leg`), the same pair of channels as a SIP agent
//! leg, so the transfer driver cannot tell them apart: it rings (`LegEvent::Ringing`, the
//! desk pops the call), the agent answers or declines on the desk, audio flows both ways,
//! and either side hangs up. A browser that vanishes (its tab closed, its network gone) is
//! noticed as a silent phone (`LegConfig::media_timeout`, RTP stops) or a failed ICE
//! connection (RFC 7675 consent), and the caller goes back to the queue as for a SIP phone.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_PCMU, MediaEngine};
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::leg::{Leg, LegCommand, LegConfig, LegEvent};
use crate::media::g711::Law;
use crate::routing::Acd;

/// The URI scheme the ACD gives a browser phone (`webrtc:AGENT`), so a transfer rings it
/// like any other contact.
pub const SCHEME: &str = "webrtc:";
/// 20 ms of 8 kHz audio: one packet.
const FRAME: usize = 160;
const PTIME: Duration = Duration::from_millis(20);
/// An offer that has not connected (ICE and DTLS) by then is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// An offer is a few kilobytes; a larger body is no browser's.
pub const MAX_OFFER: usize = 64 * 1024;

/// Why a browser phone could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebPhoneError {
    #[error("not a usable WebRTC offer: {0}")]
    BadOffer(String),
    #[error("the offer has no audio this phone can take (G.711 PCMU, RFC 7874)")]
    NoAudio,
    #[error("cannot open the phone's socket: {0}")]
    Socket(#[from] std::io::Error),
}

/// Why a desk's call control was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("no browser phone is connected for this desk")]
    NoPhone,
}

/// The browser phones of the logged-in agents.
pub struct WebPhones {
    phones: Mutex<HashMap<String, Phone>>,
    acd: Arc<Acd>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for WebPhones {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phones = lock(&self.phones);
        f.debug_struct("WebPhones")
            .field("agents", &phones.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One agent's phone: its task's mailbox.
struct Phone {
    id: u64,
    control: UnboundedSender<Control>,
    connected: bool,
}

/// Orders for a phone (`PhoneCore::on_control`).
pub enum Control {
    /// A call for the agent: ring the desk.
    Ring { call: u64, leg: CallLeg },
    /// The transfer's order for call `call` (the leg's owner dropping it is a `Hangup`).
    Leg { call: u64, command: LegCommand },
    /// The agent answered on the desk.
    Answer,
    /// The agent hung up (or declined while it rang).
    HangUp,
    /// The agent left the desk, or a new offer replaced this phone.
    Close,
}

/// A call as its owner placed it (`LegConfig`'s part that concerns the phone).
pub struct CallLeg {
    pub events: UnboundedSender<LegEvent>,
    pub answer_timeout: Duration,
    pub max_queued_frames: Option<usize>,
    pub media_timeout: Option<Duration>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WebPhones {
    pub fn new(acd: Arc<Acd>) -> Self {
        Self {
            phones: Mutex::new(HashMap::new()),
            acd,
            next_id: AtomicU64::new(1),
        }
    }

    /// Takes the browser's offer for `agent`'s phone and answers it (the SDP to give back).
    /// `browser` is where the desk's request came from: the phone's socket is on the address
    /// that reaches it. A phone the agent had already is replaced.
    ///
    /// Must run on a tokio runtime (the phone's task is spawned on it).
    pub fn connect(
        self: &Arc<Self>,
        agent: &str,
        offer: &str,
        browser: SocketAddr,
    ) -> Result<String, WebPhoneError> {
        let fallback: IpAddr = if browser.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        let ip = super::local_ip_towards(browser, fallback);
        let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let ssrc = super::media::random_ssrc(&format!("{agent}@{local}"));
        let (core, sdp) = PhoneCore::answering(offer, local, ssrc, Instant::now())?;
        let socket = UdpSocket::from_std(socket)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (control, control_rx) = unbounded_channel();
        let old = lock(&self.phones).insert(
            agent.to_string(),
            Phone {
                id,
                control,
                connected: false,
            },
        );
        if let Some(old) = old {
            let _ = old.control.send(Control::Close);
            // Not rung again until the new connection is up.
            self.acd.browser_phone(agent, false);
        }
        let phones = self.clone();
        let agent = agent.to_string();
        tokio::spawn(async move {
            run(core, socket, control_rx, &phones, &agent, id).await;
            phones.gone(&agent, id);
        });
        Ok(sdp)
    }

    /// The phone `id` of `agent` connected (ICE and DTLS up): calls may ring it.
    fn connected(&self, agent: &str, id: u64) {
        let mut phones = lock(&self.phones);
        if let Some(p) = phones.get_mut(agent).filter(|p| p.id == id) {
            p.connected = true;
            drop(phones);
            println!("voxnav: agent {agent}'s browser phone is connected");
            self.acd.browser_phone(agent, true);
        }
    }

    /// The phone `id` of `agent` is over (closed, failed, replaced).
    fn gone(&self, agent: &str, id: u64) {
        let mut phones = lock(&self.phones);
        if phones.get(agent).is_some_and(|p| p.id == id) {
            phones.remove(agent);
            drop(phones);
            println!("voxnav: agent {agent}'s browser phone is gone");
            self.acd.browser_phone(agent, false);
        }
    }

    /// "connected", "connecting" or None (no browser phone).
    pub fn status(&self, agent: &str) -> Option<&'static str> {
        let phones = lock(&self.phones);
        let p = phones.get(agent)?;
        Some(if p.connected {
            "connected"
        } else {
            "connecting"
        })
    }

    /// Rings `agent`'s browser phone for a transfer (the ACD picked it): the same `Leg` as a
    /// SIP agent leg. No phone: the leg fails at once (480, RFC 3261 21.4.18).
    pub fn ring(&self, agent: &str, config: &LegConfig) -> Leg {
        static CALLS: AtomicU64 = AtomicU64::new(1);
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        let (commands, mut command_rx) = unbounded_channel::<LegCommand>();
        let (event_tx, events) = unbounded_channel();
        let control = lock(&self.phones).get(agent).map(|p| p.control.clone());
        let leg = CallLeg {
            events: event_tx.clone(),
            answer_timeout: config.answer_timeout,
            max_queued_frames: config.max_queued_frames,
            media_timeout: config.media_timeout,
        };
        match control {
            Some(control) if control.send(Control::Ring { call, leg }).is_ok() => {
                // The owner's orders go to the phone's task, marked with the call they are for
                // (a late order for an earlier call must not touch the next one).
                tokio::spawn(async move {
                    loop {
                        let command = command_rx.recv().await.unwrap_or(LegCommand::Hangup);
                        let hangup = matches!(command, LegCommand::Hangup);
                        if control.send(Control::Leg { call, command }).is_err() || hangup {
                            return;
                        }
                    }
                });
            }
            _ => {
                let reason = "the agent's browser phone is not connected".to_string();
                let _ = event_tx.send(LegEvent::Failed {
                    status: 480,
                    reason: reason.clone(),
                });
                let _ = event_tx.send(LegEvent::Ended {
                    why: reason,
                    sent: 0,
                    received: 0,
                });
            }
        }
        Leg {
            commands,
            events,
            call_id: format!("{SCHEME}{agent}/{call}"),
        }
    }

    fn control(&self, agent: &str, order: Control) -> Result<(), ControlError> {
        let phones = lock(&self.phones);
        let p = phones.get(agent).ok_or(ControlError::NoPhone)?;
        p.control.send(order).map_err(|_| ControlError::NoPhone)
    }

    /// The agent answers the call ringing on their browser phone (nothing if none rings).
    pub fn answer(&self, agent: &str) -> Result<(), ControlError> {
        self.control(agent, Control::Answer)
    }

    /// The agent hangs up, or declines the call that rings.
    pub fn hang_up(&self, agent: &str) -> Result<(), ControlError> {
        self.control(agent, Control::HangUp)
    }

    /// The agent left the desk: the phone closes (a call on it ends).
    pub fn close(&self, agent: &str) {
        let _ = self.control(agent, Control::Close);
    }
}

/// Places a call to an agent's phone: their desk's browser phone for the ACD's `webrtc:`
/// contact, a SIP call (`leg::place`) for any other.
pub fn place_agent_leg(
    media: &Arc<super::media::MediaEngine>,
    phones: Option<&WebPhones>,
    config: LegConfig,
) -> Leg {
    match (config.target.strip_prefix(SCHEME)).zip(phones) {
        Some((agent, phones)) => phones.ring(agent, &config),
        None => super::leg::place(media, config),
    }
}

/// G.711 mu-law, RTP payload type 0 (RFC 3551): the one codec of the browser phone.
fn pcmu() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_PCMU.to_owned(),
        clock_rate: 8000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

/// A media engine that knows PCMU only.
fn pcmu_engine() -> Result<MediaEngine, rtc::shared::error::Error> {
    let mut engine = MediaEngine::default();
    let codec = RTCRtpCodecParameters {
        rtp_codec: pcmu(),
        payload_type: 0,
    };
    engine.register_codec(codec, RtpCodecKind::Audio)?;
    Ok(engine)
}

/// One PCMU track to send as `ssrc`.
fn pcmu_track(stream: &str, id: &str, ssrc: u32) -> MediaStreamTrack {
    MediaStreamTrack::new(
        stream.into(),
        id.into(),
        id.into(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: pcmu(),
            ..Default::default()
        }],
    )
}

/// `local` as an ICE host candidate (RFC 8445 5.1.1.1), for the SDP.
fn host_candidate(
    local: SocketAddr,
) -> Result<rtc::peer_connection::transport::RTCIceCandidateInit, rtc::shared::error::Error> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: local.ip().to_string(),
            port: local.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    RTCIceCandidate::from(&candidate).to_json()
}

/// The answering peer connection for `offer`, with one PCMU track (`ssrc`) to send on and
/// `local` as its one host candidate.
fn answer(
    offer: &str,
    local: SocketAddr,
    ssrc: u32,
    now: Instant,
) -> Result<(RTCPeerConnection, RTCRtpSenderId), WebPhoneError> {
    let bad = |e: rtc::shared::error::Error| WebPhoneError::BadOffer(e.to_string());
    let mut media_engine = pcmu_engine().map_err(bad)?;
    let registry =
        register_default_interceptors(Registry::new(), &mut media_engine).map_err(bad)?;
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)
        .map_err(bad)?;
    let sender = (pc.add_track(pcmu_track("voxnav", "caller", ssrc))).map_err(bad)?;
    let offer = RTCSessionDescription::offer(offer.to_string()).map_err(bad)?;
    pc.set_remote_description(now, offer).map_err(bad)?;
    pc.add_local_candidate(host_candidate(local).map_err(bad)?)
        .map_err(bad)?;
    let answer = pc.create_answer(None).map_err(bad)?;
    pc.set_local_description(now, answer).map_err(bad)?;
    Ok((pc, sender))
}

/// A call on the phone.
struct Call {
    id: u64,
    leg: CallLeg,
    rang_at: Instant,
    answered: bool,
    /// Audio to send, 8 kHz.
    queue: VecDeque<i16>,
    /// Audio was queued since the queue last ran empty (`LegEvent::Drained` is owed).
    owes_drained: bool,
    last_rtp: Instant,
    media_stopped: bool,
    next_frame: Instant,
    sent: u64,
    received: u64,
}

/// A phone's state, apart from its socket: the peer connection, the call on it.
pub struct PhoneCore {
    pc: RTCPeerConnection,
    sender: RTCRtpSenderId,
    local: SocketAddr,
    started: Instant,
    connected: bool,
    /// The connection is over (failed or closed): the phone ends.
    over: Option<String>,
    call: Option<Call>,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    /// The next packet starts a talk spurt (RFC 3551 section 4.1: the marker bit).
    spurt: bool,
    /// Newly connected (for the owner to announce once).
    just_connected: bool,
}

impl PhoneCore {
    /// The phone that answers the browser's `offer` (its SDP answer with it): its one host
    /// candidate is `local`, it sends as `ssrc`.
    pub fn answering(
        offer: &str,
        local: SocketAddr,
        ssrc: u32,
        now: Instant,
    ) -> Result<(Self, String), WebPhoneError> {
        let (pc, sender) = answer(offer, local, ssrc, now)?;
        let sdp = (pc.local_description())
            .map(|d| d.sdp.clone())
            .ok_or_else(|| WebPhoneError::BadOffer("no answer was made".into()))?;
        if !sdp.contains("PCMU/8000") {
            return Err(WebPhoneError::NoAudio);
        }
        Ok((Self::new(pc, sender, ssrc, local, now), sdp))
    }

    fn new(
        pc: RTCPeerConnection,
        sender: RTCRtpSenderId,
        ssrc: u32,
        local: SocketAddr,
        now: Instant,
    ) -> Self {
        Self {
            pc,
            sender,
            local,
            started: now,
            connected: false,
            over: None,
            call: None,
            ssrc,
            sequence: (ssrc >> 7) as u16,
            timestamp: ssrc.rotate_left(11),
            spurt: true,
            just_connected: false,
        }
    }

    /// A datagram from the browser (STUN, DTLS, SRTP, SRTCP: the connection tells them apart).
    pub fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        let _ = self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(bytes),
        });
        self.pump(now);
    }

    /// The datagrams to send now.
    pub fn transmit(&mut self) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut out = Vec::new();
        while let Some(m) = self.pc.poll_write() {
            out.push((m.message.to_vec(), m.transport.peer_addr));
        }
        out
    }

    /// When `on_timeout` is next due.
    pub fn poll_timeout(&mut self) -> Instant {
        let mut next = self
            .pc
            .poll_timeout()
            .unwrap_or(self.started + CONNECT_TIMEOUT);
        if !self.connected {
            next = next.min(self.started + CONNECT_TIMEOUT);
        }
        if let Some(c) = &self.call {
            if c.answered {
                next = next.min(c.next_frame);
                if let Some(t) = c.leg.media_timeout.filter(|_| !c.media_stopped) {
                    next = next.min(c.last_rtp + t);
                }
            } else {
                next = next.min(c.rang_at + c.leg.answer_timeout);
            }
        }
        next
    }

    pub fn on_timeout(&mut self, now: Instant) {
        let _ = self.pc.handle_timeout(now);
        if !self.connected && now >= self.started + CONNECT_TIMEOUT && self.over.is_none() {
            self.over = Some("the browser did not connect in time".into());
        }
        if let Some(c) = self.call.as_mut()
            && !c.answered
            && now >= c.rang_at + c.leg.answer_timeout
        {
            self.fail_call(408, "no answer in time");
        }
        self.send_due_frames(now);
        if let Some(c) = self.call.as_mut()
            && c.answered
            && !c.media_stopped
            && c.leg.media_timeout.is_some_and(|t| now >= c.last_rtp + t)
        {
            c.media_stopped = true;
            let _ = c.leg.events.send(LegEvent::MediaStopped);
        }
        self.pump(now);
    }

    /// ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// An order for the phone (a call to ring, the owner's audio, the desk's buttons).
    pub fn on_control(&mut self, order: Control, now: Instant) {
        match order {
            Control::Ring { call, leg } => {
                if self.call.is_some() || self.over.is_some() {
                    let _ = leg.events.send(LegEvent::Failed {
                        status: 486,
                        reason: "the agent's browser phone is busy".into(),
                    });
                    let _ = leg.events.send(LegEvent::Ended {
                        why: "busy".into(),
                        sent: 0,
                        received: 0,
                    });
                    return;
                }
                let _ = leg.events.send(LegEvent::Ringing(180));
                self.call = Some(Call {
                    id: call,
                    leg,
                    rang_at: now,
                    answered: false,
                    queue: VecDeque::new(),
                    owes_drained: false,
                    last_rtp: now,
                    media_stopped: false,
                    next_frame: now,
                    sent: 0,
                    received: 0,
                });
            }
            Control::Leg { call, command } => {
                let Some(c) = self.call.as_mut().filter(|c| c.id == call) else {
                    return;
                };
                match command {
                    LegCommand::Audio(pcm) => {
                        c.queue.extend(pcm);
                        if let Some(max) = c.leg.max_queued_frames {
                            // A relay, not a recording: the oldest audio goes first.
                            let excess = c.queue.len().saturating_sub(max * FRAME);
                            c.queue.drain(..excess);
                        }
                        c.owes_drained = true;
                    }
                    // No telephone-event is negotiated with a browser: an agent needs no tones.
                    LegCommand::Digit(_) => {}
                    LegCommand::Flush => c.queue.clear(),
                    LegCommand::Hangup => self.end_call("we hung up"),
                }
            }
            Control::Answer => {
                if let Some(c) = self.call.as_mut().filter(|c| !c.answered) {
                    c.answered = true;
                    c.last_rtp = now;
                    c.next_frame = now;
                    self.spurt = true;
                    let _ = c.leg.events.send(LegEvent::Answered);
                }
            }
            Control::HangUp => match &self.call {
                Some(c) if !c.answered => self.fail_call(486, "declined on the desk"),
                Some(_) => self.end_call("the agent hung up"),
                None => {}
            },
            Control::Close => {
                self.over = Some("the agent left the desk".into());
            }
        }
    }

    /// The ringing call is not answered: `status` for the owner.
    fn fail_call(&mut self, status: u16, reason: &str) {
        if let Some(c) = self.call.take() {
            let _ = c.leg.events.send(LegEvent::Failed {
                status,
                reason: reason.into(),
            });
            let _ = c.leg.events.send(LegEvent::Ended {
                why: format!("failed: {status} {reason}"),
                sent: 0,
                received: 0,
            });
        }
    }

    fn end_call(&mut self, why: &str) {
        if let Some(c) = self.call.take() {
            let _ = c.leg.events.send(LegEvent::Ended {
                why: why.into(),
                sent: c.sent,
                received: c.received,
            });
        }
    }

    /// Sends the answered call's frames that are due, one every 20 ms on the clock (never
    /// a burst to catch up after a stall: their time is past).
    fn send_due_frames(&mut self, now: Instant) {
        let Some(c) = self.call.as_mut().filter(|c| c.answered) else {
            return;
        };
        let mut frame = None;
        while c.next_frame <= now {
            c.next_frame += PTIME;
            self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
            if c.queue.is_empty() {
                self.spurt = true;
                continue;
            }
            let n = c.queue.len().min(FRAME);
            let mut pcm: Vec<i16> = c.queue.drain(..n).collect();
            pcm.resize(FRAME, 0);
            frame = Some(pcm);
        }
        if let Some(pcm) = frame {
            let packet = rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    marker: std::mem::take(&mut self.spurt),
                    payload_type: 0,
                    sequence_number: self.sequence,
                    timestamp: self.timestamp,
                    ssrc: self.ssrc,
                    ..Default::default()
                },
                payload: Law::Ulaw.encode(&pcm).into(),
            };
            self.sequence = self.sequence.wrapping_add(1);
            match self
                .pc
                .rtp_sender(self.sender)
                .map(|mut s| s.write_rtp(now, packet))
            {
                Some(Ok(())) => c.sent += 1,
                Some(Err(e)) => tracing::warn!(error = %e, "a packet to the browser was not sent"),
                None => tracing::warn!("the browser phone has no sender"),
            }
        }
        if c.queue.is_empty() && std::mem::take(&mut c.owes_drained) {
            let _ = c.leg.events.send(LegEvent::Drained(now));
        }
    }

    /// Takes what the connection has for us: state changes and the browser's audio.
    pub fn pump(&mut self, now: Instant) {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                match state {
                    RTCPeerConnectionState::Connected if !self.connected => {
                        self.connected = true;
                        self.just_connected = true;
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        self.over
                            .get_or_insert_with(|| format!("the browser's connection {state}"));
                    }
                    _ => {}
                }
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            let RTCMessage::RtpPacket(_, packet) = message else {
                continue;
            };
            let Some(c) = self.call.as_mut().filter(|c| c.answered) else {
                continue;
            };
            // PCMU is the only codec answered; anything else (comfort noise) is not audio.
            if packet.header.payload_type != 0 {
                continue;
            }
            c.last_rtp = now;
            c.received += 1;
            let pcm = Law::Ulaw.decode(&packet.payload);
            for chunk in pcm.chunks(FRAME) {
                let _ = c.leg.events.send(LegEvent::Audio(chunk.to_vec(), now));
            }
        }
        if let Some(why) = self.over.clone()
            && let Some(c) = self.call.as_ref()
        {
            if c.answered {
                // The agent is gone mid-call: the owner puts the caller back in line.
                if !c.media_stopped {
                    let _ = c.leg.events.send(LegEvent::MediaStopped);
                }
                self.end_call(&why);
            } else {
                self.fail_call(480, &why);
            }
        }
    }

    /// The phone is over (the owner closes it).
    pub fn over(&self) -> Option<&str> {
        self.over.as_deref()
    }

    fn take_connected(&mut self) -> bool {
        std::mem::take(&mut self.just_connected)
    }

    fn close(&mut self) {
        let _ = self.pc.close();
    }
}

/// The phone's task: its socket, its mailbox, its timers.
async fn run(
    mut core: PhoneCore,
    socket: UdpSocket,
    mut control: UnboundedReceiver<Control>,
    phones: &WebPhones,
    agent: &str,
    id: u64,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        for (bytes, to) in core.transmit() {
            let _ = socket.send_to(&bytes, to).await;
        }
        if core.take_connected() {
            phones.connected(agent, id);
        }
        if let Some(why) = core.over() {
            tracing::info!(%agent, %why, "the browser phone ends");
            break;
        }
        let next = core.poll_timeout();
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    core.on_datagram(&buf[..n], from, Instant::now());
                }
            }
            order = control.recv() => {
                let order = order.unwrap_or(Control::Close);
                core.on_control(order, Instant::now());
                core.pump(Instant::now());
            }
            _ = tokio::time::sleep_until(next.into()) => core.on_timeout(Instant::now()),
        }
    }
    core.close();
    for (bytes, to) in core.transmit() {
        let _ = socket.send_to(&bytes, to).await;
    }
}

/// A browser of `rtc`'s own (offering PCMU, as Chromium does) and the phone, with the
/// network between them in memory and a clock of the caller's own (no sleeping: time jumps
/// to the next timer). The unit tests and `benches/webphone.rs` drive the phone with it.
pub mod wire {
    use super::*;

    pub const BROWSER: &str = "127.0.0.1:40001";
    pub const PHONE: &str = "127.0.0.1:40002";
    pub const BROWSER_SSRC: u32 = 0x5eed_0001;

    /// The browser's side: another `rtc` peer connection that offers PCMU, as Chromium does.
    pub fn browser(now: Instant) -> (RTCPeerConnection, RTCRtpSenderId, String) {
        browser_at(BROWSER.parse().unwrap(), now)
    }

    /// A browser whose one host candidate is `local`: its connection, its microphone's
    /// sender (SSRC `BROWSER_SSRC`) and its offer.
    pub fn browser_at(
        local: SocketAddr,
        now: Instant,
    ) -> (RTCPeerConnection, RTCRtpSenderId, String) {
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(pcmu_engine().unwrap())
            .build(now)
            .unwrap();
        let track = pcmu_track("browser", "microphone", BROWSER_SSRC);
        let sender = pc.add_track(track).unwrap();
        pc.add_local_candidate(host_candidate(local).unwrap())
            .unwrap();
        let offer = pc.create_offer(None).unwrap();
        pc.set_local_description(now, offer).unwrap();
        let sdp = pc.local_description().unwrap().sdp.clone();
        (pc, sender, sdp)
    }

    /// The browser and the phone with the network between them in memory, on a clock of
    /// the test's own (no sleeping: time jumps to the next timer).
    pub struct Wire {
        browser: RTCPeerConnection,
        browser_sender: RTCRtpSenderId,
        pub phone: PhoneCore,
        pub now: Instant,
        /// PCMU packets the browser received.
        pub heard: Vec<rtc::rtp::Packet>,
        pub browser_connected: bool,
        /// The browser sends a packet every 20 ms.
        pub talking: bool,
        seq: u16,
        /// Time spent in the phone's calls (the benchmark's figure).
        pub phone_time: Duration,
    }

    impl Wire {
        pub fn new() -> Self {
            Self::default()
        }
    }

    impl Default for Wire {
        /// The two sides after the offer and answer (not connected yet: `run` them).
        fn default() -> Self {
            let now = Instant::now();
            let (mut browser, browser_sender, offer) = browser(now);
            let phone: SocketAddr = PHONE.parse().unwrap();
            let (core, sdp) = PhoneCore::answering(&offer, phone, 77, now).unwrap();
            let answer = RTCSessionDescription::answer(sdp).unwrap();
            browser.set_remote_description(now, answer).unwrap();
            Self {
                browser,
                browser_sender,
                phone: core,
                now,
                heard: Vec::new(),
                browser_connected: false,
                talking: false,
                seq: 0,
                phone_time: Duration::ZERO,
            }
        }
    }

    impl Wire {
        /// Delivers every datagram both ways until the wire is quiet.
        pub fn exchange(&mut self) {
            let (b, p): (SocketAddr, SocketAddr) =
                (BROWSER.parse().unwrap(), PHONE.parse().unwrap());
            loop {
                let mut moved = false;
                while let Some(m) = self.browser.poll_write() {
                    let t = Instant::now();
                    self.phone.on_datagram(&m.message, b, self.now);
                    self.phone_time += t.elapsed();
                    moved = true;
                }
                let t = Instant::now();
                let out = self.phone.transmit();
                self.phone_time += t.elapsed();
                for (bytes, _) in out {
                    let _ = self.browser.handle_read(TaggedBytesMut {
                        now: self.now,
                        transport: TransportContext {
                            local_addr: b,
                            peer_addr: p,
                            ecn: None,
                            transport_protocol: TransportProtocol::UDP,
                        },
                        message: BytesMut::from(&bytes[..]),
                    });
                    moved = true;
                }
                while let Some(e) = self.browser.poll_event() {
                    if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = e {
                        self.browser_connected = s == RTCPeerConnectionState::Connected;
                    }
                }
                while let Some(m) = self.browser.poll_read() {
                    if let RTCMessage::RtpPacket(_, packet) = m.message {
                        self.heard.push(packet);
                    }
                }
                if !moved {
                    return;
                }
            }
        }

        /// Runs the clock for `span`; the browser talks every 20 ms while `talking`.
        pub fn run(&mut self, span: Duration) {
            let end = self.now + span;
            let mut next_talk = self.now;
            while self.now < end {
                self.exchange();
                if self.talking && self.now >= next_talk {
                    next_talk += PTIME;
                    self.seq = self.seq.wrapping_add(1);
                    let packet = rtc::rtp::Packet {
                        header: rtc::rtp::header::Header {
                            version: 2,
                            payload_type: 0,
                            sequence_number: self.seq,
                            timestamp: u32::from(self.seq) * 160,
                            ssrc: BROWSER_SSRC,
                            ..Default::default()
                        },
                        payload: vec![0x2a; FRAME].into(),
                    };
                    let mut sender = self.browser.rtp_sender(self.browser_sender).unwrap();
                    sender.write_rtp(self.now, packet).unwrap();
                    continue;
                }
                let browser_next = self.browser.poll_timeout().unwrap_or(end);
                let mut next = browser_next.min(self.phone.poll_timeout()).min(end);
                if self.talking {
                    next = next.min(next_talk);
                }
                self.now = next.max(self.now + Duration::from_micros(100));
                let _ = self.browser.handle_timeout(self.now);
                let t = Instant::now();
                self.phone.on_timeout(self.now);
                self.phone_time += t.elapsed();
            }
            self.exchange();
        }

        pub fn ring(&mut self, answer_timeout: Duration) -> UnboundedReceiver<LegEvent> {
            let (events, rx) = unbounded_channel();
            let leg = CallLeg {
                events,
                answer_timeout,
                max_queued_frames: None,
                media_timeout: Some(Duration::from_secs(2)),
            };
            self.phone
                .on_control(Control::Ring { call: 1, leg }, self.now);
            rx
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wire::*;
    use super::*;

    fn drain(rx: &mut UnboundedReceiver<LegEvent>) -> Vec<LegEvent> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn a_call_on_the_browser_phone_rings_is_answered_and_carries_audio_both_ways() {
        let mut wire = Wire::new();
        wire.run(Duration::from_secs(5));
        assert!(wire.phone.connected, "ICE and DTLS up on the phone");
        assert!(wire.phone.take_connected(), "announced once");
        assert!(wire.browser_connected, "and on the browser");

        let mut events = wire.ring(Duration::from_secs(20));
        assert_eq!(drain(&mut events), [LegEvent::Ringing(180)]);
        wire.run(Duration::from_millis(500));
        assert!(wire.heard.is_empty(), "nothing is sent before the answer");
        wire.phone.on_control(Control::Answer, wire.now);
        assert_eq!(drain(&mut events), [LegEvent::Answered]);

        // The caller's second of audio reaches the browser as 50 PCMU packets, paced.
        let tone: Vec<i16> = (0..8000).map(|i| ((i % 40) as i16 - 20) * 500).collect();
        let command = LegCommand::Audio(tone.clone());
        wire.phone
            .on_control(Control::Leg { call: 1, command }, wire.now);
        wire.talking = true;
        wire.run(Duration::from_millis(1500));
        assert_eq!(wire.heard.len(), 50, "one packet per 20 ms");
        assert!(wire.heard[0].header.marker, "a talk spurt starts");
        assert!(wire.heard.iter().all(|p| p.header.payload_type == 0));
        let first: Vec<i16> = Law::Ulaw.decode(&wire.heard[0].payload);
        assert_eq!(first, Law::Ulaw.decode(&Law::Ulaw.encode(&tone[..FRAME])));
        let stamps: Vec<u32> = wire.heard.iter().map(|p| p.header.timestamp).collect();
        assert!(stamps.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 160));

        // The browser's audio comes out of the leg, 20 ms at a time; the queue ran dry once.
        let got = drain(&mut events);
        let audio = got.iter().filter(|e| matches!(e, LegEvent::Audio(pcm, _) if pcm.len() == FRAME && pcm[0] == Law::Ulaw.decode_sample(0x2a))).count();
        assert!(audio >= 70, "{audio} frames from the browser");
        assert_eq!(
            got.iter()
                .filter(|e| matches!(e, LegEvent::Drained(_)))
                .count(),
            1
        );

        // The browser goes silent (its tab froze, its network dropped): reported once.
        wire.talking = false;
        wire.run(Duration::from_secs(3));
        let got = drain(&mut events);
        assert_eq!(got, [LegEvent::MediaStopped]);

        // The transfer hangs up: the call's end with its counts; the phone stays for the next.
        let command = LegCommand::Hangup;
        wire.phone
            .on_control(Control::Leg { call: 1, command }, wire.now);
        match drain(&mut events).as_slice() {
            [
                LegEvent::Ended {
                    sent: 50, received, ..
                },
            ] => assert!(*received >= 70),
            other => panic!("{other:?}"),
        }
        assert!(wire.phone.over().is_none());
    }

    #[test]
    fn a_ringing_call_ends_unanswered_declined_or_busy_and_a_closed_phone_fails_it() {
        let mut wire = Wire::new();
        wire.run(Duration::from_secs(5));
        assert!(wire.phone.connected);

        // Not answered in time: 408, as a SIP phone that rang out.
        let mut events = wire.ring(Duration::from_secs(3));
        wire.run(Duration::from_secs(4));
        match drain(&mut events).as_slice() {
            [
                LegEvent::Ringing(180),
                LegEvent::Failed { status: 408, .. },
                LegEvent::Ended { .. },
            ] => {}
            other => panic!("{other:?}"),
        }

        // Declined on the desk: 486; a second call while one rings: busy.
        let mut events = wire.ring(Duration::from_secs(20));
        let mut second = wire.ring(Duration::from_secs(20));
        match drain(&mut second).as_slice() {
            [LegEvent::Failed { status: 486, .. }, LegEvent::Ended { .. }] => {}
            other => panic!("{other:?}"),
        }
        wire.phone.on_control(Control::HangUp, wire.now);
        match drain(&mut events).as_slice() {
            [
                LegEvent::Ringing(180),
                LegEvent::Failed {
                    status: 486,
                    reason,
                },
                LegEvent::Ended { .. },
            ] => {
                assert!(reason.contains("declined"))
            }
            other => panic!("{other:?}"),
        }

        // The agent leaves the desk while a call rings: it fails (480), the phone is over.
        let mut events = wire.ring(Duration::from_secs(20));
        wire.phone.on_control(Control::Close, wire.now);
        wire.phone.pump(wire.now);
        match drain(&mut events).as_slice() {
            [
                LegEvent::Ringing(180),
                LegEvent::Failed { status: 480, .. },
                LegEvent::Ended { .. },
            ] => {}
            other => panic!("{other:?}"),
        }
        assert!(wire.phone.over().is_some());
    }

    #[test]
    fn garbage_is_not_an_offer() {
        let phone: SocketAddr = PHONE.parse().unwrap();
        for offer in ["", "v=0\r\nnot an offer", "\u{1}\u{2}"] {
            assert!(matches!(
                answer(offer, phone, 1, Instant::now()),
                Err(WebPhoneError::BadOffer(_))
            ));
        }
    }
}
