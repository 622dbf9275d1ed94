//! The SRT uplink against an independent receiver (`srt-live-transmit` from
//! the SRT project, as the hub) and an independent prober (`ffprobe`).

mod common;

use std::time::{Duration, Instant};

use common::{decode_errors, free_udp_port, have, probe, test_config, Daemon, SrtReceiver};

fn tools() -> bool {
    let ok = have("srt-live-transmit") && have("ffprobe") && have("ffmpeg");
    if !ok {
        eprintln!("SKIP: srt-live-transmit, ffprobe or ffmpeg missing (tests/quickstart.sh installs them)");
    }
    ok
}

fn uplink_config(port: u16) -> String {
    test_config(&format!(
        "\n[uplink]\nurl = \"srt://127.0.0.1:{port}\"\nlatency_ms = 120\nstreamid = \"publish:test-xa-01\"\nreconnect_max_s = 1.0\n"
    ))
}

#[test]
fn stream_reaches_an_independent_receiver() {
    if !tools() {
        return;
    }
    let port = free_udp_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hub.ts");
    let mut hub = SrtReceiver::new(port, &out);
    hub.start_once();
    std::thread::sleep(Duration::from_millis(300));
    let d = Daemon::start(&uplink_config(port));
    d.start_session();
    let live = Instant::now();
    std::thread::sleep(Duration::from_secs(6));
    let st = d.status();
    assert_eq!(st["media"]["uplink"]["connected"], true, "{st}");
    let stop = d.cli(&["stop"]);
    assert!(stop.status.success());
    let elapsed = live.elapsed().as_secs_f64();
    // The uplink drains and disconnects after the stop; the receiver then
    // writes out what it holds and exits.
    assert!(
        hub.wait_exit(Duration::from_secs(10)),
        "the receiver did not see the box disconnect"
    );

    let (codecs, duration) = probe(&out);
    assert!(codecs.iter().any(|c| c == "h264"), "{codecs:?}");
    assert!(codecs.iter().any(|c| c == "opus"), "{codecs:?}");
    eprintln!("received {duration:.2} s of a {elapsed:.2} s session");
    assert!(
        (duration - elapsed).abs() <= 1.0,
        "received {duration} s, live for {elapsed} s"
    );
    let errors = decode_errors(&out);
    if !errors.is_empty() {
        let keep = std::env::temp_dir().join("diemcau-uplink-failure.ts");
        let _ = std::fs::copy(&out, &keep);
        eprintln!("kept the received stream at {}", keep.display());
    }
    assert!(errors.is_empty(), "decode errors: {errors:#?}");
}

/// Poll until the receiver's file grows, checking that the session stays live.
fn wait_resumed(d: &Daemon, hub: &SrtReceiver, what: &str) -> Duration {
    let t0 = Instant::now();
    let start = hub.bytes();
    loop {
        if hub.bytes() > start + 20_000 {
            return t0.elapsed();
        }
        assert_eq!(d.phase(), "live", "session left live while {what}");
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "stream did not resume ({what})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn hub_late_then_restarted_twice_stream_resumes() {
    if !tools() {
        return;
    }
    let port = free_udp_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hub.ts");
    let mut hub = SrtReceiver::new(port, &out);
    let d = Daemon::start(&uplink_config(port));
    d.start_session();

    // The hub is not there for the first 10 s: the session is live anyway.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        assert_eq!(d.phase(), "live");
        std::thread::sleep(Duration::from_millis(250));
    }
    let st = d.status();
    assert!(
        st["degraded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "uplink_down"),
        "{st}"
    );
    assert!(
        st["media"]["ts_bytes_out"].as_u64().unwrap() > 100_000,
        "encoding went on: {st}"
    );

    hub.start();
    let took = wait_resumed(&d, &hub, "the hub came up late");
    eprintln!("hub up after 10 s: stream after {took:?}");
    assert!(took <= Duration::from_secs(3), "resumed after {took:?}");

    for round in 1..=2 {
        std::thread::sleep(Duration::from_secs(2));
        hub.kill();
        // SRT notices a dead peer after its idle timeout (5 s); the hub stays
        // down longer than that, as a real outage would.
        let down = Instant::now();
        while down.elapsed() < Duration::from_secs(6) {
            assert_eq!(d.phase(), "live");
            std::thread::sleep(Duration::from_millis(250));
        }
        hub.start();
        let took = wait_resumed(&d, &hub, "the hub restarted");
        eprintln!("hub restart {round}: stream after {took:?}");
        assert!(
            took <= Duration::from_secs(3),
            "round {round}: resumed after {took:?}"
        );
    }
    let st = d.status();
    assert!(
        st["media"]["uplink"]["connects"].as_u64().unwrap() >= 3,
        "{st}"
    );
    assert!(
        !st["degraded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "uplink_down"),
        "{st}"
    );
}
