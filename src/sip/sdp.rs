//! SDP offer/answer for G.711 telephony (RFC 4566 syntax, RFC 3264 offer/answer).
//!
//! voxnav answers the first audio stream with PCMU or PCMA (in the offerer's order of
//! preference), `telephone-event` (RFC 4733) with whatever payload type the offer uses, and
//! ptime 20. Directions follow RFC 3264 6.1: an offer that is sendonly (the caller put us on hold)
//! is answered recvonly, inactive with inactive; `c=0.0.0.0` is the RFC 2543 hold. Other media
//! streams are rejected with port 0, as RFC 3264 6 requires. No usable codec: 488.
//!
//! SRTP with SDES keys (RFC 4568): an `RTP/SAVP` stream with an `a=crypto` line of the suite
//! voxnav speaks (`AES_CM_128_HMAC_SHA1_80`) is answered `RTP/SAVP` with voxnav's own key; the
//! [`SrtpPolicy`] says whether plain RTP is still accepted, and whether SRTP is at all.

use std::net::IpAddr;

/// RTP payload types of the static G.711 codecs (RFC 3551 table 4).
pub const PT_PCMU: u8 = 0;
pub const PT_PCMA: u8 = 8;

/// Why an offer cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body is not SDP we can read.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// No audio stream offers PCMU or PCMA (answer 488 Not Acceptable Here).
    #[error("no acceptable audio codec offered (voxnav speaks PCMU and PCMA)")]
    NoCommonCodec,
    /// The policy requires SRTP and no stream offers it with a usable key (488), or the
    /// offer requires SRTP and the policy is off.
    #[error("no acceptable media security: {0}")]
    Security(&'static str),
}

/// Whether calls' media is encrypted (SRTP keyed by SDES, RFC 4568).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// SRTP when the offer asks for it, plain RTP otherwise.
    #[default]
    Optional,
    /// Only SRTP: a plain offer gets 488.
    Required,
    /// Only plain RTP: an SRTP-only offer gets 488.
    Off,
}

/// One `a=crypto` line (RFC 4568 9.1): tag, suite, key parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: String,
    pub key_params: String,
}

/// The SRTP keys agreed for a stream: the tag of the offer's crypto line, the far end's key
/// (what it sends with) and ours (what we send with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdes {
    pub tag: u32,
    pub remote: crate::media::srtp::MasterKey,
    pub local: crate::media::srtp::MasterKey,
}

/// Media direction (RFC 3264 5.1, 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attribute(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// The direction to answer an offer with.
    fn answer(self) -> Self {
        match self {
            Self::SendRecv => Self::SendRecv,
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            Self::Inactive => Self::Inactive,
        }
    }
}

/// One `m=` stream of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaOffer {
    pub media: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<String>,
    /// Payload type -> encoding name (upper case) and clock rate, from `a=rtpmap`.
    pub rtpmap: Vec<(u8, String, u32)>,
    pub direction: Option<Direction>,
    pub connection: Option<IpAddr>,
    /// `c=IN IP4 0.0.0.0` given (RFC 2543 hold).
    pub hold_address: bool,
    /// `a=crypto` lines, in the offer's order of preference.
    pub crypto: Vec<Crypto>,
}

/// A parsed offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub session_connection: Option<IpAddr>,
    pub session_hold_address: bool,
    pub session_direction: Option<Direction>,
    pub media: Vec<MediaOffer>,
}

/// What was agreed for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Where to send RTP (None while on hold with c=0.0.0.0 or port 0).
    pub remote: Option<std::net::SocketAddr>,
    /// PCMU (0) or PCMA (8).
    pub codec_pt: u8,
    /// The offer's telephone-event payload type, if any.
    pub dtmf_pt: Option<u8>,
    /// Our direction in the answer.
    pub direction: Direction,
    /// Index of the audio stream in the offer.
    pub media_index: usize,
    /// SRTP keys when the stream is `RTP/SAVP`; None for plain RTP.
    pub srtp: Option<Sdes>,
}

