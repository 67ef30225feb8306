//! A receive jitter buffer, sans-IO: RTP payloads go in as they arrive (any order), one frame
//! comes out per 20 ms playout tick, in sequence order.
//!
//! - Reordering: packets are held by (extended) sequence number; playout waits until `depth`
//!   frames are buffered, so a packet overtaken by up to `depth` later ones is still played in
//!   its place.
//! - Waiting: when the next frame is missing but later ones are here, playout waits up to
//!   `depth` ticks for it (a sender whose clock runs slower than ours keeps the buffer nearly
//!   empty, so reordered packets would otherwise always be concealed); each wait adds one
//!   tick of delay, which is how the buffer grows under jitter.
//! - Concealment: a missing frame not there after the wait is replaced by the last frame,
//!   halved in amplitude on each consecutive loss and silent after three (a simple form of
//!   ITU-T G.711 Appendix I packet loss concealment; good enough for speech recognition, which
//!   is what reads this audio).
//! - Late packets (their slot already played) and duplicates are counted and dropped.
//! - A sequence jump larger than the window (a new talk spurt after a long pause, a restarted
//!   sender) resets the buffer instead of concealing thousands of frames.

use std::collections::BTreeMap;

/// Frames the buffer may hold ahead of playout before it treats a jump as a restart.
const WINDOW: u64 = 64;
/// Consecutive concealed frames before the output goes silent.
const MAX_CONCEAL: u32 = 3;

/// What one playout tick gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout<'a> {
    /// The frame that arrived for this slot.
    Frame(&'a [i16]),
    /// The slot's packet is lost: a concealment frame.
    Concealed(&'a [i16]),
    /// Nothing to play (not started, or the caller's stream paused).
    Empty,
}

/// Counters (for RTCP and call records).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    pub pushed: u64,
    pub played: u64,
    pub concealed: u64,
    pub late: u64,
    pub duplicate: u64,
    pub resets: u64,
}

/// The buffer.
#[derive(Debug)]
pub struct JitterBuffer {
    depth: usize,
    frames: BTreeMap<u64, Vec<i16>>,
    /// Extended sequence of the next slot to play; None until playout starts.
    next: Option<u64>,
    /// Highest extended sequence seen (to extend 16-bit sequence numbers across wraps).
    highest: Option<u64>,
    /// The last frame played, and the concealment output built from it.
    last: Vec<i16>,
    concealed_run: u32,
    /// Ticks already spent waiting for the missing `next` frame.
    waited: usize,
    pub stats: JitterStats,
}

impl JitterBuffer {
    /// `depth`: frames buffered before playout starts (2-3 at 20 ms is 40-60 ms of delay).
    pub fn new(depth: usize) -> Self {
        Self {
            depth: depth.max(1),
            frames: BTreeMap::new(),
            next: None,
            highest: None,
            last: Vec::new(),
            concealed_run: 0,
            waited: 0,
            stats: JitterStats::default(),
        }
    }

    /// The 16-bit sequence extended against the highest seen (RFC 3550 A.1).
    fn extend(&self, sequence: u16) -> u64 {
        match self.highest {
            None => (1u64 << 16) + sequence as u64,
            Some(h) => {
                let delta = sequence.wrapping_sub(h as u16) as i16 as i64;
                (h as i64 + delta).max(0) as u64
            }
        }
    }

    /// Adds a received frame (already decoded to 16-bit PCM).
    pub fn push(&mut self, sequence: u16, pcm: &[i16]) {
        self.stats.pushed += 1;
        let ext = self.extend(sequence);
        let far = self
            .highest
            .is_some_and(|h| ext > h + WINDOW || ext + WINDOW < h);
        if far {
            // Restart: a new stream or a long gap; play from here.
            self.stats.resets += 1;
            self.frames.clear();
            self.next = None;
            self.highest = None;
            return self.push_fresh(sequence, pcm);
        }
        self.push_fresh(sequence, pcm);
    }

