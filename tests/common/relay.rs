//! A bad link between two UDP peers, in user space: this kernel has no
//! `netem` qdisc, so loss, delay, jitter, a rate cap with a bounded queue,
//! rate changes over time and outages are made here, between the box and
//! its SRT hub (or any UDP peer), for tests and benches.
//!
//! [`Shaper`] is the pure part: for each packet, given the time, it decides
//! whether the packet is lost and when it leaves. [`Relay`] is the thread
//! that moves real datagrams through two shapers (one per direction: SRT's
//! acknowledgements and retransmission requests travel back). It stops when
//! dropped, and by itself after [`MAX_LIFETIME`].

use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A relay left running by a failed test ends by itself after this.
pub const MAX_LIFETIME: Duration = Duration::from_secs(600);

/// Gilbert–Elliott loss: a good and a bad state (a burst), a transition
/// probability per packet each way, and a loss probability in each state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    pub p_good_to_bad: f64,
    pub p_bad_to_good: f64,
    pub loss_good: f64,
    pub loss_bad: f64,
}

impl GilbertElliott {
    pub const NONE: Self = Self {
        p_good_to_bad: 0.0,
        p_bad_to_good: 1.0,
        loss_good: 0.0,
        loss_bad: 0.0,
    };

    /// Independent loss with probability `p`.
    pub fn random(p: f64) -> Self {
        Self {
            loss_good: p,
            ..Self::NONE
        }
    }

    /// Bursts: on average `loss` of the packets lost, in bursts of
    /// `burst` packets on average (every packet of a burst is lost).
    pub fn bursty(loss: f64, burst: f64) -> Self {
        let p_bad_to_good = 1.0 / burst.max(1.0);
        // Stationary share of the bad state = loss.
        let p_good_to_bad = loss * p_bad_to_good / (1.0 - loss).max(1e-9);
        Self {
            p_good_to_bad,
            p_bad_to_good,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }
}

/// One direction of a link.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub loss: GilbertElliott,
    /// One-way delay.
    pub delay: Duration,
    /// Added to the delay, uniform in ±jitter (packets are not reordered).
    pub jitter: Duration,
    /// The link's rate; `None`: no cap.
    pub rate_kbps: Option<u64>,
    /// A packet that would wait longer than this in the rate cap's queue is
    /// dropped (tail drop), as a router's buffer does.
    pub queue: Duration,
}

impl Link {
    pub fn clean() -> Self {
        Self {
            loss: GilbertElliott::NONE,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_kbps: None,
            queue: Duration::from_millis(200),
        }
    }
}

/// A change at a time after the relay starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The forward direction becomes this link.
    Forward(Link),
    /// Nothing passes either way for this long.
    Outage(Duration),
}

/// A small deterministic generator (xorshift64*), so a run can be repeated.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One direction's decisions, time passed in (as time since the start).
#[derive(Debug, Clone)]
pub struct Shaper {
    pub link: Link,
    rng: Rng,
    bad: bool,
    /// When the rate cap's queue is empty again.
    busy_until: Duration,
    last_departure: Duration,
}

impl Shaper {
    pub fn new(link: Link, seed: u64) -> Self {
        Self {
            link,
            rng: Rng::new(seed),
            bad: false,
            busy_until: Duration::ZERO,
            last_departure: Duration::ZERO,
        }
    }

    /// A packet of `len` bytes arrives at `now`: when it leaves, or `None`
    /// when it is lost (by the loss model or by the full queue).
    pub fn admit(&mut self, now: Duration, len: usize) -> Option<Duration> {
        let ge = self.link.loss;
        let flip = if self.bad {
            ge.p_bad_to_good
        } else {
            ge.p_good_to_bad
        };
        if self.rng.unit() < flip {
            self.bad = !self.bad;
        }
        let p = if self.bad { ge.loss_bad } else { ge.loss_good };
        if self.rng.unit() < p {
            return None;
        }
        let mut sent = now;
        if let Some(kbps) = self.link.rate_kbps.filter(|k| *k > 0) {
            let start = self.busy_until.max(now);
            if start - now > self.link.queue {
                return None;
            }
            let wire = Duration::from_secs_f64(len as f64 * 8.0 / (kbps as f64 * 1000.0));
            self.busy_until = start + wire;
            sent = self.busy_until;
        }
        let j = self.link.jitter.as_secs_f64() * (2.0 * self.rng.unit() - 1.0);
        let at = (sent + self.link.delay).as_secs_f64() + j;
        let at = Duration::from_secs_f64(at.max(0.0)).max(self.last_departure);
        self.last_departure = at;
        Some(at)
    }
}

