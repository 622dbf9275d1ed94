//! Adaptive bitrate: a pure controller from SRT statistics to an encoder
//! bitrate between the configured minimum and maximum.
//!
//! Multiplicative decrease when the link shows trouble (loss, a growing
//! RTT, or a send rate far below what the encoder produces), additive
//! increase after a run of clean samples. Time is the sample cadence: the
//! caller feeds one [`LinkSample`] per second.

/// One second of link statistics, from `srtsink`'s `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkSample {
    /// Packets sent in this interval.
    pub sent: u64,
    /// Packets reported lost in this interval.
    pub lost: u64,
    /// Packets retransmitted in this interval.
    pub retransmitted: u64,
    pub rtt_ms: f64,
    /// SRT's estimate of the link bandwidth, if any.
    pub bandwidth_mbps: f64,
}

#[derive(Debug, Clone)]
pub struct Controller {
    min: u32,
    max: u32,
    current: u32,
    clean_run: u32,
    base_rtt: Option<f64>,
}

/// Loss ratio above which the bitrate is cut.
const LOSS_CUT: f64 = 0.02;
/// Seconds of clean samples before stepping up.
const CLEAN_BEFORE_UP: u32 = 5;

impl Controller {
    pub fn new(min_kbps: u32, max_kbps: u32, start_kbps: u32) -> Self {
        Self {
            min: min_kbps,
            max: max_kbps,
            current: start_kbps.clamp(min_kbps, max_kbps),
            clean_run: 0,
            base_rtt: None,
        }
    }

    pub fn bitrate(&self) -> u32 {
        self.current
    }

    /// Feed one sample; returns the new bitrate when it changed.
    pub fn sample(&mut self, s: LinkSample) -> Option<u32> {
        if s.sent == 0 {
            // Nothing sent (not connected): no information.
            return None;
        }
        let base = *self.base_rtt.get_or_insert(s.rtt_ms);
        self.base_rtt = Some(base.min(s.rtt_ms).max(1.0));
        let loss = (s.lost + s.retransmitted) as f64 / s.sent as f64;
        let rtt_bloat = s.rtt_ms > base * 2.0 + 50.0;
        let bw_kbps = s.bandwidth_mbps * 1000.0;
        let over_bw = bw_kbps > 0.0 && (self.current as f64) > bw_kbps * 0.8;
        let before = self.current;
        if loss > LOSS_CUT || rtt_bloat || over_bw {
            self.clean_run = 0;
            let mut target = (self.current as f64 * 0.7) as u32;
            if over_bw {
                target = target.min((bw_kbps * 0.7) as u32);
            }
            self.current = target.clamp(self.min, self.max);
        } else {
            self.clean_run += 1;
            if self.clean_run >= CLEAN_BEFORE_UP {
                self.clean_run = 0;
                let step = (self.max / 20).max(50);
                self.current = (self.current + step).clamp(self.min, self.max);
            }
        }
        (self.current != before).then_some(self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> LinkSample {
        LinkSample {
            sent: 300,
            lost: 0,
            retransmitted: 0,
            rtt_ms: 20.0,
            bandwidth_mbps: 0.0,
        }
    }

    #[test]
    fn cuts_on_loss_and_never_below_min() {
        let mut c = Controller::new(500, 4000, 2500);
        let lossy = LinkSample {
            lost: 30,
            ..clean()
        };
        assert_eq!(c.sample(lossy), Some(1750));
        for _ in 0..20 {
            c.sample(lossy);
        }
        assert_eq!(c.bitrate(), 500);
    }

    #[test]
    fn recovers_slowly_up_to_max() {
        let mut c = Controller::new(500, 4000, 500);
        for _ in 0..4 {
            assert_eq!(c.sample(clean()), None);
        }
        assert_eq!(c.sample(clean()), Some(700));
        for _ in 0..1000 {
            c.sample(clean());
        }
        assert_eq!(c.bitrate(), 4000);
    }

    #[test]
    fn rtt_bloat_cuts() {
        let mut c = Controller::new(500, 4000, 2000);
        c.sample(clean());
        assert!(c
            .sample(LinkSample {
                rtt_ms: 400.0,
                ..clean()
            })
            .is_some());
    }

    #[test]
    fn bandwidth_estimate_caps() {
        let mut c = Controller::new(500, 4000, 3000);
        let s = LinkSample {
            bandwidth_mbps: 1.0,
            ..clean()
        };
        assert_eq!(c.sample(s), Some(700));
    }

    #[test]
    fn no_traffic_no_change() {
        let mut c = Controller::new(500, 4000, 3000);
        assert_eq!(c.sample(LinkSample::default()), None);
    }
}
