//! Send timing of one RTP stream, sans-IO: the gap between consecutive packets compared with
//! the 20 ms packet time, kept as a histogram of deviations (0.1 ms buckets up to 20 ms), so a
//! call can report its p50/p99 and how many gaps were outside +/-2 ms at the cost of 800
//! bytes per call and no allocation per packet.

use std::time::Duration;

/// Bucket width.
const RESOLUTION_US: u64 = 100;
/// Buckets; the last one holds every deviation of 20 ms or more.
const BUCKETS: usize = 201;

/// The histogram.
#[derive(Debug, Clone)]
pub struct SendTiming {
    nominal: Duration,
    buckets: [u32; BUCKETS],
    count: u64,
}

impl SendTiming {
    /// Gaps are compared with `nominal` (the packet time).
    pub fn new(nominal: Duration) -> Self {
        Self {
            nominal,
            buckets: [0; BUCKETS],
            count: 0,
        }
    }

    /// One gap between consecutive sends.
    pub fn record(&mut self, gap: Duration) {
        let deviation = gap.abs_diff(self.nominal).as_micros() as u64;
        let bucket = ((deviation / RESOLUTION_US) as usize).min(BUCKETS - 1);
        self.buckets[bucket] += 1;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The deviation (upper edge of its bucket) below which `q` of the gaps fall.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let target = ((self.count as f64 * q).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n as u64;
            if seen >= target {
                return Duration::from_micros((i as u64 + 1) * RESOLUTION_US);
            }
        }
        Duration::from_micros(BUCKETS as u64 * RESOLUTION_US)
    }

    /// Gaps that deviated by more than `limit`.
    pub fn outside(&self, limit: Duration) -> u64 {
        let first = (limit.as_micros() as u64 / RESOLUTION_US) as usize;
        self.buckets.iter().skip(first).map(|&n| n as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_outliers() {
        let mut t = SendTiming::new(Duration::from_millis(20));
        assert_eq!(t.quantile(0.99), Duration::ZERO);
        for _ in 0..98 {
            t.record(Duration::from_micros(20_050)); // 0.05 ms late
        }
        t.record(Duration::from_millis(25)); // 5 ms late
        t.record(Duration::from_millis(15)); // 5 ms early (the catch-up after it)
        assert_eq!(t.count(), 100);
        assert_eq!(t.quantile(0.5), Duration::from_micros(100));
        assert_eq!(t.quantile(0.98), Duration::from_micros(100));
        assert_eq!(t.quantile(0.99), Duration::from_micros(5100));
        assert_eq!(t.outside(Duration::from_millis(2)), 2);
        t.record(Duration::from_secs(1));
        assert_eq!(t.quantile(1.0), Duration::from_micros(20_100), "capped");
    }
}
