//! DTMF, the keypad fallback that must always work: RFC 4733 telephone-events (the normal case,
//! with whatever payload type SDP negotiated) and in-band tone detection (Goertzel) for trunks
//! that send the tones inside the audio.

/// Digits in RFC 4733 event order: 0-9, *, #, A-D (section 3.2).
const EVENTS: &[u8; 16] = b"0123456789*#ABCD";

/// Event code of a digit character.
pub fn event_of(digit: char) -> Option<u8> {
    EVENTS
        .iter()
        .position(|&c| c as char == digit.to_ascii_uppercase())
        .map(|i| i as u8)
}

/// Digit character of an event code (16 = flash and others are not digits).
pub fn digit_of(event: u8) -> Option<char> {
    EVENTS.get(event as usize).map(|&c| c as char)
}

/// An RFC 4733 section 2.3 event payload: event, E(nd) bit, volume, duration (timestamp units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let b = payload.get(..4)?;
        Some(Self {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            ((self.end as u8) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// Turns a stream of telephone-event packets into digits, once each: an event is identified by
/// its RTP timestamp (section 2.5.1.2), so the retransmitted end packets and the periodic
/// updates of a held key do not repeat the digit.
#[derive(Debug, Default)]
pub struct EventReceiver {
    last_timestamp: Option<u32>,
}

impl EventReceiver {
    /// Feeds one packet's payload and RTP timestamp; returns a digit when a new event starts.
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let ev = TelephoneEvent::parse(payload)?;
        let digit = digit_of(ev.event)?;
        if self.last_timestamp == Some(timestamp) {
            return None;
        }
        self.last_timestamp = Some(timestamp);
        Some(digit)
    }
}

/// The RFC 4733 packets that send one digit: an update every 20 ms (160 samples at 8 kHz),
/// marker on the first, and the end packet sent three times (section 2.5.1.4). All share the
/// event's start timestamp. Returns (marker, payload) pairs.
pub fn event_packets(digit: char, duration_ms: u32, volume: u8) -> Vec<(bool, [u8; 4])> {
    let Some(event) = event_of(digit) else {
        return Vec::new();
    };
    let total = (duration_ms * 8).clamp(160, u16::MAX as u32) as u16;
    let mut packets = Vec::new();
    let mut duration = 160u16;
    while duration < total {
        let ev = TelephoneEvent {
            event,
            end: false,
            volume,
            duration,
        };
        packets.push((packets.is_empty(), ev.to_bytes()));
        duration = duration.saturating_add(160);
    }
    let end = TelephoneEvent {
        event,
        end: true,
        volume,
        duration: total,
    };
    for _ in 0..3 {
        packets.push((packets.is_empty(), end.to_bytes()));
    }
    packets
}

/// Row and column frequencies of the DTMF keypad (ITU-T Q.23).
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Goertzel block: 205 samples at 8 kHz (25.6 ms), the classic choice that puts all eight
/// frequencies near bin centres.
pub const BLOCK: usize = 205;

fn goertzel_power(block: &[f32], freq: f32) -> f32 {
    let coeff = 2.0 * (2.0 * std::f32::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in block {
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// In-band DTMF detector for 8 kHz audio. A digit is reported once, after two consecutive
/// blocks agree (~51 ms; Q.24 asks for 40 ms), and again only after the key was released.
#[derive(Debug, Default)]
pub struct ToneDetector {
    pending: Vec<f32>,
    candidate: Option<char>,
    reported: Option<char>,
}

impl ToneDetector {
    /// Feeds samples in [-1, 1]; returns digits detected.
    pub fn feed(&mut self, samples: &[f32]) -> Vec<char> {
        self.pending.extend_from_slice(samples);
        let mut found = Vec::new();
        while self.pending.len() >= BLOCK {
            let digit = Self::classify(&self.pending[..BLOCK]);
            self.pending.drain(..BLOCK);
            if digit.is_some() && digit == self.candidate && self.reported != digit {
                found.extend(digit);
                self.reported = digit;
            }
            if digit.is_none() {
                self.reported = None;
            }
            self.candidate = digit;
        }
        found
    }

    /// The digit one block holds, if exactly one row and one column tone dominate.
    fn classify(block: &[f32]) -> Option<char> {
        let energy: f32 = block.iter().map(|x| x * x).sum();
        // Below about -40 dBm0 there is no tone worth detecting.
        if energy < 1e-4 * BLOCK as f32 {
            return None;
        }
        let rows: Vec<f32> = ROWS.iter().map(|&f| goertzel_power(block, f)).collect();
        let cols: Vec<f32> = COLS.iter().map(|&f| goertzel_power(block, f)).collect();
        let best = |v: &[f32]| {
            let (i, &p) = v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
            // The strongest tone must beat the others of its group clearly.
            v.iter()
                .enumerate()
                .all(|(j, &q)| j == i || q * 6.0 < p)
                .then_some((i, p))
        };
        let ((r, rp), (c, cp)) = (best(&rows)?, best(&cols)?);
        // Twist: the two tones within 8 dB of each other (Q.24 allows 4-8 dB).
        if rp > cp * 6.3 || cp > rp * 6.3 {
            return None;
        }
        // Together they must carry most of the block's energy (speech spreads it out):
        // a pure tone of amplitude a over N samples has Goertzel power (a N / 2)^2 and
        // energy a^2 N / 2, so power / energy = N / 2 for a tone.
        let tonal = (rp + cp) / (energy * BLOCK as f32 / 2.0);
        (tonal > 0.6).then(|| KEYPAD[r][c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(digit: char, ms: usize, amplitude: f32) -> Vec<f32> {
        let (r, c) = KEYPAD
            .iter()
            .enumerate()
            .find_map(|(r, row)| row.iter().position(|&d| d == digit).map(|c| (r, c)))
            .unwrap();
        (0..ms * 8)
            .map(|i| {
                let t = i as f32 / 8000.0;
                amplitude
                    * ((2.0 * std::f32::consts::PI * ROWS[r] * t).sin()
                        + (2.0 * std::f32::consts::PI * COLS[c] * t).sin())
            })
            .collect()
    }

    #[test]
    fn event_payloads_round_trip_and_digits_map() {
        let ev = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(ev.to_bytes(), [11, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&ev.to_bytes()), Some(ev));
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
        assert_eq!(
            (event_of('#'), event_of('*'), event_of('d')),
            (Some(11), Some(10), Some(15))
        );
        assert_eq!(digit_of(16), None);
    }

    #[test]
    fn receiver_reports_each_event_once() {
        let mut rx = EventReceiver::default();
        let mut digits = String::new();
        for (ts, digit) in [(1000u32, '4'), (2600, '4'), (4200, '#')] {
            for (_, payload) in event_packets(digit, 100, 10) {
                digits.extend(rx.on_packet(ts, &payload));
            }
        }
        assert_eq!(digits, "44#");
        assert_eq!(
            rx.on_packet(9999, &[200, 0, 0, 160]),
            None,
            "not a digit event"
        );
    }

    #[test]
    fn sender_marks_the_first_packet_and_repeats_the_end() {
        let p = event_packets('5', 100, 10);
        assert!(p[0].0 && p[1..].iter().all(|(m, _)| !m));
        let ends: Vec<_> = p.iter().filter(|(_, b)| b[1] & 0x80 != 0).collect();
        assert_eq!(ends.len(), 3);
        assert_eq!(TelephoneEvent::parse(&ends[0].1).unwrap().duration, 800);
        assert!(event_packets('x', 100, 10).is_empty());
    }

    #[test]
    fn goertzel_detects_every_key_once_and_ignores_noise() {
        let mut det = ToneDetector::default();
        let mut heard = String::new();
        for d in "123A456B789C*0#D".chars() {
            heard.extend(det.feed(&tone(d, 80, 0.2)));
            heard.extend(det.feed(&vec![0.0; 400]));
        }
        assert_eq!(heard, "123A456B789C*0#D");
        // A held key is one digit.
        let mut det = ToneDetector::default();
        assert_eq!(det.feed(&tone('7', 600, 0.2)), vec!['7']);
        // Too short (20 ms) is not a digit; white-ish noise and a single tone are not digits.
        let mut det = ToneDetector::default();
        assert!(det.feed(&tone('1', 20, 0.2)).is_empty());
        let mut seed = 12345u32;
        let noise: Vec<f32> = (0..8000)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (seed >> 16) as f32 / 32_768.0 - 1.0
            })
            .collect();
        assert!(det.feed(&noise).is_empty());
        let single: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.55).sin() * 0.3).collect();
        assert!(det.feed(&single).is_empty());
    }
}
