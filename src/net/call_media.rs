//! One call's RTP socket and the built-in test behaviour that runs on it until the dialogplan
//! engine replaces it: play a short prompt (three beeps), echo every DTMF digit as its tone
//! pair, hang up on `#`. Digits arrive as RFC 4733 events (the negotiated payload type), as SIP
//! INFO (forwarded by the SIP loop), or in-band (Goertzel) for trunks that send tones in audio.
//!
//! Media is only sent where it is safe: immediately if the SDP address is the IP the INVITE came
//! from, otherwise only after RTP has arrived from that address (latching). An INVITE can name
//! any address in SDP; without this rule voxnav could be made to stream RTP at a third party
//! (a reflection attack).
//!
//! Sending is paced on tokio's monotonic interval: 20 ms per packet, timestamp +160, sequence +1,
//! one SSRC, marker on the first packet; missed ticks are caught up (Burst) so the timestamp
//! never drifts from the wall clock. Receiving is strict: only packets from the address SDP
//! gave are used (no RTP bleed); 60 s without any ends the call. Received audio goes through
//! the jitter buffer (`media::jitter`: reordering, concealment) and is read one frame per tick,
//! which is where speech recognition will read it.
//!
//! RTCP runs on the RTP port + 1 (RFC 3550 11): a sender or receiver report with our CNAME
//! every 5 s (6.2, randomised by +/-50% so calls started together do not report together), to
//! the peer's RTP port + 1, under the same safety rule as media. Reports from the peer feed the
//! LSR/DLSR fields of ours.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::media::dtmf::{EventReceiver, ToneDetector};
use crate::media::g711::Law;
use crate::media::jitter::{JitterBuffer, Playout};
use crate::media::rtcp::{self, ReceptionStats, RtcpPacket, SenderInfo};
use crate::media::rtp::RtpPacket;
use crate::media::timing::SendTiming;
use crate::sip::sdp::{Direction, Negotiated, PT_PCMA};

/// Samples per 20 ms packet at 8 kHz.
const FRAME: usize = 160;
/// RTP silence after which the call is ended (RFC 3550 has no keep-alive; 30-60 s is usual).
const INACTIVITY: Duration = Duration::from_secs(60);
/// Frames buffered before playout (40 ms): absorbs the jitter of a LAN or a good trunk.
const JITTER_DEPTH: usize = 2;
/// The mean RTCP report interval (RFC 3550 6.2 minimum).
const RTCP_INTERVAL: Duration = Duration::from_secs(5);

/// One call's media sockets: RTP on an even port, RTCP on the next (RFC 3550 11).
#[derive(Debug)]
pub struct MediaSockets {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
}

/// Counters reported when a call's media ends.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MediaCounters {
    pub sent: u64,
    pub received: u64,
    pub foreign: u64,
    /// Frames played out of the jitter buffer, and frames concealed (lost or too late).
    pub played: u64,
    pub concealed: u64,
    /// RTP packets from the caller that never arrived (RFC 3550 A.3).
    pub lost: u64,
    /// RTCP reports sent and received.
    pub rtcp_sent: u64,
    pub rtcp_received: u64,
    /// Gap between consecutive RTP sends vs 20 ms: p50 and p99 deviation in microseconds,
    /// and how many gaps deviated by more than 2 ms.
    pub gap_p50_us: u64,
    pub gap_p99_us: u64,
    pub gaps_over_2ms: u64,
    pub digits: String,
}

impl std::fmt::Display for MediaCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tests read these words; `digits` stays last.
        write!(
            f,
            "sent {} received {} foreign {} played {} concealed {} rtcp_sent {} rtcp_received {} \
             gap_p50_us {} gap_p99_us {} gaps_over_2ms {} digits {:?}",
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
            self.digits
        )
    }
}

/// What runs a call instead of the built-in test behaviour (the dialplan, `call::brain`). The
/// media task calls it every 20 ms; it never blocks (slow work runs elsewhere and is collected
/// in `tick`).
pub trait CallBrain: Send {
    /// The call was answered.
    fn start(&mut self, out: &mut VecDeque<i16>);
    /// One 20 ms frame of the caller's audio (played out of the jitter buffer), in [-1, 1].
    fn frame(&mut self, pcm: &[f32], out: &mut VecDeque<i16>);
    /// A keypad digit (RFC 4733, SIP INFO or in-band).
    fn digit(&mut self, digit: char, out: &mut VecDeque<i16>);
    /// Every 20 ms: collect finished work, run timers; Some(reason) ends the call.
    fn tick(&mut self, out: &mut VecDeque<i16>) -> Option<String>;
}

