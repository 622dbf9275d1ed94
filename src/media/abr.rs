//! Adaptive bitrate: a pure controller from SRT statistics to an encoder
//! bitrate between the configured minimum and maximum.
//!
//! Commune links are 4G or slow fiber: they lose packets at random (which
//! SRT repairs within its latency) and they congest (a queue builds at the
//! narrowest hop, the RTT grows, then the queue overflows). Only congestion
//! is a reason to send less. Each second's sample is classified:
//!
//! - **congested**: the RTT has grown over the link's own (its minimum seen)
//!   by more than a queue's worth, or the sender dropped packets too late to
//!   send (SRT's too-late drop: the latency no longer covers the queue), or
//!   the bitrate is above what SRT estimates the link carries;
//! - **lossy**: packets lost or retransmitted, the RTT flat. Random loss.
//!   The bitrate holds, and may still rise while the loss stays moderate;
//! - **clean**.
//!
//! Congestion cuts multiplicatively (to 80%, and under SRT's bandwidth
//! estimate when it has one), then holds a second while the queue drains,
//! so one episode is one cut and not a sawtooth to the floor. Until
//! the first congestion the controller probes upward quickly (+15% a clean
//! second) from where it started: what the box learned about this link
//! last time, or the configured floor, so a session's first seconds never
//! put more on a narrow link than it was last seen to carry. After that,
//! additive increase after a run of clean seconds.
//!
//! Time is the sample cadence: the caller feeds one [`LinkSample`] per
//! second.

/// One second of link statistics, from `srtsink`'s `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkSample {
    /// Packets sent in this interval.
    pub sent: u64,
    /// Packets reported lost in this interval.
    pub lost: u64,
    /// Packets retransmitted in this interval.
    pub retransmitted: u64,
    /// Packets the sender dropped as too late in this interval.
    pub dropped: u64,
    pub rtt_ms: f64,
    /// SRT's estimate of the link bandwidth, if any.
    pub bandwidth_mbps: f64,
}

pub use crate::core::status::{LatencyWhy, LinkVerdict as Verdict};

#[derive(Debug, Clone)]
pub struct Controller {
    min: u32,
    max: u32,
    current: u32,
    clean_run: u32,
    /// The link's own RTT: the least of the last [`RTT_WINDOW`] samples (a
    /// window, so a route that got longer is not congestion forever).
    base_rtt: Option<f64>,
    rtts: std::collections::VecDeque<f64>,
    /// Seconds left without a further cut after one.
    hold: u32,
    /// Probing upward fast until the first congestion.
    probing: bool,
    last: Verdict,
    /// The last sample's verdict by the queue and drops alone, without
    /// SRT's bandwidth estimate.
    last_queue: Verdict,
}

/// A queue this much longer than the link's own RTT (ms), or half of it on
/// a long link, is congestion. Jitter on 4G is tens of milliseconds; a
/// router's buffer filling adds hundreds.
const QUEUE_MS: f64 = 60.0;
/// Random loss above this share of the packets holds the bitrate where it
/// is: retransmissions then cost a noticeable part of the link.
const LOSS_HOLD: f64 = 0.10;
/// Loss and retransmissions above this share of the packets sent: the link
/// is full. Random loss on a 4G link is a few percent, bursts of 10%.
const LOSS_FULL: f64 = 0.33;
/// Seconds of clean samples before an additive step up.
const CLEAN_BEFORE_UP: u32 = 3;
/// The share of SRT's bandwidth estimate the bitrate may use (the rest is
/// headers, retransmissions and audio).
const BW_SHARE: f64 = 0.8;
/// Seconds of RTT samples the link's own RTT is the least of.
const RTT_WINDOW: usize = 30;

impl Controller {
    pub fn new(min_kbps: u32, max_kbps: u32, start_kbps: u32) -> Self {
        Self {
            min: min_kbps,
            max: max_kbps,
            current: start_kbps.clamp(min_kbps, max_kbps),
            clean_run: 0,
            base_rtt: None,
            rtts: std::collections::VecDeque::new(),
            hold: 0,
            probing: true,
            last: Verdict::Clean,
            last_queue: Verdict::Clean,
        }
    }

