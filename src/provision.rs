//! Provisioning from the setup partition: the small FAT partition of the OS
//! image (drive "DIEMCAU" on a laptop) where a technician writes `site.toml`
//! and the box's certificates.
//!
//! On every boot, before the daemon starts, `diemcau provision` compares the
//! partition with what it last took in. When it changed, the site file is
//! validated with the same code as `diemcau config check`, against the
//! certificates it names, in a staging directory beside the live config:
//! - valid: the config and certificates replace the live ones (written,
//!   synced, renamed), private keys are deleted from the FAT partition and
//!   secret values in `site.toml` are replaced by [`SECRET_MARKER`], which
//!   the next ingest fills back from the protected copy;
//! - invalid: nothing live changes; what is wrong, with the line, goes to
//!   `provision.json` beside the config (the display and `diemcau doctor`
//!   tell it in their language) and, in Vietnamese and English, to
//!   `KET-QUA.txt` on the partition.
//!
//! What the technician reads is worded in `core::words::provision`; this
//! module records what it found ([`Ingest`]).
//!
//! A box that has never had a valid site file runs on [`unprovisioned`], so
//! the display can still say what is wrong.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{Config, ConfigError, Language};
use crate::core::device_key::DeviceKeyId;
use crate::core::secrets::{find_value, replace_value, SECRET_KEYS};
use crate::core::words::provision as words;
pub use crate::core::words::provision::{Ingest, Moved, SECRET_MARKER};

/// The config of a box that has not taken in a valid site file yet: the
/// display and the local devices work, nothing is sent anywhere.
pub fn unprovisioned() -> String {
    // The config leaves `daemon.language` at its default, Vietnamese, so
    // its name on the screen is Vietnamese too.
    let name = toml::Value::String(words::unprovisioned_site_name(Language::Vi).into());
    format!(
        r#"# Written by `diemcau provision`: this box has no valid site.toml yet.
[site]
id = "chua-cau-hinh"
name = {name}

[video]
source = "v4l2"
device = "/dev/video0"

[display]
sink = "kms"
"#
    )
}

/// The site file on the setup partition.
pub const SITE_FILE: &str = "site.toml";
/// The result written back to the setup partition for the technician.
pub const RESULT_FILE: &str = "KET-QUA.txt";

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProvisionError + '_ {
    move |source| ProvisionError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The outcome of the last ingest, kept beside the config as
/// `provision.json`: what the display and `diemcau doctor` report.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    pub ok: bool,
    /// Unix seconds of the ingest.
    pub at: i64,
    /// Fingerprint of the setup partition's site file and certificates as
    /// left after the ingest: unchanged means nothing to do.
    pub fingerprint: String,
    /// Line of the site file the error is on, when it has one.
    pub line: Option<usize>,
    /// What the ingest came to, told in the reader's language by
    /// [`Status::message`].
    pub ingest: Ingest,
    /// A refused site file left the box on its previous configuration.
    pub kept_previous: bool,
}

impl Status {
    /// What the box says about the ingest, in `lang`.
    pub fn message(&self, lang: Language) -> String {
        words::message(lang, &self.ingest, self.kept_previous)
    }
}

/// Where the ingest status of the config at `config` lives.
pub fn status_path(config: &Path) -> PathBuf {
    config.with_file_name("provision.json")
}

/// The last ingest's status, if this box is provisioned from a partition.
/// A file this version cannot read (an older one's) counts as none: the
/// next ingest runs again and writes it anew.
pub fn read_status(config: &Path) -> Option<Status> {
    let text = std::fs::read_to_string(status_path(config)).ok()?;
    serde_json::from_str(&text).ok()
}

/// What one run did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The partition is as it was after the last ingest.
    Unchanged,
    /// A new site file was taken in.
    Applied,
    /// The site file was refused; the live config did not change.
    Rejected(Status),
}