fn parse_connection(value: &str) -> Result<(Option<IpAddr>, bool), SdpError> {
    // c=<nettype> <addrtype> <connection-address>[/ttl][/n]
    let mut parts = value.split_whitespace();
    let (net, _addr_type, addr) = (parts.next(), parts.next(), parts.next());
    if net != Some("IN") {
        return Err(SdpError::Malformed(format!("c={value}")));
    }
    let addr = addr
        .and_then(|a| a.split('/').next())
        .ok_or_else(|| SdpError::Malformed(format!("c={value}")))?;
    match addr.parse::<IpAddr>() {
        Ok(ip) => Ok((Some(ip), ip.is_unspecified())),
        // A host name: legal but not resolvable here; treat as no address.
        Err(_) => Ok((None, false)),
    }
}

fn direction_of(attr: &str) -> Option<Direction> {
    Some(match attr {
        "sendrecv" => Direction::SendRecv,
        "sendonly" => Direction::SendOnly,
        "recvonly" => Direction::RecvOnly,
        "inactive" => Direction::Inactive,
        _ => return None,
    })
}

/// Parses an SDP offer (lines `x=value`, CRLF or LF).
pub fn parse(body: &[u8]) -> Result<Offer, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed("not UTF-8".into()))?;
    let mut offer = Offer {
        session_connection: None,
        session_hold_address: false,
        session_direction: None,
        media: Vec::new(),
    };
    let mut saw_version = false;
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.is_empty() {
            continue;
        }
        let Some((kind, value)) = line.split_once('=') else {
            return Err(SdpError::Malformed(format!("line {line:?}")));
        };
        match (kind, offer.media.last_mut()) {
            ("v", _) => saw_version = value.trim() == "0",
            ("c", None) => {
                let (ip, hold) = parse_connection(value)?;
                offer.session_connection = ip;
                offer.session_hold_address = hold;
            }
            ("c", Some(m)) => {
                let (ip, hold) = parse_connection(value)?;
                m.connection = ip;
                m.hold_address = hold;
            }
            ("m", _) => {
                let mut parts = value.split_whitespace();
                let media = parts.next().unwrap_or_default().to_string();
                let port = parts
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or_else(|| SdpError::Malformed(format!("m={value}")))?;
                let proto = parts.next().unwrap_or_default().to_string();
                offer.media.push(MediaOffer {
                    media,
                    port,
                    proto,
                    formats: parts.map(str::to_string).collect(),
                    rtpmap: Vec::new(),
                    direction: None,
                    connection: None,
                    hold_address: false,
                    crypto: Vec::new(),
                });
            }
            ("a", mut media) => {
                let (name, attr_value) = value.split_once(':').unwrap_or((value, ""));
                if let Some(d) = direction_of(name) {
                    match media {
                        Some(m) => m.direction = Some(d),
                        None => offer.session_direction = Some(d),
                    }
                } else if let (Some(m), "rtpmap") = (media.as_deref_mut(), name) {
                    // a=rtpmap:<pt> <encoding>/<clock>[/<channels>]
                    let mut it = attr_value.split_whitespace();
                    let pt = it.next().and_then(|p| p.parse::<u8>().ok());
                    let mut enc = it.next().unwrap_or_default().split('/');
                    let name = enc.next().unwrap_or_default().to_ascii_uppercase();
                    let clock = enc.next().and_then(|c| c.parse::<u32>().ok());
                    if let (Some(pt), Some(clock)) = (pt, clock) {
                        m.rtpmap.push((pt, name, clock));
                    }
                } else if let (Some(m), "crypto") = (media, name) {
                    // a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]
                    let mut it = attr_value.split_whitespace();
                    let tag = it.next().and_then(|t| t.parse::<u32>().ok());
                    let (suite, key) = (it.next(), it.next());
                    if let (Some(tag), Some(suite), Some(key)) = (tag, suite, key) {
                        m.crypto.push(Crypto {
                            tag,
                            suite: suite.to_string(),
                            key_params: key.to_string(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    if !saw_version {
        return Err(SdpError::Malformed("missing v=0".into()));
    }
    Ok(offer)
}

impl MediaOffer {
    /// The encoding a payload type stands for: rtpmap first, then the static table.
    fn encoding(&self, pt: u8) -> Option<(String, u32)> {
        self.rtpmap
            .iter()
            .find(|(p, _, _)| *p == pt)
            .map(|(_, n, c)| (n.clone(), *c))
            .or(match pt {
                PT_PCMU => Some(("PCMU".into(), 8000)),
                PT_PCMA => Some(("PCMA".into(), 8000)),
                _ => None,
            })
    }
}

/// Chooses the audio codec and telephone-event payload type for an offer: plain RTP only
/// (voxnav's own outgoing calls, and answers with SRTP off).
pub fn negotiate(offer: &Offer) -> Result<Negotiated, SdpError> {
    negotiate_secure(offer, SrtpPolicy::Off, &mut || None)
}

/// `negotiate` under an SRTP policy: an `RTP/SAVP` stream is taken when it carries a crypto
/// line of our suite with a key we can read, and `new_key` gives ours (None: no key could be
/// made, so no SRTP). Among acceptable streams, the first in the offer wins (RFC 3264 6).
pub fn negotiate_secure(
    offer: &Offer,
    policy: SrtpPolicy,
    new_key: &mut dyn FnMut() -> Option<crate::media::srtp::MasterKey>,
) -> Result<Negotiated, SdpError> {
    let mut refused_for_security = None;
    for (index, m) in offer.media.iter().enumerate() {
        if m.media != "audio" || m.port == 0 {
            continue;
        }
        let srtp = match m.proto.as_str() {
            p if p.starts_with("RTP/AVP") => {
                if policy == SrtpPolicy::Required {
                    refused_for_security = Some("SRTP is required here (RTP/SAVP, SDES)");
                    continue;
                }
                None
            }
            p if p.starts_with("RTP/SAVP") => {
                if policy == SrtpPolicy::Off {
                    refused_for_security = Some("SRTP is off here: offer RTP/AVP");
                    continue;
                }
                let remote = (m.crypto.iter())
                    .filter(|c| c.suite == crate::media::srtp::SUITE)
                    .find_map(|c| {
                        let key = crate::media::srtp::MasterKey::from_inline(&c.key_params);
                        key.ok().map(|k| (c.tag, k))
                    });
                let Some((tag, remote)) = remote else {
                    refused_for_security = Some("no AES_CM_128_HMAC_SHA1_80 crypto line");
                    continue;
                };
                let Some(local) = new_key() else {
                    refused_for_security = Some("no key could be made");
                    continue;
                };
                Some(Sdes { tag, remote, local })
            }
            _ => continue,
        };
        let formats: Vec<u8> = m.formats.iter().filter_map(|f| f.parse().ok()).collect();
        let codec = formats.iter().copied().find(
            |&pt| matches!(m.encoding(pt), Some((ref n, 8000)) if n == "PCMU" || n == "PCMA"),
        );
        let Some(codec_pt) = codec else { continue };
        // Answer with the static payload type of the chosen law.
        let codec_pt = match m.encoding(codec_pt) {
            Some((n, _)) if n == "PCMA" => PT_PCMA,
            _ => PT_PCMU,
        };
        let dtmf_pt = formats
            .iter()
            .copied()
            .find(|&pt| matches!(m.encoding(pt), Some((ref n, 8000)) if n == "TELEPHONE-EVENT"));
        let offered = m
            .direction
            .or(offer.session_direction)
            .unwrap_or(Direction::SendRecv);
        let hold = m.hold_address || (m.connection.is_none() && offer.session_hold_address);
        let ip = m
            .connection
            .or(offer.session_connection)
            .filter(|ip| !ip.is_unspecified());
        let direction = if hold && offered == Direction::SendRecv {
            // RFC 2543 hold (c=0.0.0.0) means "do not send to me".
            Direction::RecvOnly
        } else {
            offered.answer()
        };
        return Ok(Negotiated {
            remote: ip.map(|ip| std::net::SocketAddr::new(ip, m.port)),
            codec_pt,
            dtmf_pt,
            direction,
            media_index: index,
            srtp,
        });
    }
    Err(refused_for_security.map_or(SdpError::NoCommonCodec, SdpError::Security))
}

/// Writes the answer: the agreed audio stream on `local` (our IP and RTP port), every other
/// stream rejected with port 0 in the offer's order (RFC 3264 6).
pub fn answer(
    offer: &Offer,
    agreed: &Negotiated,
    local: std::net::SocketAddr,
    session_id: u64,
) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut sdp = format!(
        "v=0\r\no=voxnav {session_id} {session_id} IN {family} {ip}\r\ns=voxnav\r\nc=IN {family} {ip}\r\nt=0 0\r\n"
    );
    for (i, m) in offer.media.iter().enumerate() {
        if i != agreed.media_index {
            let first = m.formats.first().map_or("0", String::as_str);
            sdp.push_str(&format!("m={} 0 {} {first}\r\n", m.media, m.proto));
            continue;
        }
        let codec_name = if agreed.codec_pt == PT_PCMA {
            "PCMA"
        } else {
            "PCMU"
        };
        let mut formats = agreed.codec_pt.to_string();
        if let Some(pt) = agreed.dtmf_pt {
            formats.push_str(&format!(" {pt}"));
        }
        let proto = if agreed.srtp.is_some() {
            "RTP/SAVP"
        } else {
            "RTP/AVP"
        };
        sdp.push_str(&format!("m=audio {} {proto} {formats}\r\n", local.port()));
        if let Some(keys) = &agreed.srtp {
            // Our key, under the tag of the offer's line we took (RFC 4568 5.1.1).
            sdp.push_str(&format!(
                "a=crypto:{} {} {}\r\n",
                keys.tag,
                crate::media::srtp::SUITE,
                keys.local.to_inline()
            ));
        }
        sdp.push_str(&format!(
            "a=rtpmap:{} {codec_name}/8000\r\n",
            agreed.codec_pt
        ));
        if let Some(pt) = agreed.dtmf_pt {
            sdp.push_str(&format!(
                "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"
            ));
        }
        sdp.push_str(&format!(
            "a=ptime:20\r\na={}\r\n",
            agreed.direction.attribute()
        ));
    }
    sdp
}

/// Our offer, for an INVITE that came without one (RFC 3261 13.2.1): PCMU, PCMA and
/// telephone-event 101, at `local`.
pub fn offer(local: std::net::SocketAddr, session_id: u64) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=voxnav {session_id} {session_id} IN {family} {ip}\r\ns=voxnav\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
        port = local.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n";

    #[test]
    fn answers_sipp_with_pcma_and_its_dtmf_payload_type() {
        let offer = parse(SIPP.as_bytes()).unwrap();
        let n = negotiate(&offer).unwrap();
        assert_eq!(n.codec_pt, PT_PCMA);
        assert_eq!(n.dtmf_pt, Some(101));
        assert_eq!(n.remote, Some("127.0.0.1:6000".parse().unwrap()));
        let a = answer(&offer, &n, "127.0.0.1:20000".parse().unwrap(), 7);
        assert!(a.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{a}");
        assert!(
            a.contains("a=rtpmap:101 telephone-event/8000\r\n") && a.contains("a=ptime:20\r\n")
        );
        assert!(a.contains("a=sendrecv\r\n"));
        // The answer is itself valid SDP.
        assert_eq!(
            negotiate(&parse(a.as_bytes()).unwrap()).unwrap().codec_pt,
            PT_PCMA
        );
    }

    #[test]
    fn follows_the_offerers_preference_and_any_dtmf_payload_type() {
        let offer = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 18 0 8 96\r\na=rtpmap:96 telephone-event/8000\r\n";
        let n = negotiate(&parse(offer.as_bytes()).unwrap()).unwrap();
        assert_eq!((n.codec_pt, n.dtmf_pt), (PT_PCMU, Some(96)));
    }

    #[test]
    fn srtp_offers_are_answered_with_our_key_under_each_policy() {
        use crate::media::srtp::MasterKey;
        let theirs = MasterKey::random().unwrap();
        let secure = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             m=audio 4000 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_32 {}\r\na=crypto:2 AES_CM_128_HMAC_SHA1_80 {}|2^31\r\n",
            MasterKey::random().unwrap().to_inline(),
            theirs.to_inline()
        );
        let plain = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                     m=audio 4000 RTP/AVP 0\r\n";
        let ours = MasterKey::random().unwrap();
        let mut key = || Some(ours.clone());
        let offer = parse(secure.as_bytes()).unwrap();
        let agreed = negotiate_secure(&offer, SrtpPolicy::Optional, &mut key).unwrap();
        let keys = agreed.srtp.clone().expect("SRTP agreed");
        assert_eq!(
            (keys.tag, &keys.remote),
            (2, &theirs),
            "the suite we speak, its key"
        );
        let answer = answer(&offer, &agreed, "192.0.2.9:6000".parse().unwrap(), 1);
        assert!(
            answer.contains("m=audio 6000 RTP/SAVP 0 101\r\n"),
            "{answer}"
        );
        assert!(
            answer.contains(&format!(
                "a=crypto:2 AES_CM_128_HMAC_SHA1_80 {}\r\n",
                ours.to_inline()
            )),
            "{answer}"
        );
        let required = negotiate_secure(&offer, SrtpPolicy::Required, &mut key).unwrap();
        assert!(required.srtp.is_some());
        assert_eq!(
            negotiate_secure(&offer, SrtpPolicy::Off, &mut key),
            Err(SdpError::Security("SRTP is off here: offer RTP/AVP"))
        );
        // A plain offer: plain unless SRTP is required.
        let plain = parse(plain.as_bytes()).unwrap();
        let agreed = negotiate_secure(&plain, SrtpPolicy::Optional, &mut key).unwrap();
        assert!(agreed.srtp.is_none());
        assert!(answer_has_plain(&plain, &agreed));
        assert!(matches!(
            negotiate_secure(&plain, SrtpPolicy::Required, &mut key),
            Err(SdpError::Security(_))
        ));
        // SRTP offered only in a suite we do not speak: refused, not answered in the clear.
        let other = secure.replace(
            "a=crypto:2 AES_CM_128_HMAC_SHA1_80",
            "a=crypto:2 AEAD_AES_256_GCM",
        );
        let offer = parse(other.as_bytes()).unwrap();
        assert!(matches!(
            negotiate_secure(&offer, SrtpPolicy::Optional, &mut key),
            Err(SdpError::Security(_))
        ));
    }

    fn answer_has_plain(offer: &Offer, agreed: &Negotiated) -> bool {
        let a = answer(offer, agreed, "192.0.2.9:6000".parse().unwrap(), 1);
        a.contains("RTP/AVP") && !a.contains("a=crypto")
    }

    #[test]
    fn hold_and_directions() {
        let sendonly = SIPP.replace(
            "a=fmtp:101 0-11,16\r\n",
            "a=fmtp:101 0-11,16\r\na=sendonly\r\n",
        );
        assert_eq!(
            negotiate(&parse(sendonly.as_bytes()).unwrap())
                .unwrap()
                .direction,
            Direction::RecvOnly
        );
        let inactive = format!("{SIPP}a=inactive\r\n");
        assert_eq!(
            negotiate(&parse(inactive.as_bytes()).unwrap())
                .unwrap()
                .direction,
            Direction::Inactive
        );
        let old_hold = SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let n = negotiate(&parse(old_hold.as_bytes()).unwrap()).unwrap();
        assert_eq!((n.direction, n.remote), (Direction::RecvOnly, None));
    }

    #[test]
    fn other_streams_are_rejected_and_no_codec_is_488() {
        // RFC 4475 wsinv's SDP: audio 0 12, then video.
        let body = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n";
        let offer = parse(body.as_bytes()).unwrap();
        let n = negotiate(&offer).unwrap();
        let a = answer(&offer, &n, "192.0.2.9:30000".parse().unwrap(), 1);
        assert!(
            a.contains("m=audio 30000 RTP/AVP 0\r\n") && a.contains("m=video 0 RTP/AVP 31\r\n"),
            "{a}"
        );
        let g729 = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 18\r\n";
        assert_eq!(
            negotiate(&parse(g729.as_bytes()).unwrap()),
            Err(SdpError::NoCommonCodec)
        );
        assert!(parse(b"m=audio x").is_err());
        assert!(parse(b"no sdp here").is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
    }
}