    /// With the RTT this link had last time (`media::link_memory`) as its
    /// own until the window has seen better: a session whose first seconds
    /// are already queued behind its own stale start would otherwise take
    /// the queue for the link.
    pub fn with_known_rtt(mut self, rtt_ms: f64) -> Self {
        if rtt_ms > 0.0 {
            self.rtts.push_back(rtt_ms);
            self.base_rtt = Some(rtt_ms);
        }
        self
    }

    pub fn bitrate(&self) -> u32 {
        self.current
    }

    /// The last sample's verdict, for status.
    pub fn verdict(&self) -> Verdict {
        self.last
    }

    /// The link's own RTT: the least seen, ms.
    pub fn base_rtt_ms(&self) -> Option<f64> {
        self.base_rtt
    }

    /// The last sample's verdict by the queue and too-late drops alone:
    /// what speech first goes by. SRT's bandwidth estimate is made from
    /// the traffic itself, and reads low after a quiet spell; alone it
    /// would take a link that has come back for a collapsed one.
    pub fn queue_verdict(&self) -> Verdict {
        self.last_queue
    }

    /// SRT's bandwidth estimate in kbit/s, when it says something the
    /// controller can act on. An estimate under what the floor needs is
    /// not: it is made from the traffic itself, and after speech first
    /// (sound and a still now and then) it read 144 kbit/s for 35 s on a
    /// link with room for 2 Mbit/s, pinning the picture at the floor. A
    /// link that really carries less than the floor shows it in its queue,
    /// its too-late drops and its loss, which speech first goes by.
    fn estimate_kbps(&self, s: &LinkSample) -> Option<f64> {
        let kbps = s.bandwidth_mbps * 1000.0;
        (kbps * BW_SHARE >= f64::from(self.min)).then_some(kbps)
    }

    fn classify(&mut self, s: &LinkSample, by_estimate: bool) -> Verdict {
        // An RTT of 0 is no measurement (a socket closing or not yet
        // acknowledged), not a fast link: taken as the link's own, it made
        // every later second look queued for the window's 30 s (seen at a
        // session's start under 3% loss and 200 ms: speech first for 37 s
        // on a link with room for 2 Mbit/s).
        if s.rtt_ms > 0.0 {
            self.rtts.push_back(s.rtt_ms);
            if self.rtts.len() > RTT_WINDOW {
                self.rtts.pop_front();
            }
        }
        let base = self.rtts.iter().copied().fold(f64::INFINITY, f64::min);
        if base.is_finite() {
            self.base_rtt = Some(base);
        }
        let queue = if s.rtt_ms > 0.0 && base.is_finite() {
            s.rtt_ms - base
        } else {
            0.0
        };
        let over_bw = by_estimate
            && self
                .estimate_kbps(s)
                .is_some_and(|bw| f64::from(self.current) > bw * BW_SHARE);
        // A link that loses a third of what it is given is not losing at
        // random: it is full, and drops at its queue's tail faster than the
        // RTT shows (measured: 600 kbit/s of picture into a 160 kbit/s
        // link went a minute without a verdict of congestion otherwise).
        let share = (s.lost + s.retransmitted) as f64 / s.sent.max(1) as f64;
        let queued = s.dropped > 0 || queue > QUEUE_MS.max(base * 0.5) || share > LOSS_FULL;
        self.last_queue = if queued {
            Verdict::Congested
        } else if s.lost + s.retransmitted > 0 {
            Verdict::Lossy
        } else {
            Verdict::Clean
        };
        if queued || over_bw {
            Verdict::Congested
        } else if s.lost + s.retransmitted > 0 {
            Verdict::Lossy
        } else {
            Verdict::Clean
        }
    }

