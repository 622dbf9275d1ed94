//! The media engine around the uplink: the hub's return feed reaching the
//! display and speaker, and a camera that disappears mid-session.

mod common;

use std::time::{Duration, Instant};

use common::{free_udp_port, have, hub_program, return_config, test_config, Daemon};

#[test]
fn hub_program_reaches_display_and_speaker() {
    if !have("ffmpeg") {
        eprintln!("SKIP: ffmpeg missing (tests/quickstart.sh installs it)");
        return;
    }
    let port = free_udp_port();
    let mut hub = hub_program(port);
    let d = Daemon::start(&return_config(port, ""));
    d.start_session();
    std::thread::sleep(Duration::from_secs(5));
    let st = d.status();
    let rf = &st["media"]["return_feed"];
    assert_eq!(rf["live"], true, "{st}");
    // About 25 pictures a second reach the display's channel, and the
    // sound reaches the speaker's (through the echo canceller's probe).
    assert!(rf["video_frames"].as_u64().unwrap() >= 50, "{rf}");
    assert!(rf["audio_buffers"].as_u64().unwrap() >= 50, "{rf}");
    assert_eq!(st["degraded"], serde_json::json!([]), "{st}");
    // What the speaker plays is the canceller's reference: it runs.
    assert_eq!(st["media"]["echo_canceller"], true, "{st}");

    // The hub goes away: the session stays live and says the feed is lost.
    let _ = hub.kill();
    let _ = hub.wait();
    let t0 = Instant::now();
    loop {
        let st = d.status();
        assert_eq!(st["phase"], "live");
        // Both views agree once the next statistics are published.
        if st["degraded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "return_feed_lost")
            && st["media"]["return_feed"]["live"] == false
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(12),
            "feed loss not noticed: {st}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // And it comes back by itself.
    let mut hub = hub_program(port);
    let t0 = Instant::now();
    while d.status()["media"]["return_feed"]["live"] != true {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "feed did not come back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = hub.kill();
    let _ = hub.wait();
}

#[test]
fn camera_that_disappears_gives_slate_event_and_recovery() {
    // The synthetic camera "unplugs" itself after 40 frames (1.6 s).
    let cfg = test_config("").replace(
        "keyframe_interval_s = 1",
        "keyframe_interval_s = 1\nsynthetic_frames = 40",
    );
    let d = Daemon::start(&cfg);
    d.start_session();
    // Nothing plays into the room (no return feed, no call): no canceller.
    assert_eq!(d.status()["media"]["echo_canceller"], false);
    let t0 = Instant::now();
    let (mut lost_seen, mut back_seen, mut absent_seen) = (false, false, false);
    let mut bytes_before = 0;
    while t0.elapsed() < Duration::from_secs(12) && !(lost_seen && back_seen && absent_seen) {
        let st = d.status();
        assert_eq!(
            st["phase"], "live",
            "a camera loss must not stop the session: {st}"
        );
        let lost = st["degraded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "camera_lost");
        if lost && !lost_seen {
            lost_seen = true;
            bytes_before = st["media"]["ts_bytes_out"].as_u64().unwrap();
        }
        absent_seen |= st["media"]["camera_present"] == false;
        if lost_seen && !lost {
            back_seen = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(lost_seen, "camera loss was never reported");
    assert!(absent_seen, "statistics never showed the camera absent");
    assert!(back_seen, "camera never came back");
    let st = d.status();
    assert!(
        st["media"]["camera_restarts"].as_u64().unwrap() >= 1,
        "{st}"
    );
    // The encoder went on through the loss (slate on black, live microphone).
    assert!(
        st["media"]["ts_bytes_out"].as_u64().unwrap() > bytes_before,
        "{st}"
    );
    assert!(st["media"]["microphone_present"] == true, "{st}");
}
