//! The daemon's lifecycle, config checking and local API, through the real
//! binary and its socket.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{test_config, Daemon, BIN};

fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("config.toml");
    std::fs::write(&f, text).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["config", "check"])
        .arg(&f)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn config_check_accepts_example_and_locates_mistakes() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"))
            .unwrap();
    let (code, out) = check(&example);
    assert_eq!(code, 0, "{out}");

    // The same file with one mistake each: the line and key are named.
    let lines: Vec<&str> = example.lines().collect();
    let line_of = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix)).unwrap() + 1;
    let cases = [
        (
            "bitrate_kbps = 2500",
            "bitrat = 2500",
            "unknown key 'bitrat' in [video]; did you mean 'bitrate_kbps'?",
        ),
        (
            "framerate = 30",
            "framerate = \"thirty\"",
            "'framerate' in [video]",
        ),
        (
            "latency_ms = 200",
            "latency_ms = 99999",
            "invalid value for 'latency_ms' in [uplink]",
        ),
    ];
    for (from, to, want) in cases {
        let line = line_of(from);
        let text = example.replacen(from, to, 1);
        let (code, out) = check(&text);
        assert_ne!(code, 0, "{to}: {out}");
        assert!(
            out.contains(&format!("config.toml:{line}:")),
            "{to}: want line {line}: {out}"
        );
        assert!(out.contains(want), "{to}: want {want:?}: {out}");
    }
}

#[test]
fn a_bad_config_never_starts_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("config.toml");
    std::fs::write(&f, test_config("").replace("width = 320", "widht = 320")).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown key 'widht' in [video]; did you mean 'width'?"),
        "{err}"
    );
}

