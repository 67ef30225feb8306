//! A counting gate in front of a heavy engine: at most `slots` jobs run at once (so engine threads
//! never exceed the core budget) and at most `max_waiting` wait behind them. Load shows up as
//! measured queue wait, or as an immediate `QueueFull`, never as oversubscribed cores.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Why a job was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// Too many jobs already waiting; the caller should degrade (e.g. offer the keypad).
    #[error("engine queue full ({waiting} waiting)")]
    QueueFull { waiting: usize },
    /// The job's deadline passed while it waited.
    #[error("deadline passed after waiting {0:?} in the engine queue")]
    Deadline(Duration),
}

#[derive(Debug, Default)]
struct Counts {
    running: usize,
    waiting: usize,
}

/// The gate; share it by reference (it lives inside the engine).
#[derive(Debug)]
pub struct JobGate {
    slots: usize,
    max_waiting: usize,
    counts: Mutex<Counts>,
    freed: Condvar,
}

/// A running job's slot; freed on drop.
#[derive(Debug)]
pub struct Permit<'g> {
    gate: &'g JobGate,
    /// How long the job waited for its slot.
    pub waited: Duration,
}

impl JobGate {
    pub fn new(slots: usize, max_waiting: usize) -> Self {
        Self {
            slots: slots.max(1),
            max_waiting,
            counts: Mutex::new(Counts::default()),
            freed: Condvar::new(),
        }
    }

    /// Jobs running and waiting right now (for metrics).
    pub fn load(&self) -> (usize, usize) {
        let c = self.lock();
        (c.running, c.waiting)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic while holding this lock cannot leave the counts half-updated.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot now if one is free and nobody waits, else None (never waits).
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        let mut c = self.lock();
        if c.running < self.slots && c.waiting == 0 {
            c.running += 1;
            return Some(Permit {
                gate: self,
                waited: Duration::ZERO,
            });
        }
        None
    }

    /// Waits for a slot until `deadline` (if any).
    pub fn acquire(&self, deadline: Option<Instant>) -> Result<Permit<'_>, GateError> {
        let started = Instant::now();
        let mut c = self.lock();
        if c.running < self.slots && c.waiting == 0 {
            c.running += 1;
            return Ok(Permit {
                gate: self,
                waited: Duration::ZERO,
            });
        }
        if c.waiting >= self.max_waiting {
            return Err(GateError::QueueFull { waiting: c.waiting });
        }
        c.waiting += 1;
        loop {
            if c.running < self.slots {
                c.waiting -= 1;
                c.running += 1;
                return Ok(Permit {
                    gate: self,
                    waited: started.elapsed(),
                });
            }
            c = match deadline {
                None => self.freed.wait(c).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        c.waiting -= 1;
                        return Err(GateError::Deadline(started.elapsed()));
                    }
                    self.freed
                        .wait_timeout(c, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut c = self.gate.lock();
        c.running -= 1;
        drop(c);
        self.gate.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn never_runs_more_than_its_slots() {
        let gate = Arc::new(JobGate::new(2, 100));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (gate, running, peak) = (gate.clone(), running.clone(), peak.clone());
                std::thread::spawn(move || {
                    let _p = gate.acquire(None).unwrap();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(gate.load(), (0, 0));
        let a = gate.try_acquire().expect("free");
        let b = gate.try_acquire().expect("free");
        assert!(gate.try_acquire().is_none(), "both slots taken");
        drop((a, b));
    }

    #[test]
    fn refuses_past_the_queue_bound_and_honours_deadlines() {
        let gate = JobGate::new(1, 0);
        let held = gate.acquire(None).unwrap();
        assert_eq!(
            gate.acquire(None).unwrap_err(),
            GateError::QueueFull { waiting: 0 }
        );
        let gate2 = JobGate::new(1, 5);
        let _held2 = gate2.acquire(None).unwrap();
        let err = gate2
            .acquire(Some(Instant::now() + Duration::from_millis(20)))
            .unwrap_err();
        assert!(matches!(err, GateError::Deadline(w) if w >= Duration::from_millis(20)));
        assert_eq!(gate2.load(), (1, 0));
        drop(held);
        assert!(gate.acquire(None).is_ok());
    }
}
