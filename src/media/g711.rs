//! G.711 PCMU (mu-law) and PCMA (A-law) codecs, ITU-T G.711 (1988) section 2 and 3, as used by
//! RTP payload types 0 and 8 (RFC 3551 section 4.5.14). Encoding uses the standard segment search on
//! 16-bit linear PCM; decoding is a 256-entry table built at first use.

use std::sync::OnceLock;

const BIAS: i32 = 0x84;
const CLIP: i32 = 32_635;

/// Encodes one 16-bit sample as mu-law (G.711 section 3, with the 0x84 bias).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let exponent = (31 - (s as u32).leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Decodes one mu-law byte to 16-bit PCM.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    static TABLE: OnceLock<[i16; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        std::array::from_fn(|i| {
            let u = !(i as u8) as i32;
            let t = (((u & 0x0F) << 3) + BIAS) << ((u & 0x70) >> 4);
            (if u & 0x80 != 0 { BIAS - t } else { t - BIAS }) as i16
        })
    })[byte as usize]
}

/// Encodes one 16-bit sample as A-law (G.711 section 2; even bits inverted with 0x55).
pub fn linear_to_alaw(sample: i16) -> u8 {
    let s = sample as i32 >> 3; // A-law works on 13-bit magnitudes
    let (sign, mag) = if s >= 0 { (0x80, s) } else { (0x00, -s - 1) };
    let byte = if mag < 32 {
        mag >> 1
    } else {
        let exponent = (31 - (mag as u32).leading_zeros() as i32 - 4).min(7);
        if exponent >= 7 && mag >= 4096 {
            0x7F
        } else {
            (exponent << 4) | ((mag >> exponent) & 0x0F)
        }
    };
    ((sign | byte) ^ 0x55) as u8
}

/// Decodes one A-law byte to 16-bit PCM.
pub fn alaw_to_linear(byte: u8) -> i16 {
    static TABLE: OnceLock<[i16; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        std::array::from_fn(|i| {
            let a = (i as u8 ^ 0x55) as i32;
            let exponent = (a & 0x70) >> 4;
            let mantissa = a & 0x0F;
            let mag = if exponent == 0 {
                (mantissa << 4) + 8
            } else {
                ((mantissa << 4) + 0x108) << (exponent - 1)
            };
            (if a & 0x80 != 0 { mag } else { -mag }) as i16
        })
    })[byte as usize]
}

/// The two G.711 laws, for code that handles either payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// PCMU, RTP payload type 0 (North America, Japan).
    Ulaw,
    /// PCMA, RTP payload type 8 (Europe, China, most of the world).
    Alaw,
}

impl Law {
    pub fn encode(self, pcm: &[i16]) -> Vec<u8> {
        let mut out = Vec::with_capacity(pcm.len());
        self.encode_into(pcm, &mut out);
        out
    }

    /// Appends the encoding of `pcm` to `out` (no allocation once `out` has grown: the media
    /// loop reuses one buffer per call).
    pub fn encode_into(self, pcm: &[i16], out: &mut Vec<u8>) {
        let f = match self {
            Self::Ulaw => linear_to_ulaw,
            Self::Alaw => linear_to_alaw,
        };
        out.extend(pcm.iter().map(|&s| f(s)));
    }

    /// Decodes one byte.
    pub fn decode_sample(self, byte: u8) -> i16 {
        match self {
            Self::Ulaw => ulaw_to_linear(byte),
            Self::Alaw => alaw_to_linear(byte),
        }
    }

    pub fn decode(self, bytes: &[u8]) -> Vec<i16> {
        bytes.iter().map(|&b| self.decode_sample(b)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_code_points() {
        // Silence and full scale, from the G.711 tables.
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(linear_to_ulaw(32_767), 0x80);
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(linear_to_ulaw(-32_768), 0x00);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0xAA), 32_256);
        assert_eq!(alaw_to_linear(0x2A), -32_256);
    }

    #[test]
    fn every_code_decodes_and_re_encodes_to_itself() {
        for b in 0..=255u8 {
            // mu-law has two zeros (0x7F and 0xFF); both decode to 0, which encodes as 0xFF.
            let u = linear_to_ulaw(ulaw_to_linear(b));
            assert!(u == b || (b == 0x7F && u == 0xFF), "ulaw {b:#x} -> {u:#x}");
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "alaw {b:#x}");
        }
    }

    #[test]
    fn round_trip_error_is_within_the_segment_step() {
        for s in (-32_768i32..=32_767).step_by(7) {
            let s = s as i16;
            for law in [Law::Ulaw, Law::Alaw] {
                let back = law.decode(&law.encode(&[s]))[0] as i32;
                let err = (back - s as i32).abs();
                // Quantisation step doubles per segment; the error is at most half a step (+bias).
                let bound = (s as i32).abs() / 16 + 16;
                assert!(err <= bound, "{law:?} {s} -> {back}");
            }
        }
    }
}
