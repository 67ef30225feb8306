//! The I/O of one outgoing call (`sip::uac` is its sans-IO core): its own SIP socket on a
//! tokio task, and its RTP through the same session and media driver as answered calls
//! (`media::session`, `net::media`): paced 20 ms packets out of a queue the owner fills, each
//! packet's audio back as it arrives. The agent leg of a transfer and the `voxnav call` test
//! caller both run on it.
//!
//! The owner talks to the task through channels: `LegCommand`s in, `LegEvent`s out. Dropping
//! the command sender hangs the call up (a caller who hangs up during a transfer takes the
//! agent leg down with them). No RTCP on this leg; strict source as everywhere.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::media::{MediaEngine, MediaHandle, MediaSink, MediaSockets, random_ssrc};
use crate::media::session::{MediaCounters, MediaEvent, RtpSession, SessionConfig};
use crate::sip::uac::{OutgoingCall, UacConfig, UacEvent, uri_host_port};

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
    /// Once answered, no RTP for this long (the far end not on hold) raises
    /// `LegEvent::MediaStopped`: the phone or its network is gone without a BYE. None: never.
    pub media_timeout: Option<Duration>,
    /// Answers the far end's digest challenge (`voxnav call` as an agent's phone).
    pub credentials: Option<crate::sip::uac::Credentials>,
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
    /// No RTP for `media_timeout` after the answer (raised once): the far end is most
    /// likely gone. The leg stays up until the owner hangs it up.
    MediaStopped,
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

/// Places the call: a task on the current tokio runtime runs its signalling, `media` its RTP,
/// until it ends. Problems placing it (a bad URI, a name that does not resolve) arrive as
/// `LegEvent::Failed` with status 0, then `Ended`.
///
/// Panics outside a tokio runtime.
pub fn place(media: &Arc<MediaEngine>, config: LegConfig) -> Leg {
    let (commands, command_rx) = unbounded_channel();
    let (event_tx, events) = unbounded_channel();
    let nonce = unique();
    let call_id = format!("vxleg-{nonce:x}");
    let id = call_id.clone();
    let media = media.clone();
    tokio::spawn(async move {
        match open(&config, id, nonce).await {
            Ok((sip, rtp, uac)) => run(sip, rtp, uac, media, config, command_rx, event_tx).await,
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
) -> Result<(UdpSocket, std::net::UdpSocket, UacConfig), LegError> {
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
    let ip = super::local_ip_towards(peer, fallback);
    let sip = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    let rtp = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
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
        credentials: config.credentials.clone(),
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

/// What the leg's media reports to its task.
enum FromMedia {
    Event(MediaEvent),
    Finished(MediaCounters),
}

/// Forwards the leg's media events into its task.
struct LegSink(UnboundedSender<FromMedia>);

impl MediaSink for LegSink {
    fn on_event(&mut self, event: MediaEvent, _session: &mut RtpSession) {
        let _ = self.0.send(FromMedia::Event(event));
    }

    fn finished(self: Box<Self>, counters: MediaCounters) {
        let _ = self.0.send(FromMedia::Finished(counters));
    }
}

/// The leg's media once answered: its session on the media driver, the latest mark queued.
struct LegMedia {
    handle: MediaHandle,
    last_mark: u64,
}

async fn run(
    sip: UdpSocket,
    rtp: std::net::UdpSocket,
    uac: UacConfig,
    engine: Arc<MediaEngine>,
    config: LegConfig,
    mut commands: UnboundedReceiver<LegCommand>,
    events: UnboundedSender<LegEvent>,
) {
    let started = Instant::now();
    let (mut call, invite) = OutgoingCall::invite(uac, started);
    let _ = sip.send_to(&invite.bytes, invite.to).await;
    let mut rtp = Some(rtp);
    let mut media: Option<LegMedia> = None;
    // Commands given before the answer: played once media flows.
    let mut early: Vec<LegCommand> = Vec::new();
    let (media_tx, mut media_rx) = unbounded_channel::<FromMedia>();
    let mut hanging_up = false;
    let mut media_stopped = false;
    let mut commands_open = true;
    let mut sip_buf = vec![0u8; 4096];
    let mut why = String::new();
    let mut counters = MediaCounters::default();
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
                            if let Some(socket) = rtp.take() {
                                let session = RtpSession::new(
                                    SessionConfig {
                                        inactivity: config.media_timeout,
                                        ..SessionConfig::placed_call(random_ssrc(&config.target), config.max_queued_frames)
                                    },
                                    Some(m),
                                    Instant::now(),
                                );
                                let handle = engine.add(
                                    MediaSockets { rtp: socket, rtcp: None },
                                    session,
                                    Box::new(LegSink(media_tx.clone())),
                                );
                                let mut m = LegMedia { handle, last_mark: 0 };
                                for c in early.drain(..) {
                                    command(&mut m, c);
                                }
                                media = Some(m);
                            }
                            let _ = events.send(LegEvent::Answered);
                        }
                        UacEvent::MediaChanged(m) => {
                            if let Some(lm) = media.as_ref() {
                                lm.handle.update(m);
                            }
                        }
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
            Some(m) = media_rx.recv() => match m {
                FromMedia::Event(MediaEvent::Audio { pcm, at }) => {
                    let _ = events.send(LegEvent::Audio(pcm, at));
                }
                FromMedia::Event(MediaEvent::PlayedOut { mark, at }) => {
                    if media.as_ref().is_some_and(|m| m.last_mark == mark) {
                        let _ = events.send(LegEvent::Drained(at));
                    }
                }
                FromMedia::Event(MediaEvent::Inactive) => {
                    if !media_stopped {
                        media_stopped = true;
                        let _ = events.send(LegEvent::MediaStopped);
                    }
                }
                FromMedia::Event(_) => {}
                FromMedia::Finished(c) => counters = c,
            },
            cmd = commands.recv(), if commands_open => {
                match cmd {
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
                    Some(c) => match media.as_mut() {
                        Some(m) => command(m, c),
                        None => early.push(c),
                    },
                }
            }
        }
        if call.is_done() {
            break;
        }
    }
    // Stop the media and collect its counters before reporting the end.
    if let Some(m) = media.take() {
        m.handle.stop();
        // Bounded: a media driver already shut down never answers.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(m) = media_rx.recv().await {
                if let FromMedia::Finished(c) = m {
                    counters = c;
                    return;
                }
            }
        })
        .await;
    }
    let _ = events.send(LegEvent::Ended {
        why,
        sent: counters.sent,
        received: counters.received,
    });
}

/// Carries out one command on the leg's media.
fn command(m: &mut LegMedia, command: LegCommand) {
    match command {
        LegCommand::Audio(pcm) => {
            m.handle.play(pcm);
            m.last_mark += 1;
            m.handle.mark(m.last_mark);
        }
        LegCommand::Digit(d) => {
            m.handle.send_digit(d);
            m.last_mark += 1;
            m.handle.mark(m.last_mark);
        }
        LegCommand::Flush => m.handle.flush(),
        LegCommand::Hangup => {}
    }
}
