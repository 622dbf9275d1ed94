//! The SRT uplink against an independent receiver (`srt-live-transmit` from
//! the SRT project, as the hub) and an independent prober (`ffprobe`).

mod common;

use std::time::{Duration, Instant};

use common::{decode_errors, free_udp_port, have, probe, test_config, Daemon, SrtReceiver};

fn tools() -> bool {
    let ok = have("srt-live-transmit") && have("ffprobe") && have("ffmpeg");
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "srt-live-transmit, ffprobe or ffmpeg missing (.ci/run installs them)"
    );
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

/// A commune's narrow link, made by the harness's relay (no kernel module):
/// 800 kbit/s with a 200 ms queue, 50 ms each way, between the box and an
/// srt-live-transmit hub. The camera is a noisy clip x264 cannot squeeze
/// under the cap. Directions, with wide margins (the figures are the
/// bench's): with no history the session starts at the floor, not at the
/// configured 1500 kbit/s that overran this link; the bitrate settles under
/// the cap and uses a fair part of it; SRT's latency is raised to cover
/// four round trips; the next session starts from what the first learned.
#[test]
fn a_narrow_link_is_learned_and_the_next_session_starts_from_it() {
    if !tools() {
        return;
    }
    use common::relay::{Link, Relay};
    let dir = tempfile::tempdir().unwrap();
    let clip = noise_clip(dir.path(), 90);
    let hub_port = free_udp_port();
    let mut hub = SrtReceiver::new(hub_port, &dir.path().join("hub.ts"));
    hub.start();
    let ms = Duration::from_millis;
    let relay = Relay::start(
        format!("127.0.0.1:{hub_port}").parse().unwrap(),
        Link {
            delay: ms(50),
            rate_kbps: Some(800),
            queue: ms(200),
            ..Link::clean()
        },
        Link {
            delay: ms(50),
            ..Link::clean()
        },
        Vec::new(),
        7,
    );
    let cfg = test_config(&format!(
        "\n[uplink]\nurl = \"srt://127.0.0.1:{}\"\nlatency_ms = 120\nreconnect_max_s = 1.0\n",
        relay.addr.port()
    ))
    .replace(
        "source = \"synthetic\"\nwidth = 320",
        &format!(
            "source = \"file\"\ndevice = \"{}\"\nwidth = 320",
            clip.display()
        ),
    )
    .replace("bitrate_kbps = 600\n", "bitrate_kbps = 1500\n")
    .replace("max_bitrate_kbps = 1000", "max_bitrate_kbps = 2000");
    let d = Daemon::start(&cfg);

    let session = |seconds: u64| -> Vec<serde_json::Value> {
        d.start_session();
        let mut seen = Vec::new();
        for _ in 0..seconds {
            std::thread::sleep(Duration::from_secs(1));
            seen.push(d.status()["media"]["uplink"].clone());
        }
        assert!(d.cli(&["stop"]).status.success());
        seen
    };
    let first = session(35);
    let rates: Vec<u64> = first
        .iter()
        .map(|u| u["bitrate_kbps"].as_u64().unwrap_or(0))
        .collect();
    let last = first.last().unwrap();
    println!("first session, kbit/s each second: {rates:?}");
    println!("uplink at the end: {last:#}");
    assert_eq!(first[0]["start_kbps"], 300, "no history: the floor");
    assert_eq!(last["latency_why"], "four_rtt", "{last:#}");
    assert!(last["latency_ms"].as_u64() >= Some(400), "{last:#}");
    let tail = &rates[rates.len() - 10..];
    let mean = tail.iter().sum::<u64>() as f64 / tail.len() as f64;
    assert!(
        (350.0..=800.0).contains(&mean),
        "the last 10 s averaged {mean:.0} kbit/s on an 800 kbit/s link: {rates:?}"
    );

    let second = session(3);
    println!("second session starts: {:#}", second[0]);
    let start = second[0]["start_kbps"].as_u64().unwrap_or(0);
    assert!(
        (350..=800).contains(&start),
        "the second session starts at {start} kbit/s, not from what the first learned"
    );
    // And with the latency the link needs from its first connect.
    assert_eq!(second[0]["latency_why"], "four_rtt", "{:#}", second[0]);
    drop(relay);
}

