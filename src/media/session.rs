//! One call's RTP stream, sans-IO (RFC 3550): datagrams in with their source and `now`;
//! datagrams to send, the next deadline and media events out. No sockets, no clock, no
//! threads: the driver (`net::media`) owns those, and feeds the session
//!
//! ```text
//!   handle_rtp(bytes, from, now) ──┐          ┌─▶ poll_transmit(buf) -> (socket, to)
//!   handle_rtcp(bytes, from, now) ─┼─▶ RtpSession ─▶ poll_event() -> Audio | Digit | PlayedOut | Inactive
//!   handle_timeout(now) ───────────┤          └─▶ poll_timeout() -> the next 20 ms tick
//!   play / mark / send_digit / flush / update
//! ```
//!
//! The caller's call (with RTCP and the jitter buffer) and outgoing legs (the agent's phone,
//! the test caller) run on the same session with different `SessionConfig`s.
//!
//! - **Pacing** is a timer: tick n is due at `start + n * 20 ms` exactly, so the schedule never
//!   drifts; one packet per tick (timestamp +160, sequence +1, marker on the first, RFC 3550
//!   5.1). Timestamps advance with the clock even while nothing is sent (hold, not latched).
//!   A driver late by a few ticks sends them at once (the peer's jitter buffer absorbs it); a
//!   driver stalled for more than `MAX_BURST` ticks skips the stale ones rather than flood.
//! - **Safety**: media goes only where it is safe. With a `signalling_ip`, immediately if the
//!   SDP address is that IP, otherwise only after RTP arrived from the SDP address (latching):
//!   an INVITE cannot aim our RTP at a third party (a reflection attack). Receiving is strict:
//!   only packets from the SDP address are used (no "RTP bleed"); RTCP from its IP.
//! - **Receiving**: with a jitter buffer, one frame of the far end's audio per tick (reordered,
//!   losses concealed, silence when nothing came: time passes for the endpointer too); or
//!   each packet's audio as it arrives, stamped with its arrival (for latency measurements).
//! - **Keypad**: RFC 4733 events at the negotiated payload type, or in-band tones (Goertzel).
//!   Digits to send are queued behind the audio before them.
//! - **RTCP** (RFC 3550 6.2): a report with our CNAME every 5 s randomised to 2.5-7.5 s, to the
//!   peer's RTP port + 1; SR/RR with one report block (LSR/DLSR from the peer's SRs).
//! - **Inactivity**: no RTP for `inactivity` raises `Inactive` (again after as long).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::dtmf::{self, EventReceiver, ToneDetector};
use super::g711::Law;
use super::jitter::{JitterBuffer, Playout};
use super::rtcp::{self, ReceptionStats, RtcpPacket, SenderInfo};
use super::rtp::RtpPacket;
use super::srtp;
use super::timing::SendTiming;
use crate::sip::sdp::{Direction, Negotiated, PT_PCMA};

/// Samples per 20 ms packet at 8 kHz.
pub const FRAME: usize = 160;
/// The packet time.
pub const PTIME: Duration = Duration::from_millis(20);
/// Ticks a late driver may still send at once; older ticks are skipped.
const MAX_BURST: u32 = 5;
/// The mean RTCP report interval (RFC 3550 6.2 minimum).
const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// RFC 4733 event length for a digit we send, and its volume (dBm0 below 0).
const DIGIT_MS: u32 = 100;
const DIGIT_VOLUME: u8 = 10;

/// How received audio is handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receive {
    /// Through a jitter buffer of this many frames, one `Audio` event per tick (silence when
    /// the stream pauses): the caller's side of a call, where time must keep passing.
    JitterBuffer(usize),
    /// Every packet's audio as it arrives, stamped with its arrival: the test caller measures
    /// latency on it; a bridge relays it.
    Immediate,
}

/// How one session behaves.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our SSRC (RFC 3550 5.1 wants it random; the driver picks it).
    pub ssrc: u32,
    /// Our RTCP CNAME (`voxnav@ip`).
    pub cname: String,
    /// The IP the call's signalling came from: media to another SDP address waits for
    /// latching. None trusts the SDP (a call we placed ourselves).
    pub signalling_ip: Option<IpAddr>,
    pub receive: Receive,
    /// Hand received audio over as `Audio` events (off: it is still played out of the jitter
    /// buffer, counted and searched for keypad tones; the built-in test behaviour).
    pub deliver_audio: bool,
    /// Send and receive RTCP.
    pub rtcp: bool,
    /// Raise `Inactive` after this long without RTP.
    pub inactivity: Option<Duration>,
    /// Keep at most this many frames of audio queued, dropping the oldest (a bridge keeps
    /// its delay low); None queues everything.
    pub max_queued_frames: Option<usize>,
    /// Look for keypad tones in the received audio (trunks that send DTMF in-band).
    pub inband_dtmf: bool,
}

impl SessionConfig {
    /// The caller's side of an answered call: jitter buffer of two frames (40 ms), RTCP,
    /// 60 s inactivity, in-band DTMF, latching against the signalling IP.
    pub fn answered_call(ssrc: u32, cname: String, signalling_ip: IpAddr) -> Self {
        Self {
            ssrc,
            cname,
            signalling_ip: Some(signalling_ip),
            receive: Receive::JitterBuffer(2),
            deliver_audio: true,
            rtcp: true,
            inactivity: Some(Duration::from_secs(60)),
            max_queued_frames: None,
            inband_dtmf: true,
        }
    }