/// What crossed the relay, per direction.
#[derive(Debug, Default)]
pub struct Counters {
    pub forward_in: AtomicU64,
    pub forward_out: AtomicU64,
    pub back_in: AtomicU64,
    pub back_out: AtomicU64,
}

/// The relay: the client sends to [`Relay::addr`]; what it sends goes to
/// `target` through the forward link, and the target's answers come back
/// through the back link.
pub struct Relay {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(PartialEq, Eq)]
struct Due {
    at: Duration,
    seq: u64,
    forward: bool,
    data: Vec<u8>,
}

impl Ord for Due {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // A min-heap on departure time, then arrival order.
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Relay {
    /// Start relaying to `target` with these links and changes; `seed` makes
    /// the losses repeatable.
    pub fn start(
        target: SocketAddr,
        forward: Link,
        back: Link,
        changes: Vec<(Duration, Change)>,
        seed: u64,
    ) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").expect("relay front socket");
        let rear = UdpSocket::bind("127.0.0.1:0").expect("relay rear socket");
        front.set_nonblocking(true).expect("nonblocking");
        rear.set_nonblocking(true).expect("nonblocking");
        let addr = front.local_addr().expect("relay address");
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (stop2, c) = (stop.clone(), counters.clone());
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut fwd = Shaper::new(forward, seed);
            let mut bwd = Shaper::new(back, seed.wrapping_mul(31).wrapping_add(7));
            let mut changes = changes;
            changes.sort_by_key(|(t, _)| *t);
            let mut changes = changes.into_iter().peekable();
            let mut outage_until = Duration::ZERO;
            let mut client: Option<SocketAddr> = None;
            let mut heap = BinaryHeap::new();
            let mut seq = 0u64;
            let mut buf = vec![0u8; 65536];
            while !stop2.load(Ordering::Relaxed) && t0.elapsed() < MAX_LIFETIME {
                let now = t0.elapsed();
                while let Some((at, _)) = changes.peek() {
                    if *at > now {
                        break;
                    }
                    match changes.next().map(|(_, ch)| ch) {
                        Some(Change::Forward(l)) => fwd.link = l,
                        Some(Change::Outage(d)) => outage_until = now + d,
                        None => {}
                    }
                }
                let out = now < outage_until;
                let mut idle = true;
                for (sock, shaper, forward, counter) in [
                    (&front, &mut fwd, true, &c.forward_in),
                    (&rear, &mut bwd, false, &c.back_in),
                ] {
                    while let Ok((n, from)) = sock.recv_from(&mut buf) {
                        idle = false;
                        if forward {
                            client = Some(from);
                        }
                        counter.fetch_add(1, Ordering::Relaxed);
                        if out {
                            continue;
                        }
                        if let Some(at) = shaper.admit(now, n) {
                            seq += 1;
                            let data = buf[..n].to_vec();
                            heap.push(Due {
                                at,
                                seq,
                                forward,
                                data,
                            });
                        }
                    }
                }
                while heap.peek().is_some_and(|d| d.at <= t0.elapsed()) {
                    let Some(d) = heap.pop() else { break };
                    idle = false;
                    if d.forward {
                        if rear.send_to(&d.data, target).is_ok() {
                            c.forward_out.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if let Some(to) = client {
                        if front.send_to(&d.data, to).is_ok() {
                            c.back_out.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                if idle {
                    // Sub-millisecond steps keep the added delay honest
                    // without spinning a core.
                    std::thread::sleep(Duration::from_micros(250));
                }
            }
        });
        Relay {
            addr,
            counters,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
