//! The Debian package the OS image installs: built from this checkout by
//! image/build-deb.sh, with the daemon, its unit, user, tmpfiles and udev
//! rules, and reproducible byte for byte.

mod common;

use std::path::Path;
use std::process::Command;

fn build(out: &Path) -> std::path::PathBuf {
    let o = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/image/build-deb.sh"))
        .arg(common::BIN)
        .arg(out)
        .env("SOURCE_DATE_EPOCH", "1767225600")
        // The test builds twice from a debug binary: fast compression.
        .env("DEB_COMPRESSION", "gzip")
        .output()
        .expect("build-deb.sh");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().into()
}

#[test]
fn debian_package_has_everything_and_is_reproducible() {
    if !common::have("dpkg-deb") {
        eprintln!("SKIP: dpkg-deb is not installed; the package is not checked");
        return;
    }
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let deb = build(a.path());
    let deb2 = build(b.path());
    assert_eq!(
        std::fs::read(&deb).unwrap(),
        std::fs::read(&deb2).unwrap(),
        "not reproducible"
    );

    let info = Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("Package: diemcau"), "{info}");
    assert!(
        info.contains("gstreamer1.0-plugins-bad") && info.contains("fonts-dejavu-core"),
        "{info}"
    );

    let root = tempfile::tempdir().unwrap();
    assert!(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(root.path())
        .status()
        .unwrap()
        .success());
    for f in [
        "usr/bin/diemcau",
        "usr/lib/systemd/system/diemcau.service",
        "usr/lib/sysusers.d/diemcau.conf",
        "usr/lib/tmpfiles.d/diemcau.conf",
        "usr/lib/udev/rules.d/99-diemcau.rules",
        "usr/share/doc/diemcau/example.toml",
    ] {
        assert!(root.path().join(f).exists(), "{f} missing from the package");
    }
    let unit = std::fs::read_to_string(root.path().join("usr/lib/systemd/system/diemcau.service"))
        .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/diemcau run"));
    let v = Command::new(root.path().join("usr/bin/diemcau"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("diemcau "));
}
