//! The MQTT control plane against a real Mosquitto broker that each test
//! starts on a free port, with TLS and client certificates generated with
//! the `openssl` command line tool (`common::mqtt`). The NOC side is a rumqttc MQTT 5
//! client (and `mosquitto_pub` for a client without MQTT 5).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::mqtt::{cmd, make_certs, Broker, Msg, Noc};
use common::{test_config, Daemon};
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;
use serde_json::{json, Value};

const SITE: &str = "test-xa-01";

/// The tests share two cores with everything else: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn mqtt_config(certs: &Path, port: u16) -> String {
    test_config(&format!(
        "\n[mqtt]\nurl = \"mqtts://localhost:{port}\"\nca = \"{d}/ca.crt\"\ncert = \"{d}/box.crt\"\nkey = \"{d}/box.key\"\n\
         keep_alive_s = 5\nhealth_interval_s = 1\nreconnect_min_s = 0.1\nreconnect_max_s = 1.0\n",
        d = certs.display()
    ))
}

struct Setup {
    _certs_dir: tempfile::TempDir,
    certs: PathBuf,
    broker: Broker,
}

fn setup() -> Setup {
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = certs_dir.path().to_owned();
    make_certs(&certs, SITE);
    let broker = Broker::new(&certs);
    Setup {
        _certs_dir: certs_dir,
        certs,
        broker,
    }
}

/// The NOC's fleet CLI, with this setup's broker and the NOC's identity.
fn fleet_cli(s: &Setup) -> Command {
    let mut c = Command::new(common::BIN);
    c.args([
        "fleet",
        "--broker",
        &format!("mqtts://localhost:{}", s.broker.port),
    ])
    .arg("--ca")
    .arg(s.certs.join("ca.crt"))
    .arg("--cert")
    .arg(s.certs.join("noc.crt"))
    .arg("--key")
    .arg(s.certs.join("noc.key"));
    c
}

fn site_filter() -> Vec<String> {
    vec![format!("diemcau/v1/{SITE}/#")]
}

fn status_msg(noc: &Noc, status: &'static str, not_boot: Option<String>) -> Msg {
    let topic = format!("diemcau/v1/{SITE}/status");
    noc.wait_for(
        &format!("status {status}"),
        Duration::from_secs(15),
        move |m| {
            m.topic == topic
                && m.payload["status"] == status
                && not_boot.as_ref().is_none_or(|b| m.payload["boot_id"] != *b)
        },
    )
}

#[test]
fn tls_presence_state_commands_and_last_will() {
    let _g = serial();
    let s = setup();
    let noc = Noc::connect(&s.certs, s.broker.port, "noc-1", false, &site_filter());
    let mut d = Daemon::start(&mqtt_config(&s.certs, s.broker.port));

    let online = status_msg(&noc, "online", None);
    let boot1 = online.payload["boot_id"].as_str().unwrap().to_owned();
    assert_eq!(online.payload["site"], SITE);
    // The key the box signs recordings with, for the NOC to compare.
    let public = std::fs::read_to_string(d.dir.path().join("state/device-ed25519.pub")).unwrap();
    assert_eq!(online.payload["device_key"]["public_key"], public.trim());
    assert_eq!(
        online.payload["device_key"]["fingerprint"]
            .as_str()
            .unwrap()
            .len(),
        39
    );
    let state_topic = format!("diemcau/v1/{SITE}/state");
    noc.wait_for("state idle", Duration::from_secs(10), |m| {
        m.topic == state_topic && m.payload["phase"] == "idle"
    });

    // A late NOC gets the retained status and state at once.
    let late = Noc::connect(&s.certs, s.broker.port, "noc-late", false, &site_filter());
    let st = late.wait_for("retained state", Duration::from_secs(5), |m| {
        m.topic == state_topic
    });
    assert!(st.retain, "state is retained");

    // session.start over MQTT 5: accepted, then done, with the correlation data.
    noc.send(
        SITE,
        "session.start",
        cmd("start-1", json!({"metadata": {"case": "HS-2026-7"}})),
        "corr-1",
    );
    noc.wait_reply("start-1", "accepted", Duration::from_secs(5));
    let done = noc.wait_reply("start-1", "done", Duration::from_secs(20));
    assert_eq!(done["site"], SITE);
    assert_eq!(done["result"]["session"]["metadata"]["case"], "HS-2026-7");
    let corr = noc
        .msgs()
        .into_iter()
        .find(|m| m.topic == noc.reply_topic && m.payload["status"] == "done")
        .and_then(|m| m.correlation)
        .expect("correlation data echoed");
    assert_eq!(&corr[..], b"corr-1");
    // ... and on .../reply for clients without MQTT 5.
    let reply_topic = format!("diemcau/v1/{SITE}/cmd/session.start/reply");
    noc.wait_for("reply topic", Duration::from_secs(5), |m| {
        m.topic == reply_topic && m.payload["status"] == "done"
    });
    let live = noc.wait_for("state live", Duration::from_secs(10), |m| {
        m.topic == state_topic && m.payload["phase"] == "live"
    });
    assert_eq!(live.payload["metadata"]["case"], "HS-2026-7");
    assert_eq!(d.phase(), "live");

    // Health: flat numbers only.
    let health_topic = format!("diemcau/v1/{SITE}/health");
    let h = noc.wait_for("health", Duration::from_secs(10), |m| {
        m.topic == health_topic && m.payload["session_live"] == 1
    });
    let obj = h.payload.as_object().unwrap();
    assert!(
        obj.values().all(Value::is_number),
        "health is flat numeric: {}",
        h.payload
    );
    assert!(
        obj.contains_key("cpu_percent")
            && obj.contains_key("srt_rtt_ms")
            && obj.contains_key("event_backlog")
    );

    // kill -9: the broker publishes the last will `lost`.
    let t0 = Instant::now();
    d.kill9();
    let lost = status_msg(&noc, "lost", None);
    assert_eq!(lost.payload["boot_id"], boot1.as_str());
    eprintln!("lost seen {:?} after kill -9", t0.elapsed());

    // Restart: `online` with a new boot id, and the interrupted session as an event.
    d.spawn();
    status_msg(&noc, "online", Some(boot1.clone()));
    let event_topic = format!("diemcau/v1/{SITE}/event");
    noc.wait_for("session_interrupted", Duration::from_secs(10), |m| {
        m.topic == event_topic && m.payload["type"] == "session_interrupted"
    });

    // A clean stop says `offline`.
    let (st, _) = d.terminate();
    assert!(st.success());
    status_msg(&noc, "offline", None);
}

#[test]
fn diagnostics_with_self_test_answers_with_the_doctor_report() {
    let _g = serial();
    let s = setup();
    let noc = Noc::connect(
        &s.certs,
        s.broker.port,
        "noc-diag",
        false,
        &["diemcau/v1/+/cmd/+/reply".to_string()],
    );
    let _d = Daemon::start(&mqtt_config(&s.certs, s.broker.port));
    std::thread::sleep(Duration::from_millis(500));
    // Plain: the state at once, no self-test.
    noc.send(SITE, "diagnostics", cmd("diag-plain", json!({})), "p");
    let plain = noc.wait_reply("diag-plain", "done", Duration::from_secs(15));
    assert!(plain["result"]["status"].is_object(), "{plain}");
    assert!(plain["result"]["doctor"].is_null(), "{plain}");
    // With self_test: the doctor's checks, run by the box itself. Its
    // broker line proves it did the TLS handshake with its own identity.
    noc.send(
        SITE,
        "diagnostics",
        cmd("diag-full", json!({"self_test": true})),
        "f",
    );
    let full = noc.wait_reply("diag-full", "done", Duration::from_secs(120));
    let checks = full["result"]["doctor"]["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no report: {full}"));
    let broker = checks
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with("MQTT broker"))
        .unwrap_or_else(|| panic!("no broker line: {checks:?}"));
    assert_eq!(broker["verdict"], "PASS", "{broker}");
    assert!(checks
        .iter()
        .any(|c| c["name"] == "diemcau daemon" && c["verdict"] == "PASS"));
    // The encoder the next session runs: no hardware encoder here, so x264
    // (no VA-API or V4L2 encoder on these machines: the hardware branch of
    // the choice is covered by its unit test only).
    let enc = checks
        .iter()
        .find(|c| c["name"] == "Video encoder")
        .unwrap_or_else(|| panic!("no encoder line: {checks:?}"));
    assert!(
        enc["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("x264enc (software)"),
        "{enc}"
    );
    // A misspelt argument is refused, not ignored.
    noc.send(
        SITE,
        "diagnostics",
        cmd("diag-bad", json!({"selftest": true})),
        "b",
    );
    let bad = noc.wait_reply("diag-bad", "rejected", Duration::from_secs(15));
    assert!(bad["error"].as_str().unwrap().contains("selftest"), "{bad}");
}

