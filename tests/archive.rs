//! Upload to the central archive against Garage, a real S3-compatible
//! object store started by the test (not a mock).

mod common;

use std::time::{Duration, Instant};

use common::tsa::Tsa;
use common::{
    free_udp_port, garage_bin, hub_program, probe, reference_verify, return_config, test_config,
    Daemon, Garage,
};
use serde_json::Value;

/// Garage started, or None (and SKIP said) where it is not installed.
fn started_garage() -> Option<Garage> {
    if garage_bin().is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "garage is not installed (.ci/run installs it)"
        );
        eprintln!("SKIP: garage is not installed (tests/quickstart.sh installs it from crates.io)");
        return None;
    }
    let mut garage = Garage::new();
    garage.start();
    Some(garage)
}

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
    // The recording's bytes are in its journal (sled holds where they are;
    // the journal alone rebuilds that after sled fails to reopen).
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
    // The journal stays: it holds the recording's bytes, once, until
    // retention or an operator's delete takes the recording off the box.
    let held: u64 = serde_json::from_slice::<Value>(&d.cli(&["recordings", "ls", "--json"]).stdout)
        .unwrap()[0]["bytes"]
        .as_u64()
        .unwrap();
    let on_disk = std::fs::metadata(&journal).unwrap().len();
    eprintln!(
        "journal {on_disk} bytes for a recording of {held}: {:.3} bytes per byte",
        on_disk as f64 / held as f64
    );
    assert!(
        on_disk >= held && on_disk < held + held / 50 + 4096,
        "the journal holds the recording once: {on_disk} bytes for {held}"
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
    // The reference verifier, written from the format document alone,
    // agrees on this copy and on every tampered one below.
    let agree = |more: &[&str], code: Option<i32>| {
        let (c, r) = reference_verify(dir.path(), more);
        assert_eq!(c, code, "verify-recording.py disagrees: {r:#}");
    };
    agree(&[], Some(0));
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
    agree(&[], Some(3));
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
    agree(&[], Some(4));
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
    agree(&["--key", &key], Some(0));
    let other = pinned(&"ab".repeat(32));
    assert_eq!(other.status.code(), Some(3));
    agree(&["--key", &"ab".repeat(32)], Some(3));
    assert!(String::from_utf8_lossy(&other.stdout).contains("not by the box's pinned key"));

    // The fleet's keys file (`fleet keys`), as the NOC keeps it from the
    // installation reports: the box's key verifies for its site; a file
    // without the site, with another key for it, or whose key for it was
    // rotated out before this recording started refuses the copy, for
    // both verifiers.
    let keys_dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut keys_file = |enroll: &[&[&str]]| {
        n += 1;
        let f = keys_dir.path().join(format!("keys-{n}.json"));
        let f = f.to_str().unwrap().to_owned();
        for args in enroll {
            let mut a = vec!["fleet", "keys", "enroll", "--file", &f];
            a.extend_from_slice(args);
            let out = d.cli(&a);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        f
    };
    let other = "ab".repeat(32);
    let cases = [
        (keys_file(&[&["test-xa-01", &key]]), 0, ""),
        (
            keys_file(&[&["xa-khac", &key]]),
            3,
            "no key for site test-xa-01",
        ),
        (
            keys_file(&[&["test-xa-01", &other]]),
            3,
            "not an enrolled key of site test-xa-01",
        ),
        (
            keys_file(&[
                &["test-xa-01", &key],
                &[
                    "test-xa-01",
                    &other,
                    "--rotate",
                    "--from",
                    "2000-01-01T00:00:00Z",
                ],
            ]),
            3,
            "enrolled for",
        ),
    ];
    for (file, code, said) in &cases {
        let out = verify_copy(&["--keys", file]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(*code), "{file}: {text}");
        assert!(text.contains(said), "{text}");
        agree(&["--keys", file], Some(*code));
    }
    // On the box, against its own store, the same file says the same.
    let out = d.cli(&["recordings", "verify", &id, "--keys", &cases[2].0]);
    assert_eq!(out.status.code(), Some(3));
    let out = d.cli(&["recordings", "verify", &id, "--keys", &cases[0].0]);
    assert_eq!(out.status.code(), Some(0));

    // An edited metadata value, and two segments swapped: tampered, for
    // both verifiers.
    let manifest = dir.path().join("manifest.json");
    let original = std::fs::read(&manifest).unwrap();
    let mut m: Value = serde_json::from_slice(&original).unwrap();
    m["started_by"] = Value::from("someone else");
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    assert_eq!(verify_copy(&[]).status.code(), Some(3));
    agree(&[], Some(3));
    std::fs::write(&manifest, &original).unwrap();
    let (a, b) = (dir.path().join("000000.ts"), dir.path().join("000001.ts"));
    let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, &bb).unwrap();
    std::fs::write(&b, &ba).unwrap();
    assert_eq!(verify_copy(&[]).status.code(), Some(3));
    agree(&[], Some(3));
    std::fs::write(&a, &ba).unwrap();
    std::fs::write(&b, &bb).unwrap();
    agree(&[], Some(0));
}

