//! Capped exponential backoff, for every retry loop of the bus (reconnecting, re-creating the
//! consumer, redelivering after a transient failure): never a tight loop, never an unbounded wait.

use std::time::Duration;

/// Delays of `base`, `2 * base`, `4 * base`, ... up to `cap`, reset after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `base` and never exceeding `cap`.
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The delay before the next attempt; each call doubles the following one, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Starts again from `base` (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many delays were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The delays double from the base, stop at the cap, and start over after a reset.
    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let delays: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.attempts(), 6);
        for _ in 0..100 {
            assert_eq!(b.next_delay(), Duration::from_millis(1000));
        }
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
