//! SRTP and SRTCP (RFC 3711) with the AES_CM_128_HMAC_SHA1_80 suite, keyed by SDES
//! (RFC 4568: each side's master key travels in its SDP `a=crypto` line, so this is only as
//! private as the signalling: SIP over TLS or a trusted network).
//!
//! Sans-IO: [`Outbound`] protects the packets a session sends, [`Inbound`] checks and
//! decrypts the ones it receives. A packet whose authentication tag does not match (a wrong
//! key, corruption, forgery) or that replays one already accepted is refused, never decoded:
//! a wrong key gives silence, counted, not noise.

use aes::Aes128;
use aes::cipher::{KeyIvInit, StreamCipher};
use base64::Engine;
use hmac::{Hmac, Mac};

type AesCtr = ctr::Ctr128BE<Aes128>;
type HmacSha1 = Hmac<sha1::Sha1>;

/// The one suite offered and accepted (RFC 4568 6.2.1; every SDES implementation has it).
pub const SUITE: &str = "AES_CM_128_HMAC_SHA1_80";
/// Its authentication tag: 80 bits of HMAC-SHA1.
const TAG: usize = 10;
/// How far back (in packets) a late packet is still accepted once (RFC 3711 3.3.2).
const REPLAY_WINDOW: u64 = 64;

/// Why a packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("packet too short for SRTP")]
    Short,
    #[error("authentication tag does not match (wrong key or altered packet)")]
    Auth,
    #[error("replayed packet")]
    Replay,
    #[error("bad SDES key: {0}")]
    Key(String),
}

/// A master key and salt (30 bytes), as `a=crypto` carries them.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    pub key: [u8; 16],
    pub salt: [u8; 14],
}

/// Keys stay out of logs.
impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A fresh key from the kernel's random source.
    pub fn random() -> std::io::Result<Self> {
        use std::io::Read;
        let mut bytes = [0u8; 30];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; 30]) -> Self {
        let mut key = [0u8; 16];
        let mut salt = [0u8; 14];
        key.copy_from_slice(&bytes[..16]);
        salt.copy_from_slice(&bytes[16..]);
        Self { key, salt }
    }

    /// `inline:` key parameters: base64 of key || salt (RFC 4568 6.1).
    pub fn to_inline(&self) -> String {
        let mut bytes = self.key.to_vec();
        bytes.extend_from_slice(&self.salt);
        format!(
            "inline:{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }

    /// Reads `inline:BASE64[|lifetime][|MKI:length]`. A master key identifier (MKI) is
    /// refused: packets would carry it and nothing here reads it.
    pub fn from_inline(params: &str) -> Result<Self, SrtpError> {
        let body = params
            .strip_prefix("inline:")
            .ok_or_else(|| SrtpError::Key("not inline:".into()))?;
        let mut parts = body.split('|');
        let encoded = parts.next().unwrap_or_default();
        for extra in parts {
            if extra.contains(':') {
                return Err(SrtpError::Key(
                    "master key identifiers are not supported".into(),
                ));
            }
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| SrtpError::Key(e.to_string()))?;
        let bytes: [u8; 30] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| SrtpError::Key(format!("{} bytes, not 30", b.len())))?;
        Ok(Self::from_bytes(&bytes))
    }
}

/// Session keys of one direction and one protocol (RTP or RTCP).
#[derive(Clone)]
struct SessionKeys {
    cipher: [u8; 16],
    auth: [u8; 20],
    salt: [u8; 14],
}

/// The AES-CM keystream of `len` bytes for `key` from `iv`.
fn keystream_xor(key: &[u8; 16], iv: &[u8; 16], data: &mut [u8]) {
    let mut cipher = AesCtr::new(key.into(), iv.into());
    cipher.apply_keystream(data);
}

/// Key derivation (RFC 3711 4.3.1, key_derivation_rate 0): the PRF is AES-CM keyed with the
/// master key, from IV = (master salt XOR label << 48) || 0x0000.
fn derive(master: &MasterKey, label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(&master.salt);
    // key_id = label || r (48 bits, 0): its 7 bytes align with the salt's last 7.
    iv[7] ^= label;
    out.iter_mut().for_each(|b| *b = 0);
    keystream_xor(&master.key, &iv, out);
}

