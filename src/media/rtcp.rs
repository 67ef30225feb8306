//! RTCP (RFC 3550 section 6), sans-IO: reception statistics for one source, sender/receiver
//! reports built as compound packets (report + SDES CNAME, 6.1), and a length-checked parser
//! for what peers send.
//!
//! ```text
//! SR (PT 200): |V=2|P|RC| PT | length | SSRC | NTP msw | NTP lsw | RTP ts | packets | octets |
//! RR (PT 201): |V=2|P|RC| PT | length | SSRC |
//! report block: | SSRC_n | fraction lost (8) + cumulative lost (24) | ext. highest seq |
//!               | interarrival jitter | LSR | DLSR |
//! ```

/// Why a datagram is not usable RTCP (dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpError {
    #[error("{0} bytes is shorter than an RTCP header")]
    TooShort(usize),
    #[error("RTCP version {0}, expected 2")]
    Version(u8),
    #[error("RTCP packet type {0} is not 200-204 (first packet must be SR or RR, 6.1)")]
    PacketType(u8),
    #[error("RTCP {0} runs past the end of the datagram")]
    Truncated(&'static str),
}

/// One reception report block (6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed on the wire).
    pub cumulative_lost: i32,
    pub extended_highest: u32,
    pub jitter: u32,
    pub last_sr: u32,
    pub delay_since_last_sr: u32,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport {
        ssrc: u32,
        ntp: u64,
        rtp_timestamp: u32,
        packets: u32,
        octets: u32,
        reports: Vec<ReportBlock>,
    },
    ReceiverReport {
        ssrc: u32,
        reports: Vec<ReportBlock>,
    },
    /// Source description; only the first chunk's CNAME is kept.
    Sdes {
        ssrc: u32,
        cname: Option<String>,
    },
    Bye {
        ssrcs: Vec<u32>,
    },
    /// APP or a type this code does not read.
    Other {
        packet_type: u8,
    },
}

const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

/// Reception statistics of one remote source (RFC 3550 A.1, A.3, A.8).
#[derive(Debug, Default, Clone)]
pub struct ReceptionStats {
    ssrc: u32,
    started: bool,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    last_transit: Option<i64>,
    /// Interarrival jitter in timestamp units, scaled by 16 (A.8).
    jitter_x16: u64,
    /// Middle 32 bits of the last SR's NTP time, and when (ms clock) it arrived.
    last_sr: Option<(u32, u64)>,
}

impl ReceptionStats {
    /// A received RTP packet: `arrival` is the arrival time in the same units as the RTP
    /// timestamp (samples at 8 kHz for G.711).
    pub fn on_rtp(&mut self, ssrc: u32, sequence: u16, rtp_timestamp: u32, arrival: u32) {
        if !self.started || ssrc != self.ssrc {
            *self = Self {
                ssrc,
                started: true,
                base_seq: sequence as u32,
                max_seq: sequence,
                ..Self::default()
            };
        } else {
            let delta = sequence.wrapping_sub(self.max_seq);
            if delta < MAX_DROPOUT {
                if sequence < self.max_seq {
                    self.cycles += 1 << 16; // wrapped
                }
                self.max_seq = sequence;
            } else if delta <= u16::MAX - MAX_MISORDER {
                // A very large jump: the sender restarted; start counting again (A.1).
                *self = Self {
                    ssrc,
                    started: true,
                    base_seq: sequence as u32,
                    max_seq: sequence,
                    last_sr: self.last_sr,
                    ..Self::default()
                };
            }
            // Otherwise a late or duplicate packet: counted as received, max unchanged.
        }
        self.received += 1;
        let transit = arrival as i64 - rtp_timestamp as i64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16 to stay in integers (A.8).
            self.jitter_x16 = self.jitter_x16 + d - (self.jitter_x16 + 8) / 16;
        }
        self.last_transit = Some(transit);
    }

    /// A sender report arrived from this source at `now_ms` (for LSR/DLSR, 6.4.1).
    pub fn on_sender_report(&mut self, ntp: u64, now_ms: u64) {
        self.last_sr = Some(((ntp >> 16) as u32, now_ms));
    }

    pub fn received(&self) -> u32 {
        self.received
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        (self.jitter_x16 / 16) as u32
    }

    /// Packets expected from the sequence numbers seen so far (A.3).
    fn expected(&self) -> u32 {
        let extended_max = self.cycles + self.max_seq as u32;
        extended_max.wrapping_sub(self.base_seq).wrapping_add(1)
    }

    /// Packets lost so far: expected minus received, never negative (duplicates can make it
    /// so on the wire, A.3).
    pub fn lost(&self) -> u64 {
        if !self.started {
            return 0;
        }
        (self.expected() as i64 - self.received as i64).max(0) as u64
    }

    /// The report block for this source at `now_ms`; advances the interval counters (A.3).
    pub fn report(&mut self, now_ms: u64) -> Option<ReportBlock> {
        if !self.started {
            return None;
        }
        let expected = self.expected();
        let lost = (expected as i64 - self.received as i64).clamp(-0x80_0000, 0x7F_FFFF) as i32;
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            // DLSR in units of 1/65536 s.
            Some((lsr, at)) => (lsr, (now_ms.saturating_sub(at) * 65_536 / 1000) as u32),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: lost,
            extended_highest: self.cycles + self.max_seq as u32,
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        })
    }
}