    /// A call we placed (agent leg, test caller): no RTCP, audio as it arrives.
    pub fn placed_call(ssrc: u32, max_queued_frames: Option<usize>) -> Self {
        Self {
            ssrc,
            cname: String::new(),
            signalling_ip: None,
            receive: Receive::Immediate,
            deliver_audio: true,
            rtcp: false,
            inactivity: None,
            max_queued_frames,
            inband_dtmf: false,
        }
    }
}

/// Which of the call's two sockets a datagram leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Socket {
    Rtp,
    Rtcp,
}

/// A datagram to send: its bytes were written into the buffer given to `poll_transmit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub socket: Socket,
    pub to: SocketAddr,
}

/// What happened on the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// 20 ms of the far end's audio: at playout (jitter buffer) or on arrival (`Immediate`).
    Audio { pcm: Vec<i16>, at: Instant },
    /// A keypad digit (RFC 4733 or in-band).
    Digit(char),
    /// Everything queued before `mark` has been sent; `at` is when its last audio left.
    PlayedOut { mark: u64, at: Instant },
    /// No RTP for the inactivity time.
    Inactive,
}

/// Counters reported when a call's media ends (tests and load benchmarks read them).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MediaCounters {
    pub sent: u64,
    pub received: u64,
    pub foreign: u64,
    /// Frames played out of the jitter buffer, and frames concealed (lost or too late).
    pub played: u64,
    pub concealed: u64,
    /// RTP packets from the far end that never arrived (RFC 3550 A.3).
    pub lost: u64,
    /// RTCP reports sent and received.
    pub rtcp_sent: u64,
    pub rtcp_received: u64,
    /// Gap between consecutive RTP sends vs 20 ms: p50 and p99 deviation in microseconds,
    /// and how many gaps deviated by more than 2 ms.
    pub gap_p50_us: u64,
    pub gap_p99_us: u64,
    pub gaps_over_2ms: u64,
    /// Ticks skipped because the driver was stalled past `MAX_BURST`.
    pub skipped: u64,
    /// SRTP/SRTCP packets refused: a tag that does not match (a wrong key, an altered
    /// packet) or a replay. They are never decoded.
    pub srtp_rejected: u64,
    pub digits: String,
}

impl std::fmt::Display for MediaCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tests read these words; `digits` stays last.
        write!(
            f,
            "sent {} received {} foreign {} played {} concealed {} rtcp_sent {} rtcp_received {} \
             gap_p50_us {} gap_p99_us {} gaps_over_2ms {} skipped {} srtp_rejected {} digits {:?}",
            self.sent,
            self.received,
            self.foreign,
            self.played,
            self.concealed,
            self.rtcp_sent,
            self.rtcp_received,
            self.gap_p50_us,
            self.gap_p99_us,
            self.gaps_over_2ms,
            self.skipped,
            self.srtp_rejected,
            self.digits
        )
    }
}

/// Something placed in the send queue at a sample position.
#[derive(Debug, Clone, Copy)]
enum Cue {
    Digit(char),
    Mark(u64),
}

/// The session.
#[derive(Debug)]
pub struct RtpSession {
    config: SessionConfig,
    media: Option<Negotiated>,
    /// RTP came from the SDP address: it wants our media.
    latched: bool,
    started: Instant,
    /// The next send tick.
    next_tick: Instant,
    sequence: u16,
    timestamp: u32,
    first_packet: bool,
    /// Audio to send, and what is due at which sample (positions count every sample ever
    /// queued, so cues survive the audio before them being sent).
    audio: VecDeque<i16>,
    cues: VecDeque<(u64, Cue)>,
    /// Samples queued so far, and sent (or dropped) so far.
    queued_total: u64,
    sent_total: u64,
    /// The RFC 4733 packets of the digit being sent, and its timestamp.
    digit_packets: VecDeque<(bool, [u8; 4])>,
    digit_timestamp: u32,
    /// When the last frame carrying queued audio left.
    last_audio_sent: Option<Instant>,
    /// Playback held: silence goes out, the queue waits (a possible barge-in).
    paused: bool,
    events: VecDeque<MediaEvent>,
    /// Datagrams built, waiting for `poll_transmit`, and their spare buffers.
    transmits: VecDeque<(Transmit, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
    jitter: JitterBuffer,
    event_receiver: EventReceiver,
    inband: ToneDetector,
    reception: ReceptionStats,
    timing: SendTiming,
    last_send: Option<Instant>,
    last_heard: Instant,
    next_report: Instant,
    counters: MediaCounters,
    /// Reused for decoding.
    pcm: Vec<i16>,
    pcm_f32: Vec<f32>,
    /// SRTP contexts when the stream is `RTP/SAVP`: ours protects what we send, the far
    /// end's checks what arrives.
    srtp: Option<(srtp::Outbound, srtp::Inbound)>,
}

/// The SRTP contexts of a negotiated stream, if it is secured.
fn srtp_of(media: Option<&Negotiated>) -> Option<(srtp::Outbound, srtp::Inbound)> {
    let keys = media?.srtp.as_ref()?;
    Some((
        srtp::Outbound::new(&keys.local),
        srtp::Inbound::new(&keys.remote),
    ))
}

impl RtpSession {
    /// A session whose first tick is due at `now`. `media` may come later (`update`).
    pub fn new(config: SessionConfig, media: Option<Negotiated>, now: Instant) -> Self {
        let ssrc = config.ssrc;
        let depth = match config.receive {
            Receive::JitterBuffer(d) => d,
            _ => 1,
        };
        Self {
            srtp: srtp_of(media.as_ref()),
            media,
            latched: false,
            started: now,
            next_tick: now,
            sequence: (ssrc >> 16) as u16,
            timestamp: ssrc.rotate_left(7),
            first_packet: true,
            audio: VecDeque::new(),
            cues: VecDeque::new(),
            queued_total: 0,
            sent_total: 0,
            digit_packets: VecDeque::new(),
            digit_timestamp: 0,
            last_audio_sent: None,
            paused: false,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            spare: Vec::new(),
            jitter: JitterBuffer::new(depth),
            event_receiver: EventReceiver::default(),
            inband: ToneDetector::default(),
            reception: ReceptionStats::default(),
            timing: SendTiming::new(PTIME),
            last_send: None,
            last_heard: now,
            next_report: now + rtcp_interval(ssrc),
            counters: MediaCounters::default(),
            pcm: Vec::with_capacity(FRAME),
            pcm_f32: Vec::with_capacity(FRAME),
            config,
        }
    }

