//! Upload to the central archive against Garage, a real S3-compatible
//! object store started by the test (not a mock).

mod common;

use std::time::{Duration, Instant};

use common::{garage_bin, probe, test_config, Daemon, Garage};
use serde_json::Value;

#[test]
fn recorded_with_archive_down_then_all_arrives_identical_and_verified() {
    if garage_bin().is_none() {
        eprintln!("SKIP: garage is not installed (tests/quickstart.sh installs it from crates.io)");
        return;
    }
    let mut garage = Garage::new();
    let cfg = test_config(&garage.archive_toml());
    let d = Daemon::start(&cfg);

    // 60 s of synthetic audio and video while the archive is unreachable.
    let id = d.start_session()["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_secs(60));
    assert!(d.cli(&["stop"]).status.success());
    // Until the archive has it, the recording has its second copy, the
    // journal (what survives sled failing to reopen after a power cut).
    let journal = d.dir.path().join(format!("state/journal/{id}.wal"));
    assert!(journal.exists(), "{} missing", journal.display());
    std::thread::sleep(Duration::from_secs(3)); // the backlog figures refresh every 2 s
    let st = d.status();
    // 60 s at 2 s segments; under a loaded CI machine the encoder's clock
    // runs a little short (24 seen), so the figure is a floor, not a count:
    // that every segment arrives whole is checked below.
    assert!(
        st["upload"]["backlog_segments"].as_u64().unwrap() >= 20,
        "{st}"
    );
    assert!(
        st["upload"]["last_error"].is_string(),
        "the failure is visible: {st}"
    );

    // The archive comes up: the backlog drains by itself.
    garage.start();
    let t0 = Instant::now();
    loop {
        let list: Vec<Value> =
            serde_json::from_slice(&d.cli(&["recordings", "ls", "--json"]).stdout).unwrap();
        if list[0]["manifest_confirmed_at"].is_string() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "upload did not finish: {}",
            d.status()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let t0 = Instant::now();
    while d.status()["upload"]["backlog_segments"] != 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "backlog figure stuck: {}",
            d.status()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(d.status()["upload"]["last_error"].is_null());
    assert!(
        !journal.exists(),
        "the journal goes once the archive confirms the manifest"
    );

    // Every segment and the manifest are in the archive, in the session's folder.
    let keys = garage.list();
    eprintln!(
        "archive holds {} objects, first {:?}",
        keys.len(),
        keys.first()
    );
    let folder = keys[0].rsplit_once('/').unwrap().0.to_owned();
    assert!(
        folder.starts_with("archive/test-xa-01/") && folder.ends_with(&id),
        "{folder}"
    );
    let show: Value =
        serde_json::from_slice(&d.cli(&["recordings", "show", &id, "--json"]).stdout).unwrap();
    let segments = show["segments"].as_array().unwrap();
    assert_eq!(keys.len(), segments.len() + 1, "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with("/manifest.json")));

    // Downloaded and concatenated, they are byte-identical to the export.
    let dir = tempfile::tempdir().unwrap();
    let mut joined = Vec::new();
    for k in keys.iter().filter(|k| k.ends_with(".ts")) {
        let body = garage.get(k);
        std::fs::write(dir.path().join(k.rsplit('/').next().unwrap()), &body).unwrap();
        joined.extend(body);
    }
    std::fs::write(
        dir.path().join("manifest.json"),
        garage.get(&format!("{folder}/manifest.json")),
    )
    .unwrap();
    let export = dir.path().join("export.ts");
    assert!(d
        .cli(&[
            "recordings",
            "export",
            &id,
            "--out",
            export.to_str().unwrap()
        ])
        .status
        .success());
    let exported = std::fs::read(&export).unwrap();
    assert_eq!(joined.len(), exported.len());
    assert!(joined == exported, "archive copy differs from the export");

    // Players open it; it lasts the session.
    let (codecs, duration) = probe(&export);
    assert!(
        codecs.iter().any(|c| c == "h264") && codecs.iter().any(|c| c == "opus"),
        "{codecs:?}"
    );
    assert!((duration - 60.0).abs() < 2.0, "{duration}");

    // Verified on both sides: on the box, and the archive copy on its own.
    let local: Value =
        serde_json::from_slice(&d.cli(&["recordings", "verify", &id, "--json"]).stdout).unwrap();
    assert_eq!(local["ok"], true, "{local}");
    // `recordings verify --dir` on the archive copy, with more arguments.
    let verify_copy = |more: &[&str]| {
        let mut args = vec![
            "recordings",
            "verify",
            "--dir",
            dir.path().to_str().unwrap(),
        ];
        args.extend_from_slice(more);
        d.cli(&args)
    };
    let out = verify_copy(&["--json"]);
    let remote: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(remote["ok"], true, "{remote}");
    assert_eq!(remote["signature_ok"], true);
    assert_eq!(remote["segments"].as_u64().unwrap(), segments.len() as u64);
    assert!(out.status.success());

    // A tampered archive copy fails verification.
    let first = dir.path().join("000000.ts");
    let original_first = std::fs::read(&first).unwrap();
    let mut b = original_first.clone();
    b[1000] ^= 1;
    std::fs::write(&first, b).unwrap();
    let out = verify_copy(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("does not match"));
    assert_eq!(out.status.code(), Some(3), "tampered: exit 3");
    std::fs::write(&first, &original_first).unwrap();

    // A copy missing a whole segment is never intact: incomplete, exit 4,
    // naming the object that is missing.
    let second = dir.path().join("000001.ts");
    let segments_second = std::fs::read(&second).unwrap();
    std::fs::remove_file(&second).unwrap();
    let out = verify_copy(&["--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "incomplete", "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["missing"], serde_json::json!([1]), "{v}");
    assert_eq!(out.status.code(), Some(4));
    let out = verify_copy(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("INCOMPLETE") && text.contains("000001.ts"),
        "{text}"
    );
    std::fs::write(&second, segments_second).unwrap();

    // Pinned to the box's key the copy verifies; pinned to another key it
    // is refused (a copy re-signed with a fresh key looks just like that).
    let key = remote["public_key"].as_str().unwrap().to_owned();
    let pinned = |k: &str| verify_copy(&["--key", k]);
    assert_eq!(pinned(&key).status.code(), Some(0));
    let other = pinned(&"ab".repeat(32));
    assert_eq!(other.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&other.stdout).contains("not by the box's pinned key"));
}