#[test]
fn lifecycle_start_status_sigterm() {
    let mut d = Daemon::start(&test_config(""));
    // Ready within a second of the process starting.
    let mut d2 = Daemon::start(&test_config(""));
    d2.kill9();
    d2.child = None;
    let t0 = std::time::Instant::now();
    d2.spawn();
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "status answered after {:?}",
        t0.elapsed()
    );

    assert_eq!(d.phase(), "idle");
    let st = d.start_session();
    assert_eq!(st["phase"], "live", "{st}");
    assert_eq!(st["session"]["metadata"]["case"], "TEST-1");
    let id = st["session"]["id"].as_str().unwrap().to_owned();

    // A second start is refused and changes nothing.
    let out = d.cli(&["start"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already live"));
    assert_eq!(d.status()["session"]["id"], id.as_str());

    std::thread::sleep(Duration::from_millis(500));
    let (st, took) = d.terminate();
    assert_eq!(st.code(), Some(0), "{}", d.log_text());
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");

    // The session was closed cleanly, and the restart does not call it interrupted.
    d.spawn();
    let s = d.status();
    assert_eq!(s["phase"], "idle");
    assert_eq!(s["last_session"]["id"], id.as_str());
    assert_eq!(s["last_session"]["outcome"]["kind"], "ended", "{s}");
    assert_eq!(s["last_session"]["stopped_by"]["kind"], "daemon");
}

#[test]
fn kill9_leaves_an_interrupted_session() {
    let mut d = Daemon::start(&test_config(""));
    let id = d.start_session()["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    d.kill9();
    d.spawn();
    let s = d.status();
    assert_eq!(s["phase"], "idle", "on_interrupted defaults to idle");
    assert_eq!(s["last_session"]["id"], id.as_str());
    assert_eq!(s["last_session"]["outcome"]["kind"], "interrupted", "{s}");
    // Human output says so too.
    let out = d.cli(&["status", "--lang", "vi"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bị gián đoạn"), "{text}");
}

#[test]
fn resume_after_interruption_when_configured() {
    let cfg = test_config("").replace("[daemon]\n", "[daemon]\non_interrupted = \"resume\"\n");
    let mut d = Daemon::start(&cfg);
    let id = d.start_session()["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    d.kill9();
    d.spawn();
    let t0 = std::time::Instant::now();
    while d.phase() != "live" {
        assert!(t0.elapsed() < Duration::from_secs(10), "did not resume");
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = d.status();
    assert_eq!(s["session"]["metadata"]["resumes"], id.as_str());
    assert_eq!(s["last_session"]["outcome"]["kind"], "interrupted");
}

#[test]
fn stop_when_idle_is_refused() {
    let d = Daemon::start(&test_config(""));
    let out = d.cli(&["stop"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no session is running"));
    assert_eq!(d.phase(), "idle");
}

#[test]
fn garbage_requests_get_errors_and_change_nothing() {
    let d = Daemon::start(&test_config(""));
    for bad in [
        "not json",
        "{\"cmd\":\"reboot\"}",
        "{\"cmd\":\"stop\",\"force\":true}",
        "{\"cmd\":\"start\",\"metadata\":\"x\"}",
        "[1,2,3]",
    ] {
        let r = d.request(bad).expect("a reply");
        assert_eq!(r["ok"], false, "{bad}: {r}");
        assert_eq!(r["error"]["code"], "bad_request", "{bad}: {r}");
        assert!(!r["error"]["message"].as_str().unwrap().is_empty());
    }
    // Binary garbage and an oversized line.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(&[0xff, 0x00, 0xfe, b'\n']).unwrap();
    let big = vec![b'x'; 200_000];
    let _ = s.write_all(&big);
    let _ = s.write_all(b"\n");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    let lines: Vec<&str> = reply.lines().collect();
    assert!(lines.len() >= 2, "{reply}");
    assert!(lines[0].contains("not UTF-8"), "{reply}");
    assert!(lines[1].contains("too large"), "{reply}");
    // A client that connects and says nothing does not block others.
    let _idle = UnixStream::connect(&d.socket).unwrap();
    assert_eq!(d.phase(), "idle");
}

#[test]
fn display_and_speaker_tests_are_for_an_idle_box_and_check_their_seconds() {
    let d = Daemon::start(&test_config(""));
    for (cmd, max) in [("display_test", 30), ("speaker_test", 10)] {
        let r = d
            .request(&format!(r#"{{"cmd":"{cmd}","seconds":3}}"#))
            .unwrap();
        assert_eq!(r["ok"], true, "{cmd}: {r}");
        assert_eq!(r["result"]["seconds"], 3);
        for bad in [0, max + 1] {
            let r = d
                .request(&format!(r#"{{"cmd":"{cmd}","seconds":{bad}}}"#))
                .unwrap();
            assert_eq!(r["error"]["code"], "bad_request", "{cmd} {bad}: {r}");
        }
    }
    // The test pipelines ran (the fake sinks take what they make).
    std::thread::sleep(Duration::from_millis(800));
    let log = d.log_text();
    assert!(log.contains("test pattern running"), "{log}");
    assert!(log.contains("test tone running"), "{log}");
    // Never over a session.
    d.start_session();
    for cmd in ["display_test", "speaker_test"] {
        let r = d
            .request(&format!(r#"{{"cmd":"{cmd}","seconds":3}}"#))
            .unwrap();
        assert_eq!(r["error"]["code"], "rejected", "{cmd}: {r}");
    }
    assert_eq!(d.phase(), "live");
}

#[test]
fn second_daemon_on_same_socket_refuses() {
    let d = Daemon::start(&test_config(""));
    let out = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&d.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another diemcau"), "{err}");
    assert_eq!(d.phase(), "idle");
}

#[test]
fn status_is_vietnamese_by_default() {
    let cfg = test_config("").replace("language = \"en\"\n", "");
    let d = Daemon::start(&cfg);
    let out = d.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Trạng thái: Sẵn sàng"), "{text}");
    let out = d.cli(&["status", "--lang", "en"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("State: Ready"));
}

#[test]
fn camera_presets_need_a_v4l2_camera_and_say_so() {
    let d = Daemon::start(&test_config(""));
    let out = d.cli(&["camera", "save", "ban-tiep"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a V4L2 device"), "{err}");
    let out = d.cli(&["camera", "presets"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no presets"));
    let r = d
        .request(r#"{"cmd":"camera_preset_recall","name":"bad name"}"#)
        .unwrap();
    assert_eq!(r["ok"], false);
    assert_eq!(d.phase(), "idle");
}

/// The socket speaks the command layer's names with `args`, and still
/// answers the names from before it in their old shapes.
#[test]
fn new_command_names_and_old_aliases_answer_alike() {
    let d = Daemon::start(&test_config(""));
    // New form: the result is wrapped ({"session": ...}).
    let r = d
        .request(r#"{"cmd":"session.start","args":{"metadata":{"case":"HS-9"}}}"#)
        .expect("a reply");
    assert_eq!(r["ok"], true, "{r}");
    let id = r["result"]["session"]["id"]
        .as_str()
        .expect("session id")
        .to_owned();
    assert_eq!(r["result"]["session"]["metadata"]["case"], "HS-9");
    // Old form: the record itself, as before.
    let r = d.request(r#"{"cmd":"stop"}"#).expect("a reply");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["id"], id.as_str(), "{r}");

    let new = d.request(r#"{"cmd":"recording.list"}"#).expect("a reply");
    let old = d.request(r#"{"cmd":"recordings_list"}"#).expect("a reply");
    assert_eq!(new["result"]["recordings"], old["result"], "{new} vs {old}");
    assert!(
        old["result"].as_array().is_some_and(|a| !a.is_empty()),
        "{old}"
    );

    let h = d
        .request(r#"{"cmd":"session.history","args":{"limit":5}}"#)
        .expect("a reply");
    assert_eq!(h["result"]["sessions"][0]["id"], id.as_str(), "{h}");
    let v = d
        .request(&format!(
            r#"{{"cmd":"recording.verify","args":{{"id":"{id}"}}}}"#
        ))
        .expect("a reply");
    assert_eq!(v["ok"], true, "{v}");

    // The table: MQTT-only commands are refused here, and say so.
    for (line, why) in [
        (
            r#"{"cmd":"config.set","args":{"toml":""}}"#,
            "not available",
        ),
        (r#"{"cmd":"reboot"}"#, "not available"),
        (r#"{"cmd":"session.start","metadata":{}}"#, "unknown field"),
        (
            r#"{"cmd":"session.history","args":{"limit":0}}"#,
            "1 to 1000",
        ),
    ] {
        let r = d.request(line).expect("a reply");
        assert_eq!(r["error"]["code"], "bad_request", "{line}: {r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains(why),
            "{line}: {r}"
        );
    }
    // upload.retry without an archive is refused, not ignored.
    let r = d.request(r#"{"cmd":"upload.retry"}"#).expect("a reply");
    assert_eq!(r["error"]["code"], "rejected", "{r}");
    assert_eq!(d.phase(), "idle");
}

/// A state written by a newer version (a box rolled back to an older
/// system) is refused: the daemon says why and what to do, exits, and
/// leaves every file of the state as it was.
#[test]
fn a_state_from_a_newer_version_is_refused_and_left_alone() {
    let mut d = Daemon::start(&test_config(""));
    assert_eq!(d.status()["phase"], "idle");
    d.terminate();
    let state = d.dir.path().join("state");
    assert_eq!(
        std::fs::read_to_string(state.join("state-format")).unwrap(),
        "1\n",
        "a new state directory says its format"
    );
    std::fs::write(state.join("state-format"), "2\n").unwrap();
    let before = files(&state);

    let out = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&d.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("is format 2, written by a newer diemcau")
            && err.contains("changed nothing")
            && err.contains("do not delete the state"),
        "{err}"
    );
    assert_eq!(files(&state), before, "the state is as it was");

    // The CLI's own readers of the state refuse it the same way.
    let out = d.cli(&["recordings", "ls"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("format 2"), "{err}");
    assert_eq!(files(&state), before);

    // doctor names it for the technician, and what not to do.
    let out = d.cli(&["doctor", "--json", "--lang", "vi"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let line = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Định dạng dữ liệu trên hộp")
        .unwrap_or_else(|| panic!("no state format line: {report:#}"))
        .clone();
    assert_eq!(line["verdict"], "FAIL", "{line}");
    assert!(
        line["detail"].as_str().unwrap().contains("định dạng 2"),
        "{line}"
    );
    assert!(
        line["hint"].as_str().unwrap().contains("Không xoá dữ liệu"),
        "{line}"
    );
    assert_eq!(files(&state), before);
}

/// Every file under `dir` with its bytes, sorted.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}
