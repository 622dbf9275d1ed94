//! The bad-link relay of the test harness (`common::relay`): its pure model
//! against the figures it is set to, and real datagrams through it on
//! loopback. Later tests and benches put it between the box and its hub.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::relay::{Change, GilbertElliott, Link, Relay, Shaper};

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn random_and_bursty_loss_hit_their_mean() {
    let n = 50_000;
    let mut s = Shaper::new(
        Link {
            loss: GilbertElliott::random(0.03),
            ..Link::clean()
        },
        1,
    );
    let lost = (0..n).filter(|i| s.admit(MS(*i), 1200).is_none()).count();
    let share = lost as f64 / n as f64;
    assert!((0.025..0.035).contains(&share), "random loss {share}");

    let mut s = Shaper::new(
        Link {
            loss: GilbertElliott::bursty(0.05, 8.0),
            ..Link::clean()
        },
        2,
    );
    let (mut lost, mut bursts, mut prev) = (0, 0, false);
    for i in 0..n {
        let l = s.admit(MS(i), 1200).is_none();
        lost += usize::from(l);
        bursts += usize::from(l && !prev);
        prev = l;
    }
    let share = lost as f64 / n as f64;
    let mean_burst = lost as f64 / bursts.max(1) as f64;
    assert!((0.035..0.065).contains(&share), "bursty loss {share}");
    assert!((5.0..11.0).contains(&mean_burst), "mean burst {mean_burst}");
}

#[test]
fn a_rate_cap_paces_and_its_queue_tail_drops() {
    // 2 Mbit/s offered into an 800 kbit/s link for 5 s: it carries 800,
    // queues at most 200 ms, drops the rest.
    let mut s = Shaper::new(
        Link {
            rate_kbps: Some(800),
            delay: MS(50),
            ..Link::clean()
        },
        3,
    );
    let per_packet = Duration::from_secs_f64(1200.0 * 8.0 / 2_000_000.0);
    let (mut sent, mut last, mut worst_wait) = (0u64, Duration::ZERO, Duration::ZERO);
    for i in 0..(5.0 / per_packet.as_secs_f64()) as u32 {
        let now = per_packet * i;
        if let Some(at) = s.admit(now, 1200) {
            sent += 1;
            last = at;
            worst_wait = worst_wait.max(at - now);
        }
    }
    let kbps = sent as f64 * 1200.0 * 8.0 / last.as_secs_f64() / 1000.0;
    assert!((760.0..840.0).contains(&kbps), "carried {kbps} kbit/s");
    assert!(
        worst_wait <= MS(50) + MS(200) + MS(13),
        "a packet waited {worst_wait:?}: more than delay + queue"
    );
}

#[test]
fn jitter_never_reorders_and_delay_is_kept() {
    let mut s = Shaper::new(
        Link {
            delay: MS(100),
            jitter: MS(30),
            ..Link::clean()
        },
        4,
    );
    let mut prev = Duration::ZERO;
    for i in 0..5000 {
        let now = MS(i);
        let at = s.admit(now, 200).expect("no loss configured");
        assert!(at >= prev, "reordered");
        assert!(at >= now + MS(70), "{at:?} too early for {now:?}");
        prev = at;
    }
}

#[test]
fn real_datagrams_cross_with_loss_delay_and_an_outage() {
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = echo.local_addr().unwrap();
    let relay = Relay::start(
        target,
        Link {
            loss: GilbertElliott::random(0.10),
            delay: MS(40),
            ..Link::clean()
        },
        Link::clean(),
        vec![(MS(6000), Change::Outage(MS(1000)))],
        9,
    );
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    // The far end answers each datagram as it comes (reading later would
    // overflow its socket buffer, a loss that is not the relay's).
    echo.set_read_timeout(Some(MS(1500))).unwrap();
    let t0 = Instant::now();
    let far_end = std::thread::spawn(move || {
        let (mut got, mut first) = (0usize, None);
        let mut buf = [0u8; 16];
        while let Ok((_, from)) = echo.recv_from(&mut buf) {
            first.get_or_insert(t0.elapsed());
            got += 1;
            // The answer travels back through the relay to the client.
            echo.send_to(b"ack", from).unwrap();
        }
        (got, first, echo)
    });
    let acks = std::thread::scope(|sc| {
        let reader = sc.spawn(|| {
            client.set_read_timeout(Some(MS(2000))).unwrap();
            let mut buf = [0u8; 16];
            let mut acks = 0usize;
            while client.recv_from(&mut buf).is_ok() {
                acks += 1;
            }
            acks
        });
        // 1000 packets in about a second: about 900 arrive, none early.
        for i in 0..1000u32 {
            client.send_to(&i.to_be_bytes(), relay.addr).unwrap();
            std::thread::sleep(Duration::from_micros(900));
        }
        reader.join().unwrap()
    });
    let (got, first, echo) = far_end.join().unwrap();
    assert!(
        (850..=950).contains(&got),
        "{got} of 1000 crossed with 10% loss"
    );
    assert!(
        first.is_some_and(|f| f >= MS(40)),
        "the first arrived after {first:?}"
    );
    assert_eq!(acks, got, "answers come back to the client");
    let mut buf = [0u8; 16];

    // During the outage nothing crosses.
    while t0.elapsed() < MS(6200) {
        std::thread::sleep(MS(10));
    }
    for i in 0..50u32 {
        client.send_to(&i.to_be_bytes(), relay.addr).unwrap();
    }
    assert!(
        echo.recv_from(&mut buf).is_err(),
        "a packet crossed during the outage"
    );
    println!(
        "relay counters: forward in {} out {}, back in {} out {}",
        relay
            .counters
            .forward_in
            .load(std::sync::atomic::Ordering::Relaxed),
        relay
            .counters
            .forward_out
            .load(std::sync::atomic::Ordering::Relaxed),
        relay
            .counters
            .back_in
            .load(std::sync::atomic::Ordering::Relaxed),
        relay
            .counters
            .back_out
            .load(std::sync::atomic::Ordering::Relaxed),
    );
}
