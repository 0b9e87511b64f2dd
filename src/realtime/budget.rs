//! Each socket's request budget (docs/protocol.md, "Limits"): a token bucket of `burst` requests
//! refilled at `per_second`, taken by `subscribe:photo`, `unsubscribe:photo`,
//! `photo:status:request` and `ping`. A request beyond it is answered `rate_limited`; the budget
//! of one socket never touches another's.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// One socket's request budget.
pub struct RequestBudget(DefaultDirectRateLimiter);

impl RequestBudget {
    /// A full bucket of `burst` requests, refilled at `per_second`.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self(RateLimiter::direct(
            Quota::per_second(per_second).allow_burst(burst),
        ))
    }

    /// Takes one request from the budget; `false` when it is spent.
    pub fn take(&self) -> bool {
        self.0.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst is allowed, the next request is not, and the bucket refills with time.
    #[test]
    fn burst_then_refill() {
        let budget = RequestBudget::new(
            NonZeroU32::new(20).expect("non-zero"),
            NonZeroU32::new(3).expect("non-zero"),
        );
        assert!((0..3).all(|_| budget.take()));
        assert!(!budget.take());
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert!(budget.take());
    }
}
