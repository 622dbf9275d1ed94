//! The recording is a legal record: these tests kill the daemon, damage the
//! store and fill the disk, and check that nothing recorded is lost or
//! silently changed.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{probe, test_config, Daemon};
use serde_json::Value;

fn recordings(d: &Daemon) -> Vec<Value> {
    let out = d.cli(&["recordings", "ls", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn verify(d: &Daemon, id: &str) -> Value {
    let out = d.cli(&["recordings", "verify", id, "--json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("verify {id}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn export(d: &Daemon, id: &str, to: &Path) {
    export_with(d, id, to, None)
}

fn export_with(d: &Daemon, id: &str, to: &Path, identity: Option<&Path>) {
    let mut args = vec!["recordings", "export", id, "--out", to.to_str().unwrap()];
    if let Some(i) = identity {
        args.extend(["--identity", i.to_str().unwrap()]);
    }
    let out = d.cli(&args);
    assert!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigkill_twenty_times_loses_at_most_a_second_each() {
    kill_again_and_again(&test_config(""), 20, None);
}

/// The same with encryption at rest: each kill leaves a torn tail of
/// sealed frames, and the recording still opens (with the province's
/// identity, made by `age-keygen`) to all but at most the last second.
#[test]
fn sigkill_a_sealed_recording_six_times_loses_at_most_a_second_each() {
    if !common::have("age-keygen") {
        assert!(
            std::env::var_os("CI").is_none(),
            "age-keygen is not installed (.ci/run installs age)"
        );
        eprintln!("SKIP: age-keygen is not installed");
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (identity, recipient) = common::age_key(keys.path(), "province");
    let config = test_config(&format!(
        "\n[recording]\nrecipients = [\"{}\"]\n",
        recipient.trim()
    ));
    kill_again_and_again(&config, 6, Some(&identity));
}

fn kill_again_and_again(config: &str, times: usize, identity: Option<&Path>) {
    let mut d = Daemon::start(config);
    let dir = tempfile::tempdir().unwrap();
    // A fixed sequence of "random" moments (ms into the live session), so a
    // failure can be replayed: spread over 1.2 s to 3.6 s.
    let mut seed = 0x9e37_79b9_u32;
    let mut kills = Vec::new();
    for i in 0..times {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let wait = Duration::from_millis(1200 + u64::from(seed % 2400));
        let st = d.start_session();
        let id = st["session"]["id"].as_str().unwrap().to_owned();
        let live_at = Instant::now();
        std::thread::sleep(wait);
        let lived = live_at.elapsed().as_secs_f64();
        d.kill9();
        kills.push((id, lived));
        d.spawn();
        // After each restart: the store opens, the killed session is
        // interrupted, and everything recorded so far verifies.
        let st = d.status();
        assert_eq!(
            st["last_session"]["outcome"]["kind"], "interrupted",
            "kill {i}: {st}"
        );
    }
    let list = recordings(&d);
    assert_eq!(list.len(), times);
    let mut worst = 0.0f64;
    for (id, lived) in &kills {
        let r = list
            .iter()
            .find(|r| r["id"] == id.as_str())
            .expect("every killed session has a recording");
        assert_eq!(r["outcome"], "interrupted", "{r}");
        assert_eq!(r["closed"], true);
        let v = verify(&d, id);
        assert_eq!(v["ok"], true, "{id}: {v}");
        assert_eq!(r["sealed"].is_object(), identity.is_some(), "{r}");
        let file = dir.path().join(format!("{id}.ts"));
        export_with(&d, id, &file, identity);
        let (codecs, duration) = probe(&file);
        assert!(codecs.iter().any(|c| c == "h264"), "{codecs:?}");
        let lost = lived - duration;
        worst = worst.max(lost);
        eprintln!("{id}: live {lived:.2} s, recorded {duration:.2} s, lost {lost:.2} s");
        assert!(lost <= 1.0, "{id}: lost {lost:.2} s of {lived:.2} s");
    }
    eprintln!(
        "worst loss over {times} kills{}: {worst:.2} s",
        if identity.is_some() { ", sealed" } else { "" }
    );
}

#[test]
fn store_sled_cannot_reopen_is_set_aside_and_recordings_come_back_from_the_journal() {
    let mut d = Daemon::start(&test_config(""));
    // One recording finished, one live when the box dies.
    let done = d.start_session()["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_secs(4));
    assert!(d.cli(&["stop"]).status.success());
    let live = d.start_session()["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let live_at = Instant::now();
    std::thread::sleep(Duration::from_millis(3500));
    let lived = live_at.elapsed().as_secs_f64();
    d.kill9();
    let config = d.config.clone();
    let show = |id: &str| -> Value {
        let out = std::process::Command::new(common::BIN)
            .args(["recordings", "show", id, "--json", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("show {id}: {}", String::from_utf8_lossy(&out.stderr)))
    };
    let hashes = |v: &Value| -> Vec<Value> {
        v["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sha256"].clone())
            .collect()
    };
    let done_before = hashes(&show(&done));
    assert!(done_before.len() >= 2, "{done_before:?}");

    // sled 0.34 sometimes panics reopening its files after a power cut (its
    // issue #1387, seen in the virtual bridge room); that cannot be made to
    // happen on demand. A config file sled cannot parse makes it refuse
    // with Corruption instead, which takes the box down the same path.
    let state = d.dir.path().join("state");
    std::fs::write(state.join("db/conf"), b"not a sled config\n\0\0\0\0").unwrap();
    d.spawn();

    // The box is up, knows the live session was interrupted, and kept the
    // damaged files.
    let st = d.status();
    assert_eq!(st["last_session"]["id"], live.as_str(), "{st}");
    assert_eq!(st["last_session"]["outcome"]["kind"], "interrupted", "{st}");
    let aside: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("db.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged store is kept, once");
    assert!(aside[0].path().join("conf").exists());

    // Both recordings are back, whole: the finished one identical, the live
    // one closed as interrupted with at most the last second missing.
    let list = recordings(&d);
    let find = |id: &str| list.iter().find(|r| r["id"] == id).cloned();
    let r_done = find(&done).unwrap_or_else(|| panic!("{done} not brought back: {list:?}"));
    assert_eq!(r_done["outcome"], "ended", "{r_done}");
    let r_live = find(&live).unwrap_or_else(|| panic!("{live} not brought back: {list:?}"));
    assert_eq!(r_live["outcome"], "interrupted", "{r_live}");
    assert_eq!(
        hashes(&show(&done)),
        done_before,
        "the finished recording is unchanged"
    );
    let dir = tempfile::tempdir().unwrap();
    for id in [&done, &live] {
        let v = verify(&d, id);
        assert_eq!(v["ok"], true, "{id}: {v}");
    }
    let file = dir.path().join("live.ts");
    export(&d, &live, &file);
    let (codecs, duration) = probe(&file);
    assert!(codecs.iter().any(|c| c == "h264"), "{codecs:?}");
    let lost = lived - duration;
    eprintln!("salvaged after the set-aside: live {lived:.2} s, recorded {duration:.2} s, lost {lost:.2} s");
    assert!(lost <= 1.0, "lost {lost:.2} s of {lived:.2} s");
    assert!(d
        .log_text()
        .contains("recording brought back from its journal"));
    // The session history came back from its snapshot: the finished
    // session as it ended, the live one as interrupted.
    let h = d
        .request(r#"{"cmd":"session.history"}"#)
        .expect("history answers");
    let sessions = h["result"]["sessions"].as_array().unwrap().clone();
    let outcome = |id: &str| {
        sessions
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["outcome"]["kind"].clone())
            .unwrap_or_else(|| panic!("{id} not in the history: {h}"))
    };
    assert_eq!(outcome(&done), "ended");
    assert_eq!(outcome(&live), "interrupted");

    // The NOC hears of both, with sequence numbers above the old store's.
    d.terminate();
    let db = sled::open(state.join("db")).unwrap();
    let outbox = diemcau::events::Outbox::open(&db, "test-xa-01").unwrap();
    let pending = outbox.pending(1000).unwrap();
    assert!(
        pending.iter().any(|e| matches!(
            &e.kind,
            diemcau::core::events::EventKind::StoreSetAside { .. }
        )),
        "{pending:?}"
    );
    for id in [&done, &live] {
        assert!(
            pending.iter().any(|e| matches!(
                &e.kind,
                diemcau::core::events::EventKind::RecordingSalvaged { session, .. } if session == id
            )),
            "{id}: {pending:?}"
        );
    }
    // What happened before the cut and the NOC never acknowledged (there
    // is no broker here) comes back from the outbox's mirror under its old
    // ids, in front of what the fresh store raised.
    let old_stop = pending
        .iter()
        .position(|e| {
            matches!(
                &e.kind,
                diemcau::core::events::EventKind::SessionStopped { session, .. } if session == &done
            )
        })
        .unwrap_or_else(|| panic!("the finished session's stop event was lost: {pending:?}"));
    assert!(pending[old_stop].seq < 1_000_000_000, "{pending:?}");
    let first_new = pending.iter().position(|e| e.seq > 1_000_000_000).unwrap();
    assert!(old_stop < first_new);
    assert!(pending[first_new..].iter().all(|e| e.seq > 1_000_000_000));
}

#[test]
fn damaged_segment_is_quarantined_and_the_rest_verifies() {
    let mut d = Daemon::start(&test_config("\n[recording]\nsegment_s = 1.0\n"));
    let id = d.start_session()["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_secs(5));
    assert!(d.cli(&["stop"]).status.success());
    let (st, _) = d.terminate();
    assert!(st.success());
    let before = {
        let out = std::process::Command::new(common::BIN)
            .args(["recordings", "show", &id, "--json", "--config"])
            .arg(&d.config)
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let segments = before["segments"].as_array().unwrap().len();
    assert!(segments >= 3, "{before}");

    // Bit rot in segment 1, below sled's own checks: the bytes change, the
    // recorded hash does not.
    {
        let db = sled::open(d.dir.path().join("state/db")).unwrap();
        let rs =
            diemcau::recorder::store::RecStore::open(&db, &d.dir.path().join("state")).unwrap();
        assert!(rs.damage_chunk(&id, 1).unwrap());
    }
    d.spawn();
    // The check runs once the daemon is up, in the background.
    let t0 = std::time::Instant::now();
    let show = loop {
        let show: Value =
            serde_json::from_slice(&d.cli(&["recordings", "show", &id, "--json"]).stdout).unwrap();
        if show["segments"][1]["quarantined"].is_string() || t0.elapsed() > Duration::from_secs(20)
        {
            break show;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let segs = show["segments"].as_array().unwrap();
    assert_eq!(segs.len(), segments, "nothing was dropped");
    assert!(segs[1]["quarantined"].is_string(), "{}", segs[1]);
    assert!(segs
        .iter()
        .enumerate()
        .all(|(i, s)| i == 1 || s["quarantined"].is_null()));
    assert!(d.log_text().contains("damaged segment quarantined"));
    // The rest verifies, and the report says what was set aside.
    let v = verify(&d, &id);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["notes"].to_string().contains("quarantined"), "{v}");
    // The export (what the archive gets) leaves the damaged segment out and still plays.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.ts");
    export(&d, &id, &file);
    let (codecs, _) = probe(&file);
    assert!(codecs.iter().any(|c| c == "h264"));
    // The quarantine is an event for the NOC, kept in the outbox.
    d.terminate();
    let db = sled::open(d.dir.path().join("state/db")).unwrap();
    let outbox = diemcau::events::Outbox::open(&db, "test-xa-01").unwrap();
    let pending = outbox.pending(1000).unwrap();
    assert!(
        pending.iter().any(|e| matches!(
            &e.kind,
            diemcau::core::events::EventKind::SegmentQuarantined { segment: 1, .. }
        )),
        "{pending:?}"
    );
}

#[test]
fn full_quota_raises_alarms_in_order_and_deletes_nothing() {
    // 1 MiB of quota at ~1 Mbit/s fills in about 8 s.
    let cfg =
        test_config("\n[recording]\nsegment_s = 1.0\nquota_bytes = 1048576\nquota_percent = 0\n")
            .replace("bitrate_kbps = 600", "bitrate_kbps = 1000")
            .replace("max_bitrate_kbps = 1000", "max_bitrate_kbps = 1500");
    let mut d = Daemon::start(&cfg);
    let id = d.start_session()["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t0 = Instant::now();
    let mut halted_at_segments = None;
    while t0.elapsed() < Duration::from_secs(40) {
        let st = d.status();
        assert_eq!(st["phase"], "live", "the session keeps going: {st}");
        if st["media"]["recording"]["halted"] == true {
            assert!(
                st["degraded"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v == "recording_halted"),
                "{st}"
            );
            halted_at_segments = Some(recordings(&d)[0]["segments"].as_u64().unwrap());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let halted_at = halted_at_segments.expect("the recording never halted at the quota");
    // Still streaming: the encoder runs on.
    let bytes1 = d.status()["media"]["ts_bytes_out"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let st = d.status();
    assert_eq!(st["phase"], "live");
    assert!(st["media"]["ts_bytes_out"].as_u64().unwrap() > bytes1);
    // Nothing unconfirmed was deleted: every segment is still there and intact.
    let show: Value =
        serde_json::from_slice(&d.cli(&["recordings", "show", &id, "--json"]).stdout).unwrap();
    let segs = show["segments"].as_array().unwrap();
    assert!(segs.len() as u64 >= halted_at);
    assert!(segs.iter().all(|s| s["pruned"] == false));
    assert_eq!(verify(&d, &id)["ok"], true);
    assert!(d.cli(&["stop"]).status.success());
    d.terminate();
    // The alarms, in order, as the NOC will get them.
    let db = sled::open(d.dir.path().join("state/db")).unwrap();
    let outbox = diemcau::events::Outbox::open(&db, "test-xa-01").unwrap();
    let levels: Vec<String> = outbox
        .pending(10_000)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            diemcau::core::events::EventKind::DiskAlarm { level, .. } => Some(level),
            _ => None,
        })
        .collect();
    assert_eq!(levels, vec!["warning", "high", "critical"], "{levels:?}");
}

/// A court bundle (`recordings export --bundle`): a folder that checks
/// itself with what it carries: the segments and signed manifest as the
/// archive lays them out, the reference verifier, the format and a page in
/// Vietnamese naming the box's key. A byte changed in it is caught by the
/// verifier it carries.
#[test]
fn a_court_bundle_checks_itself_with_what_it_carries() {
    let d = Daemon::start(&test_config(""));
    let id = d.start_session()["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_secs(5));
    assert!(d.cli(&["stop"]).status.success());
    let dir = d.dir.path().join("toa-an");
    let out = d.cli(&[
        "recordings",
        "export",
        &id,
        "--bundle",
        dir.to_str().unwrap(),
        "--operator",
        "Lê Văn Cường",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = verify(&d, &id);
    let key = v["public_key"].as_str().unwrap().to_owned();
    let page = std::fs::read_to_string(dir.join("DOC-TOI.txt")).unwrap();
    assert!(
        page.contains(&key) && page.contains("Lê Văn Cường"),
        "{page}"
    );
    assert!(dir.join("RECORDING-FORMAT.md").exists());
    let segments = std::fs::read_dir(dir.join("ban-ghi"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "ts")
        })
        .count();
    assert_eq!(segments as u64, v["segments"].as_u64().unwrap());
    let check = || {
        std::process::Command::new("python3")
            .arg(dir.join("verify-recording.py"))
            .arg(dir.join("ban-ghi"))
            .args(["--key", &key])
            .output()
            .expect("python3 runs (.ci/run installs it)")
    };
    let out = check();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let first = dir.join("ban-ghi/000000.ts");
    let mut b = std::fs::read(&first).unwrap();
    b[500] ^= 0x40;
    std::fs::write(&first, b).unwrap();
    assert_eq!(check().status.code(), Some(3));
    // The export is in the audit trail, with who made it.
    let audit: Value = serde_json::from_slice(&d.cli(&["audit", "--json"]).stdout).unwrap();
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "recording.export" && r["who"]["name"] == "Lê Văn Cường"),
        "{audit:#}"
    );
}