/// Take in the setup partition mounted at `setup` into the config at
/// `config` (its directory holds `certs/` and `provision.json`).
pub fn run(setup: &Path, config: &Path, now: i64) -> Result<Outcome, ProvisionError> {
    let dir = config.parent().unwrap_or(Path::new("/"));
    let site_path = setup.join(SITE_FILE);
    let fingerprint = fingerprint(setup);
    let last = read_status(config);
    if config.exists()
        && last
            .as_ref()
            .is_some_and(|s| s.fingerprint == fingerprint && (s.ok || !site_path.exists()))
    {
        return Ok(Outcome::Unchanged);
    }
    let site = match std::fs::read_to_string(&site_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return reject(setup, config, now, fingerprint, None, Ingest::NoSiteFile);
        }
        Err(e) => {
            return reject(
                setup,
                config,
                now,
                fingerprint,
                None,
                Ingest::Unreadable {
                    error: e.to_string(),
                },
            );
        }
    };

    // Secrets the technician left as the marker come from the live config.
    let current: Option<toml::Table> = std::fs::read_to_string(config)
        .ok()
        .and_then(|t| t.parse().ok());
    let text = match crate::core::secrets::keep_marked(&site, current.as_ref(), SECRET_MARKER) {
        Ok(text) => text,
        Err(lost) => {
            return reject(
                setup,
                config,
                now,
                fingerprint,
                Some(lost.line),
                Ingest::SecretLost {
                    line: lost.line,
                    section: lost.section,
                    key: lost.key,
                },
            );
        }
    };

    // Stage: the live certificates, overlaid by the partition's.
    let staging = dir.join(".provision-new");
    let _ = std::fs::remove_dir_all(&staging);
    let certs = staging.join("certs");
    std::fs::create_dir_all(&certs).map_err(io(&certs))?;
    copy_files(&dir.join("certs"), &certs)?;
    copy_files(&setup.join("certs"), &certs)?;
    let staged = staging.join("config.toml");
    write_synced(&staged, text.as_bytes())?;
    let state_dir = match Config::parse(&staged, &text) {
        Ok(c) => c.daemon.state_dir,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            let (line, ingest) = explain(&e, &staging);
            return reject(setup, config, now, fingerprint, line, ingest);
        }
    };

    // Install: certificates first, then the config by rename.
    protect(&staging, config_group(config))?;
    let live_certs = dir.join("certs");
    let old = dir.join("certs.old");
    let _ = std::fs::remove_dir_all(&old);
    if live_certs.exists() {
        std::fs::rename(&live_certs, &old).map_err(io(&live_certs))?;
    }
    std::fs::rename(&certs, &live_certs).map_err(io(&live_certs))?;
    std::fs::rename(&staged, config).map_err(io(config))?;
    sync_dir(dir);
    let _ = std::fs::remove_dir_all(&old);
    let _ = std::fs::remove_dir_all(&staging);

    // Secrets off the FAT partition: private keys deleted, secret values
    // replaced by the marker (only when the rewrite provably changes nothing
    // else).
    let mut moved = Vec::new();
    if let Ok(rd) = std::fs::read_dir(setup.join("certs")) {
        for e in rd.flatten() {
            let p = e.path();
            let private = std::fs::read(&p)
                .map(|b| String::from_utf8_lossy(&b).contains("PRIVATE KEY"))
                .unwrap_or(false);
            if private && std::fs::remove_file(&p).is_ok() {
                moved.push(Moved::PrivateKey(format!(
                    "certs/{}",
                    e.file_name().to_string_lossy()
                )));
            }
        }
    }
    if let Some(redacted) = redact(&site) {
        if redacted != site {
            write_synced(&site_path, redacted.as_bytes())?;
            moved.push(Moved::Secrets);
        }
    }
    let status = Status {
        ok: true,
        at: now,
        fingerprint: self::fingerprint(setup),
        line: None,
        ingest: Ingest::Accepted { moved },
        kept_previous: false,
    };
    let key = device_key(&state_dir);
    finish(setup, config, &status, key.as_ref())?;
    Ok(Outcome::Applied)
}