#[test]
fn duplicates_expired_malformed_and_fleet_commands() {
    let _g = serial();
    let s = setup();
    let noc = Noc::connect(
        &s.certs,
        s.broker.port,
        "noc-2",
        false,
        &["diemcau/v1/+/cmd/+/reply".to_string()],
    );
    let d = Daemon::start(&mqtt_config(&s.certs, s.broker.port));
    std::thread::sleep(Duration::from_millis(500));
    noc.send(SITE, "diagnostics", cmd("warmup", json!({})), "w");
    noc.wait_reply("warmup", "done", Duration::from_secs(15));

    // The same id twice: executed once, then `duplicate`.
    noc.send(SITE, "session.start", cmd("dup-1", json!({})), "a");
    noc.wait_reply("dup-1", "done", Duration::from_secs(20));
    let first = d.status()["session"]["id"].as_str().unwrap().to_owned();
    noc.send(SITE, "session.start", cmd("dup-1", json!({})), "b");
    let dup = noc.wait_reply("dup-1", "duplicate", Duration::from_secs(5));
    assert_eq!(dup["result"]["first_status"], "done");
    assert_eq!(
        d.status()["session"]["id"],
        first.as_str(),
        "not executed twice"
    );
    // A stop replayed after the session ended is a duplicate too, not a rejection.
    noc.send(SITE, "session.stop", cmd("stop-1", json!({})), "c");
    noc.wait_reply("stop-1", "done", Duration::from_secs(15));
    noc.send(SITE, "session.stop", cmd("stop-1", json!({})), "d");
    noc.wait_reply("stop-1", "duplicate", Duration::from_secs(5));

    // Expired: not executed.
    let past = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    noc.send(
        SITE,
        "session.start",
        json!({"id": "old-1", "expires_at": past}),
        "e",
    );
    let r = noc.wait_reply("old-1", "expired", Duration::from_secs(5));
    assert!(r["error"].as_str().unwrap().contains("expired"));
    assert_eq!(d.phase(), "idle");

    // Malformed: rejected with a reason, nothing changes, daemon unharmed.
    noc.send(
        SITE,
        "session.start",
        cmd("bad-1", json!({"metadata": "HS-1"})),
        "f",
    );
    let r = noc.wait_reply("bad-1", "rejected", Duration::from_secs(5));
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("bad args for session.start"),
        "{r}"
    );
    noc.send(SITE, "self.destruct", cmd("bad-2", json!({})), "g");
    let r = noc.wait_reply("bad-2", "rejected", Duration::from_secs(5));
    assert!(
        r["error"].as_str().unwrap().contains("unknown command"),
        "{r}"
    );
    noc.send(SITE, "diagnostics", json!({"id": "bad-3"}), "h");
    let r = noc.wait_reply("bad-3", "rejected", Duration::from_secs(5));
    assert!(r["error"].as_str().unwrap().contains("expires_at"), "{r}");

    // Not JSON, from a client without MQTT 5 (mosquitto_pub, MQTT 3.1.1):
    // the rejection goes to .../reply.
    let out = Command::new("mosquitto_pub")
        .args([
            "-h",
            "localhost",
            "-p",
            &s.broker.port.to_string(),
            "-V",
            "mqttv311",
        ])
        .arg("--cafile")
        .arg(s.certs.join("ca.crt"))
        .arg("--cert")
        .arg(s.certs.join("noc.crt"))
        .arg("--key")
        .arg(s.certs.join("noc.key"))
        .args([
            "-t",
            &format!("diemcau/v1/{SITE}/cmd/rebirth"),
            "-q",
            "1",
            "-m",
            "not json {",
        ])
        .output()
        .expect("mosquitto_pub");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let topic = format!("diemcau/v1/{SITE}/cmd/rebirth/reply");
    let r = noc.wait_for("rejection of non-JSON", Duration::from_secs(5), |m| {
        m.topic == topic && m.payload["status"] == "rejected"
    });
    assert!(r.payload["id"].is_null());
    assert!(r.payload["error"].as_str().unwrap().contains("not JSON"));

    // Fleet-wide: every box answers.
    let t = "diemcau/v1/all/cmd/diagnostics".to_string();
    let body = serde_json::to_vec(&cmd("fleet-1", json!({}))).unwrap();
    let props = PublishProperties {
        response_topic: Some(noc.reply_topic.clone()),
        ..Default::default()
    };
    noc.rt
        .block_on(
            noc.client
                .publish_with_properties(t, QoS::AtLeastOnce, false, body, props),
        )
        .unwrap();
    let r = noc.wait_reply("fleet-1", "done", Duration::from_secs(10));
    assert_eq!(r["site"], SITE);
    assert_eq!(r["result"]["status"]["phase"], "idle");

    // recordings.list and config.get (secrets redacted), rebirth.
    noc.send(
        SITE,
        "recordings.list",
        cmd("rec-1", json!({"limit": 5})),
        "i",
    );
    let r = noc.wait_reply("rec-1", "done", Duration::from_secs(5));
    assert_eq!(r["result"]["sessions"][0]["id"], first.as_str());
    noc.send(SITE, "config.get", cmd("cfg-1", json!({})), "j");
    let r = noc.wait_reply("cfg-1", "done", Duration::from_secs(5));
    assert_eq!(r["result"]["config"]["site"]["id"], SITE);
    noc.send(SITE, "rebirth", cmd("reb-1", json!({})), "k");
    noc.wait_reply("reb-1", "done", Duration::from_secs(5));

    // Still healthy after all that.
    assert_eq!(d.phase(), "idle");
    assert!(noc.replies("dup-1").len() >= 3);
}

