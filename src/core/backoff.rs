//! Reconnect backoff, pure, one for every link that is retried: the broker,
//! the hub (uplink and return feed) and the archive.
//!
//! The wait's ceiling doubles per failure from `min` up to `max`. Hundreds
//! of boxes lose the same broker or hub at the same moment when it
//! restarts; without jitter they would all come back in the same
//! millisecond, so each link chooses how the wait is spread
//! ([`Jitter`]). The random number is passed in, so this stays pure and
//! testable.

use std::time::Duration;

/// How a wait is spread below or around its ceiling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Exactly the ceiling.
    None,
    /// Uniform between `min` and the ceiling ("full jitter"): the fleet's
    /// broker reconnects, where spreading matters most.
    Full,
    /// The ceiling ±`fraction` (0.2: ±20%): the media links, which should
    /// come back about when expected.
    Spread(f64),
}

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    jitter: Jitter,
}

impl Backoff {
    /// Full jitter between `min` and a ceiling doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            failures: 0,
            jitter: Jitter::Full,
        }
    }

    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The ceiling of the next wait, without jitter.
    pub fn ceiling(&self) -> Duration {
        // 2^20 × anything sensible is already past any max; cap the shift.
        let factor = 1u32 << self.failures.min(20);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The wait before the next attempt; `unit` is a random number in
    /// [0, 1) (0.5 means "no jitter" for [`Jitter::Spread`]).
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => self.min + ceiling.saturating_sub(self.min).mul_f64(unit),
            Jitter::Spread(f) => ceiling.mul_f64((1.0 + f * (2.0 * unit - 1.0)).max(0.0)),
        }
    }

    /// A connection succeeded: start again from the minimum.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
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
    fn full_jitter_stays_within_bounds() {
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
    fn no_jitter_doubles_to_cap_and_resets() {
        let mut b = Backoff::new(MS(250), MS(2000)).with_jitter(Jitter::None);
        let got: Vec<u128> = (0..6).map(|_| b.next_delay(0.9).as_millis()).collect();
        assert_eq!(got, vec![250, 500, 1000, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.next_delay(0.1).as_millis(), 250);
    }

    #[test]
    fn spread_stays_within_its_fraction() {
        let mut b = Backoff::new(MS(1000), MS(1000)).with_jitter(Jitter::Spread(0.2));
        assert_eq!(b.next_delay(1.0).as_millis(), 1200);
        assert_eq!(b.next_delay(0.0).as_millis(), 800);
        assert_eq!(b.next_delay(0.5).as_millis(), 1000);
        assert_eq!(b.next_delay(7.0).as_millis(), 1200);
    }
}
