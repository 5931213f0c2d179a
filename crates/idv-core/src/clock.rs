//! Time and id sources. Everything that needs "now" or a fresh id takes a
//! [`Clock`], so tests can move time for expiry and rotation.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use uuid::Uuid;

use crate::Timestamp;

/// The source of time and of UUIDv7 ids.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current UTC time.
    fn now(&self) -> Timestamp;

    /// A fresh UUIDv7 whose time part is [`Clock::now`], so ids sort by creation.
    fn new_id(&self) -> Uuid;
}

/// The real wall clock.
#[derive(Debug, Default)]
pub struct SystemClock {
    /// Monotonic v7 context so ids made in the same millisecond still sort.
    ctx: Mutex<()>,
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        #[expect(clippy::disallowed_methods, reason = "the one place that reads the wall clock")]
        let now = std::time::SystemTime::now();
        let micros = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_micros(micros)
    }

    fn new_id(&self) -> Uuid {
        // A poisoned lock only means another thread panicked while holding `()`.
        let _guard = self.ctx.lock().unwrap_or_else(|e| e.into_inner());
        #[expect(clippy::disallowed_methods, reason = "the one place that makes time-based ids")]
        Uuid::now_v7()
    }
}

/// A clock that only moves when told to; for tests of expiry.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
    counter: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            micros: AtomicI64::new(start.as_micros()),
            counter: AtomicI64::new(0),
        }
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance_secs(&self, seconds: i64) {
        self.micros
            .fetch_add(seconds.saturating_mul(1_000_000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.micros.load(Ordering::SeqCst))
    }

    fn new_id(&self) -> Uuid {
        // UUIDv7 layout: 48-bit ms timestamp, version, then a counter in the
        // random bits so ids made at the same instant still sort and never collide.
        let ms = u64::try_from(self.now().as_micros() / 1000).unwrap_or(0);
        let n = u64::try_from(self.counter.fetch_add(1, Ordering::SeqCst)).unwrap_or(0);
        let rand_tail: u64 = rand::random::<u64>() & 0x0000_0000_FFFF_FFFF;
        let hi = (ms << 16) | 0x7000 | ((n >> 32) & 0x0FFF);
        let lo = 0x8000_0000_0000_0000 | ((n & 0x3FFF_FFFF) << 32) | rand_tail;
        Uuid::from_u64_pair(hi, lo)
    }
}