/// Makes the brain of a new call, given its Call-ID and the caller (the INVITE's From).
pub type BrainFactory = std::sync::Arc<dyn Fn(&str, &str) -> Box<dyn CallBrain> + Send + Sync>;

/// Orders from the SIP loop.
#[derive(Debug)]
pub enum MediaCommand {
    /// A new offer/answer (hold, resume, the answer in the ACK).
    Update(Negotiated),
    /// A digit from SIP INFO.
    Digit(char),
    /// The call ended.
    Stop,
}

/// What the media task reports when it ends or wants the call ended.
#[derive(Debug)]
pub enum MediaReport {
    /// End the call with a BYE (caller pressed #, or RTP stopped).
    Hangup { call_id: String, why: String },
    /// The media task ended: its counters, and the RTP port it held (back to the pool).
    Finished {
        call_id: String,
        port: u16,
        counters: MediaCounters,
    },
}

fn tone(freqs: &[f32], ms: usize, amplitude: f32) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let v: f32 = freqs
                .iter()
                .map(|f| (2.0 * std::f32::consts::PI * f * t).sin())
                .sum();
            (v * amplitude * 32767.0) as i16
        })
        .collect()
}

/// The tone pair of a keypad digit (ITU-T Q.23).
fn dtmf_tone(digit: char) -> Vec<i16> {
    let keys = ["123A", "456B", "789C", "*0#D"];
    let Some((r, c)) = keys
        .iter()
        .enumerate()
        .find_map(|(r, row)| row.find(digit).map(|c| (r, c)))
    else {
        return Vec::new();
    };
    let rows = [697.0, 770.0, 852.0, 941.0];
    let cols = [1209.0, 1336.0, 1477.0, 1633.0];
    let mut out = tone(&[rows[r], cols[c]], 120, 0.25);
    out.extend(vec![0; 8 * 80]);
    out
}

fn prompt() -> Vec<i16> {
    let mut out = Vec::new();
    for _ in 0..3 {
        out.extend(tone(&[440.0], 200, 0.3));
        out.extend(vec![0; 8 * 150]);
    }
    out
}