    fn push_fresh(&mut self, sequence: u16, pcm: &[i16]) {
        let ext = self.extend(sequence);
        if self.next.is_some_and(|n| ext < n) {
            self.stats.late += 1;
            return;
        }
        if self.frames.contains_key(&ext) {
            self.stats.duplicate += 1;
            return;
        }
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.frames.insert(ext, pcm.to_vec());
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// One playout tick.
    pub fn pop(&mut self) -> Playout<'_> {
        let next = match self.next {
            Some(n) => n,
            None => {
                // Start once `depth` frames are in (or the oldest is `depth` slots old).
                let (Some(first), Some(h)) = (self.frames.keys().next().copied(), self.highest)
                else {
                    return Playout::Empty;
                };
                if self.frames.len() < self.depth && h - first + 1 < self.depth as u64 {
                    return Playout::Empty;
                }
                first
            }
        };
        if let Some(frame) = self.frames.remove(&next) {
            self.next = Some(next + 1);
            self.waited = 0;
            self.concealed_run = 0;
            self.stats.played += 1;
            self.last = frame;
            return Playout::Frame(&self.last);
        }
        if self.frames.is_empty() {
            // The stream paused (silence suppression, hold, DTMF-only): wait, don't conceal.
            self.next = None;
            return Playout::Empty;
        }
        if self.frames.len() < self.depth && self.waited < self.depth {
            // Later frames are here but this one is not: it may only be late. Wait a tick.
            self.next = Some(next);
            self.waited += 1;
            return Playout::Empty;
        }
        // Lost.
        self.next = Some(next + 1);
        self.waited = 0;
        self.concealed_run += 1;
        self.stats.concealed += 1;
        if self.concealed_run > MAX_CONCEAL {
            self.last.iter_mut().for_each(|s| *s = 0);
        } else {
            self.last.iter_mut().for_each(|s| *s /= 2);
        }
        Playout::Concealed(&self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> Vec<i16> {
        vec![v; 160]
    }

    fn first(p: Playout<'_>) -> Option<(bool, i16)> {
        match p {
            Playout::Frame(f) => Some((false, f[0])),
            Playout::Concealed(f) => Some((true, f[0])),
            Playout::Empty => None,
        }
    }

    #[test]
    fn reorders_within_the_depth() {
        let mut jb = JitterBuffer::new(3);
        jb.push(10, &frame(10));
        assert_eq!(first(jb.pop()), None, "waits for depth");
        jb.push(12, &frame(12));
        jb.push(11, &frame(11));
        let got: Vec<_> = (0..3).map(|_| first(jb.pop())).collect();
        assert_eq!(
            got,
            vec![Some((false, 10)), Some((false, 11)), Some((false, 12))]
        );
        assert_eq!(first(jb.pop()), None, "drained: pause, not concealment");
    }

    #[test]
    fn conceals_a_lost_packet_and_drops_it_when_late() {
        let mut jb = JitterBuffer::new(2);
        jb.push(1, &frame(1000));
        jb.push(3, &frame(3000));
        assert_eq!(first(jb.pop()), Some((false, 1000)));
        assert_eq!(first(jb.pop()), None, "waits for 2: it may be late");
        assert_eq!(first(jb.pop()), None, "waits again (depth 2)");
        assert_eq!(
            first(jb.pop()),
            Some((true, 500)),
            "then conceals: half the last frame"
        );
        jb.push(2, &frame(2000)); // too late: slot 2 already played
        assert_eq!(first(jb.pop()), Some((false, 3000)));
        assert_eq!((jb.stats.concealed, jb.stats.late), (1, 1));
    }

    #[test]
    fn a_late_packet_within_the_wait_is_played_not_concealed() {
        let mut jb = JitterBuffer::new(2);
        jb.push(1, &frame(1));
        jb.push(2, &frame(2));
        assert_eq!(first(jb.pop()), Some((false, 1)));
        assert_eq!(first(jb.pop()), Some((false, 2)));
        // The buffer ran down to nothing; 4 overtakes 3 by a tick.
        jb.push(4, &frame(4));
        assert_eq!(first(jb.pop()), None);
        jb.push(3, &frame(3));
        assert_eq!(first(jb.pop()), Some((false, 3)));
        assert_eq!(first(jb.pop()), Some((false, 4)));
        assert_eq!(jb.stats.concealed, 0);
    }

    #[test]
    fn concealment_fades_to_silence() {
        let mut jb = JitterBuffer::new(1);
        jb.push(0, &frame(8000));
        jb.push(6, &frame(6));
        let got: Vec<_> = (0..7).map(|_| first(jb.pop()).unwrap()).collect();
        assert_eq!(
            got,
            vec![
                (false, 8000),
                (true, 4000),
                (true, 2000),
                (true, 1000),
                (true, 0),
                (true, 0),
                (false, 6)
            ]
        );
    }

    #[test]
    fn sequence_wrap_duplicates_and_restarts() {
        let mut jb = JitterBuffer::new(2);
        jb.push(65_535, &frame(1));
        jb.push(0, &frame(2));
        jb.push(0, &frame(2));
        assert_eq!(jb.stats.duplicate, 1);
        assert_eq!(first(jb.pop()), Some((false, 1)));
        assert_eq!(first(jb.pop()), Some((false, 2)));
        // A jump of 30,000: restart rather than 30,000 concealed frames.
        jb.push(30_000, &frame(3));
        jb.push(30_001, &frame(4));
        assert_eq!(jb.stats.resets, 1);
        assert_eq!(first(jb.pop()), Some((false, 3)));
        assert_eq!(first(jb.pop()), Some((false, 4)));
    }

    #[test]
    fn a_long_shuffled_stream_plays_every_frame_once_in_order() {
        let mut jb = JitterBuffer::new(4);
        let mut out = Vec::new();
        let mut state = 7u32;
        // Blocks of 4 packets arrive in a random order (reordering by up to 3), across a wrap.
        for block in 0..500u16 {
            let mut seqs: Vec<u16> = (0..4)
                .map(|i| (block * 4 + i).wrapping_add(65_000))
                .collect();
            for i in (1..4).rev() {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                seqs.swap(i, (state >> 16) as usize % (i + 1));
            }
            for s in seqs {
                jb.push(s, &frame(s as i16));
            }
            for _ in 0..4 {
                if let Some((false, v)) = first(jb.pop()) {
                    out.push(v as u16);
                }
            }
        }
        let expected: Vec<u16> = (0..2000u16).map(|s| s.wrapping_add(65_000)).collect();
        assert_eq!(out, expected);
        assert_eq!(jb.stats.concealed, 0);
    }
}
