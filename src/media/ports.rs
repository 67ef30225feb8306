//! The RTP port pool, sans-IO: hands out even ports from a configured range (RTCP uses the
//! odd port above, RFC 3550 11) and takes them back when calls end.
//!
//! Ports are handed out round-robin rather than lowest-first, so a port just released is the
//! last to be reused: stray packets for an ended call (a late retransmission, a peer that has
//! not seen the BYE) do not land in the next call. A port the driver fails to bind (another
//! program holds it) is skipped and reported with `release` like any other.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

/// The pool.
#[derive(Debug, Clone)]
pub struct PortPool {
    first: u16,
    pairs: u16,
    /// Offsets (pair index) currently in use.
    in_use: BTreeSet<u16>,
    cursor: u16,
}

/// A range that holds no RTP/RTCP pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RTP port range {0}-{1} holds no even/odd pair above 1023")]
pub struct PortRangeError(pub u16, pub u16);

impl PortPool {
    /// A pool over `range` (both ends included); the first even port >= 1024 starts it.
    pub fn new(range: RangeInclusive<u16>) -> Result<Self, PortRangeError> {
        let (lo, hi) = (*range.start(), *range.end());
        let first = lo.max(1024).div_ceil(2) * 2;
        if first >= hi {
            return Err(PortRangeError(lo, hi));
        }
        Ok(Self {
            first,
            pairs: (hi - first).div_ceil(2),
            in_use: BTreeSet::new(),
            cursor: 0,
        })
    }

    /// Parses "LOW-HIGH" (the `--rtp-ports` option).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (lo, hi) = text.split_once('-').ok_or_else(|| {
            format!("RTP port range {text:?}: expected LOW-HIGH, e.g. 10000-20000")
        })?;
        let port = |s: &str| {
            s.trim()
                .parse::<u16>()
                .map_err(|_| format!("RTP port range {text:?}: {s:?} is not a port number"))
        };
        let (lo, hi) = (port(lo)?, port(hi)?);
        Self::new(lo..=hi).map_err(|e| e.to_string())
    }

    /// How many calls the pool can serve at once.
    pub fn capacity(&self) -> usize {
        self.pairs as usize
    }

    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }

    /// The next free even port (RTP; RTCP is the port + 1), or None when all are taken.
    pub fn allocate(&mut self) -> Option<u16> {
        for _ in 0..self.pairs {
            let pair = self.cursor;
            self.cursor = (self.cursor + 1) % self.pairs;
            if self.in_use.insert(pair) {
                return Some(self.first + 2 * pair);
            }
        }
        None
    }

    /// Gives a port back (unknown ports are ignored).
    pub fn release(&mut self, port: u16) {
        if port >= self.first && (port - self.first).is_multiple_of(2) {
            self.in_use.remove(&((port - self.first) / 2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_round_robin_until_exhausted_then_reused() {
        let mut pool = PortPool::new(10_001..=10_008).unwrap();
        assert_eq!(pool.capacity(), 3, "10002/3, 10004/5, 10006/7");
        let got: Vec<_> = (0..3).map(|_| pool.allocate().unwrap()).collect();
        assert_eq!(got, vec![10_002, 10_004, 10_006]);
        assert_eq!(pool.allocate(), None);
        pool.release(10_004);
        pool.release(9); // ignored
        assert_eq!(pool.allocate(), Some(10_004));
        pool.release(10_002);
        pool.release(10_006);
        // Round robin: the cursor moves on rather than reusing the lowest first.
        assert_eq!(pool.allocate(), Some(10_006));
        assert_eq!(pool.in_use(), 2);
    }

    #[test]
    fn ranges_are_checked() {
        assert_eq!(PortPool::new(10..=20).unwrap_err(), PortRangeError(10, 20));
        assert_eq!(
            PortPool::new(5000..=5000).unwrap_err(),
            PortRangeError(5000, 5000)
        );
        assert_eq!(PortPool::new(5000..=5001).unwrap().capacity(), 1);
        assert_eq!(PortPool::new(10_000..=20_000).unwrap().capacity(), 5000);
        assert!(PortPool::parse("10000-20000").is_ok());
        assert!(PortPool::parse("10000").unwrap_err().contains("LOW-HIGH"));
        assert!(PortPool::parse("a-9").unwrap_err().contains("not a port"));
    }

    #[test]
    fn thousands_of_calls_leave_nothing_allocated() {
        let mut pool = PortPool::new(20_000..=20_199).unwrap();
        let mut live = Vec::new();
        for i in 0..10_000 {
            live.push(pool.allocate().unwrap());
            if i % 3 != 0 || live.len() > 90 {
                pool.release(live.remove(0));
            }
        }
        for p in live.drain(..) {
            pool.release(p);
        }
        assert_eq!(pool.in_use(), 0);
    }
}