    /// A new offer/answer (hold, resume, the answer in the ACK or the 200).
    pub fn update(&mut self, media: Negotiated) {
        if self.media.as_ref().map(|m| m.remote) != Some(media.remote) {
            self.latched = false; // a new address must prove itself again
        }
        // New keys (or none) start new contexts; the same keys keep their counters.
        if self.media.as_ref().map(|m| &m.srtp) != Some(&media.srtp) {
            self.srtp = srtp_of(Some(&media));
        }
        self.media = Some(media);
    }

    /// The negotiated stream, if known.
    pub fn media(&self) -> Option<&Negotiated> {
        self.media.as_ref()
    }

    /// Queues audio to send (8 kHz), after what is already queued.
    pub fn play(&mut self, pcm: &[i16]) {
        self.audio.extend(pcm.iter().copied());
        self.queued_total += pcm.len() as u64;
        if let Some(max) = self.config.max_queued_frames {
            let excess = self.audio.len().saturating_sub(max * FRAME);
            if excess > 0 {
                self.audio.drain(..excess);
                self.sent_total += excess as u64;
                self.fire_cues(None);
            }
        }
    }

    /// A mark after the audio queued so far: `PlayedOut { mark }` is raised once it has all
    /// been sent (at once if nothing is queued).
    pub fn mark(&mut self, mark: u64) {
        self.cues.push_back((self.queued_total, Cue::Mark(mark)));
        self.fire_cues(self.last_audio_sent);
    }

    /// A keypad digit, sent as RFC 4733 events once the audio queued before it has gone
    /// (dropped without a negotiated telephone-event type).
    pub fn send_digit(&mut self, digit: char) {
        self.cues.push_back((self.queued_total, Cue::Digit(digit)));
    }

    /// Drops everything queued (barge-in): audio, digits and marks not yet reached; playback
    /// is no longer held.
    pub fn flush(&mut self) {
        self.paused = false;
        self.sent_total += self.audio.len() as u64;
        self.audio.clear();
        self.cues.clear();
        self.digit_packets.clear();
        self.queued_total = self.sent_total;
    }

    /// Holds or resumes playback: while held, silence is sent and the queue (with its marks
    /// and digits) waits where it is.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Samples queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.audio.len()
    }