/// Runs the media of one call until `Stop`.
pub async fn run(
    sockets: MediaSockets,
    call_id: String,
    mut media: Option<Negotiated>,
    signalling_ip: std::net::IpAddr,
    mut commands: mpsc::Receiver<MediaCommand>,
    reports: mpsc::Sender<MediaReport>,
    mut brain: Option<Box<dyn CallBrain>>,
) {
    let MediaSockets { rtp: socket, rtcp } = sockets;
    let port = socket.local_addr().map_or(0, |a| a.port());
    let cname = format!(
        "voxnav@{}",
        socket
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.ip().to_string())
    );
    // RTP heard from the SDP address proves it wants our media.
    let mut latched = false;
    let ssrc: u32 = rand_u32(&call_id);
    let (mut sequence, mut timestamp) = ((ssrc >> 16) as u16, ssrc.rotate_left(7));
    let mut queue: VecDeque<i16> = VecDeque::new();
    match brain.as_mut() {
        Some(b) => b.start(&mut queue),
        None => queue.extend(prompt()),
    }
    let mut hung_up = false;
    let mut events = EventReceiver::default();
    let mut inband = ToneDetector::default();
    let mut jitter = JitterBuffer::new(JITTER_DEPTH);
    let mut reception = ReceptionStats::default();
    let mut counters = MediaCounters::default();
    let started = Instant::now();
    let mut last_heard = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut next_report = started + rtcp_interval(ssrc);
    let mut buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 2048];
    // Reused every 20 ms: no allocation on the send path.
    let mut frame = [0i16; FRAME];
    let mut packet: Vec<u8> = Vec::with_capacity(12 + FRAME);
    let mut report: Vec<u8> = Vec::with_capacity(128);
    // Reused for every received packet's decoded audio, and for the frame played out.
    let mut received_pcm: Vec<i16> = Vec::with_capacity(FRAME);
    let mut playout_pcm: Vec<f32> = Vec::with_capacity(FRAME);
    let mut silence = [0.0f32; FRAME];
    let mut first = true;
    let mut timing = SendTiming::new(Duration::from_millis(20));
    let mut last_send: Option<Instant> = None;
    loop {
        let may_send = |m: &Negotiated, latched: bool| {
            matches!(m.direction, Direction::SendRecv | Direction::SendOnly)
                && (latched || m.remote.is_some_and(|r| r.ip() == signalling_ip))
        };
        tokio::select! {
            _ = ticker.tick() => {
                if last_heard.elapsed() > INACTIVITY {
                    let _ = reports.send(MediaReport::Hangup { call_id: call_id.clone(), why: "no RTP for 60 s".into() }).await;
                    last_heard = Instant::now();
                }
                // One frame of the caller's audio, in order, losses concealed.
                let heard = match jitter.pop() {
                    Playout::Frame(pcm) | Playout::Concealed(pcm) => Some(pcm),
                    Playout::Empty => None,
                };
                if heard.is_none()
                    && let Some(b) = brain.as_mut()
                {
                    // No packet this tick (end of a talk spurt, silence suppression): time
                    // still passes for the endpointer, as silence.
                    silence.fill(0.0);
                    b.frame(&silence, &mut queue);
                }
                if let Some(pcm) = heard {
                    playout_pcm.clear();
                    playout_pcm.extend(pcm.iter().map(|&s| s as f32 / 32768.0));
                    if let Some(b) = brain.as_mut() {
                        b.frame(&playout_pcm, &mut queue);
                    }
                    if let Some(d) = inband.feed(&playout_pcm).into_iter().next() {
                        on_digit(d, &call_id, &mut counters.digits, &mut queue, &reports, brain.as_deref_mut()).await;
                    }
                }
                if let Some(b) = brain.as_mut()
                    && let Some(why) = b.tick(&mut queue)
                    && !hung_up
                {
                    hung_up = true;
                    let _ = reports.send(MediaReport::Hangup { call_id: call_id.clone(), why }).await;
                }
                let Some(m) = media.as_ref() else { continue };
                for sample in frame.iter_mut() {
                    *sample = queue.pop_front().unwrap_or(0);
                }
                if let (true, Some(remote)) = (may_send(m, latched), m.remote) {
                    let law = if m.codec_pt == PT_PCMA { Law::Alaw } else { Law::Ulaw };
                    // Header, then the payload encoded straight into the same reused buffer.
                    let header = RtpPacket { marker: first, payload_type: m.codec_pt, sequence, timestamp, ssrc, payload: &[] };
                    header.write_to(&mut packet);
                    law.encode_into(&frame, &mut packet);
                    if socket.send_to(&packet, remote).await.is_ok() {
                        counters.sent += 1;
                        first = false;
                        let now = Instant::now();
                        if let Some(last) = last_send {
                            timing.record(now - last);
                        }
                        last_send = Some(now);
                    }
                } else {
                    last_send = None; // on hold or not yet latched: no gap to measure
                }
                // Timestamps advance with the clock even while silent or on hold (RFC 3550 5.1).
                sequence = sequence.wrapping_add(1);
                timestamp = timestamp.wrapping_add(FRAME as u32);
                if Instant::now() >= next_report {
                    next_report = Instant::now() + rtcp_interval(ssrc ^ sequence as u32);
                    if let (true, Some(remote)) = (may_send(m, latched), m.remote) {
                        let sender = (counters.sent > 0).then(|| SenderInfo {
                            ntp: rtcp::ntp_time(std::time::SystemTime::now()),
                            rtp_timestamp: timestamp,
                            packets: counters.sent as u32,
                            octets: (counters.sent * FRAME as u64) as u32,
                        });
                        let block = reception.report(started.elapsed().as_millis() as u64);
                        rtcp::build_report(ssrc, sender, block, &cname, &mut report);
                        let to = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
                        if rtcp.send_to(&report, to).await.is_ok() {
                            counters.rtcp_sent += 1;
                        }
                    }
                }
            }
            r = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let Some(m) = media.as_ref() else { continue };
                // Strict source: only the address SDP named (prevents RTP injection / bleed).
                if m.remote != Some(from) {
                    counters.foreign += 1;
                    continue;
                }
                let Ok(packet) = RtpPacket::parse(&buf[..n]) else { continue };
                counters.received += 1;
                latched = true;
                last_heard = Instant::now();
                // Arrival in timestamp units (8 kHz) for the interarrival jitter (RFC 3550 A.8).
                let arrival = (started.elapsed().as_micros() / 125) as u32;
                reception.on_rtp(packet.ssrc, packet.sequence, packet.timestamp, arrival);
                if Some(packet.payload_type) == m.dtmf_pt {
                    if let Some(d) = events.on_packet(packet.timestamp, packet.payload) {
                        on_digit(d, &call_id, &mut counters.digits, &mut queue, &reports, brain.as_deref_mut()).await;
                    }
                } else if packet.payload_type == m.codec_pt {
                    let law = if m.codec_pt == PT_PCMA { Law::Alaw } else { Law::Ulaw };
                    received_pcm.clear();
                    received_pcm.extend(packet.payload.iter().map(|&b| law.decode_sample(b)));
                    jitter.push(packet.sequence, &received_pcm);
                }
            }
            r = rtcp.recv_from(&mut rtcp_buf) => {
                let Ok((n, from)) = r else { continue };
                let Some(m) = media.as_ref() else { continue };
                if m.remote.map(|r| r.ip()) != Some(from.ip()) {
                    counters.foreign += 1;
                    continue;
                }
                let Ok(packets) = rtcp::parse(&rtcp_buf[..n]) else { continue };
                counters.rtcp_received += 1;
                for p in packets {
                    if let RtcpPacket::SenderReport { ntp, .. } = p {
                        reception.on_sender_report(ntp, started.elapsed().as_millis() as u64);
                    }
                }
            }
            cmd = commands.recv() => match cmd {
                Some(MediaCommand::Update(m)) => media = Some(m),
                Some(MediaCommand::Digit(d)) => on_digit(d, &call_id, &mut counters.digits, &mut queue, &reports, brain.as_deref_mut()).await,
                Some(MediaCommand::Stop) | None => break,
            },
        }
    }
    counters.gap_p50_us = timing.quantile(0.5).as_micros() as u64;
    counters.gap_p99_us = timing.quantile(0.99).as_micros() as u64;
    counters.gaps_over_2ms = timing.outside(Duration::from_millis(2));
    counters.played = jitter.stats.played;
    counters.concealed = jitter.stats.concealed;
    counters.lost = reception.lost();
    let _ = reports
        .send(MediaReport::Finished {
            call_id,
            port,
            counters,
        })
        .await;
}

