//! The I/O of one outgoing call (`sip::uac` is its sans-IO core): its own SIP socket and RTP
//! socket, paced RTP out of a queue the owner fills, received audio and call events back.
//! The agent leg of a transfer and the `voxnav call` test caller both run on it.
//!
//! The owner talks to the task through channels that work from synchronous code (the call
//! brain runs inside the media task's 20 ms tick): `LegCommand`s in, `LegEvent`s out. Dropping
//! the command sender hangs the call up (a caller who hangs up during a transfer takes the
//! agent leg down with them).
//!
//! Media follows the server's rules: 20 ms PCMU/PCMA packets on a steady clock, RFC 4733
//! digits, strict source (only the address the answer's SDP named). No RTCP on this leg.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::media::dtmf;
use crate::media::g711::Law;
use crate::media::rtp::RtpPacket;
use crate::sip::sdp::{Direction, Negotiated, PT_PCMA};
use crate::sip::uac::{OutgoingCall, UacConfig, UacEvent, uri_host_port};

const FRAME: usize = 160;

/// How to place the call.
#[derive(Debug, Clone)]
pub struct LegConfig {
    /// `sip:user@host[:port]`.
    pub target: String,
    pub from_user: String,
    /// Extra INVITE headers (transfer reason, transcript).
    pub headers: Vec<(String, String)>,
    /// Give up (CANCEL) when not answered within this time.
    pub answer_timeout: Duration,
    /// Keep at most this many outgoing frames queued (a bridge keeps latency low by dropping
    /// the oldest); None queues everything (a scripted caller).
    pub max_queued_frames: Option<usize>,
}

/// Orders for the leg.
#[derive(Debug)]
pub enum LegCommand {
    /// Audio to send, 8 kHz (any length; sent 20 ms at a time).
    Audio(Vec<i16>),
    /// A keypad digit as RFC 4733 events (100 ms), after the audio queued before it.
    Digit(char),
    /// Drop whatever audio is still queued.
    Flush,
    /// Hang up (BYE) or give up (CANCEL).
    Hangup,
}

/// What happened on the leg.
#[derive(Debug, Clone, PartialEq)]
pub enum LegEvent {
    /// 180/183.
    Ringing(u16),
    Answered,
    /// Never answered: the final status (408 no response / timeout, 486 busy, 487 cancelled...).
    Failed {
        status: u16,
        reason: String,
    },
    /// 20 ms of the far end's audio and when its packet arrived.
    Audio(Vec<i16>, Instant),
    /// The outgoing queue ran empty: its last frame left at this time.
    Drained(Instant),
    /// The call is over (either side hung up); packets sent and received.
    Ended {
        why: String,
        sent: u64,
        received: u64,
    },
}

/// The owner's end of a leg.
pub struct Leg {
    pub commands: UnboundedSender<LegCommand>,
    pub events: UnboundedReceiver<LegEvent>,
    pub call_id: String,
}

/// Errors placing a call.
#[derive(Debug, thiserror::Error)]
pub enum LegError {
    #[error("not a sip: URI with a usable host: {0}")]
    BadUri(String),
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
    #[error("cannot open sockets: {0}")]
    Socket(#[from] std::io::Error),
}

/// Places the call: a task on the current tokio runtime runs it until it ends. Problems
/// placing it (a bad URI, a name that does not resolve) arrive as `LegEvent::Failed` with
/// status 0, then `Ended`.
///
/// Panics outside a tokio runtime.
pub fn place(config: LegConfig) -> Leg {
    let (commands, command_rx) = unbounded_channel();
    let (event_tx, events) = unbounded_channel();
    let nonce = unique();
    let call_id = format!("vxleg-{nonce:x}");
    let id = call_id.clone();
    tokio::spawn(async move {
        match open(&config, id, nonce).await {
            Ok((sip, rtp, uac)) => run(sip, rtp, uac, config, command_rx, event_tx).await,
            Err(e) => {
                let _ = event_tx.send(LegEvent::Failed {
                    status: 0,
                    reason: e.to_string(),
                });
                let _ = event_tx.send(LegEvent::Ended {
                    why: e.to_string(),
                    sent: 0,
                    received: 0,
                });
            }
        }
    });
    Leg {
        commands,
        events,
        call_id,
    }
}

/// Resolves the target and opens the leg's SIP and RTP sockets.
async fn open(
    config: &LegConfig,
    call_id: String,
    nonce: u64,
) -> Result<(UdpSocket, UdpSocket, UacConfig), LegError> {
    let (host, port) =
        uri_host_port(&config.target).ok_or_else(|| LegError::BadUri(config.target.clone()))?;
    let peer = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| LegError::Resolve(host.clone(), e.to_string()))?
        .next()
        .ok_or_else(|| LegError::Resolve(host.clone(), "no address".into()))?;
    let fallback: IpAddr = if peer.is_ipv4() {
        [127, 0, 0, 1].into()
    } else {
        std::net::Ipv6Addr::LOCALHOST.into()
    };
    let ip = super::call_media::local_ip_towards(peer, fallback);
    let sip = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    let uac = UacConfig {
        target: config.target.clone(),
        peer,
        local_sip: sip.local_addr()?,
        local_rtp: rtp.local_addr()?,
        from_user: config.from_user.clone(),
        headers: config.headers.clone(),
        call_id,
        local_tag: format!("{:x}", nonce.rotate_left(17)),
        t1: Duration::from_millis(500),
    };
    Ok((sip, rtp, uac))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now ^ (COUNTER.fetch_add(1, Ordering::Relaxed) << 48) ^ u64::from(std::process::id())
}