impl SessionKeys {
    /// Labels 0-2 (RTP) or 3-5 (RTCP): cipher key, authentication key, salt.
    fn new(master: &MasterKey, first_label: u8) -> Self {
        let mut keys = Self {
            cipher: [0; 16],
            auth: [0; 20],
            salt: [0; 14],
        };
        derive(master, first_label, &mut keys.cipher);
        derive(master, first_label + 1, &mut keys.auth);
        derive(master, first_label + 2, &mut keys.salt);
        keys
    }

    /// IV = (salt << 16) XOR (SSRC << 64) XOR (index << 16) (RFC 3711 4.1.1).
    fn iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (i, b) in ssrc.to_be_bytes().iter().enumerate() {
            iv[4 + i] ^= b;
        }
        for (i, b) in index.to_be_bytes()[2..].iter().enumerate() {
            iv[8 + i] ^= b;
        }
        iv
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha1 {
        let mut mac = HmacSha1::new_from_slice(&self.auth).expect("HMAC takes any key length");
        for p in parts {
            mac.update(p);
        }
        mac
    }
}

/// The RTP header's length (fixed part, CSRCs, extension), if the packet holds it.
fn rtp_header_len(p: &[u8]) -> Option<usize> {
    if p.len() < 12 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*p.get(len + 2)?, *p.get(len + 3)?]);
        len += 4 + 4 * usize::from(words);
    }
    (len <= p.len()).then_some(len)
}

/// Protects what one session sends.
pub struct Outbound {
    rtp: SessionKeys,
    rtcp: SessionKeys,
    /// Rollover counter: how many times the sequence number has wrapped.
    roc: u32,
    last_seq: Option<u16>,
    srtcp_index: u32,
}

/// Keys stay out of logs: only the counters show.
impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outbound(roc {}, srtcp {})", self.roc, self.srtcp_index)
    }
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Inbound(ssrc {:?}, roc {})", self.ssrc, self.roc)
    }
}

impl Outbound {
    pub fn new(master: &MasterKey) -> Self {
        Self {
            rtp: SessionKeys::new(master, 0),
            rtcp: SessionKeys::new(master, 3),
            roc: 0,
            last_seq: None,
            srtcp_index: 0,
        }
    }

    /// Encrypts an RTP packet's payload in place and appends its tag.
    pub fn protect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let header = rtp_header_len(packet).ok_or(SrtpError::Short)?;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        if let Some(last) = self.last_seq
            && seq < last
            && last - seq > 0x8000
        {
            self.roc = self.roc.wrapping_add(1);
        }
        self.last_seq = Some(seq);
        let index = (u64::from(self.roc) << 16) | u64::from(seq);
        keystream_xor(
            &self.rtp.cipher,
            &self.rtp.iv(ssrc, index),
            &mut packet[header..],
        );
        let tag = self
            .rtp
            .mac(&[packet, &self.roc.to_be_bytes()])
            .finalize()
            .into_bytes();
        packet.extend_from_slice(&tag[..TAG]);
        Ok(())
    }

    /// Encrypts an RTCP compound packet after its first 8 bytes (RFC 3711 3.4) and appends
    /// the E flag with the SRTCP index, then the tag.
    pub fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        if packet.len() < 8 {
            return Err(SrtpError::Short);
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let index = self.srtcp_index;
        self.srtcp_index = (index + 1) & 0x7fff_ffff;
        keystream_xor(
            &self.rtcp.cipher,
            &self.rtcp.iv(ssrc, u64::from(index)),
            &mut packet[8..],
        );
        packet.extend_from_slice(&(0x8000_0000 | index).to_be_bytes());
        let tag = self.rtcp.mac(&[packet]).finalize().into_bytes();
        packet.extend_from_slice(&tag[..TAG]);
        Ok(())
    }
}

/// The replay window of one stream: the highest index accepted and a bit per earlier one.
#[derive(Default)]
struct ReplayWindow {
    highest: Option<u64>,
    seen: u64,
}

impl ReplayWindow {
    fn check(&self, index: u64) -> Result<(), SrtpError> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if index > highest {
            return Ok(());
        }
        let back = highest - index;
        if back >= REPLAY_WINDOW || self.seen & (1 << back) != 0 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    fn accept(&mut self, index: u64) {
        match self.highest {
            Some(highest) if index <= highest => self.seen |= 1 << (highest - index),
            Some(highest) => {
                let shift = index - highest;
                self.seen = if shift >= REPLAY_WINDOW {
                    1
                } else {
                    (self.seen << shift) | 1
                };
                self.highest = Some(index);
            }
            None => {
                self.highest = Some(index);
                self.seen = 1;
            }
        }
    }
}