    /// Feed one sample; returns the new bitrate when it changed.
    pub fn sample(&mut self, s: LinkSample) -> Option<u32> {
        if s.sent == 0 {
            // Nothing sent (not connected): no information.
            return None;
        }
        let verdict = self.classify(&s, true);
        self.last = verdict;
        let before = self.current;
        let estimate = self.estimate_kbps(&s);
        let loss = (s.lost + s.retransmitted) as f64 / s.sent as f64;
        match verdict {
            Verdict::Congested => {
                self.probing = false;
                self.clean_run = 0;
                if self.hold == 0 {
                    let mut target = f64::from(self.current) * 0.8;
                    if let Some(bw) = estimate {
                        target = target.min(bw * BW_SHARE);
                    }
                    self.current = (target as u32).clamp(self.min, self.max);
                    self.hold = 1;
                } else {
                    self.hold -= 1;
                }
            }
            Verdict::Lossy if loss > LOSS_HOLD => {
                self.clean_run = 0;
                self.hold = self.hold.saturating_sub(1);
            }
            Verdict::Clean | Verdict::Lossy => {
                self.hold = self.hold.saturating_sub(1);
                self.clean_run += 1;
                let ceiling = match estimate {
                    Some(bw) => ((bw * BW_SHARE) as u32).max(self.min),
                    None => self.max,
                };
                let next = if self.probing {
                    self.current + (self.current * 15 / 100).max(25)
                } else if self.clean_run >= CLEAN_BEFORE_UP {
                    self.clean_run = 0;
                    self.current + (self.max / 20).max(50)
                } else {
                    self.current
                };
                if next > self.current {
                    self.current = next
                        .min(ceiling)
                        .max(self.current)
                        .clamp(self.min, self.max);
                }
            }
        }
        (self.current != before).then_some(self.current)
    }
}

/// Speech first: when the link cannot carry the picture even at the
/// floor, the uplink sends the sound whole and the picture as a still now
/// and then ([`crate::core::ts::PictureGate`]), and the encoder (which the
/// recording shares) goes back to the configured bitrate: the law needs
/// what was said, and the recording stays whole.
///
/// It goes thin after [`COLLAPSE_AFTER`] congested seconds at the floor;
/// it tries the picture again after `hold` calm seconds (10, doubling to
/// 80 each time the picture collapses again within [`RELAPSE_WITHIN`]
/// seconds of coming back, and back to 10 once the picture has held twice
/// that long). Time is the sample cadence: one call a second.
#[derive(Debug, Clone)]
pub struct Collapse {
    floor_run: u32,
    thin: bool,
    calm: u32,
    hold: u32,
    back_for: Option<u32>,
}

/// Congested seconds at the floor before the picture is thinned.
pub const COLLAPSE_AFTER: u32 = 3;
const HOLD_FIRST: u32 = 10;
const HOLD_MAX: u32 = 80;
/// A collapse this soon after the picture came back doubles the hold.
pub const RELAPSE_WITHIN: u32 = 15;

impl Default for Collapse {
    fn default() -> Self {
        Self {
            floor_run: 0,
            thin: false,
            calm: 0,
            hold: HOLD_FIRST,
            back_for: None,
        }
    }
}

impl Collapse {
    pub fn thin(&self) -> bool {
        self.thin
    }

    /// Calm seconds the next try of the picture waits for.
    pub fn hold(&self) -> u32 {
        self.hold
    }

    /// One second's verdict, and whether the bitrate sits at its floor;
    /// returns the new state when it changes.
    pub fn sample(&mut self, verdict: Verdict, at_floor: bool) -> Option<bool> {
        if self.thin {
            if verdict == Verdict::Congested {
                self.calm = 0;
            } else {
                self.calm += 1;
            }
            if self.calm >= self.hold {
                self.thin = false;
                self.back_for = Some(0);
                return Some(false);
            }
            return None;
        }
        if let Some(b) = self.back_for.as_mut() {
            *b += 1;
            if *b > RELAPSE_WITHIN * 2 {
                self.hold = HOLD_FIRST;
                self.back_for = None;
            }
        }
        if verdict == Verdict::Congested && at_floor {
            self.floor_run += 1;
        } else {
            self.floor_run = 0;
        }
        if self.floor_run < COLLAPSE_AFTER {
            return None;
        }
        self.floor_run = 0;
        if self.back_for.is_some_and(|b| b <= RELAPSE_WITHIN) {
            self.hold = (self.hold * 2).min(HOLD_MAX);
        }
        self.back_for = None;
        self.thin = true;
        self.calm = 0;
        Some(true)
    }
}