    /// The next tick.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// Runs every tick due by `now`: playout, a packet out, RTCP, inactivity.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = 0u32;
        while self.next_tick <= now {
            due += 1;
            self.next_tick += PTIME;
        }
        for i in 0..due {
            let skip = due - i > MAX_BURST;
            self.tick(now, skip);
        }
    }

    fn may_send(&self) -> Option<SocketAddr> {
        let m = self.media.as_ref()?;
        let remote = m.remote?;
        let direction_ok = matches!(m.direction, Direction::SendRecv | Direction::SendOnly);
        let safe = match self.config.signalling_ip {
            None => true,
            Some(ip) => self.latched || remote.ip() == ip,
        };
        (direction_ok && safe).then_some(remote)
    }

    fn law(&self) -> Law {
        match self.media.as_ref() {
            Some(m) if m.codec_pt == PT_PCMA => Law::Alaw,
            _ => Law::Ulaw,
        }
    }

    /// The far end is meant to send all the time: the stream is not on hold. A peer that
    /// holds the call (RFC 3264 section 8.4: `sendonly` or `inactive` from them) often sends
    /// nothing, which is no sign of a vanished peer.
    fn expects_rtp(&self) -> bool {
        (self.media.as_ref()).is_none_or(|m| m.direction == Direction::SendRecv)
    }

    fn tick(&mut self, now: Instant, skip: bool) {
        if !self.expects_rtp() {
            self.last_heard = now;
        }
        if self
            .config
            .inactivity
            .is_some_and(|limit| now.saturating_duration_since(self.last_heard) > limit)
        {
            self.events.push_back(MediaEvent::Inactive);
            self.last_heard = now;
        }
        if let Receive::JitterBuffer(_) = self.config.receive {
            self.playout(now);
        }
        if self.media.is_some() {
            if skip {
                self.counters.skipped += 1;
                self.take_frame(&mut [0; FRAME]);
                self.last_send = None;
            } else {
                self.send_frame(now);
            }
            if self.config.rtcp && now >= self.next_report {
                self.next_report = now + rtcp_interval(self.config.ssrc ^ self.sequence as u32);
                self.send_report(now);
            }
        }
        // Timestamps advance with the clock even while silent or on hold (RFC 3550 5.1).
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
    }

    /// One frame of the far end's audio out of the jitter buffer.
    fn playout(&mut self, now: Instant) {
        let mut pcm = std::mem::take(&mut self.pcm);
        pcm.clear();
        let heard = match self.jitter.pop() {
            Playout::Frame(p) | Playout::Concealed(p) => {
                pcm.extend_from_slice(p);
                true
            }
            // No packet this tick (end of a talk spurt, silence suppression): time still
            // passes for whoever listens, as silence.
            Playout::Empty => false,
        };
        pcm.resize(FRAME, 0);
        if heard && self.config.inband_dtmf {
            self.detect_inband(&pcm);
        }
        if self.config.deliver_audio {
            self.events.push_back(MediaEvent::Audio {
                pcm: pcm.clone(),
                at: now,
            });
        }
        self.pcm = pcm;
    }

    fn detect_inband(&mut self, pcm: &[i16]) {
        self.pcm_f32.clear();
        self.pcm_f32
            .extend(pcm.iter().map(|&s| s as f32 / 32_768.0));
        if let Some(d) = self.inband.feed(&self.pcm_f32).into_iter().next() {
            self.digit_heard(d);
        }
    }

    fn digit_heard(&mut self, digit: char) {
        self.counters.digits.push(digit);
        self.events.push_back(MediaEvent::Digit(digit));
    }

    /// Takes the next frame's worth of queued audio into `frame` (zeros past the end);
    /// true if any queued audio was in it. Stops at a digit cue.
    fn take_frame(&mut self, frame: &mut [i16; FRAME]) -> bool {
        if self.paused {
            frame.fill(0);
            return false;
        }
        let limit = self
            .cues
            .iter()
            .find(|(_, c)| matches!(c, Cue::Digit(_)))
            .map_or(u64::MAX, |(at, _)| *at);
        let room = (limit.saturating_sub(self.sent_total) as usize).min(FRAME);
        let n = room.min(self.audio.len());
        for (slot, sample) in frame.iter_mut().zip(self.audio.drain(..n)) {
            *slot = sample;
        }
        frame[n..].fill(0);
        self.sent_total += n as u64;
        n > 0
    }

    /// Raises the marks reached and starts a digit that is due.
    fn fire_cues(&mut self, last_audio: Option<Instant>) {
        while let Some(&(at, cue)) = self.cues.front() {
            // A digit being sent holds back everything queued after it.
            if at > self.sent_total || !self.digit_packets.is_empty() {
                return;
            }
            match cue {
                Cue::Mark(mark) => {
                    self.cues.pop_front();
                    // Nothing of it ever left (flushed or empty): it is played out now.
                    let at = last_audio.unwrap_or(self.started);
                    self.events.push_back(MediaEvent::PlayedOut { mark, at });
                }
                Cue::Digit(d) => {
                    self.cues.pop_front();
                    if self.media.as_ref().is_some_and(|m| m.dtmf_pt.is_some()) {
                        self.digit_packets
                            .extend(dtmf::event_packets(d, DIGIT_MS, DIGIT_VOLUME));
                        self.digit_timestamp = self.timestamp;
                    }
                }
            }
        }
    }

    fn buffer(&mut self) -> Vec<u8> {
        let mut b = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(12 + FRAME));
        b.clear();
        b
    }

    fn send_frame(&mut self, now: Instant) {
        let remote = self.may_send();
        let Some(m) = self.media.as_ref() else { return };
        let (codec_pt, dtmf_pt) = (m.codec_pt, m.dtmf_pt);
        let mut packet = self.buffer();
        // Whether this packet carries what was queued (audio, or a digit's events).
        let had_audio = match (dtmf_pt, self.digit_packets.pop_front()) {
            (Some(pt), Some((marker, payload))) => {
                RtpPacket {
                    marker,
                    payload_type: pt,
                    sequence: self.sequence,
                    timestamp: self.digit_timestamp,
                    ssrc: self.config.ssrc,
                    payload: &payload,
                }
                .write_to(&mut packet);
                true
            }
            _ => {
                let mut frame = [0i16; FRAME];
                let had_audio = self.take_frame(&mut frame);
                RtpPacket {
                    marker: self.first_packet,
                    payload_type: codec_pt,
                    sequence: self.sequence,
                    timestamp: self.timestamp,
                    ssrc: self.config.ssrc,
                    payload: &[],
                }
                .write_to(&mut packet);
                self.law().encode_into(&frame, &mut packet);
                had_audio
            }
        };
        if had_audio {
            self.last_audio_sent = Some(now);
        }
        self.fire_cues(self.last_audio_sent);
        match remote {
            Some(to) => {
                self.first_packet = false;
                self.counters.sent += 1;
                if let Some(last) = self.last_send {
                    self.timing.record(now.saturating_duration_since(last));
                }
                self.last_send = Some(now);
                let t = Transmit {
                    socket: Socket::Rtp,
                    to,
                };
                self.transmits.push_back((t, packet));
            }
            None => {
                // On hold or not yet latched: nothing leaves, no gap to measure.
                self.last_send = None;
                self.spare.push(packet);
            }
        }
    }

    fn send_report(&mut self, now: Instant) {
        let Some(remote) = self.may_send() else {
            return;
        };
        let sender = (self.counters.sent > 0).then(|| SenderInfo {
            ntp: rtcp::ntp_time(std::time::SystemTime::now()),
            rtp_timestamp: self.timestamp,
            packets: self.counters.sent as u32,
            octets: (self.counters.sent * FRAME as u64) as u32,
        });
        let elapsed = now.saturating_duration_since(self.started).as_millis() as u64;
        let block = self.reception.report(elapsed);
        let mut out = self.buffer();
        rtcp::build_report(
            self.config.ssrc,
            sender,
            block,
            &self.config.cname,
            &mut out,
        );
        let to = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
        self.counters.rtcp_sent += 1;
        self.transmits.push_back((
            Transmit {
                socket: Socket::Rtcp,
                to,
            },
            out,
        ));
    }

    /// An RTP datagram that arrived from `from`.
    pub fn handle_rtp(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        let Some(m) = self.media.as_ref() else {
            return;
        };
        // Strict source: only the address SDP named (prevents RTP injection / bleed).
        if m.remote != Some(from) {
            self.counters.foreign += 1;
            return;
        }
        let (codec_pt, dtmf_pt) = (m.codec_pt, m.dtmf_pt);
        let Some(bytes) = self.unseal(bytes, Socket::Rtp) else {
            return;
        };
        let Ok(packet) = RtpPacket::parse(&bytes) else {
            return;
        };
        self.counters.received += 1;
        self.latched = true;
        self.last_heard = now;
        // Arrival in timestamp units (8 kHz) for the interarrival jitter (RFC 3550 A.8).
        let arrival = (now.saturating_duration_since(self.started).as_micros() / 125) as u32;
        self.reception
            .on_rtp(packet.ssrc, packet.sequence, packet.timestamp, arrival);
        if Some(packet.payload_type) == dtmf_pt {
            if let Some(d) = self
                .event_receiver
                .on_packet(packet.timestamp, packet.payload)
            {
                self.digit_heard(d);
            }
            return;
        }
        if packet.payload_type != codec_pt {
            return;
        }
        let law = self.law();
        self.pcm.clear();
        self.pcm
            .extend(packet.payload.iter().map(|&b| law.decode_sample(b)));
        match self.config.receive {
            Receive::JitterBuffer(_) => self.jitter.push(packet.sequence, &self.pcm),
            Receive::Immediate => {
                let pcm = self.pcm.clone();
                if self.config.inband_dtmf {
                    self.detect_inband(&pcm);
                }
                if self.config.deliver_audio {
                    self.events.push_back(MediaEvent::Audio { pcm, at: now });
                }
            }
        }
    }

    /// A datagram as it arrived, checked and decrypted when the stream is SRTP; None (and
    /// counted) if SRTP refused it.
    fn unseal<'a>(&mut self, bytes: &'a [u8], socket: Socket) -> Option<Cow<'a, [u8]>> {
        let Some((_, inbound)) = self.srtp.as_mut() else {
            return Some(Cow::Borrowed(bytes));
        };
        let opened = match socket {
            Socket::Rtp => inbound.unprotect_rtp(bytes),
            Socket::Rtcp => inbound.unprotect_rtcp(bytes),
        };
        match opened {
            Ok(plain) => Some(Cow::Owned(plain)),
            Err(_) => {
                self.counters.srtp_rejected += 1;
                None
            }
        }
    }

    /// An RTCP datagram that arrived from `from`.
    pub fn handle_rtcp(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        let Some(m) = self.media.as_ref() else {
            return;
        };
        if m.remote.map(|r| r.ip()) != Some(from.ip()) {
            self.counters.foreign += 1;
            return;
        }
        let Some(bytes) = self.unseal(bytes, Socket::Rtcp) else {
            return;
        };
        let Ok(packets) = rtcp::parse(&bytes) else {
            return;
        };
        self.counters.rtcp_received += 1;
        let elapsed = now.saturating_duration_since(self.started).as_millis() as u64;
        for p in packets {
            if let RtcpPacket::SenderReport { ntp, .. } = p {
                self.reception.on_sender_report(ntp, elapsed);
            }
        }
    }

    /// A digit that came another way (SIP INFO): reported like one from the stream.
    pub fn handle_signalled_digit(&mut self, digit: char) {
        self.digit_heard(digit);
    }

    /// The next datagram to send: its bytes replace `buf`'s contents.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        let (t, mut bytes) = self.transmits.pop_front()?;
        std::mem::swap(buf, &mut bytes);
        bytes.clear();
        self.spare.push(bytes);
        // Encrypted last, as it leaves: everything before works on plain packets.
        if let Some((outbound, _)) = self.srtp.as_mut() {
            let sealed = match t.socket {
                Socket::Rtp => outbound.protect_rtp(buf),
                Socket::Rtcp => outbound.protect_rtcp(buf),
            };
            // Only a packet too short to be RTP fails, and none is built that short.
            debug_assert!(sealed.is_ok(), "{sealed:?}");
        }
        Some(t)
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// The counters so far, with the send timing and reception figures filled in.
    pub fn counters(&self) -> MediaCounters {
        let mut c = self.counters.clone();
        c.gap_p50_us = self.timing.quantile(0.5).as_micros() as u64;
        c.gap_p99_us = self.timing.quantile(0.99).as_micros() as u64;
        c.gaps_over_2ms = self.timing.outside(Duration::from_millis(2));
        c.played = self.jitter.stats.played;
        c.concealed = self.jitter.stats.concealed;
        c.lost = self.reception.lost();
        c
    }
}

