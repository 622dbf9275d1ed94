//! The systemd unit is hardened: `systemd-analyze security --offline=yes`
//! scores it at 3.0 or lower (where systemd-analyze exists), and it is a
//! notify service with a watchdog that always restarts.

use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/diemcau.service");

#[test]
fn unit_has_notify_watchdog_restart() {
    let text = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "Type=notify",
        "Restart=always",
        "User=diemcau",
        "StateDirectory=diemcau",
        "RuntimeDirectory=diemcau",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}");
    }
    assert!(text.lines().any(|l| l.starts_with("WatchdogSec=")));
    assert!(text.contains("ExecStart=/usr/bin/diemcau run --config /etc/diemcau/config.toml"));
}

#[test]
fn unit_exposure_is_at_most_3() {
    let Ok(out) = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager", UNIT])
        .output()
    else {
        eprintln!("SKIP: systemd-analyze is not installed here; the unit's score is not checked");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no score in:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unreadable score line: {line}"));
    eprintln!("systemd-analyze security: {score}");
    assert!(score <= 3.0, "{line}");
}