/// What the sender queue holds: audio samples or a digit to send as events.
enum Outgoing {
    Sample(i16),
    Digit(char),
}

async fn run(
    sip: UdpSocket,
    rtp: UdpSocket,
    uac: UacConfig,
    config: LegConfig,
    mut commands: UnboundedReceiver<LegCommand>,
    events: UnboundedSender<LegEvent>,
) {
    let started = Instant::now();
    let (mut call, invite) = OutgoingCall::invite(uac, started);
    let _ = sip.send_to(&invite.bytes, invite.to).await;
    let mut media: Option<Negotiated> = None;
    let mut queue: VecDeque<Outgoing> = VecDeque::new();
    let mut digit_packets: VecDeque<(bool, [u8; 4])> = VecDeque::new();
    let mut digit_timestamp = 0u32;
    let ssrc = unique() as u32;
    let (mut sequence, mut timestamp) = ((ssrc >> 16) as u16, ssrc.rotate_left(9));
    let (mut sent, mut received) = (0u64, 0u64);
    let mut was_sending = false;
    let mut first_packet = true;
    let mut hanging_up = false;
    let mut commands_open = true;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (mut sip_buf, mut rtp_buf) = (vec![0u8; 4096], vec![0u8; 2048]);
    let mut frame = [0i16; FRAME];
    let mut packet = Vec::with_capacity(12 + FRAME);
    let mut why = String::new();
    loop {
        let timer = call.poll_timeout();
        let answer_deadline =
            (media.is_none() && !hanging_up).then(|| started + config.answer_timeout);
        let next = [timer, answer_deadline].into_iter().flatten().min();
        tokio::select! {
            r = sip.recv_from(&mut sip_buf) => {
                let Ok((n, from)) = r else { continue };
                let (out, evs) = call.on_datagram(&sip_buf[..n], from, Instant::now());
                for t in out {
                    let _ = sip.send_to(&t.bytes, t.to).await;
                }
                for ev in evs {
                    match ev {
                        UacEvent::Progress(code) => { let _ = events.send(LegEvent::Ringing(code)); }
                        UacEvent::Answered(m) => {
                            media = Some(m);
                            let _ = events.send(LegEvent::Answered);
                        }
                        UacEvent::MediaChanged(m) => media = Some(m),
                        UacEvent::Failed { status, reason } => {
                            let _ = events.send(LegEvent::Failed { status, reason: reason.clone() });
                            why = format!("failed: {status} {reason}");
                        }
                        UacEvent::RemoteHangup => why = "the far end hung up".into(),
                        UacEvent::Ended => why = "we hung up".into(),
                    }
                }
            }
            _ = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = Instant::now();
                if answer_deadline.is_some_and(|d| now >= d) {
                    hanging_up = true;
                    why = "no answer in time".into();
                    let (out, evs) = call.give_up(now);
                    for t in out {
                        let _ = sip.send_to(&t.bytes, t.to).await;
                    }
                    for ev in evs {
                        if let UacEvent::Failed { status, reason } = ev {
                            let _ = events.send(LegEvent::Failed { status, reason: format!("{reason} (no answer in time)") });
                        }
                    }
                }
                let (out, evs) = call.on_timeout(now);
                for t in out {
                    let _ = sip.send_to(&t.bytes, t.to).await;
                }
                for ev in evs {
                    if let UacEvent::Failed { status, reason } = ev {
                        let _ = events.send(LegEvent::Failed { status, reason: reason.clone() });
                        why = format!("failed: {status} {reason}");
                    } else if ev == UacEvent::Ended {
                        why = "we hung up (no answer to our BYE)".into();
                    }
                }
            }
            _ = ticker.tick() => {
                let Some(m) = media.as_ref().filter(|_| call.is_confirmed()) else { continue };
                let Some(remote) = m.remote.filter(|_| matches!(m.direction, Direction::SendRecv | Direction::SendOnly)) else { continue };
                // A digit in the queue is sent once the audio before it has gone.
                // (Without a negotiated telephone-event type the digit is dropped.)
                if digit_packets.is_empty()
                    && let Some(Outgoing::Digit(d)) = queue.front()
                {
                    if m.dtmf_pt.is_some() {
                        digit_packets.extend(dtmf::event_packets(*d, 100, 10));
                        digit_timestamp = timestamp;
                    }
                    queue.pop_front();
                }
                if let (Some(pt), Some((marker, payload))) = (m.dtmf_pt, digit_packets.pop_front()) {
                    let p = RtpPacket { marker, payload_type: pt, sequence, timestamp: digit_timestamp, ssrc, payload: &payload };
                    p.write_to(&mut packet);
                } else {
                    let mut had_audio = false;
                    for s in frame.iter_mut() {
                        *s = match queue.front() {
                            Some(Outgoing::Sample(v)) => {
                                let v = *v;
                                queue.pop_front();
                                had_audio = true;
                                v
                            }
                            _ => 0,
                        };
                    }
                    if was_sending && !had_audio {
                        let _ = events.send(LegEvent::Drained(Instant::now()));
                    }
                    was_sending = had_audio;
                    let law = if m.codec_pt == PT_PCMA { Law::Alaw } else { Law::Ulaw };
                    let p = RtpPacket { marker: first_packet, payload_type: m.codec_pt, sequence, timestamp, ssrc, payload: &[] };
                    p.write_to(&mut packet);
                    law.encode_into(&frame, &mut packet);
                    first_packet = false;
                }
                if rtp.send_to(&packet, remote).await.is_ok() {
                    sent += 1;
                }
                sequence = sequence.wrapping_add(1);
                timestamp = timestamp.wrapping_add(FRAME as u32);
            }
            r = rtp.recv_from(&mut rtp_buf) => {
                let Ok((n, from)) = r else { continue };
                let Some(m) = media.as_ref() else { continue };
                if m.remote != Some(from) {
                    continue; // strict source: no RTP bleed from elsewhere
                }
                let Ok(p) = RtpPacket::parse(&rtp_buf[..n]) else { continue };
                if p.payload_type != m.codec_pt {
                    continue;
                }
                received += 1;
                let law = if m.codec_pt == PT_PCMA { Law::Alaw } else { Law::Ulaw };
                let _ = events.send(LegEvent::Audio(law.decode(p.payload), Instant::now()));
            }
            cmd = commands.recv(), if commands_open => {
                match cmd {
                    Some(LegCommand::Audio(pcm)) => {
                        queue.extend(pcm.into_iter().map(Outgoing::Sample));
                        if let Some(max) = config.max_queued_frames {
                            let excess = queue.len().saturating_sub(max * FRAME);
                            queue.drain(..excess);
                        }
                    }
                    Some(LegCommand::Digit(d)) => queue.push_back(Outgoing::Digit(d)),
                    Some(LegCommand::Flush) => queue.clear(),
                    Some(LegCommand::Hangup) | None => {
                        commands_open = false;
                        hanging_up = true;
                        let (out, _) = call.give_up(Instant::now());
                        for t in out {
                            let _ = sip.send_to(&t.bytes, t.to).await;
                        }
                        if why.is_empty() {
                            why = "we hung up".into();
                        }
                    }
                }
            }
        }
        if call.is_done() {
            break;
        }
    }
    let _ = events.send(LegEvent::Ended {
        why,
        sent,
        received,
    });
}