/// Checks and decrypts what one session receives (one remote SSRC at a time: a new SSRC
/// starts its rollover counter and replay window afresh).
pub struct Inbound {
    rtp: SessionKeys,
    rtcp: SessionKeys,
    ssrc: Option<u32>,
    roc: u32,
    s_l: Option<u16>,
    window: ReplayWindow,
    rtcp_window: ReplayWindow,
}

impl Inbound {
    pub fn new(master: &MasterKey) -> Self {
        Self {
            rtp: SessionKeys::new(master, 0),
            rtcp: SessionKeys::new(master, 3),
            ssrc: None,
            roc: 0,
            s_l: None,
            window: ReplayWindow::default(),
            rtcp_window: ReplayWindow::default(),
        }
    }

    /// The RTP packet decrypted, without its tag; refused if the tag does not match or it
    /// was seen before.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if packet.len() < 12 + TAG {
            return Err(SrtpError::Short);
        }
        let (body, tag) = packet.split_at(packet.len() - TAG);
        let header = rtp_header_len(body).ok_or(SrtpError::Short)?;
        let seq = u16::from_be_bytes([body[2], body[3]]);
        let ssrc = u32::from_be_bytes([body[8], body[9], body[10], body[11]]);
        let fresh = self.ssrc != Some(ssrc);
        // The rollover counter this packet was sent with (RFC 3711 3.3.1, Appendix A).
        let v = match (fresh, self.s_l) {
            (false, Some(s_l)) if s_l < 0x8000 => {
                if u32::from(seq) > u32::from(s_l) + 0x8000 {
                    self.roc.wrapping_sub(1)
                } else {
                    self.roc
                }
            }
            (false, Some(s_l)) => {
                if u32::from(s_l) > u32::from(seq) + 0x8000 {
                    self.roc.wrapping_add(1)
                } else {
                    self.roc
                }
            }
            _ => 0,
        };
        let index = (u64::from(v) << 16) | u64::from(seq);
        if !fresh {
            self.window.check(index)?;
        }
        self.rtp
            .mac(&[body, &v.to_be_bytes()])
            .verify_truncated_left(tag)
            .map_err(|_| SrtpError::Auth)?;
        let mut plain = body.to_vec();
        keystream_xor(
            &self.rtp.cipher,
            &self.rtp.iv(ssrc, index),
            &mut plain[header..],
        );
        if fresh {
            self.ssrc = Some(ssrc);
            self.window = ReplayWindow::default();
            self.roc = v;
            self.s_l = Some(seq);
        } else if self.window.highest.is_none_or(|h| index > h) {
            self.roc = v;
            self.s_l = Some(seq);
        }
        self.window.accept(index);
        Ok(plain)
    }

    /// The RTCP compound packet decrypted, without the SRTCP index and tag.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if packet.len() < 8 + 4 + TAG {
            return Err(SrtpError::Short);
        }
        let (body, tag) = packet.split_at(packet.len() - TAG);
        self.rtcp
            .mac(&[body])
            .verify_truncated_left(tag)
            .map_err(|_| SrtpError::Auth)?;
        let (sealed, e_index) = body.split_at(body.len() - 4);
        let e_index = u32::from_be_bytes([e_index[0], e_index[1], e_index[2], e_index[3]]);
        let index = u64::from(e_index & 0x7fff_ffff);
        self.rtcp_window.check(index)?;
        let mut plain = sealed.to_vec();
        if e_index & 0x8000_0000 != 0 {
            let ssrc = u32::from_be_bytes([plain[4], plain[5], plain[6], plain[7]]);
            keystream_xor(
                &self.rtcp.cipher,
                &self.rtcp.iv(ssrc, index),
                &mut plain[8..],
            );
        }
        self.rtcp_window.accept(index);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 3711 Appendix B.3: the key derivation test vectors.
    #[test]
    fn session_keys_match_rfc_3711_b3() {
        let master = MasterKey {
            key: hex("E1F97A0D3E018BE0D64FA32C06DE4139").try_into().unwrap(),
            salt: hex("0EC675AD498AFEEBB6960B3AABE6").try_into().unwrap(),
        };
        let keys = SessionKeys::new(&master, 0);
        assert_eq!(
            keys.cipher.to_vec(),
            hex("C61E7A93744F39EE10734AFE3FF7A087")
        );
        assert_eq!(keys.salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        assert_eq!(
            keys.auth.to_vec(),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
    }

    fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn packets_round_trip_across_a_rollover_and_replays_and_wrong_keys_are_refused() {
        let key = MasterKey::random().unwrap();
        let (mut tx, mut rx) = (Outbound::new(&key), Inbound::new(&key));
        let payload = [0x55u8; 160];
        for seq in (65_530u16..=65_535).chain(0..5) {
            let mut p = rtp(seq, &payload);
            tx.protect_rtp(&mut p).unwrap();
            assert_eq!(p.len(), 12 + 160 + TAG);
            assert_ne!(&p[12..172], &payload[..], "the payload is encrypted");
            let plain = rx.unprotect_rtp(&p).unwrap();
            assert_eq!(plain, rtp(seq, &payload), "seq {seq}");
            assert_eq!(rx.unprotect_rtp(&p), Err(SrtpError::Replay));
        }
        assert_eq!(rx.roc, 1, "the rollover was followed");
        // A late packet inside the window is accepted once.
        let (mut tx2, mut rx2) = (Outbound::new(&key), Inbound::new(&key));
        let mut sealed: Vec<Vec<u8>> = (10u16..13)
            .map(|seq| {
                let mut p = rtp(seq, &payload);
                tx2.protect_rtp(&mut p).unwrap();
                p
            })
            .collect();
        let late = sealed.remove(1);
        for p in &sealed {
            rx2.unprotect_rtp(p).unwrap();
        }
        assert_eq!(rx2.unprotect_rtp(&late).unwrap(), rtp(11, &payload));
        assert_eq!(rx2.unprotect_rtp(&late), Err(SrtpError::Replay));

        // Another key: refused as unauthenticated, never decoded into noise.
        let other = MasterKey::random().unwrap();
        let mut forged = rtp(5, &payload);
        Outbound::new(&other).protect_rtp(&mut forged).unwrap();
        assert_eq!(rx.unprotect_rtp(&forged), Err(SrtpError::Auth));
        // One flipped bit: refused.
        let mut p = rtp(6, &payload);
        tx.protect_rtp(&mut p).unwrap();
        p[40] ^= 1;
        assert_eq!(rx.unprotect_rtp(&p), Err(SrtpError::Auth));
        assert_eq!(rx.unprotect_rtp(&p[..15]), Err(SrtpError::Short));
    }

    #[test]
    fn rtcp_round_trips_with_its_index_and_refuses_replays() {
        let key = MasterKey::random().unwrap();
        let (mut tx, mut rx) = (Outbound::new(&key), Inbound::new(&key));
        let report: Vec<u8> = (0..28u8).collect();
        for _ in 0..3 {
            let mut p = report.clone();
            tx.protect_rtcp(&mut p).unwrap();
            assert_eq!(p.len(), 28 + 4 + TAG);
            assert_eq!(&p[..8], &report[..8], "the first 8 bytes stay clear");
            assert_ne!(&p[8..28], &report[8..]);
            assert_eq!(rx.unprotect_rtcp(&p).unwrap(), report);
            assert_eq!(rx.unprotect_rtcp(&p), Err(SrtpError::Replay));
        }
    }

    #[test]
    fn inline_keys_round_trip_and_bad_ones_are_refused() {
        let key = MasterKey::random().unwrap();
        let inline = key.to_inline();
        assert_eq!(inline.len(), "inline:".len() + 40);
        assert_eq!(MasterKey::from_inline(&inline).unwrap(), key);
        assert_eq!(
            MasterKey::from_inline(&format!("{inline}|2^20")).unwrap(),
            key
        );
        assert!(MasterKey::from_inline(&format!("{inline}|2^20|1:4")).is_err());
        assert!(MasterKey::from_inline("inline:c2hvcnQ=").is_err());
        assert!(MasterKey::from_inline("inline:!!!").is_err());
        assert!(!format!("{key:?}").contains(&inline[7..]));
    }
}