/// A clip of moving noise (320x240, 25 fps) that makes the encoder use
/// every bit it is given, unlike the synthetic test pattern.
fn noise_clip(dir: &std::path::Path, seconds: u32) -> std::path::PathBuf {
    let clip = dir.join("noise.mkv");
    let ok = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25,noise=alls=40:allf=t+u")
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-crf", "12"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(ok.success(), "ffmpeg made no clip");
    clip
}

/// The presentation times (s) of one kind of stream's packets in a TS
/// file, as ffprobe reads them.
fn packet_times(file: &std::path::Path, stream: &str) -> Vec<f64> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    let mut t: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    t.sort_by(f64::total_cmp);
    t
}

/// Speech first: the link falls to 160 kbit/s (a 200 ms queue, through the
/// test's relay) under a picture whose floor is 300 kbit/s, for 60 s, then
/// comes back. While it is down the uplink sends the sound whole and a
/// paced still now and then, and the encoder (so the recording) goes back
/// to its configured bitrate; once the link has been calm for the hold,
/// the moving picture comes back from the floor. The hub (srt-live-transmit)
/// keeps what it got, and ffprobe reads it.
#[test]
fn when_the_link_collapses_the_sound_goes_on_and_the_picture_comes_back() {
    if !tools() {
        return;
    }
    use common::relay::{Change, Link, Relay};
    let dir = tempfile::tempdir().unwrap();
    let hub_port = free_udp_port();
    let hub_file = dir.path().join("hub.ts");
    let clip = noise_clip(dir.path(), 110);
    let mut hub = SrtReceiver::new(hub_port, &hub_file);
    hub.start();
    let ms = Duration::from_millis;
    let each_way = Link {
        delay: ms(20),
        ..Link::clean()
    };
    let narrow = Link {
        rate_kbps: Some(160),
        queue: ms(200),
        ..each_way.clone()
    };
    let relay = Relay::start(
        format!("127.0.0.1:{hub_port}").parse().unwrap(),
        each_way.clone(),
        each_way.clone(),
        vec![
            (Duration::from_secs(10), Change::Forward(narrow)),
            (Duration::from_secs(70), Change::Forward(each_way.clone())),
        ],
        11,
    );
    // From the floor (300) up to the configured 600, and no higher: the
    // controller's way down to its floor is short.
    let d = Daemon::start(
        &test_config(&format!(
            "\n[uplink]\nurl = \"srt://127.0.0.1:{}\"\nlatency_ms = 200\nreconnect_max_s = 1.0\n",
            relay.addr.port()
        ))
        .replace("max_bitrate_kbps = 1000", "max_bitrate_kbps = 600")
        .replace(
            "source = \"synthetic\"\nwidth = 320",
            &format!(
                "source = \"file\"\ndevice = \"{}\"\nwidth = 320",
                clip.display()
            ),
        ),
    );
    let t0 = Instant::now();
    d.start_session();
    let mut seconds = Vec::new();
    while t0.elapsed() < Duration::from_secs(100) {
        std::thread::sleep(Duration::from_secs(1));
        let u = d.status()["media"]["uplink"].clone();
        seconds.push((
            t0.elapsed().as_secs_f64(),
            u["speech_first"] == true,
            u["bitrate_kbps"].as_u64().unwrap_or(0),
            u["stills_sent"].as_u64().unwrap_or(0),
        ));
    }
    assert!(d.cli(&["stop"]).status.success());
    hub.kill();
    drop(relay);
    let thin: Vec<f64> = seconds.iter().filter(|s| s.1).map(|s| s.0).collect();
    println!(
        "speech first from {:?} s to {:?} s; each second (t, thin, encoder kbit/s, stills): {seconds:?}",
        thin.first(),
        thin.last()
    );
    let first = *thin
        .first()
        .expect("the picture never thinned on a 160 kbit/s link");
    let last = *thin.last().unwrap();
    // The controller first comes down to its floor (a cut to 80% every
    // other second once it sees the link full), then the picture thins:
    // measured about 10 s after the fall.
    assert!(
        first < 35.0,
        "thinned only at {first:.0} s (the link fell at 10 s)"
    );
    assert!(
        (70.0..93.0).contains(&last),
        "speech first ended at {last:.0} s (the link came back at 70 s)"
    );
    // Meanwhile the encoder, and so the recording, had its configured rate.
    for s in seconds.iter().filter(|s| s.1 && s.0 > first + 1.0) {
        assert_eq!(s.2, 600, "{s:?}");
    }
    let stills = seconds.last().unwrap().3;
    assert!(stills >= 3, "{stills} stills in {:.0} s", last - first);

    // At the hub: the sound throughout the collapse; a still now and then;
    // the moving picture at the end.
    let audio = packet_times(&hub_file, "a:0");
    let video = packet_times(&hub_file, "v:0");
    assert!(!audio.is_empty() && !video.is_empty(), "hub got nothing");
    let origin = video[0].min(audio[0]);
    let within =
        |t: &[f64], a: f64, b: f64| t.iter().filter(|x| (a..b).contains(&(*x - origin))).count();
    let frame = 0.02; // Opus frames of 20 ms
    let (from, to) = (first + 2.0, 69.0);
    let heard = within(&audio, from, to) as f64 * frame / (to - from);
    let mut longest = 0.0f64;
    for w in audio.windows(2) {
        if (from..to).contains(&(w[0] - origin)) {
            longest = longest.max(w[1] - w[0]);
        }
    }
    let pictures_thin = within(&video, from, to);
    let pictures_back = within(&video, 94.0, 99.0);
    println!(
        "hub: sound {:.0}% of {from:.0}..{to:.0} s (longest gap {longest:.2} s), {pictures_thin} video packets then; {pictures_back} in the last 5 s",
        heard * 100.0,
    );
    assert!(
        heard >= 0.85,
        "the hub heard {:.0}% of the sound while the link was down",
        heard * 100.0
    );
    assert!(longest <= 2.0, "a {longest:.2} s hole in the sound");
    assert!(pictures_back > 5 * pictures_thin.max(1) / 2, "the moving picture did not come back: {pictures_back} video packets in 5 s against {pictures_thin} in the thin window");

    // The recording is whole and verifies.
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&d.cli(&["recordings", "ls", "--json"]).stdout).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let v: serde_json::Value =
        serde_json::from_slice(&d.cli(&["recordings", "verify", &id, "--json"]).stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let file = dir.path().join("rec.ts");
    assert!(d
        .cli(&["recordings", "export", &id, "--out", file.to_str().unwrap()])
        .status
        .success());
    let (_, duration) = probe(&file);
    assert!(
        duration > 93.0,
        "the recording lasts {duration:.1} s of about 100"
    );
    // At the floor all through, it would average about 300 kbit/s.
    let kbps = std::fs::metadata(&file).unwrap().len() as f64 * 8.0 / 1000.0 / duration;
    println!("the recording: {duration:.1} s, {kbps:.0} kbit/s on average");
    assert!(kbps > 420.0, "the recording averaged {kbps:.0} kbit/s");
}

