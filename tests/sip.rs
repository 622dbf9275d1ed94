//! The box as a SIP room endpoint, against peers nobody here wrote:
//! baresip as the conference's far end and as a caller, Kamailio as the
//! province's registrar and proxy, SIPp for the edges. All on loopback.
//!
//! Not exercised here: the far end's picture on the box (baresip 1.0's
//! file source sends no video in this headless setup, so only the box's
//! H.264 to baresip is checked), SRTP, TLS and NAT (loopback has none).

mod common;

use std::time::{Duration, Instant};

use common::sip::{free_rtp_base, free_sip_port, tone_share, Baresip, Kamailio, Sipp};
use common::{test_config, Daemon};
use serde_json::Value;

fn wait_for(d: &Daemon, what: &str, timeout: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let s = d.status();
        if ok(&s) {
            return s;
        }
        assert!(
            t0.elapsed() < timeout,
            "{what}: not within {timeout:?}; status {s:#}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `diemcau doctor`'s line for the conference.
fn doctor_line(d: &Daemon) -> Value {
    let out = d.cli(&["doctor", "--json", "--lang", "en"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Video conference (SIP)")
        .cloned()
        .unwrap_or_else(|| panic!("no conference line in {report:#}"))
}

/// The SIP port written into the daemon's config by [`sip_section`].
fn sip_port(d: &Daemon) -> String {
    std::fs::read_to_string(&d.config)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("local_port = ").map(str::to_owned))
        .expect("the config has [sip] local_port")
}

fn sip_section(extra: &str) -> String {
    format!(
        "\n[sip]\nmode = \"sip\"\nlocal_port = {}\nrtp_port = {}\nredial_max_s = 2\n{extra}",
        free_sip_port(),
        free_rtp_base()
    )
}

/// SIPp as an MCU calling the room straight at `local_port`, running
/// `scenario` with its call held for `hold_ms`.
fn mcu_calls(scenario: &str, local_port: &str, hold_ms: u32) -> Sipp {
    mcu_calls_from(scenario, local_port, hold_ms, free_rtp_base())
}

/// As `mcu_calls`, with the MCU's SDP giving `media_port` for audio and
/// two above it for video (RTCP one above each).
fn mcu_calls_from(scenario: &str, local_port: &str, hold_ms: u32, media_port: u16) -> Sipp {
    Sipp::start(
        scenario,
        &[
            &format!("127.0.0.1:{local_port}"),
            "-s",
            "room1",
            "-i",
            "127.0.0.1",
            "-p",
            &free_sip_port().to_string(),
            "-m",
            "1",
            "-d",
            &hold_ms.to_string(),
            "-mp",
            &media_port.to_string(),
        ],
    )
}

/// A TMMBR (RFC 5104 §4.2.1) from the MCU's SSRC 0x5eed0001 asking at
/// most `bps` of the room's video, with 40 bytes of headers per packet:
/// the bitrate as mantissa × 2^exp, the mantissa in 17 bits.
fn tmmbr_packet(bps: u64) -> Vec<u8> {
    let exp = (0..64u32).find(|e| bps >> e < (1 << 17)).unwrap();
    let word = (exp << 26) | (((bps >> exp) as u32) << 9) | 40;
    let mut p = vec![0x80 | 3, 205, 0, 4];
    p.extend(0x5eed_0001u32.to_be_bytes()); // the sender
    p.extend(0u32.to_be_bytes()); // media source: 0 for TMMBR
    p.extend(0u32.to_be_bytes()); // the FCI: the room's video SSRC
    p.extend(word.to_be_bytes());
    p
}

/// The MCU: baresip as user 8001, registered with `kam` over UDP, answering
/// by itself.
fn mcu_registered_with(kam: &Kamailio) -> Baresip {
    let mcu = Baresip::start(&format!(
        "<sip:8001@mcu.example;transport=udp>;auth_pass=mcupw;outbound=\"sip:127.0.0.1:{};transport=udp\";regint=60;answermode=auto;audio_codecs=G722/16000/1",
        kam.port
    ));
    let t0 = Instant::now();
    while !mcu.log().contains("200 OK") && !mcu.log().to_lowercase().contains("registered") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "baresip did not register:\n{}",
            mcu.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    mcu
}

#[test]
fn dials_the_conference_hears_and_is_heard_and_redials_when_dropped() {
    let far = Baresip::start(
        "<sip:8001@127.0.0.1;transport=udp>;regint=0;answermode=auto;audio_codecs=G722/16000/1,PCMU/8000/1",
    );
    let d = Daemon::start(&test_config(&sip_section(&format!(
        "conference = \"sip:8001@127.0.0.1:{}\"\npin = \"12#\"\npin_delay_s = 0.5\n",
        far.port
    ))));
    let idle = d.status();
    assert_eq!(idle["call"]["configured"], true);
    assert_eq!(idle["call"]["state"], "idle");
    let started = d.start_session();
    let id = started["session"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let s = wait_for(&d, "call connected", Duration::from_secs(10), |s| {
        s["call"]["state"] == "connected"
    });
    assert_eq!(s["call"]["codecs"], "G722/8000 + H264/90000", "{s:#}");
    // The conference hears the meeting PIN as RFC 4733 keypad events, in
    // order, after the configured pause.
    let t0 = Instant::now();
    loop {
        let log = far.log();
        // baresip: `received event: '1' (end=1)` as each key is let go.
        let keys: String = log
            .split("received event: '")
            .skip(1)
            .filter(|r| r.get(1..10) == Some("' (end=1)"))
            .filter_map(|r| r.chars().next())
            .collect();
        if keys == "12#" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "baresip heard the keys {keys:?}, not \"12#\":\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both directions carry sound: the far end's tone reaches the box's
    // speaker path, and the box's 440 Hz microphone tone reaches the far end.
    let s = wait_for(&d, "audio both ways", Duration::from_secs(15), |s| {
        s["call"]["media"]["audio_packets_received"].as_u64() > Some(150)
            && s["call"]["media"]["audio_packets_sent"].as_u64() > Some(150)
            && !s["call"]["media"]["rtt_ms"].is_null()
    });
    // And pictures: the room's H.264 goes out, and the far end decodes it
    // at the room's size.
    wait_for(&d, "video out", Duration::from_secs(10), |s| {
        s["call"]["media"]["video_packets_sent"].as_u64() > Some(50)
    });
    // And the far end's picture (baresip's test clip) is decoded into the
    // screen's channel: frames counted where the display takes them.
    // baresip's clip starts a few seconds into the call, and the picture
    // only from a keyframe (the box asks for one with a PLI).
    let t0 = Instant::now();
    loop {
        let n = d.status()["call"]["media"]["video_packets_received"]
            .as_u64()
            .unwrap_or(0);
        if n > 25 {
            println!("far end's frames on the box's screen channel: {n}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(25),
            "no picture from the far end ({n} frames):\n{}",
            far.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let t0 = Instant::now();
    while !far
        .log()
        .contains("video: receiving with resolution 320 x 240")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "baresip decodes no video from the box:\n{}",
            far.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("call media after connect: {:#}", s["call"]["media"]);
    std::thread::sleep(Duration::from_secs(2));
    let (samples, rate) = far.received_audio();
    assert!(
        rate > 0 && samples.len() > rate as usize,
        "baresip recorded {} samples at {rate} Hz:\n{}",
        samples.len(),
        far.log()
    );
    // The last two seconds (the first may hold the jitter buffer's start).
    let tail = &samples[samples.len() - rate as usize..];
    let (ours, other) = (
        tone_share(tail, rate, 440.0),
        tone_share(tail, rate, 1000.0),
    );
    println!("baresip heard: 440 Hz share {ours:.2}, 1 kHz share {other:.2}");
    assert!(
        ours > 0.5,
        "the far end does not hear the room's 440 Hz tone ({ours:.2})"
    );

    // The far end hangs up mid-session: the session and its recording go
    // on, the call is redialled and comes back.
    let r = far.command("hangup", "");
    println!("baresip hangup: {r}");
    let s = wait_for(&d, "call down", Duration::from_secs(5), |s| {
        s["call"]["state"] != "connected"
            && s["degraded"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "call_down"))
    });
    assert_eq!(s["phase"], "live", "{s:#}");
    let s = wait_for(&d, "call back after redial", Duration::from_secs(15), |s| {
        s["call"]["state"] == "connected" && s["call"]["calls"] == 2
    });
    assert_eq!(s["phase"], "live");
    assert!(
        !s["degraded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "call_down"),
        "{s:#}"
    );
    let bytes_before = s["media"]["ts_bytes_out"].as_u64().unwrap();
    assert!(bytes_before > 0);

    // Ending the session hangs up.
    let out = d.cli(&["stop"]);
    assert!(out.status.success(), "{out:?}");
    wait_for(&d, "call idle", Duration::from_secs(5), |s| {
        s["call"]["state"] == "idle"
    });
    let t0 = Instant::now();
    while !far.log().contains("terminated") {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "baresip saw no BYE:\n{}",
            far.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The recording, through the hang-up and the redial, is whole: the
    // room's stream and the far end's track, each hash-chained, both named
    // by the room's signed manifest.
    let out = d.cli(&["recordings", "verify", &id, "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "intact", "{report:#}");
    assert_eq!(report["far"]["verdict"], "intact", "{report:#}");
    assert!(report["far"]["segments"].as_u64() > Some(0), "{report:#}");
    let manifest: Value =
        serde_json::from_slice(&d.cli(&["recordings", "manifest", &id]).stdout).unwrap();
    assert_eq!(
        manifest["far"]["session"],
        format!("{id}.far"),
        "{manifest:#}"
    );
    // The list shows the session once; its far track goes with it.
    let ls = String::from_utf8_lossy(&d.cli(&["recordings", "ls"]).stdout).into_owned();
    assert!(!ls.contains(".far"), "{ls}");

    // Exported, the conversation is one file: the room's 440 Hz on the
    // first audio track, the far end's 1 kHz (baresip's tone) on the second.
    let mp4 = d.dir.path().join("dialog.mp4");
    let out = d.cli(&["recordings", "export", &id, "--out", mp4.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let track = |n: usize| -> Vec<i16> {
        let o = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&mp4)
            .args([
                "-map",
                &format!("0:a:{n}"),
                "-ac",
                "1",
                "-ar",
                "16000",
                "-f",
                "s16le",
                "-",
            ])
            .output()
            .expect("ffmpeg runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    };
    // The best second of each: the far end is silent while the call is
    // being (re)dialled.
    let best = |samples: &[i16], freq: f64| {
        samples
            .chunks(16000)
            .filter(|c| c.len() == 16000)
            .map(|c| tone_share(c, 16000, freq))
            .fold(0.0f64, f64::max)
    };
    let (room, far_track) = (track(0), track(1));
    let (room440, far1k) = (best(&room, 440.0), best(&far_track, 1000.0));
    println!(
        "export: room track {} s (440 Hz share {room440:.2}), far track {} s (1 kHz share {far1k:.2})",
        room.len() / 16000,
        far_track.len() / 16000
    );
    assert!(room440 > 0.5, "the room's track lacks its 440 Hz tone");
    assert!(
        far1k > 0.5,
        "the far end's track lacks baresip's 1 kHz tone"
    );
    // The far track runs the whole session, silence while the call was down.
    assert!(
        far_track.len() + 2 * 16000 >= room.len(),
        "far track {} samples, room {}",
        far_track.len(),
        room.len()
    );
}

#[test]
fn registers_with_kamailio_and_answers_the_mcus_call_through_it() {
    let mut kam = Kamailio::start();
    let d = Daemon::start(&test_config(&sip_section(&format!(
        "registrar = \"sip:mcu.example\"\nproxy = \"127.0.0.1:{}\"\ntransport = \"tcp\"\nuser = \"room1\"\npassword = \"room1pw\"\nkeepalive_s = 5\n",
        kam.port
    ))));
    wait_for(&d, "registered", Duration::from_secs(10), |s| {
        s["call"]["registered"] == true
    });
    // The technician's view: registered, and the server answers OPTIONS.
    let conf = doctor_line(&d);
    println!("doctor: {conf}");
    assert_eq!(conf["verdict"], "PASS", "{conf:#}");
    let detail = conf["detail"].as_str().unwrap();
    assert!(
        detail.contains("registered") && detail.contains("answered OPTIONS"),
        "{detail}"
    );
    // The MCU (baresip, user 8001) calls the room by its SIP name; Kamailio
    // relays the INVITE over the box's own registration flow.
    let mcu = mcu_registered_with(&kam);
    let r = mcu.command("dial", "sip:room1@mcu.example");
    println!("baresip dial: {r}");
    let s = wait_for(&d, "answered and live", Duration::from_secs(15), |s| {
        s["phase"] == "live" && s["call"]["state"] == "connected"
    });
    assert!(
        s["session"]["started_by"].to_string().contains("8001"),
        "the session records who called: {s:#}"
    );
    wait_for(&d, "audio from the MCU", Duration::from_secs(10), |s| {
        s["call"]["media"]["audio_packets_received"].as_u64() > Some(50)
    });
    let out = d.cli(&["stop"]);
    assert!(out.status.success(), "{out:?}");
    wait_for(&d, "idle", Duration::from_secs(10), |s| {
        s["phase"] == "idle"
    });

    // The SIP server restarts and forgets every binding. The box notices
    // its connection was replaced at the next keep-alive (5 s here) and
    // registers again at once, so the MCU reaches it again.
    kam.stop();
    kam.spawn();
    std::thread::sleep(Duration::from_secs(8));
    let calls = d.status()["call"]["calls"].as_u64().unwrap_or(0);
    println!(
        "baresip dial after the restart: {}",
        mcu.command("dial", "sip:room1@mcu.example")
    );
    wait_for(
        &d,
        "answered after the restart",
        Duration::from_secs(15),
        |s| s["call"]["state"] == "connected" && s["call"]["calls"].as_u64() > Some(calls),
    );
    assert!(d.cli(&["stop"]).status.success());

    // A wrong password is a clear error, and the daemon goes on.
    let bad = Daemon::start(&test_config(&sip_section(&format!(
        "registrar = \"sip:mcu.example\"\nproxy = \"127.0.0.1:{}\"\ntransport = \"tcp\"\nuser = \"room1\"\npassword = \"wrong\"\n",
        kam.port
    ))));
    let s = wait_for(&bad, "registration refused", Duration::from_secs(10), |s| {
        !s["call"]["registration_error"].is_null()
    });
    let e = s["call"]["registration_error"].as_str().unwrap();
    println!("wrong password: {e}");
    assert!(
        e.contains("password") && (e.contains("401") || e.contains("403")),
        "{e}"
    );
    assert_eq!(s["call"]["registered"], false);
    let conf = doctor_line(&bad);
    assert_eq!(conf["verdict"], "FAIL", "{conf:#}");
    assert!(
        conf["hint"].as_str().unwrap().contains("password"),
        "{conf:#}"
    );
}

#[test]
fn busy_conference_is_redialled_and_strangers_are_refused() {
    let sipp_port = free_sip_port();
    let mut busy = Sipp::start(
        "uas_486.xml",
        &["-i", "127.0.0.1", "-p", &sipp_port.to_string(), "-m", "2"],
    );
    let d = Daemon::start(&test_config(&sip_section(&format!(
        "conference = \"sip:8001@127.0.0.1:{sipp_port}\"\nallow = [\"127.0.0.1\"]\n"
    ))));
    d.start_session();
    // A busy conference does not end the session: it is live, the call
    // marked down with the reason.
    let s = wait_for(&d, "486 seen while live", Duration::from_secs(10), |s| {
        s["call"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("486 Busy Here"))
            && s["phase"] == "live"
            && s["degraded"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "call_down"))
    });
    println!("busy: {}", s["call"]["last_error"]);
    // Redialled after the backoff: SIPp takes its second call and ends.
    assert_eq!(
        busy.wait(Duration::from_secs(15)),
        Some(0),
        "{}",
        busy.trace()
    );

    // A call from a source not on the allow list (127.0.0.2) is refused
    // with 403, whatever its From header says.
    let local_port = sip_port(&d);
    let mut stranger = Sipp::start(
        "uac_expect_reject.xml",
        &[
            &format!("127.0.0.1:{local_port}"),
            "-s",
            "room1",
            "-i",
            "127.0.0.2",
            "-p",
            &free_sip_port().to_string(),
            "-m",
            "1",
        ],
    );
    assert_eq!(
        stranger.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        stranger.trace()
    );
    let s = d.status();
    assert!(s["call"]["refused"].as_u64() >= Some(1), "{s:#}");
    // Garbage on the SIP port changes nothing.
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for junk in [
        &b"\x00\x01garbage"[..],
        b"INVITE\r\n\r\n",
        b"SIP/2.0 200\r\n\r\n",
    ] {
        u.send_to(junk, format!("127.0.0.1:{local_port}")).unwrap();
    }
    // A well-formed INVITE whose SDP is nonsense, and one with no SDP.
    let me = u.local_addr().unwrap();
    let invite = |call: &str, body: &str| {
        format!(
            "INVITE sip:room1@127.0.0.1:{local_port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:x@{me}>;tag={call}\r\nTo: <sip:room1@127.0.0.1>\r\nCall-ID: {call}@junk\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:x@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    for (call, body) in [
        ("bad-sdp", "v=0\r\nm=audio banana RTP/AVP x\r\n"),
        ("no-sdp", ""),
    ] {
        u.send_to(
            invite(call, body).as_bytes(),
            format!("127.0.0.1:{local_port}"),
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.status()["phase"], "live");
    // And the endpoint still answers: an OPTIONS gets its 200.
    let options = format!(
        "OPTIONS sip:127.0.0.1:{local_port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKping;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:x@{me}>;tag=p\r\nTo: <sip:127.0.0.1>\r\nCall-ID: ping@junk\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    u.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    u.send_to(options.as_bytes(), format!("127.0.0.1:{local_port}"))
        .unwrap();
    let mut buf = [0u8; 4096];
    let t0 = Instant::now();
    loop {
        let n = u
            .recv(&mut buf)
            .expect("the SIP endpoint answers after the junk");
        let text = String::from_utf8_lossy(&buf[..n]);
        if text.contains("CSeq: 1 OPTIONS") {
            assert!(text.starts_with("SIP/2.0 200"), "{text}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "no answer to OPTIONS"
        );
    }
}

#[test]
fn srtp_required_encrypts_both_ways_and_a_plain_far_end_is_a_clear_error() {
    // baresip insisting on SRTP (SDES keys in the SDP).
    let far = Baresip::start(
        "<sip:8001@127.0.0.1;transport=udp>;regint=0;answermode=auto;audio_codecs=G722/16000/1;mediaenc=srtp-mand",
    );
    let d = Daemon::start(&test_config(&sip_section(&format!(
        "conference = \"sip:8001@127.0.0.1:{}\"\nsrtp = \"required\"\n",
        far.port
    ))));
    d.start_session();
    let s = wait_for(&d, "encrypted call", Duration::from_secs(10), |s| {
        s["call"]["state"] == "connected"
    });
    assert_eq!(
        s["call"]["codecs"], "G722/8000 + H264/90000 (SRTP)",
        "{s:#}"
    );
    // Decrypted both ways: the box decodes the far end's packets, and the
    // far end hears the box's tone.
    wait_for(
        &d,
        "encrypted audio both ways",
        Duration::from_secs(15),
        |s| {
            s["call"]["media"]["audio_packets_received"].as_u64() > Some(150)
                && s["call"]["media"]["audio_packets_sent"].as_u64() > Some(150)
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let (samples, rate) = far.received_audio();
    assert!(
        samples.len() > rate as usize,
        "baresip recorded nothing:\n{}",
        far.log()
    );
    let share = tone_share(&samples[samples.len() - rate as usize..], rate, 440.0);
    println!("through SRTP, baresip heard 440 Hz at share {share:.2}");
    assert!(share > 0.5, "{share:.2}");
    assert!(d.cli(&["stop"]).status.success());

    // A far end without SRTP, and the box requiring it: a clear reason,
    // and the session goes on.
    let plain = Baresip::start(
        "<sip:8002@127.0.0.1;transport=udp>;regint=0;answermode=auto;audio_codecs=G722/16000/1",
    );
    let d = Daemon::start(&test_config(&sip_section(&format!(
        "conference = \"sip:8002@127.0.0.1:{}\"\nsrtp = \"required\"\n",
        plain.port
    ))));
    d.start_session();
    let s = wait_for(
        &d,
        "refused for want of SRTP",
        Duration::from_secs(10),
        |s| {
            s["call"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("SRTP") || e.contains("encrypted"))
        },
    );
    println!("plain far end: {}", s["call"]["last_error"]);
    assert_ne!(s["call"]["state"], "connected");
}

#[test]
fn with_answer_button_a_call_rings_until_the_session_starts() {
    // The MCU dials the room straight (no registrar): allowed by address.
    let d = Daemon::start(&test_config(&sip_section(
        "answer = \"button\"\nallow = [\"127.0.0.1\"]\n",
    )));
    let local_port = sip_port(&d);
    let mut mcu = mcu_calls("uac_bye_midcall.xml", &local_port, 10000);
    // It rings; nothing starts by itself.
    let s = wait_for(&d, "ringing", Duration::from_secs(10), |s| {
        s["call"]["state"] == "ringing"
    });
    assert_eq!(s["phase"], "idle", "{s:#}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(d.status()["phase"], "idle");
    // The button's press (here the same start through the CLI) answers.
    d.start_session();
    let s = wait_for(&d, "answered", Duration::from_secs(10), |s| {
        s["call"]["state"] == "connected"
            && s["phase"] == "live"
            && !s["call"]["media"]["video_cap_kbps"].is_null()
    });
    // The MCU's `b=AS:256` for video caps the one encoder (nine tenths of
    // it: the headers count too), below the configured 600.
    assert_eq!(s["call"]["media"]["video_cap_kbps"], 230, "{s:#}");
    // The MCU hangs up after 10 s; the session goes on without its call.
    assert_eq!(
        mcu.wait(Duration::from_secs(25)),
        Some(0),
        "{}",
        mcu.trace()
    );
    let s = wait_for(&d, "call ended", Duration::from_secs(5), |s| {
        s["call"]["state"] != "connected"
    });
    assert_eq!(s["phase"], "live", "{s:#}");
}

/// Over TLS to Kamailio: the server's certificate is checked against
/// `[sip] ca`, the box registers and the MCU's call reaches it over the
/// box's own TLS connection (it listens for none). A certificate from
/// another authority is a clear error, in status and in doctor.
#[test]
fn registers_over_tls_and_takes_the_call_over_its_own_connection() {
    let certs = tempfile::tempdir().unwrap();
    common::mqtt::make_certs(certs.path(), "room1");
    let kam = Kamailio::start_tls(certs.path());
    let ca = certs.path().join("ca.crt");
    let tls = |ca: &std::path::Path| {
        sip_section(&format!(
            "registrar = \"sip:mcu.example\"\nproxy = \"127.0.0.1:{}\"\ntransport = \"tls\"\nca = \"{}\"\nuser = \"room1\"\npassword = \"room1pw\"\n",
            kam.tls_port,
            ca.display()
        ))
    };
    let d = Daemon::start(&test_config(&tls(&ca)));
    wait_for(&d, "registered over TLS", Duration::from_secs(10), |s| {
        s["call"]["registered"] == true
    });
    let conf = doctor_line(&d);
    println!("doctor: {conf}");
    assert_eq!(conf["verdict"], "PASS", "{conf:#}");
    assert!(
        conf["detail"]
            .as_str()
            .unwrap()
            .contains("/tls: answered OPTIONS"),
        "{conf:#}"
    );
    let mcu = mcu_registered_with(&kam);
    println!(
        "baresip dial: {}",
        mcu.command("dial", "sip:room1@mcu.example")
    );
    wait_for(&d, "answered over TLS", Duration::from_secs(15), |s| {
        s["phase"] == "live" && s["call"]["state"] == "connected"
    });
    wait_for(&d, "audio from the MCU", Duration::from_secs(10), |s| {
        s["call"]["media"]["audio_packets_received"].as_u64() > Some(50)
    });
    assert!(d.cli(&["stop"]).status.success());

    // Another authority: refused, said plainly, and the daemon goes on.
    let other = tempfile::tempdir().unwrap();
    common::mqtt::make_certs(other.path(), "room1");
    let bad = Daemon::start(&test_config(&tls(&other.path().join("ca.crt"))));
    let s = wait_for(&bad, "TLS refused", Duration::from_secs(10), |s| {
        !s["call"]["last_error"].is_null()
    });
    let e = s["call"]["last_error"].as_str().unwrap();
    println!("untrusted server: {e}");
    assert!(e.contains("not trusted") && e.contains("[sip] ca"), "{e}");
    assert_eq!(s["call"]["registered"], false);
    let conf = doctor_line(&bad);
    println!("doctor: {conf}");
    assert_eq!(conf["verdict"], "FAIL", "{conf:#}");
    assert!(
        conf["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{conf:#}"
    );
    assert!(
        conf["hint"].as_str().unwrap().contains("[sip] ca"),
        "{conf:#}"
    );
}

/// An MCU adapting to its link re-INVITEs with a new `b=AS`: answered at
/// once (SIPp gives it 5 s; the stack alone would send 501 after 32 s), the
/// encoder's ceiling follows, and the call's media run on without a rebuild.
#[test]
fn a_reinvite_with_a_new_bandwidth_moves_the_encoders_ceiling_mid_call() {
    let d = Daemon::start(&test_config(&sip_section("allow = [\"127.0.0.1\"]\n")));
    let local_port = sip_port(&d);
    let mut mcu = mcu_calls("uac_reinvite.xml", &local_port, 4000);
    // b=AS:256 first: nine tenths of it for the encoder.
    let s = wait_for(&d, "answered", Duration::from_secs(10), |s| {
        s["call"]["state"] == "connected" && s["call"]["media"]["video_cap_kbps"] == 230
    });
    assert_eq!(s["phase"], "live", "{s:#}");
    let before = s["call"]["media"]["video_packets_sent"]
        .as_u64()
        .unwrap_or(0);
    // Then b=AS:500 in the re-INVITE: 450, the same call.
    let s = wait_for(&d, "the new ceiling", Duration::from_secs(10), |s| {
        s["call"]["media"]["video_cap_kbps"] == 450
    });
    assert_eq!(s["call"]["state"], "connected", "{s:#}");
    assert_eq!(s["call"]["calls"], 1, "{s:#}");
    // The pipeline was not rebuilt: its counters ran on from before.
    assert!(
        s["call"]["media"]["video_packets_sent"]
            .as_u64()
            .unwrap_or(0)
            >= before,
        "{s:#}"
    );
    assert_eq!(
        mcu.wait(Duration::from_secs(20)),
        Some(0),
        "the re-INVITE was not answered in time:\n{}",
        mcu.trace()
    );
}

/// A far end's TMMBR (RFC 5104) moves the encoder's ceiling while the call
/// lasts, never below the configured floor; a later, higher one lets it
/// back up to what `b=AS` allows.
///
/// No peer here sends TMMBR when asked: baresip never does, and linphone
/// only from its congestion control over RTP/AVPF, which the box's RTP/AVP
/// offer does not turn on ("avpf-tmmbr is not activated in this stream").
/// So the requests are built here, byte for byte as RFC 5104 §4.2.1 lays
/// them out, and sent to the box's video RTCP port during a real call with
/// baresip: an in-process stand-in for the MCU's RTCP.
#[test]
fn a_tmmbr_from_the_far_end_moves_the_encoders_ceiling() {
    let far = Baresip::start(
        "<sip:8001@127.0.0.1;transport=udp>;regint=0;answermode=auto;audio_codecs=G722/16000/1",
    );
    let rtp = free_rtp_base();
    let d = Daemon::start(&test_config(&format!(
        "\n[sip]\nmode = \"sip\"\nlocal_port = {}\nrtp_port = {rtp}\nredial_max_s = 2\n\
         conference = \"sip:8001@127.0.0.1:{}\"\n",
        free_sip_port(),
        far.port
    )));
    d.start_session();
    let s = wait_for(&d, "call with video", Duration::from_secs(15), |s| {
        s["call"]["state"] == "connected"
            && s["call"]["media"]["video_packets_sent"].as_u64() > Some(10)
    });
    let before = s["call"]["media"]["video_cap_kbps"].clone();
    println!("ceiling before any TMMBR: {before}");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tmmbr = |bps: u64| {
        sock.send_to(&tmmbr_packet(bps), ("127.0.0.1", rtp + 3))
            .unwrap();
    };
    // 400 kbit/s: nine tenths for the encoder.
    tmmbr(400_000);
    wait_for(&d, "the TMMBR's ceiling", Duration::from_secs(10), |s| {
        s["call"]["media"]["video_cap_kbps"] == 360
    });
    // 100 kbit/s: held at the configured floor (min_bitrate_kbps = 300).
    tmmbr(100_000);
    wait_for(&d, "the floor", Duration::from_secs(10), |s| {
        s["call"]["media"]["video_cap_kbps"] == 300
    });
    // Far more than the room sends: back to where b=AS put it.
    tmmbr(50_000_000);
    let s = wait_for(&d, "the ceiling back", Duration::from_secs(10), |s| {
        s["call"]["media"]["video_cap_kbps"] == before
    });
    assert_eq!(s["call"]["calls"], 1, "the same call throughout: {s:#}");
    assert!(d.cli(&["stop"]).status.success());
}

/// The box answers a TMMBR with a TMMBN (RFC 5104 §4.2.2) in its next
/// RTCP compounds: the request it honours, echoed as the MCU wrote it, from
/// the SSRC of the room's video. SIPp holds the call as the MCU; the test
/// owns the port SIPp's SDP gives for video RTCP, so it reads what the box
/// sends there and sends its request from it, as an MCU's RTCP would (SIPp
/// itself has no RTCP).
#[test]
fn a_tmmbr_is_answered_with_a_tmmbn() {
    let rtp = free_rtp_base();
    let d = Daemon::start(&test_config(&format!(
        "\n[sip]\nmode = \"sip\"\nlocal_port = {}\nrtp_port = {rtp}\nredial_max_s = 2\n\
         allow = [\"127.0.0.1\"]\n",
        free_sip_port()
    )));
    let local_port = sip_port(&d);
    let mp = free_rtp_base();
    let mcu_rtcp = std::net::UdpSocket::bind(("127.0.0.1", mp + 3)).unwrap();
    mcu_rtcp
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut mcu = mcu_calls_from("uac_bye_midcall.xml", &local_port, 20_000, mp);
    wait_for(&d, "call with video", Duration::from_secs(15), |s| {
        s["call"]["state"] == "connected"
            && s["call"]["media"]["video_packets_sent"].as_u64() > Some(10)
    });
    let (t0, mut asked, mut compounds) = (Instant::now(), None::<Instant>, 0);
    let mut buf = [0u8; 1500];
    let tmmbn = 'found: loop {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no TMMBN in {compounds} RTCP compounds from the box"
        );
        // Asked again every 2 s, as an MCU does until it hears back.
        if asked.is_none_or(|a| a.elapsed() > Duration::from_secs(2)) {
            mcu_rtcp
                .send_to(&tmmbr_packet(150_000), ("127.0.0.1", rtp + 3))
                .unwrap();
            asked = Some(Instant::now());
        }
        let Ok(n) = mcu_rtcp.recv(&mut buf) else {
            continue;
        };
        compounds += 1;
        // The compound's packets, one after another: FMT and PT, then the
        // length in 32-bit words minus one.
        let mut at = 0;
        while at + 4 <= n {
            let len = (usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]])) + 1) * 4;
            if buf[at + 1] == 205 && buf[at] & 0x1f == 4 {
                break 'found (buf[4..8].to_vec(), buf[at..(at + len).min(n)].to_vec());
            }
            at += len;
        }
    };
    let (compound_ssrc, p) = tmmbn;
    println!("TMMBN after {compounds} RTCP compounds: {p:02x?}");
    // From the SSRC that sends the compound's report (the room's video),
    // about media source 0, with one entry: the MCU's, as it asked.
    assert_eq!(&p[..4], &[0x84, 205, 0, 4], "{p:02x?}");
    assert_eq!(p[4..8], compound_ssrc[..], "{p:02x?}");
    assert_eq!(&p[8..12], &[0, 0, 0, 0]);
    assert_eq!(&p[12..16], &0x5eed_0001u32.to_be_bytes());
    assert_eq!(&p[16..20], &tmmbr_packet(150_000)[16..20]);
    assert_eq!(
        mcu.wait(Duration::from_secs(30)),
        Some(0),
        "{}",
        mcu.trace()
    );
}

/// The box behind a real NAT (slirp, as in the virtual bridge room) dials
/// a far end that sends where the SDP says and does not follow where media
/// come from (baresip). With `[sip] stun` the box advertises the NAT's
/// mapping of its media ports, and the far end's sound gets in.
#[test]
fn behind_a_nat_stun_lets_the_far_ends_media_in() {
    if !common::nat::available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "slirp4netns, coturn and nsenter are installed by .ci/run"
        );
        eprintln!("SKIP: slirp4netns or coturn missing (tests/quickstart.sh installs them)");
        return;
    }
    use common::nat::{SlirpNat, BOX_IP, FAR_IP};
    println!(
        "not exercised here: a carrier's address-and-port-dependent NAT (slirp maps \
         independently of the destination, like QEMU's in the virtual room)"
    );
    let mut nat = SlirpNat::new();
    nat.start_stun();
    let far_ns = nat.far_ns();
    let far = common::sip::Baresip::start_at(
        "<sip:8001@10.0.3.5;transport=udp>;regint=0;answermode=auto;audio_codecs=G722/16000/1",
        FAR_IP,
        Some(&far_ns),
    );
    let rtp = free_rtp_base();
    let cfg = test_config(&format!(
        "\n[sip]\nmode = \"sip\"\nlocal_port = {}\nrtp_port = {rtp}\nredial_max_s = 2\n\
         conference = \"sip:8001@{FAR_IP}:{}\"\nstun = \"{FAR_IP}:3478\"\n",
        free_sip_port(),
        far.port
    ));
    let d = Daemon::start_in(&cfg, Some(nat.box_ns()));
    d.start_session();
    let s = wait_for(&d, "call connected", Duration::from_secs(15), |s| {
        s["call"]["state"] == "connected"
    });
    // The SDP carries the NAT's mapping, not the box's 10.0.2.100:rtp_port.
    let advertised = s["call"]["media_address"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("box {BOX_IP}:{rtp} advertised as {advertised}");
    assert!(advertised.starts_with(&format!("{FAR_IP}:")), "{s:#}");
    assert!(
        !advertised.contains(&format!(":{rtp} ")),
        "slirp keeps no port: {s:#}"
    );
    // The far end's sound comes in through the NAT, and the room's goes out.
    let s = wait_for(&d, "media both ways", Duration::from_secs(15), |s| {
        s["call"]["media"]["audio_packets_received"].as_u64() > Some(100)
            && s["call"]["media"]["audio_packets_sent"].as_u64() > Some(100)
    });
    println!("through the NAT: {:#}", s["call"]["media"]);
    std::thread::sleep(Duration::from_secs(3));
    let (samples, rate) = far.received_audio();
    // Quarter seconds of what baresip heard: the room's tone must come
    // through clearly (slirp's user-space relay adds jitter that baresip's
    // buffer shows as a click now and then, so not every quarter is clean).
    let quarters: Vec<f64> = samples
        .chunks(rate.max(4) as usize / 4)
        .map(|c| tone_share(c, rate, 440.0))
        .collect();
    let clean = quarters.iter().filter(|q| **q > 0.8).count();
    println!(
        "the far end hears the room's 440 Hz: {clean} of {} quarter seconds clean",
        quarters.len()
    );
    assert!(
        clean >= 4,
        "baresip's recording, 440 Hz share per quarter second: {quarters:.2?}\n{}",
        far.log()
    );
    // The technician's view: doctor asks the STUN server too.
    let line = doctor_line(&d);
    println!("doctor: {line}");
    assert!(
        line["detail"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("seen from outside as {FAR_IP}:"))),
        "{line}"
    );
    assert!(d.cli(&["stop"]).status.success());
}

/// A second far end with its own SIP stack and media engine: linphone
/// (belle-sip, mediastreamer2, openh264) takes the room's call by itself;
/// sound and pictures flow both ways and each side names the same codecs.
#[test]
fn linphone_takes_the_rooms_call_with_sound_and_pictures_both_ways() {
    let lp = common::sip::Linphone::start();
    let d = Daemon::start(&test_config(&sip_section(&format!(
        "conference = \"sip:lp@127.0.0.1:{}\"\n",
        lp.port
    ))));
    d.start_session();
    let s = wait_for(&d, "linphone answers", Duration::from_secs(20), |s| {
        s["call"]["state"] == "connected"
    });
    println!("codecs with linphone: {}", s["call"]["codecs"]);
    // With no sound card and no camera, linphone sends what its in-call
    // player plays: a test clip, H.264 and Opus.
    lp.play_clip();
    let t0 = Instant::now();
    let s = loop {
        let s = d.status();
        let m = &s["call"]["media"];
        if m["audio_packets_received"].as_u64() > Some(100)
            && m["audio_packets_sent"].as_u64() > Some(100)
            && m["video_packets_sent"].as_u64() > Some(50)
            && m["video_packets_received"].as_u64() > Some(10)
        {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no media both ways with linphone: {m:#}\nlinphone:\n{}",
            lp.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    println!("call media with linphone: {:#}", s["call"]["media"]);
    // On loopback nothing is lost. (linphone restarts its sequence numbers
    // when its player takes over; counted as a lost cycle, this read 96-99%.)
    let loss = s["call"]["media"]["loss_percent"].as_f64().unwrap_or(100.0);
    assert!(
        loss < 20.0,
        "loss {loss}% on loopback: {:#}",
        s["call"]["media"]
    );
    // linphone's view: the same codecs, and the room's stream decoded.
    let stats = lp.command("call-stats");
    println!("linphone's call-stats:\n{stats}");
    assert!(
        stats.contains("Mime: opus") && stats.contains("Mime: H264"),
        "{stats}\n{}",
        lp.log()
    );
    // Its decoder reports its rate every few seconds.
    let t0 = Instant::now();
    while !lp.logged("OpenH264 decoder: FPS=") {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "linphone decodes no picture from the room:\n{}",
            lp.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(d.cli(&["stop"]).status.success());
}

#[test]
fn a_sip_port_in_use_is_reported_and_taken_once_free() {
    // Something else holds the box's SIP port when the daemon starts.
    let port = free_sip_port();
    let blocker = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let d = Daemon::start(&test_config(&format!(
        "\n[sip]\nmode = \"sip\"\nlocal_port = {port}\nrtp_port = {}\nallow = [\"127.0.0.1\"]\n",
        free_rtp_base()
    )));
    let s = wait_for(&d, "the port problem shown", Duration::from_secs(10), |s| {
        s["call"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("port {port}")))
    });
    println!("while the port is taken: {}", s["call"]["last_error"]);
    assert_eq!(s["phase"], "idle", "the daemon runs on: {s:#}");
    // Freed: the endpoint comes up by itself, with no restart.
    drop(blocker);
    wait_for(&d, "SIP up", Duration::from_secs(45), |s| {
        s["call"]["last_error"].is_null()
    });
}