#[test]
fn broker_restarts_lose_no_event() {
    let _g = serial();
    let mut s = setup();
    let event_topic = format!("diemcau/v1/{SITE}/event");
    let noc = Noc::connect(
        &s.certs,
        s.broker.port,
        "noc-events",
        true,
        std::slice::from_ref(&event_topic),
    );
    let d = Daemon::start(&mqtt_config(&s.certs, s.broker.port));
    d.start_session();

    let session_events = |noc: &Noc| -> Vec<Value> {
        let mut seen = std::collections::HashSet::new();
        noc.msgs()
            .into_iter()
            .filter(|m| m.topic == event_topic)
            .map(|m| m.payload)
            .filter(|p| {
                p["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("session_"))
            })
            .filter(|p| seen.insert(p["id"].as_str().unwrap_or_default().to_owned()))
            .collect()
    };
    let wait_events = |noc: &Noc, n: usize| {
        let t0 = Instant::now();
        while session_events(noc).len() < n {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "events missing: {:#?}\n{}",
                session_events(noc),
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_events(&noc, 2); // starting, started
    let mut expected = 2;
    let mut recoveries = Vec::new();
    for round in 0..3 {
        // Let the broker autosave the NOC's session, then kill it hard.
        std::thread::sleep(Duration::from_millis(1500));
        s.broker.kill9();
        // Events while the broker is away go to the outbox.
        let out = d.cli(&["stop"]);
        assert!(out.status.success(), "stop in round {round}");
        d.start_session();
        expected += 3; // stopped, starting, started
        std::thread::sleep(Duration::from_millis(500));
        s.broker.start();
        let back = Instant::now();
        // Commands work again within 5 s of the broker's return.
        let mut n = 0;
        let ok = loop {
            n += 1;
            let id = format!("ping-{round}-{n}");
            noc.send(SITE, "diagnostics", cmd(&id, json!({})), "p");
            if noc
                .try_wait_for(Duration::from_millis(300), |m| {
                    m.payload["id"] == id.as_str() && m.payload["status"] == "done"
                })
                .is_some()
            {
                break back.elapsed();
            }
            if back.elapsed() > Duration::from_secs(10) {
                panic!(
                    "no command reply 10 s after the broker returned\n{}",
                    d.log_text()
                );
            }
        };
        recoveries.push(ok);
        wait_events(&noc, expected);
    }
    let out = d.cli(&["stop"]);
    assert!(out.status.success());
    expected += 1;
    wait_events(&noc, expected);
    eprintln!("command replies after broker restarts: {recoveries:?}");
    for r in &recoveries {
        assert!(
            *r < Duration::from_secs(5),
            "commands took {r:?} after the broker returned"
        );
    }

    let evs = session_events(&noc);
    assert_eq!(evs.len(), expected, "every event exactly once: {evs:#?}");
    let seqs: Vec<u64> = evs.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let mut want = vec!["session_starting", "session_started"];
    for _ in 0..3 {
        want.extend(["session_stopped", "session_starting", "session_started"]);
    }
    want.push("session_stopped");
    assert_eq!(types, want);
    let raw = noc.msgs().iter().filter(|m| m.topic == event_topic).count();
    eprintln!(
        "events: {} unique, {} received (duplicates from at-least-once: {})",
        evs.len(),
        raw,
        raw - evs.len()
    );
}

/// Benchmark (bench/mqtt_latency.sh): command-to-reply latency on
/// loopback over TLS, 1,000 sequential `diagnostics` commands.
#[test]
#[ignore]
fn bench_command_latency() {
    let _g = serial();
    let s = setup();
    let noc = Noc::connect(&s.certs, s.broker.port, "noc-bench", false, &site_filter());
    let _d = Daemon::start(&mqtt_config(&s.certs, s.broker.port));
    // Commands are not retained: send only once the box is subscribed.
    status_msg(&noc, "online", None);
    std::thread::sleep(Duration::from_millis(300));
    noc.send(SITE, "diagnostics", cmd("warm", json!({})), "w");
    noc.wait_reply("warm", "done", Duration::from_secs(15));
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("b-{i}");
        let t0 = Instant::now();
        noc.send(SITE, "diagnostics", cmd(&id, json!({})), "b");
        noc.wait_reply(&id, "done", Duration::from_secs(5));
        lat.push(t0.elapsed());
        if i % 100 == 99 {
            noc.msgs.lock().unwrap().clear(); // keep the search short
        }
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "command-to-reply over TLS, {n} commands: p50 {:?} p99 {:?} max {:?}",
        p(0.50),
        p(0.99),
        lat[lat.len() - 1]
    );
    assert!(p(0.99) < Duration::from_millis(50), "p99 {:?}", p(0.99));
}

/// The NOC's CLI over mutual TLS: the fleet list shows the box online, and
/// a fleet-wide command comes back from it.
#[test]
fn fleet_cli_lists_and_commands_over_tls() {
    let _g = serial();
    let s = setup();
    let d = Daemon::start(&mqtt_config(&s.certs, s.broker.port));
    let fleet = |args: &[&str]| {
        let out = fleet_cli(&s).args(args).output().expect("diemcau fleet");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let t0 = Instant::now();
    loop {
        let (ok, out) = fleet(&["ls", "--wait", "1"]);
        if ok && out.contains(SITE) && out.contains("online") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "box never listed online: {out}"
        );
    }
    let (ok, out) = fleet(&["cmd", "all", "diagnostics", "--wait", "3"]);
    assert!(ok, "{out}");
    assert!(out.contains(SITE) && out.contains("done"), "{out}");
    let (ok, out) = fleet(&["cmd", SITE, "no.such.command", "--wait", "5"]);
    assert!(!ok);
    assert!(out.contains("rejected"), "{out}");

    // Device keys: the box announces its key in the retained status; the
    // NOC's keys file takes keys only from installation reports, and
    // `keys check` compares the two.
    let announced = std::fs::read_to_string(d.dir.path().join("state/device-ed25519.pub"))
        .unwrap()
        .trim()
        .to_owned();
    let file = d.dir.path().join("fleet-keys.json");
    let file = file.to_str().unwrap();
    let other = "ab".repeat(32);
    let (ok, out) = fleet(&["keys", "enroll", "--file", file, "xa-khac", &other]);
    assert!(ok, "{out}");
    let (ok, out) = fleet(&["keys", "check", "--file", file, "--wait", "1"]);
    assert!(!ok, "a box that is not enrolled is not OK: {out}");
    assert!(
        out.contains("NOT ENROLLED") && out.contains("xa-khac"),
        "{out}"
    );
    // The report as provisioning writes it is what the NOC enrolls from.
    let report = d.dir.path().join("KET-QUA.txt");
    std::fs::write(
        &report,
        format!("...\r\nKhoá công khai / public key: {announced}\r\n"),
    )
    .unwrap();
    let (ok, out) = fleet(&[
        "keys",
        "enroll",
        "--file",
        file,
        SITE,
        report.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let (ok, out) = fleet(&["keys", "check", "--file", file, "--wait", "1"]);
    assert!(!ok, "xa-khac is enrolled but not on the broker: {out}");
    let line = out
        .lines()
        .find(|l| l.starts_with(SITE))
        .unwrap_or_default();
    assert!(line.contains("OK"), "{out}");
    // Another key for the site is refused without --rotate; with it, the
    // box's announced key is no longer the enrolled one.
    let (ok, out) = fleet(&["keys", "enroll", "--file", file, SITE, &other]);
    assert!(!ok && out.is_empty(), "{out}");
    let (ok, out) = fleet(&["keys", "enroll", "--file", file, SITE, &other, "--rotate"]);
    assert!(ok, "{out}");
    let (ok, out) = fleet(&["keys", "check", "--file", file, "--wait", "1"]);
    assert!(!ok);
    let line = out
        .lines()
        .find(|l| l.starts_with(SITE))
        .unwrap_or_default();
    assert!(line.contains("DIFFERENT"), "{out}");
    println!("{out}");
    drop(d);
}

/// Resident memory of a process, kB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Benchmark (bench/mqtt_fleet.sh): the control planes of FLEET_N boxes
/// (default 500) in this process (the daemon's real MQTT, supervisor and
/// store code; the media engines are idle), against one local Mosquitto with
/// mutual TLS. One fleet-wide `diagnostics` command: every box must answer.
#[test]
#[ignore]
fn bench_fleet_broadcast() {
    let _g = serial();
    let s = setup();
    let n: usize = std::env::var("FLEET_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let noc = Noc::connect(
        &s.certs,
        s.broker.port,
        "noc-fleet",
        false,
        &["diemcau/v1/+/status".to_owned()],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let t_start = Instant::now();
    let mut keep = Vec::new();
    rt.block_on(async {
        diemcau::media::init().unwrap();
        for i in 0..n {
            let site = format!("box-{i:04}");
            let dir = root.path().join(&site);
            let text = mqtt_config(&s.certs, s.broker.port)
                .replace("id = \"test-xa-01\"", &format!("id = \"{site}\""))
                .replace(
                    "[daemon]\n",
                    &format!("[daemon]\nstate_dir = \"{}\"\n", dir.display()),
                )
                .replace("health_interval_s = 1", "health_interval_s = 60");
            let config = diemcau::config::Config::parse(Path::new("fleet.toml"), &text).unwrap();
            std::fs::create_dir_all(&dir).unwrap();
            let store = diemcau::store::Store::open(&dir).unwrap();
            let outbox = diemcau::events::Outbox::open(store.db(), &site).unwrap();
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let media = diemcau::media::spawn(config.clone(), tx, None, None, None).unwrap();
            let (_up_tx, up_rx) = tokio::sync::watch::channel(Default::default());
            let (_call_tx, call_rx) = tokio::sync::watch::channel(Default::default());
            let sup = diemcau::supervisor::spawn(
                config.clone(),
                store.clone(),
                outbox.clone(),
                media,
                rx,
                up_rx,
                call_rx,
                tokio::sync::watch::channel(Default::default()).1,
            )
            .unwrap();
            // The command layer as the daemon wires it, with no devices.
            let control = diemcau::control::Control::new(diemcau::control::Deps {
                audit: diemcau::audit::Auditor::new(
                    diemcau::audit::AuditLog::new(&dir),
                    outbox.clone(),
                    store.db(),
                )
                .unwrap(),
                supervisor: sup.handle.clone(),
                phase: sup.phase.clone(),
                store: store.clone(),
                recordings: diemcau::recorder::store::RecStore::open(store.db(), &dir).unwrap(),
                key: ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
                presets: diemcau::camera::Presets::open(store.db()).unwrap(),
                camera: config.video.source.clone(),
                button: None,
                display: None,
                speaker: None,
                upload: None,
                media: None,
                screen: None,
                video: None,
                archive: None,
                recipients: Vec::new(),
                secret_values: Vec::new(),
                schedule: None,
                config_path: config.path.clone(),
                site_id: config.site.id.clone(),
                language: config.daemon.language,
                allow_reboot: false,
                restart: diemcau::lifecycle::Restart::new(),
            });
            let m = diemcau::mqtt::spawn(diemcau::mqtt::Deps {
                config,
                control,
                phase: sup.phase.clone(),
                outbox,
                store,
                device_key: diemcau::core::device_key::DeviceKeyId::new(&format!("{i:064x}")),
                schedule: diemcau::schedule::ScheduleHandle::none(),
            })
            .unwrap();
            keep.push((sup, m, _up_tx));
        }
    });
    // All online (retained status seen by the NOC).
    let t0 = Instant::now();
    loop {
        let online = noc
            .msgs()
            .iter()
            .filter(|m| m.topic.ends_with("/status") && m.payload["status"] == "online")
            .map(|m| m.topic.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if online >= n {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "only {online} of {n} boxes online"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let up = t_start.elapsed();
    noc.msgs.lock().unwrap().clear();
    let t_send = Instant::now();
    noc.send("all", "diagnostics", cmd("fleet-1", json!({})), "fleet");
    let mut arrived: std::collections::BTreeMap<String, Duration> = Default::default();
    while arrived.len() < n && t_send.elapsed() < Duration::from_secs(120) {
        for m in noc.msgs() {
            if m.payload["id"] == "fleet-1" && m.payload["status"] == "done" {
                let site = m.payload["site"].as_str().unwrap_or("?").to_owned();
                arrived.entry(site).or_insert_with(|| t_send.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut lat: Vec<Duration> = arrived.values().copied().collect();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "fleet of {n}: all online after {up:?}; broadcast diagnostics answered by {} boxes; reply latency p50 {:?} p99 {:?} max {:?}",
        lat.len(),
        p(0.5),
        p(0.99),
        lat[lat.len() - 1]
    );
    println!(
        "memory: broker RSS {} MB, simulator RSS {} MB ({} kB per box)",
        rss_kb(s.broker.pid()) / 1024,
        rss_kb(std::process::id()) / 1024,
        rss_kb(std::process::id()) / n as u64
    );
    assert_eq!(lat.len(), n, "every box answers");
    drop(keep);
}

/// `config.set`: a valid file is written and applied by a restart in place
/// (`done`); a malformed one is `rejected` with its line; one the daemon
/// cannot start with is rolled back to the last known good file (`failed`).
#[test]
fn config_set_applies_or_rolls_back() {
    let _g = serial();
    let s = setup();
    let noc = Noc::connect(&s.certs, s.broker.port, "noc-cfg", false, &site_filter());
    let d = Daemon::start_notified(&mqtt_config(&s.certs, s.broker.port));
    status_msg(&noc, "online", None);
    std::thread::sleep(Duration::from_millis(300));
    let pid = d.pid();
    let original = std::fs::read_to_string(&d.config).unwrap();
    assert!(d.notifications().iter().any(|m| m.contains("READY=1")));

    // Applied: a new bitrate; the same process restarts with it.
    let changed = original.replace("bitrate_kbps = 600", "bitrate_kbps = 700");
    noc.send(
        SITE,
        "config.set",
        cmd("cfg-1", json!({"toml": changed})),
        "c1",
    );
    let r = noc.wait_reply("cfg-1", "done", Duration::from_secs(30));
    assert!(r["result"]["config_version"].is_string(), "{r}");
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), changed);
    assert_eq!(d.pid(), pid, "restarted in place");
    assert_eq!(d.phase(), "idle");
    // What systemd hears: a reload that the restarted daemon's READY=1
    // ends. STOPPING=1 here had systemd kill the restarted daemon when its
    // stop timeout ran out.
    let told = d.notifications();
    println!("told systemd across the restart: {told:?}");
    let reload = told.iter().position(|m| m.contains("RELOADING=1"));
    let ready = told.iter().rposition(|m| m.contains("READY=1"));
    assert!(
        reload.is_some() && ready > reload,
        "no reload ended by READY=1: {told:?}"
    );
    assert!(!told.iter().any(|m| m.contains("STOPPING=1")), "{told:?}");

    // Rejected: a typo, with its line; nothing written.
    let typo = changed.replace("bitrate_kbps = 700", "bitrat = 700");
    noc.send(
        SITE,
        "config.set",
        cmd("cfg-2", json!({"toml": typo})),
        "c2",
    );
    let r = noc.wait_reply("cfg-2", "rejected", Duration::from_secs(10));
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("unknown key 'bitrat' in [video]"),
        "{r}"
    );
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), changed);

    // Failed and rolled back: valid, but the daemon cannot serve its socket there.
    let socket_line = changed
        .lines()
        .find(|l| l.starts_with("socket = "))
        .unwrap()
        .to_owned();
    let broken = changed.replace(&socket_line, "socket = \"/proc/diemcau/api.sock\"");
    noc.send(
        SITE,
        "config.set",
        cmd("cfg-3", json!({"toml": broken})),
        "c3",
    );
    let r = noc.wait_reply("cfg-3", "failed", Duration::from_secs(40));
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("previous configuration is back"),
        "{r}"
    );
    assert_eq!(
        std::fs::read_to_string(&d.config).unwrap(),
        changed,
        "last known good restored"
    );
    assert_eq!(d.phase(), "idle");

    // The NOC's way of changing one key: config.get, edit, config.set. The
    // secrets come back as *** and keep the box's values.
    let with_secret = format!(
        "{changed}\n[uplink]\nurl = \"srt://127.0.0.1:9\"\npassphrase = \"kept-secret-123\"\n"
    );
    noc.send(
        SITE,
        "config.set",
        cmd("cfg-4", json!({"toml": with_secret})),
        "c4",
    );
    noc.wait_reply("cfg-4", "done", Duration::from_secs(30));
    noc.send(SITE, "config.get", cmd("cfg-5", json!({})), "c5");
    let mut doc =
        noc.wait_reply("cfg-5", "done", Duration::from_secs(5))["result"]["config"].clone();
    assert_eq!(doc["uplink"]["passphrase"], "***");
    doc["video"]["bitrate_kbps"] = json!(800);
    let edited = toml::to_string(&doc).unwrap();
    noc.send(
        SITE,
        "config.set",
        cmd("cfg-6", json!({"toml": edited})),
        "c6",
    );
    noc.wait_reply("cfg-6", "done", Duration::from_secs(30));
    let written: toml::Table = std::fs::read_to_string(&d.config).unwrap().parse().unwrap();
    assert_eq!(
        written["uplink"]["passphrase"].as_str(),
        Some("kept-secret-123")
    );
    assert_eq!(written["video"]["bitrate_kbps"].as_integer(), Some(800));
    // A *** inside a URL cannot be told from the URL: refused, nothing written.
    let before = std::fs::read_to_string(&d.config).unwrap();
    doc["uplink"]["url"] = json!("srt://127.0.0.1:9?passphrase=***");
    noc.send(
        SITE,
        "config.set",
        cmd("cfg-7", json!({"toml": toml::to_string(&doc).unwrap()})),
        "c7",
    );
    let r = noc.wait_reply("cfg-7", "rejected", Duration::from_secs(10));
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("[uplink] url still holds ***"),
        "{r}"
    );
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), before);
}

/// `diemcau doctor`'s network checks against the real peers: the broker's
/// TLS identity (mutual TLS, as the daemon connects) and an SRT handshake
/// with the hub (srt-live-transmit) using the configured passphrase. Wrong
/// certificates or a wrong passphrase are FAILs with a hint.
#[test]
fn doctor_checks_broker_identity_and_hub_handshake() {
    let _g = serial();
    let s = setup();
    let hub_port = common::free_udp_port();
    let out = tempfile::tempdir().unwrap();
    let mut hub = common::SrtReceiver::new(hub_port, &out.path().join("hub.ts"));
    hub.passphrase = Some("doctor-passphrase-1".into());
    hub.start();
    // Another CA, which did not sign the broker's certificate.
    let other = tempfile::tempdir().unwrap();
    make_certs(other.path(), SITE);
    let doctor = |ca: &Path, passphrase: &str| -> (Value, Value) {
        let cfg = mqtt_config(&s.certs, s.broker.port).replace(
            &format!("{}/ca.crt", s.certs.display()),
            &ca.display().to_string(),
        ) + &format!(
            "\n[uplink]\nurl = \"srt://127.0.0.1:{hub_port}\"\npassphrase = \"{passphrase}\"\n"
        );
        let path = out.path().join("config.toml");
        std::fs::write(&path, cfg).unwrap();
        let o = Command::new(common::BIN)
            .args(["doctor", "--json", "--lang", "en", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let r: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stdout)));
        let find = |prefix: &str| {
            r["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"].as_str().unwrap().starts_with(prefix))
                .cloned()
                .unwrap_or_else(|| panic!("no {prefix} check in {r}"))
        };
        (find("MQTT broker"), find("Provincial hub"))
    };

    let (broker, hub_check) = doctor(&s.certs.join("ca.crt"), "doctor-passphrase-1");
    assert_eq!(broker["verdict"], "PASS", "{broker}");
    assert!(
        broker["detail"].as_str().unwrap().contains("verified"),
        "{broker}"
    );
    assert_eq!(hub_check["verdict"], "PASS", "{hub_check}");
    assert!(
        hub_check["detail"]
            .as_str()
            .unwrap()
            .contains("handshake OK"),
        "{hub_check}"
    );

    let (broker, hub_check) = doctor(&other.path().join("ca.crt"), "a-wrong-passphrase");
    assert_eq!(broker["verdict"], "FAIL", "{broker}");
    assert!(!broker["hint"].as_str().unwrap().is_empty());
    assert_eq!(hub_check["verdict"], "FAIL", "{hub_check}");
    assert!(
        hub_check["hint"].as_str().unwrap().contains("passphrase"),
        "{hub_check}"
    );
    // Nothing was streamed to the hub by the checks.
    assert!(hub.bytes() == 0, "the doctor sent media to the hub");
}