/// NTP time (64-bit fixed point, seconds since 1900) of a wall-clock time.
pub fn ntp_time(now: std::time::SystemTime) -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let d = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ((d.as_secs() + UNIX_TO_NTP) << 32) | (((d.subsec_nanos() as u64) << 32) / 1_000_000_000)
}

/// What our side reports about itself in an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packets: u32,
    pub octets: u32,
}

/// A compound packet: SR if we have sent anything (`sender`), RR otherwise, with at most one
/// report block, then SDES with our CNAME (RFC 3550 6.1 requires both).
pub fn build_report(
    ssrc: u32,
    sender: Option<SenderInfo>,
    block: Option<ReportBlock>,
    cname: &str,
    out: &mut Vec<u8>,
) {
    out.clear();
    let rc = block.is_some() as u8;
    let words = 1 + if sender.is_some() { 5 } else { 0 } + 6 * rc as u16;
    out.push(0x80 | rc);
    out.push(if sender.is_some() { 200 } else { 201 });
    out.extend_from_slice(&words.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(s) = sender {
        out.extend_from_slice(&s.ntp.to_be_bytes());
        out.extend_from_slice(&s.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&s.packets.to_be_bytes());
        out.extend_from_slice(&s.octets.to_be_bytes());
    }
    if let Some(b) = block {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = (b.cumulative_lost as u32) & 0x00FF_FFFF;
        out.extend_from_slice(&(((b.fraction_lost as u32) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&b.extended_highest.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&b.last_sr.to_be_bytes());
        out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
    }
    // SDES: one chunk, CNAME item, a zero item ending the list, padded to 32 bits (6.5).
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let chunk = 4 + 2 + cname.len() + 1;
    let padded = chunk.div_ceil(4) * 4;
    out.push(0x81);
    out.push(202);
    out.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(1);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    out.resize(out.len() + padded - chunk + 1, 0);
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn blocks(b: &[u8], count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    if b.len() < 24 * count {
        return Err(RtcpError::Truncated("report blocks"));
    }
    Ok((0..count)
        .map(|i| {
            let r = &b[24 * i..];
            let word = u32_at(r, 4);
            // Sign-extend the 24-bit cumulative loss.
            let lost = ((word << 8) as i32) >> 8;
            ReportBlock {
                ssrc: u32_at(r, 0),
                fraction_lost: (word >> 24) as u8,
                cumulative_lost: lost,
                extended_highest: u32_at(r, 8),
                jitter: u32_at(r, 12),
                last_sr: u32_at(r, 16),
                delay_since_last_sr: u32_at(r, 20),
            }
        })
        .collect())
}

/// Parses a compound RTCP datagram; every length is checked against the datagram.
pub fn parse(datagram: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(RtcpError::TooShort(rest.len()));
        }
        let version = rest[0] >> 6;
        if version != 2 {
            return Err(RtcpError::Version(version));
        }
        let count = (rest[0] & 0x1F) as usize;
        let packet_type = rest[1];
        if out.is_empty() && !(200..=201).contains(&packet_type) {
            return Err(RtcpError::PacketType(packet_type));
        }
        let len = 4 * (u16::from_be_bytes([rest[2], rest[3]]) as usize + 1);
        let packet = rest.get(..len).ok_or(RtcpError::Truncated("packet"))?;
        let body = &packet[4..];
        out.push(match packet_type {
            200 => {
                if body.len() < 24 {
                    return Err(RtcpError::Truncated("sender info"));
                }
                RtcpPacket::SenderReport {
                    ssrc: u32_at(body, 0),
                    ntp: ((u32_at(body, 4) as u64) << 32) | u32_at(body, 8) as u64,
                    rtp_timestamp: u32_at(body, 12),
                    packets: u32_at(body, 16),
                    octets: u32_at(body, 20),
                    reports: blocks(&body[24..], count)?,
                }
            }
            201 => {
                if body.len() < 4 {
                    return Err(RtcpError::Truncated("receiver report"));
                }
                RtcpPacket::ReceiverReport {
                    ssrc: u32_at(body, 0),
                    reports: blocks(&body[4..], count)?,
                }
            }
            202 if count > 0 => {
                if body.len() < 4 {
                    return Err(RtcpError::Truncated("SDES chunk"));
                }
                let mut cname = None;
                let mut at = 4;
                while let Some(&item) = body.get(at) {
                    if item == 0 {
                        break;
                    }
                    let n = *body.get(at + 1).ok_or(RtcpError::Truncated("SDES item"))? as usize;
                    let text = body
                        .get(at + 2..at + 2 + n)
                        .ok_or(RtcpError::Truncated("SDES item"))?;
                    if item == 1 {
                        cname = Some(String::from_utf8_lossy(text).into_owned());
                        break;
                    }
                    at += 2 + n;
                }
                RtcpPacket::Sdes {
                    ssrc: u32_at(body, 0),
                    cname,
                }
            }
            203 => {
                if body.len() < 4 * count {
                    return Err(RtcpError::Truncated("BYE"));
                }
                RtcpPacket::Bye {
                    ssrcs: (0..count).map(|i| u32_at(body, 4 * i)).collect(),
                }
            }
            _ => RtcpPacket::Other { packet_type },
        });
        rest = &rest[len..];
    }
    if out.is_empty() {
        return Err(RtcpError::TooShort(0));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_report_round_trip_with_block_and_cname() {
        let mut stats = ReceptionStats::default();
        // 100 packets, 5 lost (seq 10..=14 missing), a wrap in the middle.
        let mut ts = 0u32;
        for i in 0..105u16 {
            let seq = 65_500u16.wrapping_add(i);
            ts = ts.wrapping_add(160);
            if !(10..15).contains(&i) {
                stats.on_rtp(0xAB, seq, ts, ts + 800);
            }
        }
        stats.on_sender_report(0x1122_3344_5566_7788, 1000);
        assert_eq!(stats.lost(), 5, "the call's loss, as the metrics count it");
        let block = stats.report(1500).unwrap();
        assert_eq!(block.cumulative_lost, 5);
        assert_eq!(block.fraction_lost, (5 * 256 / 105) as u8);
        assert_eq!(
            block.extended_highest,
            (1 << 16) + 65_500u32.wrapping_add(104) - 65_536
        );
        assert_eq!(block.jitter, 0, "constant transit: no jitter");
        assert_eq!(block.last_sr, 0x3344_5566);
        assert_eq!(block.delay_since_last_sr, 32_768, "0.5 s in 1/65536 s");

        let sender = SenderInfo {
            ntp: ntp_time(std::time::SystemTime::now()),
            rtp_timestamp: 1234,
            packets: 50,
            octets: 8000,
        };
        let mut out = Vec::new();
        build_report(0xCAFE, Some(sender), Some(block), "voxnav@host", &mut out);
        assert_eq!(out.len() % 4, 0);
        let parsed = parse(&out).unwrap();
        assert_eq!(
            parsed,
            vec![
                RtcpPacket::SenderReport {
                    ssrc: 0xCAFE,
                    ntp: sender.ntp,
                    rtp_timestamp: 1234,
                    packets: 50,
                    octets: 8000,
                    reports: vec![block],
                },
                RtcpPacket::Sdes {
                    ssrc: 0xCAFE,
                    cname: Some("voxnav@host".into())
                },
            ]
        );
        // Next interval: nothing new lost.
        stats.on_rtp(0xAB, 65_500u16.wrapping_add(105), ts + 160, ts + 960);
        assert_eq!(stats.report(2000).unwrap().fraction_lost, 0);
    }

    #[test]
    fn receiver_report_without_blocks_and_jitter_grows_with_variation() {
        let mut out = Vec::new();
        build_report(7, None, None, "x", &mut out);
        assert_eq!(
            parse(&out).unwrap()[0],
            RtcpPacket::ReceiverReport {
                ssrc: 7,
                reports: vec![]
            }
        );
        let mut stats = ReceptionStats::default();
        for i in 0..200u32 {
            let wobble = if i % 2 == 0 { 0 } else { 80 }; // 10 ms of alternating delay
            stats.on_rtp(1, i as u16, i * 160, i * 160 + wobble);
        }
        let j = stats.jitter();
        assert!(
            (70..=80).contains(&j),
            "jitter {j} should approach 80 samples"
        );
    }

    #[test]
    fn malformed_rtcp_is_refused_without_panicking() {
        assert_eq!(parse(&[0x80, 200]), Err(RtcpError::TooShort(2)));
        assert_eq!(parse(&[0x40, 200, 0, 0]), Err(RtcpError::Version(1)));
        assert_eq!(parse(&[0x80, 202, 0, 0]), Err(RtcpError::PacketType(202)));
        assert!(matches!(
            parse(&[0x80, 200, 0, 9, 0, 0, 0, 0]),
            Err(RtcpError::Truncated(_))
        ));
        // RC says one block but the length has none.
        assert!(matches!(
            parse(&[0x81, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Truncated(_))
        ));
        for len in 0..64 {
            for fill in [0x00u8, 0x81, 0xC8, 0xFF] {
                let mut b = vec![fill; len];
                if len > 1 {
                    b[0] = 0x81;
                    b[1] = 200;
                }
                let _ = parse(&b);
            }
        }
    }
}
