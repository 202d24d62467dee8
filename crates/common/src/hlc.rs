//! Hybrid logical clock.
//!
//! A [`HybridTime`] packs physical microseconds since the Unix epoch in the high 52 bits
//! and a logical counter in the low 12 bits, so that comparing two `u64`s compares
//! times. Every server runs one [`Hlc`]; it is advanced past every hybrid time the
//! server sees in a message (`update`), so causally later events always get larger
//! hybrid times, whatever the wall clocks say.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of a [`HybridTime`] used by the logical counter.
pub const LOGICAL_BITS: u32 = 12;

/// A point in hybrid time. `HybridTime(0)` is "the beginning"; `HybridTime::MAX` sorts after
/// every real time.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct HybridTime(pub u64);

impl HybridTime {
    pub const MIN: HybridTime = HybridTime(0);
    pub const MAX: HybridTime = HybridTime(u64::MAX);

    /// A hybrid time from physical microseconds and a logical counter.
    pub fn new(micros: u64, logical: u64) -> Self {
        HybridTime((micros << LOGICAL_BITS) | (logical & ((1 << LOGICAL_BITS) - 1)))
    }

    /// Physical component in microseconds since the Unix epoch.
    pub fn micros(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// Logical component.
    pub fn logical(self) -> u64 {
        self.0 & ((1 << LOGICAL_BITS) - 1)
    }

    /// This time plus `micros` of physical time (saturating).
    pub fn add_micros(self, micros: u64) -> Self {
        HybridTime(self.0.saturating_add(micros << LOGICAL_BITS))
    }

    /// This time minus `micros` of physical time (saturating at zero).
    pub fn sub_micros(self, micros: u64) -> Self {
        HybridTime(self.0.saturating_sub(micros << LOGICAL_BITS))
    }

    /// The next representable hybrid time.
    pub fn next(self) -> Self {
        HybridTime(self.0.saturating_add(1))
    }
}

impl std::fmt::Display for HybridTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{ physical: {} logical: {} }}",
            self.micros(),
            self.logical()
        )
    }
}

/// Wall clock in microseconds since the Unix epoch.
pub fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A hybrid logical clock: `now()` never goes backwards and is never below any time passed
/// to `update()`.
#[derive(Debug, Default)]
pub struct Hlc {
    last: AtomicU64,
}

impl Hlc {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh hybrid time strictly greater than every time this clock returned or saw.
    pub fn now(&self) -> HybridTime {
        let physical = HybridTime::new(wall_micros(), 0).0;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = if physical > last { physical } else { last + 1 };
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return HybridTime(next),
                Err(actual) => last = actual,
            }
        }
    }

    /// Advance the clock to at least `seen` (a time carried by a message from another server).
    pub fn update(&self, seen: HybridTime) {
        self.last.fetch_max(seen.0, Ordering::AcqRel);
    }

    /// The largest time handed out or seen so far, without advancing.
    pub fn peek(&self) -> HybridTime {
        HybridTime(self.last.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_strictly_monotonic_and_respects_update() {
        let c = Hlc::new();
        let a = c.now();
        let b = c.now();
        assert!(b > a);
        let future = a.add_micros(10_000_000);
        c.update(future);
        assert!(c.now() > future);
    }

    #[test]
    fn packing_round_trips() {
        let t = HybridTime::new(1_700_000_000_000_000, 7);
        assert_eq!(t.micros(), 1_700_000_000_000_000);
        assert_eq!(t.logical(), 7);
        assert!(t.next() > t);
    }
}
