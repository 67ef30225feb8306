//! RTP packets (RFC 3550 section 5.1), sans-IO: parse with every length checked, and serialise.
//!
//! ```text
//!  0                   1                   2                   3
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers (CC)        |
//! | [extension: profile (16) | length in 32-bit words (16) | data]|
//! | payload ...                   | [padding ... | padding count] |
//! ```

/// Why a datagram is not a usable RTP packet (it is dropped; RTP has no error replies).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("{0} bytes is shorter than an RTP header")]
    TooShort(usize),
    /// Version is not 2.
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    /// CSRC list, extension or padding run past the end.
    #[error("RTP {0} runs past the end of the packet")]
    Truncated(&'static str),
    /// RTCP arriving on the RTP port (payload types 72-76 with the marker, RFC 5761 4).
    #[error("RTCP packet type {0} on the RTP port")]
    Rtcp(u8),
}

/// A parsed RTP packet borrowing its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses one datagram.
    pub fn parse(b: &'a [u8]) -> Result<Self, RtpError> {
        if b.len() < 12 {
            return Err(RtpError::TooShort(b.len()));
        }
        let version = b[0] >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let (padding, extension, csrc_count) =
            (b[0] & 0x20 != 0, b[0] & 0x10 != 0, (b[0] & 0x0F) as usize);
        let (marker, payload_type) = (b[1] & 0x80 != 0, b[1] & 0x7F);
        // RFC 5761 4: RTCP packet types 200-204 read as marker + payload type 72-76.
        if (200..=204).contains(&b[1]) {
            return Err(RtpError::Rtcp(b[1]));
        }
        let mut start = 12 + 4 * csrc_count;
        if start > b.len() {
            return Err(RtpError::Truncated("CSRC list"));
        }
        if extension {
            let header = b
                .get(start..start + 4)
                .ok_or(RtpError::Truncated("extension header"))?;
            let words = u16::from_be_bytes([header[2], header[3]]) as usize;
            start += 4 + 4 * words;
            if start > b.len() {
                return Err(RtpError::Truncated("extension"));
            }
        }
        let mut end = b.len();
        if padding {
            let count = *b.last().ok_or(RtpError::Truncated("padding"))? as usize;
            if count == 0 || start + count > end {
                return Err(RtpError::Truncated("padding"));
            }
            end -= count;
        }
        Ok(Self {
            marker,
            payload_type,
            sequence: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            payload: &b[start..end],
        })
    }

    /// Serialises with no CSRCs, extension or padding (what voxnav sends).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.payload.len());
        self.write_to(&mut out);
        out
    }

    /// Replaces `out`'s contents with the packet; callers sending every 20 ms reuse one buffer
    /// (and may append the payload afterwards, encoding straight into it).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(0x80);
        out.push(((self.marker as u8) << 7) | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fields() {
        let payload = [0xD5u8; 160];
        let p = RtpPacket {
            marker: true,
            payload_type: 8,
            sequence: 65_535,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1234_5678,
            payload: &payload,
        };
        let bytes = p.to_bytes();
        assert_eq!(bytes.len(), 172);
        assert_eq!(&bytes[..2], &[0x80, 0x88]);
        assert_eq!(RtpPacket::parse(&bytes).unwrap(), p);
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut b = vec![0xB1, 0x00, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        b.extend_from_slice(&[1, 2, 3, 4]); // one CSRC
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]); // extension, one word
        b.extend_from_slice(&[7, 7, 7]); // payload
        b.extend_from_slice(&[0, 0, 3]); // padding of 3
        let p = RtpPacket::parse(&b).unwrap();
        assert_eq!(p.payload, &[7, 7, 7]);
        assert_eq!((p.sequence, p.timestamp, p.ssrc), (1, 160, 9));
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        assert_eq!(RtpPacket::parse(&[0x80; 5]), Err(RtpError::TooShort(5)));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::Version(1)));
        assert!(matches!(
            RtpPacket::parse(&[0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RtpError::Truncated(_))
        ));
        assert!(matches!(
            RtpPacket::parse(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]),
            Err(RtpError::Truncated(_))
        ));
        assert!(matches!(
            RtpPacket::parse(&[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200]),
            Err(RtpError::Truncated(_))
        ));
        // An RTCP sender report (type 200) arriving on the RTP port.
        assert!(matches!(
            RtpPacket::parse(&[0x80, 200, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RtpError::Rtcp(200))
        ));
        for len in 0..40 {
            for fill in [0x00u8, 0x80, 0xBF, 0xFF] {
                let _ = RtpPacket::parse(&vec![fill; len]);
            }
        }
    }
}
