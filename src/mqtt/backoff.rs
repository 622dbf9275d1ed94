//! Reconnect backoff: exponential with full jitter, pure.
//!
//! Hundreds of boxes lose the same broker at the same moment when it
//! restarts; without jitter they would all come back in the same
//! millisecond. Full jitter (a uniform wait between the minimum and the
//! current ceiling) spreads them out, and the ceiling doubles per failure up
//! to the configured maximum.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The ceiling of the next wait, without jitter.
    pub fn ceiling(&self) -> Duration {
        // 2^20 × anything sensible is already past any max; cap the shift.
        let factor = 1u32 << self.failures.min(20);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The wait before the next attempt; `unit` is a random number in
    /// [0, 1) (passed in so that this stays pure and testable).
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let span = ceiling.saturating_sub(self.min);
        self.min + span.mul_f64(unit)
    }

    /// A connection succeeded: start again from the minimum.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// A random number in [0, 1) from the OS; 0.5 if it has none.
pub fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::getrandom(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn grows_to_max_and_resets() {
        let mut b = Backoff::new(MS(500), MS(4000));
        let ceilings: Vec<_> = (0..6)
            .map(|_| {
                let c = b.ceiling();
                b.next_delay(1.0);
                c
            })
            .collect();
        assert_eq!(
            ceilings,
            [MS(500), MS(1000), MS(2000), MS(4000), MS(4000), MS(4000)]
        );
        b.reset();
        assert_eq!(b.ceiling(), MS(500));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut b = Backoff::new(MS(100), MS(60_000));
        for i in 0..100 {
            let u = (i as f64) / 100.0;
            let ceiling = b.ceiling();
            let d = b.next_delay(u);
            assert!(d >= MS(100) && d <= ceiling, "{d:?} {ceiling:?}");
        }
        assert_eq!(b.next_delay(f64::NAN), MS(100));
    }

    #[test]
    fn random_unit_is_in_range() {
        for _ in 0..100 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