fn reject(
    setup: &Path,
    config: &Path,
    now: i64,
    fingerprint: String,
    line: Option<usize>,
    ingest: Ingest,
) -> Result<Outcome, ProvisionError> {
    let kept_previous = config.exists();
    if !kept_previous {
        // Never configured: a config that starts the display, nothing else.
        if let Some(dir) = config.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        write_synced(config, unprovisioned().as_bytes())?;
        protect_file(config, config_group(config));
    }
    let status = Status {
        ok: false,
        at: now,
        fingerprint,
        line,
        ingest,
        kept_previous,
    };
    // The key belongs in the report even when the site file has a mistake:
    // the box already signs with it.
    let key = crate::config::load(config)
        .ok()
        .and_then(|c| device_key(&c.daemon.state_dir));
    finish(setup, config, &status, key.as_ref())?;
    Ok(Outcome::Rejected(status))
}

/// Record the status beside the config and tell the technician on the
/// partition.
/// The user the daemon runs as (systemd/diemcau.service), who must own its
/// signing key.
const DAEMON_USER: &str = "diemcau";

/// Make the box's signing key now if it has none, so that the technician's
/// report carries its fingerprint from the first boot (the province pins
/// it: `core::device_key`). Provisioning runs as root before the daemon:
/// the key and its state directory are given to the daemon's user.
fn device_key(state_dir: &Path) -> Option<DeviceKeyId> {
    let fresh = !state_dir.exists();
    let new_key = !state_dir.join(crate::recorder::keys::KEY_FILE).exists();
    let key = match crate::recorder::keys::load_or_create(state_dir) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!("no device key for the report: {e}");
            return None;
        }
    };
    if let Some((uid, gid)) = daemon_user() {
        if fresh {
            let _ = std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o750));
            let _ = std::os::unix::fs::chown(state_dir, Some(uid), Some(gid));
        }
        for f in [
            crate::recorder::keys::KEY_FILE,
            crate::recorder::keys::PUBLIC_FILE,
        ] {
            let _ = std::os::unix::fs::chown(state_dir.join(f), Some(uid), Some(gid));
        }
    }
    let id = crate::recorder::keys::id(&key);
    if new_key {
        // A new key is a key change: the province must enrol it.
        let recorded = crate::audit::AuditLog::new(state_dir).append(
            crate::core::audit::Who::via("provision"),
            "device_key.created",
            None,
            &format!("done: fingerprint {}", id.fingerprint),
        );
        if let Err(e) = recorded {
            tracing::warn!("the key's creation is not in the audit trail: {e}");
        }
    }
    Some(id)
}