impl Controller {
    /// One second of a link that carries much less than the bitrate (the
    /// sound and stills of speech first): a queue or too-late drops only.
    /// SRT's bandwidth estimate from so little traffic says little, and
    /// would keep the picture away for good. The bitrate does not move.
    pub fn observe(&mut self, s: LinkSample) -> Verdict {
        if s.sent > 0 {
            self.last = self.classify(&s, false);
        }
        self.last
    }

    /// Start again from the floor, probing up: after speech first, the
    /// link has to show again what it carries.
    pub fn restart_at_floor(&mut self) {
        self.current = self.min;
        self.probing = true;
        self.clean_run = 0;
        self.hold = 0;
    }
}

/// The SRT latency to ask for: the configured one, raised to four RTTs of
/// the link (SRT needs about that to retransmit a lost packet more than
/// once before its deadline), never above `ceiling_ms`. Returns the latency
/// and why, for status.
pub fn latency_for(configured_ms: u32, rtt_ms: Option<f64>, ceiling_ms: u32) -> (u32, LatencyWhy) {
    let Some(rtt) = rtt_ms.filter(|r| *r > 0.0) else {
        return (configured_ms, LatencyWhy::Configured);
    };
    let wanted = (rtt * 4.0).ceil() as u32;
    if wanted <= configured_ms {
        (configured_ms, LatencyWhy::Configured)
    } else if wanted <= ceiling_ms {
        (wanted, LatencyWhy::FourRtt)
    } else {
        (ceiling_ms.max(configured_ms), LatencyWhy::Ceiling)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_picture_thins_after_three_congested_seconds_at_the_floor_only() {
        let mut c = Collapse::default();
        // Congested above the floor: the controller's business.
        for _ in 0..10 {
            assert_eq!(c.sample(Verdict::Congested, false), None);
        }
        // Two at the floor, a clean one: the run starts again.
        assert_eq!(c.sample(Verdict::Congested, true), None);
        assert_eq!(c.sample(Verdict::Congested, true), None);
        assert_eq!(c.sample(Verdict::Clean, true), None);
        assert_eq!(c.sample(Verdict::Congested, true), None);
        assert_eq!(c.sample(Verdict::Congested, true), None);
        assert_eq!(c.sample(Verdict::Congested, true), Some(true));
        assert!(c.thin());
    }

    #[test]
    fn the_picture_comes_back_after_calm_and_waits_longer_after_a_relapse() {
        let mut c = Collapse::default();
        let collapse = |c: &mut Collapse| {
            for _ in 0..COLLAPSE_AFTER {
                c.sample(Verdict::Congested, true);
            }
            assert!(c.thin());
        };
        collapse(&mut c);
        // Congestion while thin restarts the calm count.
        for _ in 0..9 {
            assert_eq!(c.sample(Verdict::Clean, true), None);
        }
        assert_eq!(c.sample(Verdict::Congested, true), None);
        for _ in 0..9 {
            assert_eq!(c.sample(Verdict::Clean, true), None);
        }
        assert_eq!(c.sample(Verdict::Lossy, true), Some(false));
        // Back, and collapsing again at once: the next try waits 20 s.
        collapse(&mut c);
        assert_eq!(c.hold(), 20);
        for _ in 0..19 {
            assert_eq!(c.sample(Verdict::Clean, true), None);
        }
        assert_eq!(c.sample(Verdict::Clean, true), Some(false));
        // Up to 80 at most.
        for _ in 0..5 {
            collapse(&mut c);
            while c.sample(Verdict::Clean, true).is_none() {}
        }
        assert_eq!(c.hold(), 80);
        // A picture that holds for long enough resets it.
        for _ in 0..=RELAPSE_WITHIN * 2 {
            c.sample(Verdict::Clean, false);
        }
        collapse(&mut c);
        assert_eq!(c.hold(), 10);
    }

    use super::*;

    fn clean() -> LinkSample {
        LinkSample {
            sent: 300,
            rtt_ms: 20.0,
            ..Default::default()
        }
    }

    /// A trace: the same sample `n` times.
    fn run(c: &mut Controller, s: LinkSample, n: usize) {
        for _ in 0..n {
            c.sample(s);
        }
    }

    #[test]
    fn probes_up_fast_from_where_it_starts_until_the_first_congestion() {
        let mut c = Controller::new(300, 2000, 300);
        assert_eq!(c.sample(clean()), Some(345));
        run(&mut c, clean(), 15);
        assert_eq!(c.bitrate(), 2000);
        // After congestion, additive steps only.
        let mut c = Controller::new(300, 2000, 1000);
        assert_eq!(c.sample(clean()), Some(1150));
        c.sample(LinkSample {
            rtt_ms: 200.0,
            ..clean()
        });
        assert_eq!(c.bitrate(), 920);
        run(&mut c, clean(), 2);
        assert_eq!(c.bitrate(), 920);
        c.sample(clean());
        assert_eq!(c.bitrate(), 1020);
    }

    /// A second with no RTT measured (a socket closing reads 0) is not the
    /// link's own RTT: afterwards a flat 200 ms is not a queue.
    #[test]
    fn a_second_without_an_rtt_does_not_make_the_link_look_queued() {
        let mut c = Controller::new(300, 2000, 300);
        let link = LinkSample {
            rtt_ms: 200.0,
            ..clean()
        };
        c.sample(link);
        c.sample(LinkSample {
            rtt_ms: 0.0,
            ..clean()
        });
        assert_eq!(c.base_rtt_ms(), Some(200.0));
        for _ in 0..5 {
            c.sample(link);
            assert_eq!(c.verdict(), Verdict::Clean);
        }
        assert!(c.bitrate() > 500, "{}", c.bitrate());
        // Nothing measured yet at all: no verdict of a queue either.
        let mut c = Controller::new(300, 2000, 300);
        c.sample(LinkSample {
            rtt_ms: 0.0,
            ..clean()
        });
        assert_eq!(c.verdict(), Verdict::Clean);
        assert_eq!(c.base_rtt_ms(), None);
    }

    /// After speech first SRT's estimate, made from the sound and stills
    /// alone, read 144 kbit/s for 35 s on a link with room for 2 Mbit/s
    /// (3% loss, 100 ms each way): an estimate under the floor's needs
    /// neither makes a verdict of congestion nor caps the climb.
    #[test]
    fn an_estimate_under_the_floor_does_not_pin_the_picture_there() {
        let mut c = Controller::new(300, 2000, 300);
        c.restart_at_floor();
        let stale = LinkSample {
            rtt_ms: 200.0,
            bandwidth_mbps: 0.144,
            lost: 3,
            retransmitted: 3,
            ..clean()
        };
        for _ in 0..10 {
            c.sample(stale);
            assert_ne!(c.verdict(), Verdict::Congested);
        }
        assert!(c.bitrate() > 1000, "{}", c.bitrate());
        // An estimate above the floor still caps it.
        let mut c = Controller::new(300, 2000, 300);
        for _ in 0..20 {
            c.sample(LinkSample {
                rtt_ms: 200.0,
                bandwidth_mbps: 0.8,
                ..clean()
            });
        }
        assert!(c.bitrate() <= 640, "{}", c.bitrate());
    }

    /// 3% random loss, 100 ms each way: SRT repairs it, the RTT stays flat.
    /// The old controller read it as congestion and sat at the floor.
    #[test]
    fn random_loss_with_a_flat_rtt_is_not_congestion() {
        let mut c = Controller::new(300, 2000, 1500);
        let lossy = LinkSample {
            sent: 200,
            lost: 6,
            retransmitted: 8,
            rtt_ms: 205.0,
            ..Default::default()
        };
        run(&mut c, lossy, 30);
        assert_eq!(c.verdict(), Verdict::Lossy);
        assert_eq!(c.bitrate(), 2000);
        // Heavy loss holds where it is, without cutting.
        let mut c = Controller::new(300, 2000, 1200);
        run(&mut c, LinkSample { lost: 40, ..lossy }, 30);
        assert_eq!(c.bitrate(), 1200);
    }

    /// An 800 kbit/s cap with a 200 ms queue, 50 ms each way, modelled:
    /// a second above the cap fills the queue (the RTT climbs from 100
    /// toward 300 ms) and SRT's estimate finds the cap.
    fn capped(c: &mut Controller, seconds: usize, bw_estimate: bool) -> Vec<u32> {
        let mut trace = Vec::new();
        for _ in 0..seconds {
            // This second's figures, from the rate in force during it.
            let s = LinkSample {
                sent: 100,
                rtt_ms: if c.bitrate() > 800 { 300.0 } else { 100.0 },
                bandwidth_mbps: if bw_estimate && !trace.is_empty() {
                    0.8
                } else {
                    0.0
                },
                ..Default::default()
            };
            c.sample(s);
            trace.push(c.bitrate());
        }
        trace
    }

    #[test]
    fn a_narrow_link_is_not_overrun_from_the_floor_and_is_used() {
        // No history: from the floor, probing up; the first overshoot is
        // small, and the link is used after.
        let mut c = Controller::new(300, 2000, 300);
        let trace = capped(&mut c, 60, false);
        assert!(trace.iter().all(|k| *k <= 1000), "{trace:?}");
        let tail = &trace[20..];
        let mean = tail.iter().map(|k| f64::from(*k)).sum::<f64>() / tail.len() as f64;
        assert!(mean >= 0.7 * 800.0, "mean {mean} of {trace:?}");
        // A stale start far above the cap, with the link's RTT known from
        // last time, comes under it within seconds; at once when SRT
        // estimates the link.
        let mut c = Controller::new(300, 2000, 1500).with_known_rtt(100.0);
        let trace = capped(&mut c, 60, false);
        let under = trace.iter().position(|k| *k <= 800).unwrap();
        assert!(under <= 8, "{trace:?}");
        let mut c = Controller::new(300, 2000, 1500);
        let trace = capped(&mut c, 30, true);
        assert!(trace[1..].iter().all(|k| *k <= 800), "{trace:?}");
        assert!(trace[10..].iter().all(|k| *k >= 560), "{trace:?}");
    }

    /// A route that got longer for good is the link's own RTT once the
    /// window has forgotten the shorter one.
    #[test]
    fn a_longer_route_is_not_congestion_forever() {
        let mut c = Controller::new(300, 2000, 1000);
        run(&mut c, clean(), 5);
        let longer = LinkSample {
            rtt_ms: 250.0,
            ..clean()
        };
        run(&mut c, longer, RTT_WINDOW + 5);
        assert_eq!(c.verdict(), Verdict::Clean);
        assert_eq!(c.base_rtt_ms(), Some(250.0));
    }

    #[test]
    fn too_late_drops_cut_and_never_below_min() {
        let mut c = Controller::new(500, 4000, 2500);
        let drops = LinkSample {
            dropped: 5,
            ..clean()
        };
        assert_eq!(c.sample(drops), Some(2000));
        run(&mut c, drops, 40);
        assert_eq!(c.bitrate(), 500);
    }

    #[test]
    fn bandwidth_estimate_caps() {
        let mut c = Controller::new(500, 4000, 3000);
        let s = LinkSample {
            bandwidth_mbps: 1.0,
            ..clean()
        };
        assert_eq!(c.sample(s), Some(800));
        // And probing stops under it.
        run(&mut c, s, 20);
        assert_eq!(c.bitrate(), 800);
    }

    #[test]
    fn no_traffic_no_change() {
        let mut c = Controller::new(500, 4000, 3000);
        assert_eq!(c.sample(LinkSample::default()), None);
    }

    #[test]
    fn latency_covers_four_rtts_up_to_the_ceiling() {
        assert_eq!(latency_for(200, None, 2000), (200, LatencyWhy::Configured));
        assert_eq!(
            latency_for(200, Some(40.0), 2000),
            (200, LatencyWhy::Configured)
        );
        assert_eq!(
            latency_for(200, Some(200.0), 2000),
            (800, LatencyWhy::FourRtt)
        );
        assert_eq!(
            latency_for(200, Some(900.0), 2000),
            (2000, LatencyWhy::Ceiling)
        );
    }
}