/// What the hub's copy of a stream shows, from ffmpeg's own decoder: the
/// pictures it decoded, the longest time between two of them, and the
/// damaged-picture seconds (a picture the decoder reported errors for, and
/// every picture predicted from it up to the next keyframe).
struct Picture {
    frames: u64,
    longest_freeze_s: f64,
    damaged_s: f64,
}

fn hub_picture(file: &std::path::Path) -> Picture {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "info", "-i"])
        .arg(file)
        .args(["-map", "0:v:0", "-vf", "showinfo", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let text = String::from_utf8_lossy(&out.stderr);
    // (pts, keyframe, damaged): the decoder's complaints come before the
    // picture they were about reaches the filter.
    let mut frames: Vec<(f64, bool, bool)> = Vec::new();
    let mut complained = false;
    for line in text.lines() {
        if line.contains("Parsed_showinfo") && line.contains(" n:") {
            let pts = line
                .split("pts_time:")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok());
            if let Some(pts) = pts {
                frames.push((pts, line.contains("iskey:1"), complained));
            }
            complained = false;
        } else if line.starts_with("[h264 @") {
            complained = true;
        }
    }
    let (mut longest, mut damaged, mut in_damage) = (0.0f64, 0.0f64, false);
    for w in frames.windows(2) {
        let ((pts, key, bad), (next, _, _)) = (w[0], w[1]);
        let gap = (next - pts).max(0.0);
        longest = longest.max(gap);
        if bad {
            in_damage = true;
        } else if key {
            in_damage = false;
        }
        if in_damage {
            damaged += gap.min(1.0);
        }
    }
    Picture {
        frames: frames.len() as u64,
        longest_freeze_s: longest,
        damaged_s: damaged,
    }
}