/// The next RTCP interval: 5 s randomised to 2.5-7.5 s (RFC 3550 6.2, 6.3.1).
fn rtcp_interval(seed: u32) -> Duration {
    let spread = seed.wrapping_mul(2_654_435_761) % 1000;
    RTCP_INTERVAL / 2 + RTCP_INTERVAL * spread / 1000
}

async fn on_digit(
    digit: char,
    call_id: &str,
    digits: &mut String,
    queue: &mut VecDeque<i16>,
    reports: &mpsc::Sender<MediaReport>,
    brain: Option<&mut (dyn CallBrain + 'static)>,
) {
    digits.push(digit);
    if let Some(b) = brain {
        b.digit(digit, queue);
        return;
    }
    if digit == '#' {
        let _ = reports
            .send(MediaReport::Hangup {
                call_id: call_id.to_string(),
                why: "caller pressed #".into(),
            })
            .await;
    } else {
        queue.extend(dtmf_tone(digit));
    }
}

/// A per-call value for SSRC and initial sequence/timestamp (RFC 3550 5.1 wants them random).
fn rand_u32(call_id: &str) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(call_id.as_bytes());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

/// The local address to put in SDP for a peer at `peer`: the source address the kernel picks
/// to reach it (a connected UDP socket's local address), or `fallback`.
pub fn local_ip_towards(peer: SocketAddr, fallback: std::net::IpAddr) -> std::net::IpAddr {
    let bind: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    std::net::UdpSocket::bind(bind)
        .and_then(|s| s.connect(peer).and_then(|_| s.local_addr()))
        .map(|a| a.ip())
        .unwrap_or(fallback)
}