/// The daemon user's uid and gid, when we run as root and it exists.
fn daemon_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new(DAEMON_USER).ok()?;
    // SAFETY: `name` is a valid C string for the call; the returned record
    // is read at once, before any other call that could overwrite it, and
    // a null pointer (no such user) is checked first.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return None;
        }
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn finish(
    setup: &Path,
    config: &Path,
    status: &Status,
    key: Option<&DeviceKeyId>,
) -> Result<(), ProvisionError> {
    let json = serde_json::to_vec_pretty(status).unwrap_or_default();
    let path = status_path(config);
    write_synced(&path, &json)?;
    protect_file(&path, config_group(config));
    let when = chrono::DateTime::from_timestamp(status.at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    let result = words::result_file(&when, &status.ingest, status.kept_previous, key);
    // The partition may be read-only or full; the status file is what counts.
    if let Err(e) = write_synced(&setup.join(RESULT_FILE), result.as_bytes()) {
        tracing::warn!("cannot write the result onto the setup partition: {e}");
    }
    Ok(())
}

/// A config error as the technician is told it: the line, with the staging
/// path shown as `site.toml`.
fn explain(e: &ConfigError, staging: &Path) -> (Option<usize>, Ingest) {
    let strip = |m: &str| {
        m.replace(&staging.join("certs").display().to_string(), "certs")
            .replace(&staging.display().to_string(), "")
    };
    match e {
        ConfigError::Invalid {
            line, key, message, ..
        } => (
            Some(*line),
            Ingest::Invalid {
                line: *line,
                key: key.clone(),
                message: strip(message),
            },
        ),
        ConfigError::Read { source, .. } => (
            None,
            Ingest::StagedUnreadable {
                error: source.to_string(),
            },
        ),
    }
}

/// SHA-256 over the site file and the certificates, by name and content.
fn fingerprint(setup: &Path) -> String {
    let mut h = Sha256::new();
    let mut files = vec![setup.join(SITE_FILE)];
    if let Ok(rd) = std::fs::read_dir(setup.join("certs")) {
        let mut certs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        certs.sort();
        files.extend(certs);
    }
    for f in files {
        if let Ok(bytes) = std::fs::read(&f) {
            h.update(
                f.strip_prefix(setup)
                    .unwrap_or(&f)
                    .to_string_lossy()
                    .as_bytes(),
            );
            h.update([0]);
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
    }
    hex::encode(h.finalize())
}

fn copy_files(from: &Path, to: &Path) -> Result<(), ProvisionError> {
    let Ok(rd) = std::fs::read_dir(from) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_file() {
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            write_synced(&to.join(e.file_name()), &bytes)?;
        }
    }
    Ok(())
}

/// Config and certificates: readable by root and the daemon's group only.
fn protect(staging: &Path, group: Option<u32>) -> Result<(), ProvisionError> {
    let certs = staging.join("certs");
    let _ = std::fs::set_permissions(&certs, std::fs::Permissions::from_mode(0o750));
    if let Some(g) = group {
        let _ = std::os::unix::fs::chown(&certs, Some(0), Some(g));
    }
    for e in std::fs::read_dir(&certs).map_err(io(&certs))?.flatten() {
        protect_file(&e.path(), group);
    }
    protect_file(&staging.join("config.toml"), group);
    Ok(())
}

/// The group of the config's directory (root:diemcau on the box), which
/// the config and certificates get too.
fn config_group(config: &Path) -> Option<u32> {
    let dir = config.parent()?;
    std::fs::metadata(dir).ok().map(|m| m.gid())
}

fn protect_file(path: &Path, group: Option<u32>) {
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640));
    if let Some(g) = group {
        // Only root may give a file away; a test run as a user keeps its own.
        let _ = std::os::unix::fs::chown(path, Some(0), Some(g));
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ProvisionError> {
    crate::util::atomic_write(path, bytes, None).map_err(io(path))
}

fn sync_dir(dir: &Path) {
    crate::util::sync_dir(dir);
}

/// The site file with every non-empty secret replaced by the marker, or
/// `None` when the rewrite would change anything else (then the file is left
/// as it is).
fn redact(site: &str) -> Option<String> {
    let mut text = site.to_owned();
    for (section, key) in SECRET_KEYS {
        if let Some((line, v)) = find_value(&text, section, key) {
            if !v.is_empty() && v != SECRET_MARKER {
                text = replace_value(&text, line, SECRET_MARKER);
            }
        }
    }
    let mut before: toml::Table = site.parse().ok()?;
    let after: toml::Table = text.parse().ok()?;
    for (section, key) in SECRET_KEYS {
        if let Some(t) = before.get_mut(*section).and_then(|s| s.as_table_mut()) {
            if let Some(v) = t.get_mut(*key) {
                if v.as_str().is_some_and(|s| !s.is_empty()) {
                    *v = toml::Value::String(SECRET_MARKER.into());
                }
            }
        }
    }
    (before == after).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = r#"# comment
[site]
id = "ha-tinh-xa-a"
name = "UBND xã A"

[video]
source = "synthetic"

[audio]
source = "synthetic"

[display]
sink = "none"

[speaker]
sink = "none"

[uplink]
url = "srt://hub.example:9000"
passphrase = "mot-mat-khau-dai"   # << SRT

[daemon]
state_dir = "/tmp/x"
"#;

    struct Box {
        _dir: tempfile::TempDir,
        setup: PathBuf,
        config: PathBuf,
    }

    fn new_box(site: Option<&str>) -> Box {
        let dir = tempfile::tempdir().unwrap();
        let setup = dir.path().join("setup");
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(setup.join("certs")).unwrap();
        std::fs::create_dir_all(&etc).unwrap();
        if let Some(s) = site {
            // Each box its own state directory: provisioning makes the
            // device key there.
            let state = dir.path().join("state");
            std::fs::write(
                setup.join(SITE_FILE),
                s.replace("/tmp/x", state.to_str().unwrap()),
            )
            .unwrap();
        }
        Box {
            setup,
            config: etc.join("config.toml"),
            _dir: dir,
        }
    }

    #[test]
    fn a_valid_site_is_applied_once_and_its_secret_leaves_the_partition() {
        let b = new_box(Some(SITE));
        assert_eq!(run(&b.setup, &b.config, 1).unwrap(), Outcome::Applied);
        let live = std::fs::read_to_string(&b.config).unwrap();
        assert!(live.contains("mot-mat-khau-dai"));
        let fat = std::fs::read_to_string(b.setup.join(SITE_FILE)).unwrap();
        assert!(!fat.contains("mot-mat-khau-dai"), "{fat}");
        assert!(
            fat.contains(SECRET_MARKER) && fat.contains("# << SRT"),
            "{fat}"
        );
        assert!(read_status(&b.config).unwrap().ok);
        let result = std::fs::read_to_string(b.setup.join(RESULT_FILE)).unwrap();
        assert!(result.contains("ĐÃ NHẬN"));
        // The report carries the key the box signs with, made now.
        let state = b.config.parent().unwrap().parent().unwrap().join("state");
        let key = crate::recorder::keys::read_public(&state).unwrap();
        assert!(
            result.contains(&format!("fingerprint: {}\r\n", key.fingerprint))
                && result.contains(&key.public_key),
            "{result}"
        );
        // Next boot: nothing changed.
        assert_eq!(run(&b.setup, &b.config, 2).unwrap(), Outcome::Unchanged);
        // A later edit keeps the stored secret.
        let edited = fat.replace("UBND xã A", "UBND xã B");
        std::fs::write(b.setup.join(SITE_FILE), edited).unwrap();
        assert_eq!(run(&b.setup, &b.config, 3).unwrap(), Outcome::Applied);
        let live = std::fs::read_to_string(&b.config).unwrap();
        assert!(live.contains("UBND xã B") && live.contains("mot-mat-khau-dai"));
    }

    #[test]
    fn a_mistake_changes_nothing_and_names_the_line_in_vietnamese() {
        let b = new_box(Some(SITE));
        run(&b.setup, &b.config, 1).unwrap();
        let before = std::fs::read_to_string(&b.config).unwrap();
        let fat = std::fs::read_to_string(b.setup.join(SITE_FILE)).unwrap();
        std::fs::write(
            b.setup.join(SITE_FILE),
            fat.replace(
                "source = \"synthetic\"\n\n[audio]",
                "sourse = \"synthetic\"\n\n[audio]",
            ),
        )
        .unwrap();
        let Outcome::Rejected(s) = run(&b.setup, &b.config, 2).unwrap() else {
            panic!("accepted a typo")
        };
        assert_eq!(s.line, Some(7));
        let (vi, en) = (s.message(Language::Vi), s.message(Language::En));
        assert!(vi.contains("dòng 7"), "{vi}");
        assert!(vi.contains("cấu hình cũ"), "{vi}");
        assert!(en.contains("sourse"), "{en}");
        assert_eq!(std::fs::read_to_string(&b.config).unwrap(), before);
        assert_eq!(read_status(&b.config).unwrap(), s);
        let result = std::fs::read_to_string(b.setup.join(RESULT_FILE)).unwrap();
        assert!(result.contains("CÓ LỖI") && result.contains("dòng 7"));
        // Rejected stays rejected (and reported) until the file changes.
        assert!(matches!(
            run(&b.setup, &b.config, 3).unwrap(),
            Outcome::Rejected(_)
        ));
    }

    #[test]
    fn a_first_boot_mistake_leaves_a_config_that_starts_the_display() {
        let b = new_box(Some("[site]\nid = \"Bad Id\"\n"));
        assert!(matches!(
            run(&b.setup, &b.config, 1).unwrap(),
            Outcome::Rejected(_)
        ));
        let c = crate::config::load(&b.config).unwrap();
        assert_eq!(c.site.id, "chua-cau-hinh");
        assert_eq!(
            c.site.name,
            words::unprovisioned_site_name(c.daemon.language)
        );
        let s = read_status(&b.config).unwrap();
        assert_eq!(s.line, Some(2));
    }

    #[test]
    fn no_site_file_is_reported() {
        let b = new_box(None);
        let Outcome::Rejected(s) = run(&b.setup, &b.config, 1).unwrap() else {
            panic!()
        };
        assert!(s
            .message(Language::Vi)
            .contains("Không tìm thấy tệp site.toml"));
    }

    #[test]
    fn certificates_are_checked_moved_and_keys_deleted_from_the_partition() {
        let site = SITE.replace(
            "[daemon]",
            "[mqtt]\nurl = \"mqtts://broker.example:8883\"\nca = \"certs/ca.pem\"\ncert = \"certs/box.pem\"\nkey = \"certs/box.key\"\n\n[daemon]",
        );
        let b = new_box(Some(&site));
        std::fs::write(b.setup.join("certs/ca.pem"), "CA").unwrap();
        std::fs::write(b.setup.join("certs/box.pem"), "CERT").unwrap();
        // The key is missing: the error names the key's line.
        let Outcome::Rejected(s) = run(&b.setup, &b.config, 1).unwrap() else {
            panic!()
        };
        let en = s.message(Language::En);
        assert!(en.contains("certs/box.key"), "{en}");
        assert!(!en.contains(".provision-new"), "{en}");
        std::fs::write(
            b.setup.join("certs/box.key"),
            "-----BEGIN PRIVATE KEY-----\nx\n",
        )
        .unwrap();
        assert_eq!(run(&b.setup, &b.config, 2).unwrap(), Outcome::Applied);
        let etc = b.config.parent().unwrap();
        assert!(etc.join("certs/box.key").is_file());
        assert!(!b.setup.join("certs/box.key").exists());
        assert!(b.setup.join("certs/ca.pem").exists());
        let mode = std::fs::metadata(etc.join("certs/box.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        // The next edit still validates: the key is taken from the box.
        let fat = std::fs::read_to_string(b.setup.join(SITE_FILE)).unwrap();
        std::fs::write(b.setup.join(SITE_FILE), fat.replace("xã A", "xã C")).unwrap();
        assert_eq!(run(&b.setup, &b.config, 3).unwrap(), Outcome::Applied);
    }

    #[test]
    fn redaction_keeps_everything_else() {
        let r = redact(SITE).unwrap();
        assert_eq!(r.lines().count(), SITE.lines().count());
        assert!(r.contains(&format!("passphrase = \"{SECRET_MARKER}\"  # << SRT")));
        // A value with a '#' inside is not mistaken for a comment.
        let s = "[uplink]\npassphrase = \"abc#defghijk\"\n";
        assert_eq!(
            redact(s).unwrap(),
            format!("[uplink]\npassphrase = \"{SECRET_MARKER}\"\n")
        );
    }
}