/// The next RTCP interval: 5 s randomised to 2.5-7.5 s (RFC 3550 6.2, 6.3.1).
fn rtcp_interval(seed: u32) -> Duration {
    let spread = seed.wrapping_mul(2_654_435_761) % 1000;
    RTCP_INTERVAL / 2 + RTCP_INTERVAL * spread / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::PT_PCMU;

    fn media(remote: &str) -> Negotiated {
        Negotiated {
            remote: Some(remote.parse().unwrap()),
            codec_pt: PT_PCMU,
            dtmf_pt: Some(101),
            direction: Direction::SendRecv,
            media_index: 0,
            srtp: None,
        }
    }

    fn drain(s: &mut RtpSession) -> Vec<(Transmit, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(t) = s.poll_transmit(&mut buf) {
            out.push((t, buf.clone()));
        }
        out
    }

    fn events(s: &mut RtpSession) -> Vec<MediaEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn rtp(seq: u16, ts: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
        RtpPacket {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc: 7,
            payload,
        }
        .to_bytes()
    }

    #[test]
    fn paces_one_packet_per_tick_on_a_schedule_that_never_drifts() {
        let t0 = Instant::now();
        let config =
            SessionConfig::answered_call(42, "voxnav@test".into(), "192.0.2.1".parse().unwrap());
        let mut s = RtpSession::new(config, Some(media("192.0.2.1:4000")), t0);
        s.play(&[1000; FRAME * 3]);
        let mut sent = Vec::new();
        // A driver that wakes a little late every time: the schedule stays on 20 ms steps.
        for n in 0..10u32 {
            let now = t0 + PTIME * n + Duration::from_micros(300);
            assert!(s.poll_timeout() <= now);
            s.handle_timeout(now);
            assert_eq!(s.poll_timeout(), t0 + PTIME * (n + 1), "no drift");
            sent.extend(drain(&mut s));
        }
        let rtp: Vec<RtpPacket> = sent
            .iter()
            .filter(|(t, _)| t.socket == Socket::Rtp)
            .map(|(_, b)| RtpPacket::parse(b).unwrap())
            .collect::<Vec<_>>()
            .into_iter()
            .map(|p| RtpPacket { payload: &[], ..p })
            .collect();
        assert_eq!(rtp.len(), 10);
        assert!(rtp[0].marker && !rtp[1].marker);
        for w in rtp.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
            assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(160));
        }
        assert_eq!(s.counters().gap_p99_us, 100, "every gap exactly 20 ms");
    }

    #[test]
    fn a_stalled_driver_sends_a_short_burst_and_skips_the_rest() {
        let t0 = Instant::now();
        let config = SessionConfig::placed_call(1, None);
        let mut s = RtpSession::new(config, Some(media("192.0.2.1:4000")), t0);
        s.handle_timeout(t0);
        drain(&mut s);
        s.handle_timeout(t0 + PTIME * 20); // 20 ticks late
        assert_eq!(drain(&mut s).len(), MAX_BURST as usize);
        assert_eq!(s.counters().skipped, 15);
        assert_eq!(s.poll_timeout(), t0 + PTIME * 21);
    }

    #[test]
    fn media_to_a_third_party_waits_for_latching_and_receiving_is_strict() {
        let t0 = Instant::now();
        // The INVITE came from 192.0.2.1 but its SDP names 198.51.100.7.
        let config = SessionConfig::answered_call(5, "c".into(), "192.0.2.1".parse().unwrap());
        let mut s = RtpSession::new(config, Some(media("198.51.100.7:5000")), t0);
        s.handle_timeout(t0);
        assert!(drain(&mut s).is_empty(), "not latched: nothing sent");
        // A packet from elsewhere neither latches nor plays.
        s.handle_rtp(
            &rtp(1, 160, 0, &[0xff; 160]),
            "203.0.113.9:5000".parse().unwrap(),
            t0,
        );
        assert_eq!(s.counters().foreign, 1);
        s.handle_timeout(t0 + PTIME);
        assert!(drain(&mut s).is_empty());
        // RTP from the SDP address proves it wants our media.
        s.handle_rtp(
            &rtp(2, 320, 0, &[0xff; 160]),
            "198.51.100.7:5000".parse().unwrap(),
            t0,
        );
        s.handle_timeout(t0 + PTIME * 2);
        let sent = drain(&mut s);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].0.to,
            "198.51.100.7:5000".parse::<std::net::SocketAddr>().unwrap()
        );
    }

    /// SRTP both ways between two sessions (what one sends the other plays), and a third
    /// with the wrong key: its packets are refused and counted, nothing is played from them.
    #[test]
    fn srtp_sessions_hear_each_other_and_a_wrong_key_gives_counted_silence() {
        use crate::media::srtp::MasterKey;
        use crate::sip::sdp::Sdes;
        let t0 = Instant::now();
        let (ka, kb) = (MasterKey::random().unwrap(), MasterKey::random().unwrap());
        let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
            "192.0.2.1:4000".parse().unwrap(),
            "192.0.2.2:5000".parse().unwrap(),
        );
        let secured = |remote: SocketAddr, local: &MasterKey, theirs: &MasterKey| Negotiated {
            srtp: Some(Sdes {
                tag: 1,
                remote: theirs.clone(),
                local: local.clone(),
            }),
            ..media(&remote.to_string())
        };
        // Media from the address that signalled: sent at once, no latching to wait for.
        let config =
            |ssrc, peer: SocketAddr| SessionConfig::answered_call(ssrc, "c".into(), peer.ip());
        let mut a = RtpSession::new(config(1, b_addr), Some(secured(b_addr, &ka, &kb)), t0);
        let mut b = RtpSession::new(config(2, a_addr), Some(secured(a_addr, &kb, &ka)), t0);
        let wrong = MasterKey::random().unwrap();
        let mut c = RtpSession::new(config(3, a_addr), Some(secured(a_addr, &kb, &wrong)), t0);
        a.play(&[6000; FRAME * 3]);
        b.play(&[-6000; FRAME * 3]);
        let (mut a_heard, mut b_heard, mut c_heard) = (0, 0, 0);
        let loud = |events: Vec<MediaEvent>| {
            (events.into_iter())
                .filter(|e| matches!(e, MediaEvent::Audio { pcm, .. } if pcm.iter().all(|s| s.abs() > 4000)))
                .count()
        };
        for n in 0..8u32 {
            let now = t0 + PTIME * n;
            for s in [&mut a, &mut b, &mut c] {
                s.handle_timeout(now);
            }
            for (t, bytes) in drain(&mut a) {
                if t.socket == Socket::Rtp {
                    assert_eq!(bytes.len(), 12 + FRAME + 10, "sealed with an 80-bit tag");
                    b.handle_rtp(&bytes, a_addr, now);
                    c.handle_rtp(&bytes, a_addr, now);
                }
            }
            for (t, bytes) in drain(&mut b) {
                if t.socket == Socket::Rtp {
                    a.handle_rtp(&bytes, b_addr, now);
                }
            }
            drain(&mut c);
            a_heard += loud(events(&mut a));
            b_heard += loud(events(&mut b));
            c_heard += loud(events(&mut c));
        }
        assert!(a_heard >= 2 && b_heard >= 2, "{a_heard} / {b_heard}");
        assert_eq!(c_heard, 0, "nothing decoded under the wrong key");
        assert!(
            c.counters().srtp_rejected >= 3,
            "{}",
            c.counters().srtp_rejected
        );
        assert_eq!(b.counters().srtp_rejected, 0);
    }

    #[test]
    fn playout_is_one_frame_per_tick_with_silence_when_the_stream_pauses() {
        let t0 = Instant::now();
        let config = SessionConfig::answered_call(5, "c".into(), "192.0.2.1".parse().unwrap());
        let from: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let mut s = RtpSession::new(config, Some(media("192.0.2.1:4000")), t0);
        // Two frames arrive out of order, then nothing.
        s.handle_rtp(&rtp(11, 320, 0, &[0x80; 160]), from, t0);
        s.handle_rtp(&rtp(10, 160, 0, &[0x90; 160]), from, t0);
        let mut audio = Vec::new();
        for n in 0..4u32 {
            s.handle_timeout(t0 + PTIME * n);
            for e in events(&mut s) {
                if let MediaEvent::Audio { pcm, .. } = e {
                    audio.push(pcm[0]);
                }
            }
        }
        assert_eq!(audio.len(), 4, "one frame per tick");
        assert_eq!(audio[0], Law::Ulaw.decode_sample(0x90), "in order");
        assert_eq!(audio[1], Law::Ulaw.decode_sample(0x80));
        assert_eq!(&audio[2..], &[0, 0], "silence after the stream paused");
    }

    #[test]
    fn marks_report_when_the_audio_before_them_has_gone_and_digits_wait_their_turn() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(
            SessionConfig::placed_call(9, None),
            Some(media("192.0.2.1:4000")),
            t0,
        );
        s.play(&[500; FRAME + 80]); // a frame and a half
        s.mark(1);
        s.send_digit('5');
        s.mark(2);
        let mut log = Vec::new();
        for n in 0..12u32 {
            let now = t0 + PTIME * n;
            s.handle_timeout(now);
            for (_, bytes) in drain(&mut s) {
                let p = RtpPacket::parse(&bytes).unwrap();
                log.push(if p.payload_type == 101 {
                    "event"
                } else {
                    "audio"
                });
            }
            for e in events(&mut s) {
                if let MediaEvent::PlayedOut { mark, at } = e {
                    log.push(if mark == 1 { "mark1" } else { "mark2" });
                    if mark == 1 {
                        assert_eq!(at, t0 + PTIME, "when its last audio left");
                    }
                }
            }
        }
        // Two audio packets, mark 1; then the digit's events (5 updates + 3 ends), mark 2.
        assert_eq!(&log[..3], &["audio", "audio", "mark1"]);
        let events_sent = log.iter().filter(|l| **l == "event").count();
        assert_eq!(
            events_sent,
            dtmf::event_packets('5', DIGIT_MS, DIGIT_VOLUME).len(),
            "{log:?}"
        );
        assert_eq!(log[3 + events_sent], "mark2", "after the digit: {log:?}");
        assert!(log.contains(&"mark2"));
        // A mark with nothing queued is reported at once; a flush drops marks not reached.
        s.mark(3);
        assert!(matches!(
            s.poll_event(),
            Some(MediaEvent::PlayedOut { mark: 3, .. })
        ));
        s.play(&[1; FRAME * 10]);
        s.mark(4);
        s.set_paused(true);
        s.handle_timeout(t0 + PTIME * 12);
        drain(&mut s);
        assert_eq!(s.queued(), FRAME * 10, "held: nothing taken from the queue");
        s.set_paused(false);
        s.flush();
        assert_eq!(s.queued(), 0);
        s.handle_timeout(t0 + PTIME * 12);
        drain(&mut s);
        assert!(
            events(&mut s)
                .iter()
                .all(|e| !matches!(e, MediaEvent::PlayedOut { .. }))
        );
    }

    #[test]
    fn rfc4733_digits_in_and_inactivity() {
        let t0 = Instant::now();
        let config = SessionConfig::answered_call(5, "c".into(), "192.0.2.1".parse().unwrap());
        let from: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let mut s = RtpSession::new(config, Some(media("192.0.2.1:4000")), t0);
        for (i, (_, payload)) in dtmf::event_packets('7', 100, 10).into_iter().enumerate() {
            s.handle_rtp(&rtp(20 + i as u16, 8000, 101, &payload), from, t0);
        }
        assert_eq!(
            events(&mut s),
            vec![MediaEvent::Digit('7')],
            "once per event"
        );
        s.handle_timeout(t0 + Duration::from_secs(61));
        assert!(events(&mut s).contains(&MediaEvent::Inactive));
        assert_eq!(s.counters().digits, "7");
    }

    #[test]
    fn a_far_end_on_hold_sends_nothing_and_is_not_inactive() {
        let t0 = Instant::now();
        let config = SessionConfig {
            inactivity: Some(Duration::from_secs(5)),
            ..SessionConfig::placed_call(5, Some(5))
        };
        let mut held = media("192.0.2.1:4000");
        held.direction = Direction::RecvOnly; // their `sendonly` hold: maybe nothing comes
        let mut s = RtpSession::new(config, Some(held), t0);
        s.handle_timeout(t0 + Duration::from_secs(20));
        assert!(!events(&mut s).contains(&MediaEvent::Inactive));
        // Resumed: silence from then on counts.
        s.update(media("192.0.2.1:4000"));
        s.handle_timeout(t0 + Duration::from_secs(24));
        assert!(!events(&mut s).contains(&MediaEvent::Inactive));
        s.handle_timeout(t0 + Duration::from_secs(26));
        assert!(events(&mut s).contains(&MediaEvent::Inactive));
    }

    #[test]
    fn rtcp_reports_go_to_the_next_port_and_the_bridge_queue_stays_short() {
        let t0 = Instant::now();
        let config =
            SessionConfig::answered_call(5, "voxnav@x".into(), "192.0.2.1".parse().unwrap());
        let mut s = RtpSession::new(config, Some(media("192.0.2.1:4000")), t0);
        let mut reports = Vec::new();
        for n in 0..500u32 {
            s.handle_timeout(t0 + PTIME * n);
            reports.extend(
                drain(&mut s)
                    .into_iter()
                    .filter(|(t, _)| t.socket == Socket::Rtcp),
            );
        }
        assert!(
            (1..=4).contains(&reports.len()),
            "every 2.5-7.5 s over 10 s"
        );
        assert_eq!(
            reports[0].0.to,
            "192.0.2.1:4001".parse::<std::net::SocketAddr>().unwrap()
        );
        assert!(rtcp::parse(&reports[0].1).is_ok());

        let mut bridge = RtpSession::new(
            SessionConfig::placed_call(1, Some(5)),
            Some(media("192.0.2.1:4000")),
            t0,
        );
        bridge.play(&[1; FRAME * 50]);
        assert_eq!(bridge.queued(), FRAME * 5, "oldest dropped");
    }
}