/// A distinct secret planted in every secret key (both SRT passphrases, the
/// broker password, the archive's secret key) and the client's private key
/// file: nothing the box says may contain any of them. Captured: everything
/// it publishes over MQTT (status, state, health, events, the replies to
/// `config.get` and `diagnostics` with the self-test), its whole debug log,
/// the CLI's `status --json`, `doctor --json` and `config check` (of a good
/// and of a broken file), and what `provision` leaves on the setup
/// partition (`KET-QUA.txt`, the rewritten `site.toml`) and prints.
#[test]
fn no_secret_leaves_the_box() {
    let _g = serial();
    let s = setup();
    let hub_port = common::free_udp_port();
    let feed_port = common::free_udp_port();
    let secrets = [
        "UplinkPassphrase-s3cr3t-A1",
        "ReturnPassphrase-s3cr3t-B2",
        "MqttPassword-s3cr3t-C3",
        "ArchiveSecretKey-s3cr3t-D4",
    ];
    // The private key: its base64 body, line by line.
    let key_pem = std::fs::read_to_string(s.certs.join("box.key")).unwrap();
    let key_lines: Vec<String> = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(str::to_owned)
        .collect();
    assert!(!key_lines.is_empty(), "the key file has a body");
    let extra = format!(
        "username = \"box\"\npassword = \"{mqtt}\"\n\n\
         [uplink]\nurl = \"srt://127.0.0.1:{hub_port}\"\npassphrase = \"{up}\"\n\n\
         [return_feed]\nenabled = true\nurl = \"srt://127.0.0.1:{feed_port}\"\npassphrase = \"{ret}\"\n\n\
         [archive]\nendpoint = \"http://127.0.0.1:{s3}\"\nbucket = \"rec\"\naccess_key_id = \"GKtest\"\nsecret_access_key = \"{arc}\"\n",
        mqtt = secrets[2],
        up = secrets[0],
        ret = secrets[1],
        arc = secrets[3],
        s3 = common::free_tcp_port(),
    );
    let config = mqtt_config(&s.certs, s.broker.port) + &extra;
    let noc = Noc::connect(
        &s.certs,
        s.broker.port,
        "noc-secrets",
        false,
        &site_filter(),
    );
    let d = Daemon::start(&config);
    status_msg(&noc, "online", None);
    let mut said: Vec<(String, String)> = Vec::new();

    // A session, so the uplink, the return feed, the recorder and the
    // uploader all run (and fail to reach their peers, and log it).
    d.start_session();
    std::thread::sleep(Duration::from_secs(3));
    let out = d.cli(&["stop"]);
    said.push(("stop".into(), String::from_utf8_lossy(&out.stdout).into()));

    noc.send(SITE, "config.get", cmd("sec-get", json!({})), "g");
    let r = noc.wait_reply("sec-get", "done", Duration::from_secs(15));
    assert_eq!(r["result"]["config"]["uplink"]["passphrase"], "***", "{r}");
    assert_eq!(r["result"]["config"]["archive"]["secret_access_key"], "***");
    noc.send(
        SITE,
        "diagnostics",
        cmd("sec-diag", json!({"self_test": true})),
        "d",
    );
    noc.wait_reply("sec-diag", "done", Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2)); // a health period or two more

    for args in [
        &["status", "--json"][..],
        &["doctor", "--json"][..],
        &["recordings", "ls", "--json"][..],
    ] {
        let out = d.cli(args);
        said.push((
            args.join(" "),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }
    for (what, text) in [
        ("a good file", std::fs::read_to_string(&d.config).unwrap()),
        (
            "a broken file",
            std::fs::read_to_string(&d.config)
                .unwrap()
                .replace("[uplink]\n", "[uplink]\npasphrase = 1\n"),
        ),
    ] {
        let f = d.dir.path().join("check.toml");
        std::fs::write(&f, text).unwrap();
        let out = Command::new(common::BIN)
            .args(["config", "check"])
            .arg(&f)
            .output()
            .unwrap();
        said.push((
            format!("config check ({what})"),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }

    // Provisioning from a setup partition holding the same secrets.
    let setup_dir = tempfile::tempdir().unwrap();
    let certs = setup_dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(s.certs.join("ca.crt"), certs.join("ca.pem")).unwrap();
    std::fs::copy(s.certs.join("box.crt"), certs.join("box.pem")).unwrap();
    std::fs::copy(s.certs.join("box.key"), certs.join("box.key")).unwrap();
    let site = format!(
        "[site]\nid = \"{SITE}\"\nname = \"Xã Thử Nghiệm\"\n\n[video]\nsource = \"synthetic\"\n\n[audio]\nsource = \"synthetic\"\n\n\
         [display]\nsink = \"none\"\n\n[speaker]\nsink = \"none\"\n\n[mqtt]\nurl = \"mqtts://localhost:{port}\"\nusername = \"box\"\npassword = \"{mqtt}\"\n\n\
         [uplink]\nurl = \"srt://127.0.0.1:{hub_port}\"\npassphrase = \"{up}\"\n\n\
         [return_feed]\nenabled = true\nurl = \"srt://127.0.0.1:{feed_port}\"\npassphrase = \"{ret}\"\n\n\
         [archive]\nendpoint = \"http://127.0.0.1:9\"\nbucket = \"rec\"\naccess_key_id = \"GKtest\"\nsecret_access_key = \"{arc}\"\n\n\
         [daemon]\nstate_dir = \"{state}\"\n",
        state = setup_dir.path().join("state").display(),
        port = s.broker.port,
        mqtt = secrets[2],
        up = secrets[0],
        ret = secrets[1],
        arc = secrets[3],
    );
    std::fs::write(setup_dir.path().join("site.toml"), &site).unwrap();
    let live = tempfile::tempdir().unwrap();
    let live_config = live.path().join("config.toml");
    let out = Command::new(common::BIN)
        .args(["provision", "--setup"])
        .arg(setup_dir.path())
        .arg("--config")
        .arg(&live_config)
        .output()
        .unwrap();
    said.push((
        "provision".into(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ));
    let result = std::fs::read_to_string(setup_dir.path().join("KET-QUA.txt")).unwrap_or_default();
    assert!(
        result.contains("ĐÃ NHẬN"),
        "the site file was accepted: {result}\n{}",
        said.last().unwrap().1
    );
    said.push(("KET-QUA.txt".into(), result));
    said.push((
        "site.toml after provisioning".into(),
        std::fs::read_to_string(setup_dir.path().join("site.toml")).unwrap(),
    ));
    // The secrets did reach the box's own config (so the test can fail).
    assert!(std::fs::read_to_string(&live_config)
        .unwrap()
        .contains(secrets[0]));

    let log = d.log_text();
    assert!(log.len() > 1000, "the debug log was captured");
    said.push(("the daemon's log".into(), log));
    let msgs = noc.msgs();
    for kind in ["status", "state", "health", "event"] {
        assert!(
            msgs.iter().any(|m| m.topic.ends_with(&format!("/{kind}"))),
            "captured no {kind} message"
        );
    }
    for m in msgs {
        said.push((m.topic.clone(), m.payload.to_string()));
    }

    let mut leaks = Vec::new();
    for (what, text) in &said {
        for secret in secrets
            .iter()
            .map(|s| s.to_string())
            .chain(key_lines.clone())
        {
            if text.contains(&secret) {
                leaks.push(format!("{what} contains {secret}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets left the box:\n{}",
        leaks.join("\n")
    );
    println!(
        "checked {} outputs for {} secrets and the private key",
        said.len(),
        secrets.len()
    );
}

/// Over MQTT the same commands answer with the same shapes as on the
/// socket; the old `recordings.list` (session history) still answers as
/// before with a note; what is for someone at the box is refused.
#[test]
fn mqtt_takes_the_command_layers_names_and_its_table() {
    let _g = serial();
    let s = setup();
    let noc = Noc::connect(
        &s.certs,
        s.broker.port,
        "noc-names",
        false,
        &["diemcau/v1/+/cmd/+/reply".to_string()],
    );
    let d = Daemon::start(&mqtt_config(&s.certs, s.broker.port));
    std::thread::sleep(Duration::from_millis(500));
    d.start_session();
    d.cli(&["stop"]);

    noc.send(SITE, "status", cmd("n-status", json!({})), "1");
    let r = noc.wait_reply("n-status", "done", Duration::from_secs(10));
    assert_eq!(r["result"]["phase"], "idle", "{r}");
    assert_eq!(r["result"]["site_id"], SITE, "the status object itself");

    noc.send(SITE, "recording.list", cmd("n-recs", json!({})), "2");
    let r = noc.wait_reply("n-recs", "done", Duration::from_secs(10));
    let local = d.request(r#"{"cmd":"recording.list"}"#).unwrap();
    assert_eq!(
        r["result"], local["result"],
        "same shape on both transports"
    );

    noc.send(
        SITE,
        "session.history",
        cmd("n-hist", json!({"limit": 3})),
        "3",
    );
    let new = noc.wait_reply("n-hist", "done", Duration::from_secs(10));
    noc.send(
        SITE,
        "recordings.list",
        cmd("n-old", json!({"limit": 3})),
        "4",
    );
    let old = noc.wait_reply("n-old", "done", Duration::from_secs(10));
    assert_eq!(
        new["result"]["sessions"], old["result"]["sessions"],
        "{new} {old}"
    );
    assert!(old["result"]["note"]
        .as_str()
        .unwrap()
        .contains("deprecated"));

    for (id, name, args, why) in [
        (
            "n-del",
            "recording.delete",
            json!({"id": "x", "force": true}),
            "not available over MQTT",
        ),
        (
            "n-btn",
            "button.test",
            json!({"seconds": 5}),
            "not available over MQTT",
        ),
        ("n-up", "upload.retry", json!({}), "no archive"),
    ] {
        noc.send(SITE, name, cmd(id, args), id);
        let r = noc.wait_reply(id, "rejected", Duration::from_secs(10));
        assert!(r["error"].as_str().unwrap().contains(why), "{name}: {r}");
    }
}

/// Time witnesses: while a session records, the NOC receives its chain head
/// at least every `witness_interval_s` (2 s here) and once more when the
/// recording closes. Each is a link of the chain the signed manifest holds,
/// so a recording made up later cannot match what the NOC stored at the
/// time.
#[test]
fn the_noc_witnesses_the_chain_head_while_recording() {
    let _g = serial();
    let s = setup();
    let noc = Noc::connect(
        &s.certs,
        s.broker.port,
        "noc-witness",
        false,
        &site_filter(),
    );
    let d = Daemon::start(
        &(mqtt_config(&s.certs, s.broker.port) + "\n[recording]\nwitness_interval_s = 2\n"),
    );
    status_msg(&noc, "online", None);
    let id = d.start_session()["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_secs(9));
    assert!(d.cli(&["stop"]).status.success());
    let closing = noc.wait_for("the closing witness", Duration::from_secs(10), |m| {
        m.payload["type"] == "chain_witness" && m.payload["closing"] == true
    });
    let witnesses: Vec<Value> = noc
        .msgs()
        .into_iter()
        .filter(|m| {
            m.topic.ends_with("/event")
                && m.payload["type"] == "chain_witness"
                && m.payload["session"] == id.as_str()
        })
        .map(|m| m.payload)
        .collect();
    let m: Value = serde_json::from_slice(&d.cli(&["recordings", "manifest", &id]).stdout).unwrap();
    let segments = m["segments"].as_array().unwrap();
    println!(
        "{} witnesses of a {}-segment recording: {:?}",
        witnesses.len(),
        segments.len(),
        witnesses
            .iter()
            .map(|w| (
                w["at"].as_str().unwrap_or("").to_owned(),
                w["segments"].clone()
            ))
            .collect::<Vec<_>>()
    );
    assert!(witnesses.len() >= 3, "{witnesses:?}");
    for w in &witnesses {
        let n = w["segments"].as_u64().unwrap() as usize;
        assert!(n >= 1 && n <= segments.len(), "{w}");
        assert_eq!(w["chain_head"], segments[n - 1]["chain"], "{w}");
    }
    assert_eq!(closing.payload["chain_head"], m["chain_head"]);
    assert_eq!(closing.payload["segments"], segments.len());
    // At least every interval (2 s, with a second of slack for the
    // recorder's one-second tick).
    let times: Vec<chrono::DateTime<chrono::Utc>> = witnesses
        .iter()
        .map(|w| w["at"].as_str().unwrap().parse().unwrap())
        .collect();
    for pair in times.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!(gap <= 3_200, "witnesses {gap} ms apart: {times:?}");
    }

    // The NOC's witnesses, as it kept them, against the recording: on the
    // box and, for the reference verifier, on a bundle of it. One witness
    // altered and the copy no longer matches what the NOC holds.
    let kept = d.dir.path().join("witnesses.jsonl");
    let lines = |ws: &[Value]| ws.iter().map(|w| w.to_string() + "\n").collect::<String>();
    std::fs::write(&kept, lines(&witnesses)).unwrap();
    let bundle = d.dir.path().join("bundle");
    assert!(d
        .cli(&[
            "recordings",
            "export",
            &id,
            "--bundle",
            bundle.to_str().unwrap()
        ])
        .status
        .success());
    let rec_dir = bundle.join("ban-ghi");
    let both = |file: &Path, code: i32| {
        let out = d.cli(&[
            "recordings",
            "verify",
            &id,
            "--witnesses",
            file.to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(code), "{text}");
        let (c, r) = common::reference_verify(&rec_dir, &["--witnesses", file.to_str().unwrap()]);
        assert_eq!(c, Some(code), "verify-recording.py disagrees: {r:#}");
        text
    };
    let said = both(&kept, 0);
    assert!(said.contains("chain witnesses from the NOC hold"), "{said}");
    let mut altered = witnesses.clone();
    altered[1]["chain_head"] = Value::from("00".repeat(32));
    let bad = d.dir.path().join("altered.jsonl");
    std::fs::write(&bad, lines(&altered)).unwrap();
    let said = both(&bad, 3);
    assert!(said.contains("another chain"), "{said}");
}

/// The audit trail: a session started and stopped and a recording exported
/// at the box by named people (over the socket: the Unix account comes
/// from the kernel, the name from the CLI), and a `config.set` the NOC sent
/// (refused here: it was for another site). Each is in `diemcau audit` with
/// who, and reaches the NOC as an `audited` event with the same hash; an
/// edited record breaks the chain.
#[test]
fn the_audit_trail_records_who_did_what_and_reaches_the_noc() {
    let _g = serial();
    let s = setup();
    let noc = Noc::connect(&s.certs, s.broker.port, "noc-audit", false, &site_filter());
    let d = Daemon::start(&mqtt_config(&s.certs, s.broker.port));
    status_msg(&noc, "online", None);
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    ok(d.cli(&["start", "--operator", "Nguyễn Văn An"]));
    std::thread::sleep(Duration::from_secs(3));
    ok(d.cli(&["stop", "--operator", "Nguyễn Văn An"]));
    let id = d.status()["last_session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out_file = d.dir.path().join("copy.ts");
    ok(d.cli(&[
        "recordings",
        "export",
        &id,
        "--out",
        out_file.to_str().unwrap(),
        "--operator",
        "Trần Thị Bình",
    ]));
    let mut c = cmd(
        "audit-cfg",
        json!({"toml": "[site]\nid = \"xa-khac\"\nname = \"X\"\n"}),
    );
    c["by"] = json!("noc-truc-ban");
    noc.send(SITE, "config.set", c, "a");
    noc.wait_reply("audit-cfg", "rejected", Duration::from_secs(15));

    // On the box.
    let me = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned();
    let t0 = Instant::now();
    let records = loop {
        let v: Value = serde_json::from_slice(&ok(d.cli(&["audit", "--json"])).stdout).unwrap();
        let records = v["records"].as_array().unwrap().clone();
        if records.iter().any(|r| r["action"] == "config.set") {
            assert_eq!(v["intact"], true, "{v:#}");
            break records;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{v:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let find = |action: &str| {
        records
            .iter()
            .find(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {records:#?}"))
            .clone()
    };
    for action in ["session.start", "session.stop"] {
        let r = find(action);
        assert_eq!(r["who"]["via"], "socket", "{r}");
        assert_eq!(r["who"]["user"], me.as_str(), "{r}");
        assert_eq!(r["who"]["name"], "Nguyễn Văn An", "{r}");
        assert_eq!(r["target"], id.as_str(), "{r}");
        assert_eq!(r["outcome"], "done", "{r}");
    }
    let export = find("recording.export");
    assert_eq!(export["who"]["name"], "Trần Thị Bình");
    assert_eq!(export["target"], id.as_str());
    let bytes = std::fs::metadata(&out_file).unwrap().len();
    assert_eq!(export["outcome"], format!("done: {bytes} bytes"));
    let config = find("config.set");
    assert_eq!(config["who"]["via"], "mqtt");
    assert_eq!(config["who"]["name"], "noc-truc-ban");
    assert_eq!(config["who"]["detail"], "audit-cfg");
    assert!(
        config["outcome"].as_str().unwrap().starts_with("refused:"),
        "{config}"
    );

    // At the NOC: the same records, hash for hash.
    for r in [&export, &config] {
        let hash = r["hash"].clone();
        noc.wait_for(
            &format!("the audited event of {}", r["action"]),
            Duration::from_secs(10),
            |m| m.payload["type"] == "audited" && m.payload["hash"] == hash,
        );
    }
    let text = String::from_utf8(ok(d.cli(&["audit"])).stdout).unwrap();
    println!("{text}");
    assert!(text.contains("the chain holds"), "{text}");

    // An edited record: the chain says where.
    let log = d.dir.path().join("state/audit.log");
    let original = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, original.replace("Trần Thị Bình", "Người Khác")).unwrap();
    let out = d.cli(&["audit"]);
    assert_eq!(out.status.code(), Some(3));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("CHAIN BROKEN: audit record {}", export["seq"])),
        "{said}"
    );
}

/// The province's reference broker configuration (`noc/mosquitto/`), as
/// shipped: the daemon works through it unchanged; another box (its own
/// certificate, CN `xa-b`) can neither command this box nor publish under
/// its tree nor read its commands, but has its own; the NOC can do all.
#[test]
fn the_reference_broker_keeps_each_box_to_its_own_topics() {
    let _g = serial();
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = certs_dir.path();
    make_certs(certs, SITE);
    common::mqtt::client_cert(certs, "box-b", "xa-b");
    let broker = Broker::reference(certs);
    let noc = Noc::connect(
        certs,
        broker.port,
        "noc-acl",
        false,
        &["diemcau/#".to_owned()],
    );
    let d = Daemon::start(&mqtt_config(certs, broker.port));
    status_msg(&noc, "online", None);
    noc.send(SITE, "status", cmd("acl-1", json!({})), "a");
    noc.wait_reply("acl-1", "done", Duration::from_secs(10));

    let b = Noc::connect_as(
        certs,
        "box-b",
        broker.port,
        "xa-b",
        false,
        &[
            format!("diemcau/v1/{SITE}/cmd/+"),
            "diemcau/v1/xa-b/cmd/+".to_owned(),
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    // Box B commands box A and forges an event in its tree: dropped.
    b.send(SITE, "session.start", cmd("forged-1", json!({})), "f");
    b.publish(
        &format!("diemcau/v1/{SITE}/event"),
        json!({"id": "forged", "type": "session_started"}),
    );
    // Box B's own tree and commands work.
    b.publish(
        "diemcau/v1/xa-b/event",
        json!({"id": "b-1", "type": "note"}),
    );
    noc.send("xa-b", "status", cmd("to-b", json!({})), "b");
    noc.wait_for("box B's own event", Duration::from_secs(5), |m| {
        m.topic == "diemcau/v1/xa-b/event" && m.payload["id"] == "b-1"
    });
    b.wait_for("its own command", Duration::from_secs(5), |m| {
        m.topic == "diemcau/v1/xa-b/cmd/status"
    });
    // The NOC commands box A: A answers; B never sees it.
    noc.send(SITE, "status", cmd("acl-2", json!({})), "c");
    noc.wait_reply("acl-2", "done", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !b.msgs()
            .iter()
            .any(|m| m.topic.starts_with(&format!("diemcau/v1/{SITE}/"))),
        "box B read box A's commands: {:#?}",
        b.msgs()
    );
    assert!(
        !noc.msgs().iter().any(|m| m.payload["id"] == "forged"
            || m.topic == format!("diemcau/v1/{SITE}/cmd/session.start")),
        "box B published under box A's tree"
    );
    assert_eq!(
        d.status()["phase"],
        "idle",
        "a forged command started a session"
    );
    let log = std::fs::read_to_string(certs.join("mosquitto.log")).unwrap_or_default();
    println!(
        "refused by the ACL: {} lines in the broker's log",
        log.lines().filter(|l| l.contains("Denied")).count()
    );
}

/// The NOC's schedule, run by the box's own clock. Published retained while
/// the broker is up; then the broker is gone: the session starts within 2 s
/// of its time, the room is warned before the planned end, the session ends
/// at it, and the events reach the NOC once the broker is back. A schedule
/// the box cannot take is refused with the entry and field named, and the
/// one it held stays.
#[test]
fn a_scheduled_session_runs_by_the_boxs_clock_with_the_broker_down() {
    let _g = serial();
    let mut s = setup();
    let event_topic = format!("diemcau/v1/{SITE}/event");
    let noc = Noc::connect(
        &s.certs,
        s.broker.port,
        "noc-schedule",
        true,
        &site_filter(),
    );
    let cfg = format!(
        "{}\n[schedule]\ntime_zone = \"Asia/Ho_Chi_Minh\"\nwarn_before_s = [10]\n",
        mqtt_config(&s.certs, s.broker.port)
    );
    let d = Daemon::start(&cfg);
    status_msg(&noc, "online", None);
    let received = |noc: &Noc, revision: u64| {
        noc.wait_for(
            &format!("schedule revision {revision} received"),
            Duration::from_secs(10),
            |m| {
                m.topic == event_topic
                    && m.payload["type"] == "schedule_received"
                    && (m.payload["revision"] == revision || m.payload["error"].is_string())
            },
        )
        .payload
    };
    let topic = format!("diemcau/v1/{SITE}/schedule");
    // In the box's zone, to the second: 8 s from now, for 14 s.
    let tz = jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
    let start = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 8).unwrap();
    let end = start + jiff::SignedDuration::from_secs(14);
    let local = |t: jiff::Timestamp| tz.to_datetime(t).strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let doc = |revision: u64, extra: &str| {
        format!(
            r#"{{"revision": {revision}, "entries": [{{"id": "tiep-dan", "title": "Tiếp công dân",
            "start": "{}", "end": "{}", "metadata": {{"case": "HS-9"}}{extra}}}]}}"#,
            local(start),
            local(end)
        )
    };
    noc.publish_retained(&topic, doc(7, "").as_bytes());
    assert!(received(&noc, 7)["error"].is_null());
    // A wrong field: refused, named, and the schedule held stays.
    noc.publish_retained(&topic, doc(8, r#", "room": 2"#).as_bytes());
    let refused = received(&noc, 8);
    let why = refused["error"].as_str().unwrap_or_default();
    assert!(why.contains("unknown field `room`"), "{refused}");
    let st = d.status();
    assert_eq!(st["schedule"]["sources"][0]["revision"], 7, "{st:#}");
    // The box's own view of what it holds.
    let shown = d
        .request(r#"{"cmd": "schedule.show"}"#)
        .expect("schedule.show answers");
    assert_eq!(
        shown["result"]["documents"]["site"]["revision"], 7,
        "{shown:#}"
    );
    assert_eq!(
        shown["result"]["upcoming"][0]["title"], "Tiếp công dân",
        "{shown:#}"
    );
    assert_eq!(st["schedule"]["next"]["title"], "Tiếp công dân", "{st:#}");
    // The NOC's retained copy must not be the refused one when the box
    // reconnects: the NOC puts the good one back, as it would.
    noc.publish_retained(&topic, doc(7, "").as_bytes());
    std::thread::sleep(Duration::from_millis(500));
    s.broker.kill9();

    // Live within 2 s of its time, by the box's clock alone.
    let mut live_at = None;
    while live_at.is_none() {
        let st = d.status();
        if st["phase"] == "live" {
            live_at = Some(jiff::Timestamp::now());
            assert_eq!(st["session"]["metadata"]["case"], "HS-9", "{st:#}");
            assert_eq!(
                st["schedule"]["current"]["occurrence"],
                format!("site/tiep-dan/{}", &local(start)[..16]),
                "{st:#}"
            );
        }
        assert!(
            jiff::Timestamp::now() < start + jiff::SignedDuration::from_secs(10),
            "no scheduled session: {st:#}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let late = start.duration_until(live_at.unwrap());
    println!(
        "scheduled session live {:.2} s after its time",
        late.as_secs_f64()
    );
    assert!(late.as_secs_f64() < 2.0, "late by {late:?}");
    // The warning, then the planned end.
    let mut warned = false;
    loop {
        let st = d.status();
        warned |= st["schedule"]["notice"]["kind"] == "ends_at";
        if st["phase"] == "idle" {
            break;
        }
        assert!(
            jiff::Timestamp::now() < end + jiff::SignedDuration::from_secs(8),
            "the session did not end at its planned end: {st:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let over = end.duration_until(jiff::Timestamp::now());
    println!("ended {:.2} s after its planned end", over.as_secs_f64());
    assert!(warned, "no warning on the screen before the planned end");
    assert!(over.as_secs_f64() > -0.5, "ended early by {over:?}");

    // The broker back: what happened reaches the NOC.
    s.broker.start();
    for state in ["started", "warned", "ended"] {
        let e = noc
            .wait_for(
                &format!("scheduled {state}"),
                Duration::from_secs(20),
                |m| {
                    m.topic == event_topic
                        && m.payload["type"] == "scheduled"
                        && m.payload["state"] == state
                },
            )
            .payload;
        println!("{e}");
        assert_eq!(e["title"], "Tiếp công dân");
        if state == "ended" {
            assert_eq!(e["planned"], true, "{e}");
        }
    }
}

/// Groups: three boxes, two in `huyen-x`, all three in `toan-tinh`. A
/// `session.start` sent to `group/huyen-x` starts exactly its two members,
/// each answering for itself, and both sessions carry the one group session
/// id (in the state, the `session_starting` event and the session's
/// metadata, which the manifest takes); the third box hears nothing. The
/// fleet CLI publishes a group schedule that every member takes, refuses a
/// wrong file without publishing it, and shows what the broker holds.
#[test]
fn a_group_command_reaches_exactly_its_members() {
    let _g = serial();
    let s = setup();
    let noc = Noc::connect(
        &s.certs,
        s.broker.port,
        "noc-groups",
        true,
        &["diemcau/v1/#".to_owned()],
    );
    let sites = [("grp-a", true), ("grp-b", true), ("grp-c", false)];
    let boxes: Vec<Daemon> = sites
        .iter()
        .map(|(site, member)| {
            let text = mqtt_config(&s.certs, s.broker.port)
                .replace(&format!("id = \"{SITE}\""), &format!("id = \"{site}\""));
            let groups = if *member {
                r#"["huyen-x", "toan-tinh"]"#
            } else {
                r#"["toan-tinh"]"#
            };
            Daemon::start(&format!("{text}\n[schedule]\ngroups = {groups}\n"))
        })
        .collect();
    for (site, _) in sites {
        let topic = format!("diemcau/v1/{site}/status");
        noc.wait_for(&format!("{site} online"), Duration::from_secs(15), |m| {
            m.topic == topic && m.payload["status"] == "online"
        });
    }
    noc.send(
        "group/huyen-x",
        "session.start",
        cmd("grp-1", json!({"metadata": {"case": "HS-7"}})),
        "grp-1",
    );
    let t0 = Instant::now();
    let done = |noc: &Noc| -> Vec<String> {
        let mut v: Vec<String> = noc
            .replies("grp-1")
            .into_iter()
            .filter(|r| r["status"] == "done")
            .map(|r| r["site"].as_str().unwrap_or_default().to_owned())
            .collect();
        v.sort();
        v
    };
    while done(&noc).len() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "replies: {:?}",
            noc.replies("grp-1")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(done(&noc), ["grp-a", "grp-b"]);
    assert!(
        noc.replies("grp-1").iter().all(|r| r["site"] != "grp-c"),
        "{:?}",
        noc.replies("grp-1")
    );
    assert_eq!(boxes[2].status()["phase"], "idle");
    for (i, (site, _)) in sites[..2].iter().enumerate() {
        let st = boxes[i].status();
        assert_eq!(st["phase"], "live", "{site}: {st:#}");
        assert_eq!(
            st["session"]["metadata"]["group_session"], "huyen-x/grp-1",
            "{site}: {st:#}"
        );
        let state_topic = format!("diemcau/v1/{site}/state");
        noc.wait_for(&format!("{site}'s state"), Duration::from_secs(10), |m| {
            m.topic == state_topic && m.payload["metadata"]["group_session"] == "huyen-x/grp-1"
        });
        let event_topic = format!("diemcau/v1/{site}/event");
        noc.wait_for(
            &format!("{site}'s session_starting"),
            Duration::from_secs(10),
            |m| {
                m.topic == event_topic
                    && m.payload["type"] == "session_starting"
                    && m.payload["group_session"] == "huyen-x/grp-1"
            },
        );
    }

    // The fleet CLI's schedules, for the whole province's group.
    let fleet = |args: &[&str]| {
        let out = fleet_cli(&s).args(args).output().expect("diemcau fleet");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"entries": [{"id": "tinh", "title": "Tiếp dân toàn tỉnh", "start": "2027-01-07T08:00", "rrule": "FREQ=YEARLY"}]}"#,
    )
    .unwrap();
    let (code, out) = fleet(&["schedule", "set", "group/toan-tinh", bad.to_str().unwrap()]);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("entry 'tinh', field 'rrule'") && out.contains("is not published"),
        "{out}"
    );
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"{"revision": 2, "entries": [{"id": "tinh", "title": "Tiếp dân toàn tỉnh", "start": "2027-01-07T08:00", "end": "2027-01-07T10:00", "rrule": "FREQ=WEEKLY;BYDAY=TH"}]}"#,
    )
    .unwrap();
    let (code, out) = fleet(&["schedule", "set", "group/toan-tinh", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    for (site, _) in sites {
        let event_topic = format!("diemcau/v1/{site}/event");
        let e = noc
            .wait_for(
                &format!("{site} took the group schedule"),
                Duration::from_secs(10),
                |m| m.topic == event_topic && m.payload["type"] == "schedule_received",
            )
            .payload;
        assert_eq!(e["source"], "group/toan-tinh", "{e}");
        assert_eq!(e["revision"], 2, "{e}");
    }
    // Only one schedule_received per box: the refused file never went out.
    let received = noc
        .msgs()
        .iter()
        .filter(|m| m.topic.ends_with("/event") && m.payload["type"] == "schedule_received")
        .count();
    assert_eq!(received, 3);
    let (code, out) = fleet(&["schedule", "show", "group/toan-tinh", "--days", "400"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Thu 2027-01-07 08:00  tinh  Tiếp dân toàn tỉnh"),
        "{out}"
    );
    let (code, out) = fleet(&["schedule", "clear", "group/toan-tinh"]);
    assert_eq!(code, Some(0), "{out}");
}

/// The picture as RGB, `w` × `h`, decoded by ffmpeg (not by the code that
/// wrote the JPEG).
fn decode_jpeg(file: &Path, w: u32, h: u32) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args([
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            &format!("{w}x{h}"),
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Stills for the NOC, through the fleet CLI: the room's screen idle (the
/// standby screen: dark, with white words) and during the display test (its
/// colour bars), the camera idle (the camera opened for the still) and
/// live (its last frame, the session's stream going on). Each is a JPEG
/// ffmpeg decodes at the width asked; each is in the audit trail; a wrong
/// source is refused and names what is taken.
#[test]
fn snapshots_of_the_camera_and_the_screen_idle_and_live() {
    let _g = serial();
    let s = setup();
    let d = Daemon::start(&mqtt_config(&s.certs, s.broker.port));
    let noc = Noc::connect(&s.certs, s.broker.port, "noc-stills", true, &site_filter());
    status_msg(&noc, "online", None);
    let dir = tempfile::tempdir().unwrap();
    let still = |source: &str, width: &str, name: &str| -> (bool, String, PathBuf) {
        let file = dir.path().join(name);
        let out = fleet_cli(&s)
            .args([
                "snapshot", SITE, "--source", source, "--width", width, "--out",
            ])
            .arg(&file)
            .output()
            .expect("diemcau fleet");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
            file,
        )
    };
    let bright = |rgb: &[u8]| {
        rgb.chunks_exact(3)
            .filter(|p| p[0] > 200 && p[1] > 200 && p[2] > 200)
            .count()
    };
    let mean =
        |rgb: &[u8]| rgb.iter().map(|v| u64::from(*v)).sum::<u64>() / rgb.len().max(1) as u64;

    // The standby screen (1280 × 720 here): 320 wide, as asked; dark, with
    // white words.
    let (ok, out, file) = still("screen", "320", "standby.jpg");
    assert!(ok, "{out}");
    println!("{out}");
    assert!(out.contains("screen 320x180"), "{out}");
    let rgb = decode_jpeg(&file, 160, 90);
    assert!(
        mean(&rgb) < 80 && bright(&rgb) > 20,
        "mean {} bright {}",
        mean(&rgb),
        bright(&rgb)
    );

    // The display test's colour bars.
    noc.send(
        SITE,
        "display.test",
        cmd("dt-1", json!({"seconds": 8})),
        "dt-1",
    );
    noc.wait_reply("dt-1", "done", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    let (ok, out, file) = still("screen", "640", "bars.jpg");
    assert!(ok, "{out}");
    let rgb = decode_jpeg(&file, 160, 90);
    let yellow = rgb
        .chunks_exact(3)
        .filter(|p| p[0] > 150 && p[1] > 150 && p[2] < 80)
        .count();
    let cyan = rgb
        .chunks_exact(3)
        .filter(|p| p[0] < 80 && p[1] > 150 && p[2] > 150)
        .count();
    assert!(
        yellow > 500 && cyan > 500,
        "no colour bars: yellow {yellow}, cyan {cyan}"
    );

    // The camera while idle: opened for the still; the synthetic ball on
    // black. Never wider than the camera's own 320 × 240.
    let (ok, out, file) = still("camera", "640", "camera-idle.jpg");
    assert!(ok, "{out}");
    assert!(out.contains("camera 320x240"), "{out}");
    let rgb = decode_jpeg(&file, 160, 120);
    assert!(
        bright(&rgb) > 10 && mean(&rgb) < 100,
        "no ball: {}",
        bright(&rgb)
    );

    // Live: the camera's last frame, and the stream goes on.
    d.start_session();
    std::thread::sleep(Duration::from_secs(1));
    let before = d.status()["media"]["video_frames_encoded"]
        .as_u64()
        .unwrap_or(0);
    let (ok, out, file) = still("camera", "160", "camera-live.jpg");
    assert!(ok, "{out}");
    assert!(out.contains("camera 160x120"), "{out}");
    let rgb = decode_jpeg(&file, 160, 120);
    assert!(bright(&rgb) > 10, "no ball while live");
    std::thread::sleep(Duration::from_secs(1));
    let st = d.status();
    let after = st["media"]["video_frames_encoded"].as_u64().unwrap_or(0);
    assert!(
        after > before + 20,
        "the stream stalled around the still: {before} → {after}"
    );
    assert_eq!(st["phase"], "live");

    // Through the archive, on a box that has none: refused, saying so.
    let out = fleet_cli(&s)
        .args(["snapshot", SITE, "--archive", "--out"])
        .arg(dir.path().join("none.jpg"))
        .output()
        .expect("diemcau fleet");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("no archive is configured"),
        "{said}"
    );
    // A wrong source: refused, saying what is taken.
    let (ok, out, _) = still("ceiling", "640", "no.jpg");
    assert!(
        !ok && out.contains("expected \"camera\" or \"screen\""),
        "{out}"
    );
    // Every still taken is in the audit trail, with what it showed.
    let audit: Value = serde_json::from_slice(&d.cli(&["audit", "--json"]).stdout).unwrap();
    let stills: Vec<(&str, &str)> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "snapshot")
        .map(|r| {
            (
                r["target"].as_str().unwrap_or_default(),
                // "done", or "refused: why".
                r["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .split(':')
                    .next()
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        stills,
        [
            ("screen", "done"),
            ("screen", "done"),
            ("camera", "done"),
            ("camera", "done"),
            ("camera", "refused")
        ],
        "{audit:#}"
    );
}

/// Logs on request: the NOC asks for a box's journal through the fleet CLI;
/// the box uploads it, gzip, secrets out, to the archive (and a still the
/// NOC wants through the archive goes the same way) (Garage, an S3
/// server nobody here wrote), and the CLI fetches it with the link in the
/// reply. journald does not run here (no systemd as PID 1), so a stand-in
/// `journalctl` prints what the box's journal would hold, with the box's
/// own secrets in it, and records the arguments it was given; the virtual
/// room runs the real one.
#[test]
fn logs_and_stills_on_request_reach_the_archive_without_a_secret() {
    let _g = serial();
    let s = setup();
    if common::garage_bin().is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "garage is installed by .ci/run"
        );
        eprintln!("SKIP: garage is not installed (tests/quickstart.sh installs it)");
        return;
    }
    let mut garage = common::Garage::new();
    garage.start();
    let programs = tempfile::tempdir().unwrap();
    let args_file = programs.path().join("args");
    let passphrase = "srt-pass-0123456789";
    let script = format!(
        "#!/bin/sh\necho \"$@\" > {}\n\
         echo '2026-11-30T08:00:01+0000 box diemcau[1]: uplink connecting to srt://hub:7001?passphrase={passphrase}'\n\
         echo '2026-11-30T08:00:02+0000 box diemcau[1]: archive key {secret}'\n\
         echo '2026-11-30T08:00:03+0000 box diemcau[1]: session live'\n",
        args_file.display(),
        secret = garage.secret,
    );
    let journalctl = programs.path().join("journalctl");
    std::fs::write(&journalctl, script).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&journalctl).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(
        &journalctl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cfg = format!(
        "{}{}",
        mqtt_config(&s.certs, s.broker.port),
        garage.archive_toml()
    )
    .replace(
        "[uplink]\n",
        &format!("[uplink]\npassphrase = \"{passphrase}\"\n"),
    );
    let d = Daemon::start_with_programs(&cfg, programs.path());
    let noc = Noc::connect(&s.certs, s.broker.port, "noc-logs", true, &site_filter());
    status_msg(&noc, "online", None);
    // The fleet CLI with `--out FILE` last; it must succeed. What it said.
    let fleet_to = |args: &[&str], file: &std::path::Path| -> String {
        let out = fleet_cli(&s)
            .args(args)
            .arg("--out")
            .arg(file)
            .output()
            .expect("diemcau fleet");
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{said}\n{}", d.log_text());
        println!("{said}");
        said
    };
    let out_file = programs.path().join("box.log.gz");
    fleet_to(
        &[
            "logs",
            SITE,
            "--since",
            "2026-11-30T07:00:00Z",
            "--until",
            "2026-11-30T09:00:00Z",
        ],
        &out_file,
    );
    // The range went to journalctl as asked, for the box's own services.
    let args = std::fs::read_to_string(&args_file).unwrap();
    assert!(
        args.contains("--since=2026-11-30 07:00:00 UTC")
            && args.contains("--until=2026-11-30 09:00:00 UTC")
            && args.contains("diemcau.service"),
        "{args}"
    );
    // In the archive under the box's logs, and what came back is the
    // journal, gzip, without a secret.
    let key = "logs/test-xa-01/20261130T070000Z--20261130T090000Z.log.gz";
    assert!(
        garage.list().iter().any(|k| k.ends_with(key)),
        "{:?}",
        garage.list()
    );
    let text = Command::new("gzip")
        .args(["-dc"])
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("session live"), "{text}");
    assert!(
        !text.contains(passphrase) && !text.contains(&garage.secret),
        "{text}"
    );
    assert_eq!(text.matches("***").count(), 2, "{text}");
    // A range it cannot read: a clear refusal, and journalctl never ran.
    std::fs::remove_file(&args_file).unwrap();
    let e = d.request(r#"{"cmd": "logs.upload", "args": {"since": "yesterday"}}"#);
    assert!(
        e.as_ref().is_some_and(|v| v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not an RFC 3339 time")),
        "{e:?}"
    );
    assert!(!args_file.exists(), "journalctl ran for a refused request");

    // A still through the archive (what the NOC asks for a full-size one,
    // and what a still above a reply's 150 KB takes): the reply carries
    // the key and a link, the fleet CLI saves what the link gives.
    let still = programs.path().join("camera.jpg");
    let said = fleet_to(
        &[
            "snapshot",
            SITE,
            "--source",
            "camera",
            "--width",
            "320",
            "--archive",
        ],
        &still,
    );
    assert!(said.contains("stills/test-xa-01/"), "{said}");
    let rgb = decode_jpeg(&still, 160, 120);
    assert!(
        rgb.iter().any(|v| *v > 200),
        "no ball in the archived still"
    );
    assert!(
        garage
            .list()
            .iter()
            .any(|k| k.contains("stills/test-xa-01/") && k.ends_with("-camera.jpg")),
        "{:?}",
        garage.list()
    );
}