/// Who sends: the daemon, or one of the two anchors (the bare gst-launch
/// pipeline and the ffmpeg command line of the project's uplink anchors,
/// on the same clip, at the same bitrate, neither adapting).
#[derive(Clone, Copy, PartialEq)]
enum Sender {
    Diemcau,
    GstLaunch,
    Ffmpeg,
}

/// One row of the bench: what the hub got and, for the daemon, whether
/// the recording is whole and the session stayed live.
struct Row {
    received_pct: f64,
    picture: Picture,
    kbps: f64,
    recording_pct: Option<f64>,
    stayed_live: Option<bool>,
}

fn send_through(
    sender: Sender,
    clip: &std::path::Path,
    forward: common::relay::Link,
    back: common::relay::Link,
    changes: Vec<(Duration, common::relay::Change)>,
    seconds: u64,
    work: &std::path::Path,
) -> Row {
    use common::relay::Relay;
    const FPS: f64 = 25.0;
    let hub_port = free_udp_port();
    let hub_file = work.join("hub.ts");
    let _ = std::fs::remove_file(&hub_file);
    let mut hub = SrtReceiver::new(hub_port, &hub_file);
    hub.start();
    std::thread::sleep(Duration::from_millis(300));
    let relay = Relay::start(
        format!("127.0.0.1:{hub_port}").parse().unwrap(),
        forward,
        back,
        changes,
        11,
    );
    let target = format!("srt://127.0.0.1:{}", relay.addr.port());
    let (mut recording_pct, mut stayed_live) = (None, None);
    match sender {
        Sender::Diemcau => {
            let cfg = test_config(&format!(
                "\n[uplink]\nurl = \"{target}\"\nlatency_ms = 120\nreconnect_max_s = 1.0\n"
            ))
            .replace(
                "source = \"synthetic\"\nwidth = 320",
                &format!(
                    "source = \"file\"\ndevice = \"{}\"\nwidth = 640",
                    clip.display()
                ),
            )
            .replace("height = 240", "height = 360")
            .replace("keyframe_interval_s = 1", "keyframe_interval_s = 2")
            .replace("bitrate_kbps = 600\n", "bitrate_kbps = 1500\n")
            .replace("max_bitrate_kbps = 1000", "max_bitrate_kbps = 2000");
            let d = Daemon::start(&cfg);
            let id = d.start_session()["session"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let mut live = true;
            let trace = std::env::var_os("LINKS_TRACE").is_some();
            for t in 0..seconds {
                std::thread::sleep(Duration::from_secs(1));
                let st = d.status();
                live &= st["phase"] == "live";
                if trace {
                    println!("{t:>3} s {}", st["media"]["uplink"]);
                }
            }
            assert!(d.cli(&["stop"]).status.success());
            let export = work.join("recording.ts");
            let out = d.cli(&[
                "recordings",
                "export",
                &id,
                "--out",
                export.to_str().unwrap(),
            ]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let (_, duration) = probe(&export);
            recording_pct = Some(100.0 * duration / seconds as f64);
            stayed_live = Some(live);
        }
        Sender::GstLaunch => {
            let desc = format!(
                    "filesrc location={} ! matroskademux ! h264parse ! avdec_h264 ! clocksync ! videoconvert ! \
                     x264enc tune=zerolatency speed-preset=ultrafast bitrate=1500 key-int-max=50 ! h264parse ! queue ! mux. \
                     audiotestsrc is-live=true samplesperbuffer=480 ! audio/x-raw,rate=48000,channels=2 ! \
                     opusenc bitrate=64000 ! queue ! mux. mpegtsmux name=mux alignment=7 ! srtsink uri={target} latency=120",
                    clip.display()
                );
            let mut child = std::process::Command::new("gst-launch-1.0")
                .args(["-q", "-e"])
                .args(desc.split(' ').filter(|s| !s.is_empty()))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("gst-launch-1.0");
            std::thread::sleep(Duration::from_secs(seconds));
            // SAFETY: a signal to our own child, which may have exited.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let t0 = Instant::now();
            while child.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Sender::Ffmpeg => {
            let mut child = std::process::Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "quiet", "-re", "-i"])
                .arg(clip)
                .args([
                    "-re",
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=48000",
                ])
                .args(["-t", &seconds.to_string()])
                .args([
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-tune",
                    "zerolatency",
                ])
                .args([
                    "-b:v", "1500k", "-g", "50", "-c:a", "libopus", "-b:a", "64k",
                ])
                .args(["-f", "mpegts", &format!("{target}?pkt_size=1316")])
                .spawn()
                .expect("ffmpeg");
            let t0 = Instant::now();
            while child.try_wait().ok().flatten().is_none()
                && t0.elapsed() < Duration::from_secs(seconds + 5)
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    // What the hub still holds goes out when the sender is gone.
    std::thread::sleep(Duration::from_secs(2));
    drop(hub);
    drop(relay);
    let picture = hub_picture(&hub_file);
    let bytes = std::fs::metadata(&hub_file).map(|m| m.len()).unwrap_or(0);
    Row {
        received_pct: 100.0 * picture.frames as f64 / (seconds as f64 * FPS),
        kbps: bytes as f64 * 8.0 / 1000.0 / seconds as f64,
        picture,
        recording_pct,
        stayed_live,
    }
}

/// The bench's side-by-side table (`bench/links.sh`): the daemon and the
/// two anchors through the same bad-link relay, each scenario
/// `LINKS_SECONDS` long (60 by default), on one 640 × 360 25 fps clip that
/// needs the whole 1500 kbit/s. Prints one table; the targets are
/// beside it in the README.
#[test]
#[ignore = "a bench: run by bench/links.sh"]
fn links_bench_table() {
    use common::relay::{Change, GilbertElliott, Link};
    assert!(
        tools(),
        "the bench needs srt-live-transmit, ffprobe and ffmpeg"
    );
    let seconds: u64 = std::env::var("LINKS_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let work = tempfile::tempdir().unwrap();
    let clip = work.path().join("clip.mkv");
    let ok = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=25,noise=alls=12:allf=t+u")
        .args(["-t", &(seconds + 15).to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-crf", "14"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(ok.success(), "ffmpeg made no clip");
    let ms = Duration::from_millis;
    let delay = |d: u64| Link {
        delay: ms(d),
        ..Link::clean()
    };
    // Name, forward link, back link, changes over time.
    type Scenario = (&'static str, Link, Link, Vec<(Duration, Change)>);
    let scenarios: Vec<Scenario> = vec![
        ("clean", Link::clean(), Link::clean(), vec![]),
        (
            "3% random loss, 100 ms each way",
            Link {
                loss: GilbertElliott::random(0.03),
                ..delay(100)
            },
            Link {
                loss: GilbertElliott::random(0.03),
                ..delay(100)
            },
            vec![],
        ),
        (
            "10% burst loss (bursts of 5), 40 ms",
            Link {
                loss: GilbertElliott::bursty(0.10, 5.0),
                ..delay(40)
            },
            delay(40),
            vec![],
        ),
        (
            "800 kbit/s cap, 50 ms",
            Link {
                rate_kbps: Some(800),
                ..delay(50)
            },
            delay(50),
            vec![],
        ),
        (
            "3 Mbit/s, 600 kbit/s at 1/3, back at 2/3",
            Link {
                rate_kbps: Some(3000),
                ..delay(30)
            },
            delay(30),
            vec![
                (
                    Duration::from_secs(seconds / 3),
                    Change::Forward(Link {
                        rate_kbps: Some(600),
                        ..delay(30)
                    }),
                ),
                (
                    Duration::from_secs(2 * seconds / 3),
                    Change::Forward(Link {
                        rate_kbps: Some(3000),
                        ..delay(30)
                    }),
                ),
            ],
        ),
        (
            "10 s outage at 1/3",
            delay(30),
            delay(30),
            vec![(
                Duration::from_secs(seconds / 3),
                Change::Outage(Duration::from_secs(10)),
            )],
        ),
    ];
    println!(
        "{seconds} s each; 640x360 25 fps clip at 1500 kbit/s; the hub is srt-live-transmit, the picture ffmpeg's decoder"
    );
    println!(
        "{:<42} {:<9} {:>9} {:>10} {:>10} {:>9} {:>10} {:>5}",
        "scenario", "sender", "received", "freeze s", "damaged s", "kbit/s", "recording", "live"
    );
    // LINKS_ONLY: the scenarios whose name holds it; LINKS_SENDERS: the
    // senders named (a comma list of diemcau, gst, ffmpeg).
    let only = std::env::var("LINKS_ONLY").unwrap_or_default();
    let senders = std::env::var("LINKS_SENDERS").unwrap_or_default();
    for (name, forward, back, changes) in scenarios {
        if !name.contains(only.as_str()) {
            continue;
        }
        for (sender, label) in [
            (Sender::Diemcau, "diemcau"),
            (Sender::GstLaunch, "gst"),
            (Sender::Ffmpeg, "ffmpeg"),
        ] {
            if !senders.is_empty() && !senders.split(',').any(|s| s == label) {
                continue;
            }
            let r = send_through(
                sender,
                &clip,
                forward.clone(),
                back.clone(),
                changes.clone(),
                seconds,
                work.path(),
            );
            println!(
                "{:<42} {:<9} {:>8.1}% {:>10.2} {:>10.2} {:>9.0} {:>10} {:>5}",
                name,
                label,
                r.received_pct,
                r.picture.longest_freeze_s,
                r.picture.damaged_s,
                r.kbps,
                r.recording_pct
                    .map(|p| format!("{p:.0}%"))
                    .unwrap_or_else(|| "-".into()),
                r.stayed_live
                    .map(|l| if l { "yes" } else { "NO" }.to_owned())
                    .unwrap_or_else(|| "-".into()),
            );
        }
    }
    println!(
        "not run here: the 800 kbit/s row with a 1 GB archive backlog (the relay shapes the SRT \
         datagrams only; the archive's HTTP upload does not cross it)"
    );
}
