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
    // Under the target directory, not /tmp: the extracted binary is run
    // below, and a builder's /tmp may be mounted noexec.
    let tmp = || tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let a = tmp();
    let b = tmp();
    let deb = build(a.path());
    let deb2 = build(b.path());
    if std::fs::read(&deb).unwrap() != std::fs::read(&deb2).unwrap() {
        // Say what differs (control fields, member list with sizes and
        // times), not a dump of two binaries.
        let show = |d: &Path| {
            let o = Command::new("dpkg-deb").arg("-I").arg(d).output().unwrap();
            let c = Command::new("dpkg-deb").arg("-c").arg(d).output().unwrap();
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&c.stdout)
            )
        };
        panic!(
            "not reproducible: two builds differ\n--- first\n{}\n--- second\n{}",
            show(&deb),
            show(&deb2)
        );
    }

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

    let root = tmp();
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
        "usr/share/doc/diemcau/bien-bao-ghi-hinh.html",
        "usr/share/doc/diemcau/verify-recording.py",
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