/// The hub's sound (an SRT return feed from ffmpeg) is recorded as the far
/// end's track beside the room's stream, archived in the room's folder, and
/// checked with it: the archive copy is intact only with both, and a far
/// track that is cut, swapped or missing is caught.
#[test]
fn the_far_ends_track_is_archived_with_the_room_and_verified_with_it() {
    let Some(garage) = started_garage() else {
        return;
    };
    let tsa = Tsa::start();
    let port = free_udp_port();
    let mut hub = hub_program(port);
    let d = Daemon::start(&return_config(
        port,
        &format!("{}timestamp_url = \"{}\"\n", garage.archive_toml(), tsa.url),
    ));
    let id = d.start_session()["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(d.status()["media"]["return_feed"]["live"], true);
    assert!(d.cli(&["stop"]).status.success());
    let _ = hub.kill();
    let _ = hub.wait();

    // Both tracks and both manifests reach the archive; the copy,
    // downloaded as it is laid out.
    let (dir, keys) = archived_copy(&d, &garage, &id);
    let far_keys: Vec<&String> = keys.iter().filter(|k| k.starts_with("far/")).collect();
    assert!(
        far_keys.iter().any(|k| *k == "far/manifest.json") && far_keys.len() >= 2,
        "{keys:?}"
    );
    let verify = || verify_dir(&d, dir.path());
    let (code, v) = verify();
    assert_eq!(
        (code, &v["verdict"]),
        (Some(0), &Value::from("intact")),
        "{v:#}"
    );
    assert_eq!(v["far"]["verdict"], "intact", "{v:#}");
    // The reference verifier agrees on each copy below.
    let agree = |code: Option<i32>| {
        let (c, r) = reference_verify(dir.path(), &[]);
        assert_eq!(c, code, "verify-recording.py disagrees: {r:#}");
    };
    agree(Some(0));
    println!(
        "room: {} segments; far end: {} segments, {} bytes",
        v["segments"], v["far"]["segments"], v["far"]["bytes_checked"]
    );
    // The far track is the hub's sound (its 300 Hz tone), not silence.
    let far_ts = dir.path().join("far.ts");
    let mut joined = Vec::new();
    let mut objects: Vec<_> = std::fs::read_dir(dir.path().join("far"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ts"))
        .collect();
    objects.sort();
    for o in &objects {
        joined.extend(std::fs::read(o).unwrap());
    }
    std::fs::write(&far_ts, &joined).unwrap();
    let (codecs, duration) = probe(&far_ts);
    assert_eq!(codecs, vec!["opus".to_owned()], "{codecs:?}");
    assert!(duration > 5.0, "far track lasts {duration} s");

    // Both tracks' manifests are time-stamped; the authority's CA checks
    // both tokens, and a far track without its token is incomplete.
    let ca = tsa.ca.to_str().unwrap();
    let out = d.cli(&[
        "recordings",
        "verify",
        "--json",
        "--dir",
        dir.path().to_str().unwrap(),
        "--tsa-ca",
        ca,
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert!(
        v["time_stamped_at"].is_string() && v["far"]["time_stamped_at"].is_string(),
        "{v:#}"
    );
    assert_eq!(reference_verify(dir.path(), &["--tsa-ca", ca]).0, Some(0));
    for token in ["far/manifest.tsr", "manifest.tsr"] {
        let path = dir.path().join(token);
        let kept = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (code, v) = verify();
        assert_eq!(code, Some(4), "without {token}: {v:#}");
        agree(Some(4));
        std::fs::write(&path, kept).unwrap();
    }

    // A far segment missing: the whole record is incomplete, not intact.
    let last = objects.last().unwrap().clone();
    let kept = std::fs::read(&last).unwrap();
    std::fs::remove_file(&last).unwrap();
    let (code, v) = verify();
    assert_eq!(code, Some(4), "{v:#}");
    assert_eq!(v["verdict"], "incomplete", "{v:#}");
    agree(Some(4));
    std::fs::write(&last, &kept).unwrap();

    // A far track cut short and re-signed is not the one the room's signed
    // manifest names: tampered. (Here: its manifest loses its last segment.)
    let far_manifest = dir.path().join("far/manifest.json");
    let original = std::fs::read(&far_manifest).unwrap();
    let mut m: Value = serde_json::from_slice(&original).unwrap();
    let segs = m["segments"].as_array_mut().unwrap();
    let cut = segs.pop().unwrap();
    m["chain_head"] = segs.last().map_or(Value::from(""), |s| s["chain"].clone());
    std::fs::write(&far_manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let (code, v) = verify();
    assert_eq!(code, Some(3), "{v:#}");
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("not the one the room's manifest names"),
        "{problems}"
    );
    println!("cut far track ({}): {problems}", cut["object"]);
    agree(Some(3));
    std::fs::write(&far_manifest, &original).unwrap();

    // And without its far track at all, the room's copy is not whole.
    std::fs::remove_dir_all(dir.path().join("far")).unwrap();
    let (code, v) = verify();
    assert_eq!(code, Some(4), "{v:#}");
    assert_eq!(v["verdict"], "incomplete", "{v:#}");
    assert!(v["notes"].to_string().contains("is not here"), "{v:#}");
    agree(Some(4));
}

/// Wait until the archive confirmed the room's recording `id` and its far
/// track whole, then download the room's folder as the archive lays it
/// out: the copy and its objects' names relative to it.
fn archived_copy(d: &Daemon, garage: &Garage, id: &str) -> (tempfile::TempDir, Vec<String>) {
    let far_id = format!("{id}.far");
    let t0 = Instant::now();
    loop {
        let list: Vec<Value> =
            serde_json::from_slice(&d.cli(&["recordings", "ls", "--json"]).stdout).unwrap();
        let done = |x: &str| {
            list.iter()
                .any(|s| s["id"] == x && s["manifest_confirmed_at"].is_string())
        };
        if done(id) && done(&far_id) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "upload did not finish: {list:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let keys = garage.list();
    let room_folder = keys
        .iter()
        .find(|k| k.ends_with(&format!("{id}/manifest.json")))
        .expect("the room's manifest")
        .trim_end_matches("/manifest.json")
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let mut objects = Vec::new();
    for k in &keys {
        let Some(rel) = k.strip_prefix(&format!("{room_folder}/")) else {
            continue;
        };
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, garage.get(k)).unwrap();
        objects.push(rel.to_owned());
    }
    (dir, objects)
}

/// `diemcau recordings verify --dir` on a copy: its exit code and report.
fn verify_dir(d: &Daemon, dir: &std::path::Path) -> (Option<i32>, Value) {
    let out = d.cli(&[
        "recordings",
        "verify",
        "--json",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.code(), v)
}

/// Runs of MPEG-TS packets in clear: a sync byte every 188 bytes, eight
/// times over. Recorded media in clear is made of them; sealed bytes hold
/// one by chance about once in 2^56 tries.
fn ts_runs(bytes: &[u8]) -> usize {
    let mut runs = 0;
    let mut i = 0;
    while i + 8 * 188 <= bytes.len() {
        if (0..8).all(|k| bytes[i + k * 188] == 0x47) {
            runs += 1;
            i += 8 * 188;
        } else {
            i += 1;
        }
    }
    runs
}

/// Encryption at rest, end to end: with two recipients configured (the
/// province's archive key and an escrow key, both made by `age-keygen`),
/// no recorded byte of the room or of the far end is in clear on the box's
/// disk or in the archive; both verifiers call the sealed copy intact
/// without any private key, and a changed byte tampered; the box's export
/// refuses without an identity or with a stranger's, and opens with either
/// recipient's; the reference verifier opens the archive copy (its key
/// through the `age` command) to the same bytes; a still sent to the
/// archive is an age file that `age -d` opens to a JPEG.
#[test]
fn a_sealed_recording_is_unreadable_on_the_box_and_in_the_archive_without_a_key() {
    let Some(garage) = started_garage() else {
        return;
    };
    for tool in ["age", "age-keygen"] {
        if !common::have(tool) {
            assert!(
                std::env::var_os("CI").is_none(),
                "{tool} is not installed (.ci/run installs it)"
            );
            eprintln!("SKIP: {tool} is not installed");
            return;
        }
    }
    let keys = tempfile::tempdir().unwrap();
    let (province, province_pub) = common::age_key(keys.path(), "province");
    let (escrow, escrow_pub) = common::age_key(keys.path(), "escrow");
    let (stranger, _) = common::age_key(keys.path(), "stranger");
    let port = free_udp_port();
    let mut hub = hub_program(port);
    let d = Daemon::start(&return_config(
        port,
        &format!(
            "{}\n[recording]\nrecipients = [\"{province_pub}\", \"{escrow_pub}\"]\n",
            garage.archive_toml()
        ),
    ));
    let id = d.start_session()["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(d.status()["media"]["return_feed"]["live"], true);
    assert!(d.cli(&["stop"]).status.success());
    let _ = hub.kill();
    let _ = hub.wait();

    // On the box: every journal is sealed bytes.
    let journals = d.dir.path().join("state/journal");
    let mut journal_bytes = 0;
    for e in std::fs::read_dir(&journals).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        journal_bytes += bytes.len();
        assert_eq!(ts_runs(&bytes), 0, "clear TS packets on the box's disk");
    }
    assert!(journal_bytes > 100_000, "{journal_bytes} bytes recorded");

    // Exports on the box.
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("export.ts");
    let no_key = d.cli(&["recordings", "export", &id, "--out", out.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&no_key.stderr).to_string();
    assert!(
        !no_key.status.success() && said.contains("--identity") && said.contains(&province_pub),
        "{said}"
    );
    assert!(!out.exists());
    let wrong = d.cli(&[
        "recordings",
        "export",
        &id,
        "--out",
        out.to_str().unwrap(),
        "--identity",
        stranger.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&wrong.stderr).to_string();
    assert!(
        !wrong.status.success() && said.contains("does not open"),
        "{said}"
    );
    assert!(!out.exists(), "a refused export left a file");
    let mut opened = Vec::new();
    for who in [&province, &escrow] {
        let r = d.cli(&[
            "recordings",
            "export",
            &id,
            "--out",
            out.to_str().unwrap(),
            "--identity",
            who.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{r:?}");
        opened.push(std::fs::read(&out).unwrap());
    }
    assert_eq!(
        opened[0], opened[1],
        "the two recipients open different bytes"
    );
    assert!(ts_runs(&opened[0]) > 10, "the opened export is not TS");
    let export_len = opened[0].len();
    let (codecs, duration) = probe(&out);
    assert!(
        codecs.contains(&"h264".to_owned()) && codecs.contains(&"opus".to_owned()),
        "{codecs:?}"
    );
    assert!(duration > 5.0, "the opened export lasts {duration} s");
    let mp4 = work.path().join("export.mp4");
    let r = d.cli(&[
        "recordings",
        "export",
        &id,
        "--out",
        mp4.to_str().unwrap(),
        "--identity",
        escrow.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{r:?}");
    let (codecs, _) = probe(&mp4);
    assert_eq!(
        codecs.iter().filter(|c| *c == "opus").count(),
        2,
        "the far end's sealed track opens into the MP4 too: {codecs:?}"
    );

    // A court bundle stays sealed, checks itself, says how to open it, and
    // opens with the province's identity.
    let bundle = work.path().join("bundle");
    let r = d.cli(&[
        "recordings",
        "export",
        &id,
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{r:?}");
    let doc = std::fs::read_to_string(bundle.join("DOC-TOI.txt")).unwrap();
    assert!(doc.contains("--identity"), "{doc}");
    let from_bundle = work.path().join("bundle.ts");
    let (code, r) = reference_verify(
        &bundle.join("ban-ghi"),
        &[
            "--out",
            from_bundle.to_str().unwrap(),
            "--identity",
            province.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(std::fs::read(&from_bundle).unwrap(), opened[0]);

    // The archive: sealed objects, verified without a key.
    let (copy, objects) = archived_copy(&d, &garage, &id);
    let mut media = 0;
    for rel in objects.iter().filter(|k| k.ends_with(".ts")) {
        let bytes = std::fs::read(copy.path().join(rel)).unwrap();
        assert_eq!(ts_runs(&bytes), 0, "{rel} is in clear in the archive");
        media += 1;
    }
    assert!(media >= 4, "{objects:?}");
    let m: Value =
        serde_json::from_slice(&std::fs::read(copy.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["format"], "diemcau-recording-manifest/2", "{m:#}");
    assert_eq!(
        m["encryption"]["recipients"],
        serde_json::json!([province_pub, escrow_pub]),
        "{m:#}"
    );
    let verify = || verify_dir(&d, copy.path());
    let (code, v) = verify();
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["far"]["verdict"], "intact", "{v:#}");
    assert_eq!(reference_verify(copy.path(), &[]).0, Some(0));

    // The province opens the archive copy with the reference verifier and
    // `age`: the same bytes as the box's export.
    let from_archive = work.path().join("archive.ts");
    let (code, r) = reference_verify(
        copy.path(),
        &[
            "--out",
            from_archive.to_str().unwrap(),
            "--identity",
            province.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(
        std::fs::read(&from_archive).unwrap(),
        opened[0],
        "the archive copy opens to other bytes than the box's export"
    );
    assert!(work.path().join("archive-far.ts").exists());
    let (code, _) = reference_verify(
        copy.path(),
        &[
            "--out",
            work.path().join("nope.ts").to_str().unwrap(),
            "--identity",
            stranger.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(2), "a stranger's identity opened the copy");

    // One changed byte in a sealed segment: tampered, for both.
    let seg = copy.path().join("000001.ts");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let (code, v) = verify();
    assert_eq!(code, Some(3), "{v:#}");
    assert_eq!(reference_verify(copy.path(), &[]).0, Some(3));

    // A still for the archive is sealed too, and `age` opens it.
    let r = d
        .request(r#"{"cmd":"snapshot","args":{"source":"camera","width":320,"archive":true}}"#)
        .expect("a reply");
    assert_eq!(r["ok"], true, "{r}");
    let key = r["result"]["key"].as_str().unwrap().to_owned();
    assert!(key.ends_with(".jpg.age"), "{key}");
    let sealed_still = work.path().join("still.age");
    std::fs::write(&sealed_still, garage.get(&key)).unwrap();
    let opened = std::process::Command::new("age")
        .args(["-d", "-i"])
        .arg(&escrow)
        .arg(&sealed_still)
        .output()
        .unwrap();
    assert!(opened.status.success(), "{opened:?}");
    assert_eq!(&opened.stdout[..2], &[0xff, 0xd8], "not a JPEG");
    println!(
        "sealed: {journal_bytes} bytes on the box with no clear TS run, {media} media objects in the archive; \
         opened export {} bytes, {duration:.1} s; still {} bytes sealed",
        export_len,
        garage.get(&key).len()
    );
}

/// Time stamps (RFC 3161): with a time-stamping authority configured (a
/// local one: OpenSSL's `ts -reply` behind the test's HTTP responder), each
/// manifest reaches the archive with the authority's token beside it.
/// While the authority is down the manifest waits (the segments go on) and
/// status says why. Both verifiers check that the token is for the
/// manifest's exact bytes and, given the authority's CA, its signature
/// (OpenSSL); a copy without it is incomplete, a token for other bytes or
/// from another authority is refused.
#[test]
fn manifests_are_time_stamped_and_both_verifiers_check_the_token() {
    let Some(garage) = started_garage() else {
        return;
    };
    let tsa = Tsa::start();
    tsa.refuse(true);
    let d = Daemon::start(&test_config(&format!(
        "{}timestamp_url = \"{}\"\n",
        garage.archive_toml(),
        tsa.url
    )));
    let id = d.start_session()["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_secs(6));
    assert!(d.cli(&["stop"]).status.success());

    // The authority is down: every segment is archived, the manifest is
    // not, and status says why.
    let t0 = Instant::now();
    loop {
        let st = d.status();
        let err = st["upload"]["last_error"].as_str().unwrap_or("").to_owned();
        if st["upload"]["backlog_segments"] == 0 && err.contains("time stamp") {
            println!("while the authority is down: {err}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{st}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        !garage.list().iter().any(|k| k.ends_with("manifest.json")),
        "no manifest without its time stamp"
    );

    // doctor tells the technician, then sees it answer.
    let doctor_says = || -> Value {
        let out = d.cli(&["doctor", "--json", "--lang", "en"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "Time stamps (RFC 3161)")
            .unwrap_or_else(|| panic!("no time-stamp check: {report:#}"))
            .clone()
    };
    let c = doctor_says();
    assert_eq!(c["verdict"], "FAIL", "{c}");
    assert!(c["detail"].as_str().unwrap().contains("503"), "{c}");

    // It comes back: the manifest goes, with its token.
    tsa.refuse(false);
    let c = doctor_says();
    assert_eq!(c["verdict"], "PASS", "{c}");
    d.request(r#"{"cmd":"upload.retry"}"#);
    let t0 = Instant::now();
    loop {
        let list: Vec<Value> =
            serde_json::from_slice(&d.cli(&["recordings", "ls", "--json"]).stdout).unwrap();
        if list[0]["manifest_confirmed_at"].is_string() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{list:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let keys = garage.list();
    let folder = keys
        .iter()
        .find(|k| k.ends_with(&format!("{id}/manifest.json")))
        .unwrap()
        .trim_end_matches("manifest.json")
        .to_owned();
    assert!(keys.contains(&format!("{folder}manifest.tsr")), "{keys:?}");
    let dir = tempfile::tempdir().unwrap();
    for k in keys.iter().filter(|k| k.starts_with(&folder)) {
        std::fs::write(
            dir.path().join(k.rsplit('/').next().unwrap()),
            garage.get(k),
        )
        .unwrap();
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["timestamp_authority"], tsa.url.as_str());

    let ca = tsa.ca.to_str().unwrap().to_owned();
    let check = |with_ca: bool, code: i32, said: &str| {
        let mut args = vec![
            "recordings",
            "verify",
            "--json",
            "--dir",
            dir.path().to_str().unwrap(),
        ];
        let mut more = vec![];
        if with_ca {
            more = vec!["--tsa-ca", ca.as_str()];
        }
        args.extend_from_slice(&more);
        let out = d.cli(&args);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert_eq!(out.status.code(), Some(code), "{v:#}");
        assert!(v.to_string().contains(said), "{said:?} not in {v:#}");
        let (c, r) = reference_verify(dir.path(), &more);
        assert_eq!(c, Some(code), "verify-recording.py disagrees: {r:#}");
        v
    };
    let v = check(true, 0, "time-stamped at");
    let at: chrono::DateTime<chrono::Utc> = v["time_stamped_at"].as_str().unwrap().parse().unwrap();
    let ended: chrono::DateTime<chrono::Utc> =
        manifest["ended_at"].as_str().unwrap().parse().unwrap();
    // The authority's genTime is whole seconds (its accuracy, 1 s).
    assert!(
        at + chrono::Duration::seconds(1) >= ended,
        "the token ({at}) comes after the recording's end ({ended})"
    );
    println!(
        "time-stamped at {at}, {} after the recording ended",
        at - ended
    );

    let token = dir.path().join("manifest.tsr");
    let good = std::fs::read(&token).unwrap();
    let body = std::fs::read(dir.path().join("manifest.json")).unwrap();
    // Without its token: incomplete (the signed manifest names the
    // authority, so no CA is needed to notice).
    std::fs::remove_file(&token).unwrap();
    check(false, 4, "manifest.tsr is not here");
    // A token for other bytes.
    std::fs::write(&token, tsa.token_for(b"another manifest")).unwrap();
    check(false, 3, "other bytes");
    // A genuine token for these bytes from another authority: only its
    // signature tells, so only with the CA.
    let other = Tsa::start();
    std::fs::write(&token, other.token_for(&body)).unwrap();
    check(false, 0, "time-stamped at");
    check(true, 3, "does not verify against");
    // The same manifest re-indented: its signature still holds, the token
    // does not.
    std::fs::write(&token, &good).unwrap();
    let m: Value = serde_json::from_slice(&body).unwrap();
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::to_vec(&m).unwrap(),
    )
    .unwrap();
    check(true, 3, "other bytes");
    std::fs::write(dir.path().join("manifest.json"), &body).unwrap();
    check(true, 0, "time-stamped at");
    assert!(tsa.granted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

/// Retention: once the archive has confirmed a recording whole, the box
/// keeps it `retention_days` (here 0.0001, about 9 s) and then erases it,
/// which the audit trail records; the archive keeps its copy.
#[test]
fn an_archived_recording_is_erased_from_the_box_after_its_retention() {
    let Some(garage) = started_garage() else {
        return;
    };
    let d = Daemon::start(&test_config(&format!(
        "{}\n[recording]\nretention_days = 0.0001\n",
        garage.archive_toml()
    )));
    let id = d.start_session()["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_secs(4));
    assert!(d.cli(&["stop"]).status.success());
    let listed = || -> Vec<Value> {
        serde_json::from_slice(&d.cli(&["recordings", "ls", "--json"]).stdout).unwrap()
    };
    let t0 = Instant::now();
    let confirmed_after = loop {
        let list = listed();
        if list
            .iter()
            .any(|s| s["id"] == id.as_str() && s["manifest_confirmed_at"].is_string())
        {
            break t0.elapsed();
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{list:?}");
        std::thread::sleep(Duration::from_millis(250));
    };
    let erased_after = loop {
        if !listed().iter().any(|s| s["id"] == id.as_str()) {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < confirmed_after + Duration::from_secs(30),
            "still on the box"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("archived after {confirmed_after:?}, erased from the box after {erased_after:?}");
    assert!(erased_after >= confirmed_after + Duration::from_secs(8));
    assert!(
        garage
            .list()
            .iter()
            .any(|k| k.ends_with(&format!("{id}/manifest.json"))),
        "the archive keeps it"
    );
    let audit: Value = serde_json::from_slice(&d.cli(&["audit", "--json"]).stdout).unwrap();
    let erased = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "recording.erased")
        .unwrap_or_else(|| panic!("no erasure in {audit:#}"))
        .clone();
    assert_eq!(erased["target"], id.as_str());
    assert_eq!(erased["who"]["detail"], "retention");
    assert!(
        erased["outcome"].as_str().unwrap().starts_with("done:"),
        "{erased}"
    );
}

/// "Upload never hurts live": the same 40 s session twice through one
/// narrow uplink that the live stream and the archive upload share, first
/// with no archive at all, then with 1 GB of recordings the archive has
/// not confirmed waiting on the box. The box is in a network namespace
/// whose only way out is a veth with a 600 kbit/s token bucket (tbf, with
/// a quarter second of queue: the session's 600 kbit/s of video, its sound
/// and headers fill two thirds of it); the hub (srt-live-transmit) and the archive
/// (Garage) are on the host beyond it. The hub's figures with the backlog
/// stay within 5% of those without, the upload waits while live, and the
/// backlog moves once the session ends.
///
/// Not exercised here: a link with loss and a changing rate (the relay in
/// tests/uplink.rs does that for SRT alone; it carries no TCP).
#[test]
fn a_gigabyte_backlog_leaves_the_live_stream_as_it_was() {
    use common::nat::{FarNet, HOST_VETH_IP};
    use common::SrtReceiver;
    use diemcau::recorder::store::{RecSession, RecStore, SegmentMeta};
    let ci = std::env::var_os("CI").is_some();
    for tool in ["tc", "nsenter", "srt-live-transmit"] {
        if !common::have(tool) {
            assert!(!ci, "{tool} is not installed (.ci/run installs it)");
            eprintln!("SKIP: {tool} is not installed");
            return;
        }
    }
    if garage_bin().is_none() {
        assert!(!ci, "garage is not installed (.ci/run installs it)");
        eprintln!("SKIP: garage is not installed");
        return;
    }
    let far = FarNet::new();
    far.shape_outbound(600, 250);
    let mut garage = Garage::new_at(HOST_VETH_IP);
    garage.start();

    // One session on the shaped link: the hub's received bitrate over its
    // last 30 s, its decode errors, and the box's upload figures.
    let session = |archive: bool, backlog_bytes: u64| -> (f64, usize, Value) {
        let work = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let mut hub = SrtReceiver::new(port, &work.path().join("hub.ts"));
        hub.host = HOST_VETH_IP.into();
        hub.start();
        let mut text = test_config(&format!(
            "\n[uplink]\nurl = \"srt://{HOST_VETH_IP}:{port}\"\nlatency_ms = 300\nreconnect_max_s = 1.0\n"
        ));
        if archive {
            text.push_str(&garage.archive_toml());
        }
        let mut d = Daemon::prepare_in(&text, Some(far.ns()));
        if backlog_bytes > 0 {
            // The recordings of an earlier day the archive never got:
            // 2 MB segments, as 8 Mbit/s makes them.
            let state = d.dir.path().join("state");
            let db = sled::open(state.join("db")).unwrap();
            let st = RecStore::open(&db, &state).unwrap();
            let id = "20200101T080000Z-back";
            let s = RecSession::begin(
                id.into(),
                "test-xa-01".into(),
                "2020-01-01T08:00:00Z".parse().unwrap(),
                true,
                "test".into(),
                Default::default(),
            );
            st.put_session(&s).unwrap();
            let chunk = vec![0x47u8; 128 << 10];
            let per_segment = 16u32;
            let segments = (backlog_bytes / (chunk.len() as u64 * u64::from(per_segment))) as u32;
            let mut whole = Vec::new();
            for seq in 0..segments {
                for n in 0..per_segment {
                    st.write_chunk(id, seq, n, &chunk).unwrap();
                }
                if whole.is_empty() {
                    whole = st.segment_bytes(id, seq).unwrap();
                }
                st.put_segment(
                    id,
                    &SegmentMeta {
                        seq,
                        bytes: whole.len() as u64,
                        chunks: per_segment,
                        started_at: s.started_at,
                        duration_ms: 2000,
                        sha256: diemcau::recorder::segment::hex(
                            &diemcau::recorder::segment::sha256(&whole),
                        ),
                        chain: String::new(),
                        partial: false,
                        confirmed_at: None,
                        quarantined: None,
                        pruned: false,
                    },
                )
                .unwrap();
            }
            st.update_session(id, |s| {
                s.closed = true;
                s.outcome = "ended".into();
                s.segments = segments;
            })
            .unwrap();
            st.flush().unwrap();
        }
        // At start the daemon checks every segment the archive has not
        // confirmed against its hash: a gigabyte takes a while.
        let ready = d.spawn_within(Duration::from_secs(300));
        if backlog_bytes > 0 {
            eprintln!(
                "with {} MB not archived, the daemon answered after {:.1} s",
                backlog_bytes >> 20,
                ready.as_secs_f64()
            );
        }
        d.start_session();
        assert!(
            hub.wait_growth(Duration::from_secs(20)).is_some(),
            "the hub gets nothing:\n{}",
            d.log_text()
        );
        // The first 10 s are the adaptive bitrate's climb from its floor.
        std::thread::sleep(Duration::from_secs(10));
        let (b0, t0) = (hub.bytes(), Instant::now());
        let mut paused = 0;
        let mut up_while_live = 0;
        for _ in 0..30 {
            std::thread::sleep(Duration::from_secs(1));
            let st = d.status();
            if st["upload"]["paused_for_live"] == true {
                paused += 1;
            }
            up_while_live = st["upload"]["uploaded_bytes"].as_u64().unwrap_or(0);
        }
        let kbps = (hub.bytes() - b0) as f64 * 8.0 / 1000.0 / t0.elapsed().as_secs_f64();
        let live = d.status();
        assert!(d.cli(&["stop"]).status.success());
        hub.kill();
        let errors = common::decode_errors(&work.path().join("hub.ts")).len();
        let mut report = live["upload"].clone();
        report["paused_s"] = paused.into();
        report["uploaded_while_live"] = up_while_live.into();
        if backlog_bytes > 0 {
            // Once the session is over, the backlog moves.
            let t0 = Instant::now();
            while d.status()["upload"]["uploaded_segments"]
                .as_u64()
                .unwrap_or(0)
                == 0
            {
                assert!(
                    t0.elapsed() < Duration::from_secs(60),
                    "the backlog does not move after the session: {}",
                    d.status()["upload"]
                );
                std::thread::sleep(Duration::from_millis(500));
            }
            report["after_s"] = t0.elapsed().as_secs_f64().into();
        }
        d.terminate();
        (kbps, errors, report)
    };

    let (clear_kbps, clear_errors, _) = session(false, 0);
    let (busy_kbps, busy_errors, busy) = session(true, 1 << 30);
    eprintln!(
        "600 kbit/s shared uplink, 30 s of a live session: without a backlog the hub received \
         {clear_kbps:.0} kbit/s ({clear_errors} decode error lines); \
         with 1 GB waiting {busy_kbps:.0} kbit/s ({busy_errors} lines); the upload: {busy}"
    );
    assert!(
        busy_kbps >= clear_kbps * 0.95,
        "the backlog cost the live stream: {busy_kbps:.0} kbit/s against {clear_kbps:.0}"
    );
    assert!(
        busy_errors <= clear_errors + 5,
        "the backlog damaged the live picture: {busy_errors} decode error lines against {clear_errors}"
    );
    assert_eq!(busy["uploaded_while_live"], 0, "{busy}");
    assert!(busy["paused_s"].as_u64() >= Some(25), "{busy}");
}
