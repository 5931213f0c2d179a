//! Budgets for refusals: how many failed authentications one key (a source
//! address, a claimed client id) may cause before it is slowed down (RFC 6585
//! §4, `429 Too Many Requests` with `Retry-After`). A token bucket: `burst`
//! failures at once, refilled at `per_minute`.

use crate::Timestamp;

/// How much a budget holds and how fast it refills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Failures allowed at once.
    pub burst: u32,
    /// Failures regained per minute.
    pub per_minute: u32,
}

impl Rate {
    fn per_micro(self) -> f64 {
        f64::from(self.per_minute) / 60e6
    }
}

/// One key's budget at an instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at: Timestamp,
}

impl Bucket {
    /// A full budget.
    pub fn full(rate: Rate, now: Timestamp) -> Bucket {
        Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Timestamp) {
        // A clock that steps back refills nothing.
        let elapsed = now.as_micros().saturating_sub(self.at.as_micros()).max(0);
        self.tokens = (self.tokens + elapsed as f64 * rate.per_micro()).min(f64::from(rate.burst));
        if now > self.at {
            self.at = now;
        }
    }

    /// Spends one failure. `Err` holds the whole seconds until one is back
    /// (at least 1), for `Retry-After`; nothing is spent then.
    pub fn spend(&mut self, rate: Rate, now: Timestamp) -> Result<(), u64> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if rate.per_minute == 0 {
            return Err(u64::MAX);
        }
        let wait_micros = (1.0 - self.tokens) / rate.per_micro();
        Err(((wait_micros / 1e6).ceil() as u64).max(1))
    }

    /// Whether the budget is full again at `now` (the key can be forgotten:
    /// a fresh full bucket is the same).
    pub fn is_full(&self, rate: Rate, now: Timestamp) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        b.tokens >= f64::from(rate.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RATE: Rate = Rate {
        burst: 5,
        per_minute: 60,
    };

    fn at(secs: f64) -> Timestamp {
        Timestamp::from_micros((secs * 1e6) as i64)
    }

    #[test]
    fn a_burst_then_one_per_refill() {
        let mut b = Bucket::full(RATE, at(0.0));
        for _ in 0..5 {
            assert_eq!(b.spend(RATE, at(0.0)), Ok(()));
        }
        assert_eq!(b.spend(RATE, at(0.0)), Err(1));
        assert_eq!(b.spend(RATE, at(0.5)), Err(1));
        assert_eq!(b.spend(RATE, at(1.0)), Ok(()));
        assert_eq!(b.spend(RATE, at(1.0)), Err(1));
        assert!(!b.is_full(RATE, at(4.0)));
        assert!(b.is_full(RATE, at(6.0)));
    }

    #[test]
    fn retry_after_counts_whole_seconds() {
        let slow = Rate {
            burst: 1,
            per_minute: 2,
        };
        let mut b = Bucket::full(slow, at(0.0));
        assert_eq!(b.spend(slow, at(0.0)), Ok(()));
        assert_eq!(b.spend(slow, at(0.0)), Err(30));
        assert_eq!(b.spend(slow, at(29.5)), Err(1));
        let never = Rate {
            burst: 0,
            per_minute: 0,
        };
        assert_eq!(Bucket::full(never, at(0.0)).spend(never, at(9.0)), Err(u64::MAX));
    }

    #[test]
    fn a_clock_that_steps_back_refills_nothing() {
        let mut b = Bucket::full(RATE, at(100.0));
        for _ in 0..5 {
            b.spend(RATE, at(100.0)).unwrap();
        }
        assert!(b.spend(RATE, at(50.0)).is_err());
        assert!(b.spend(RATE, at(100.5)).is_err());
    }

    proptest! {
        /// However the failures are spread over time, no more are allowed
        /// than the burst plus what the elapsed time refilled.
        #[test]
        fn never_more_than_burst_plus_refill(gaps in proptest::collection::vec(0u32..3_000_000, 1..200)) {
            let mut b = Bucket::full(RATE, at(0.0));
            let mut now = 0i64;
            let mut allowed = 0u64;
            for g in gaps {
                now += i64::from(g);
                if b.spend(RATE, Timestamp::from_micros(now)).is_ok() {
                    allowed += 1;
                }
            }
            let bound = 5.0 + now as f64 / 1e6;
            prop_assert!(allowed as f64 <= bound + 1e-9, "{allowed} > {bound}");
        }
    }
}
