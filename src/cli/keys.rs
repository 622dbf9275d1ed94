//! `diemcau fleet keys`: the NOC's file of the fleet's enrolled device
//! keys (`core::device_key`). Keys enter it from installation reports
//! (`enroll`), never from what a box announces; `check` compares the
//! announcements in the boxes' retained status with it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::core::device_key::{self, Enrolled, FleetKeys};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Enroll a box's key from its installation report (KET-QUA.txt, or
    /// the public key in hex). Writes the keys file (made if absent).
    Enroll {
        /// The keys file the NOC keeps (JSON).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        site: String,
        /// The box's public key (64 hex digits) or its KET-QUA.txt.
        key: String,
        /// A different key for a site that has one: a replaced box or
        /// disk. The current key then signs only recordings started before
        /// --from.
        #[arg(long)]
        rotate: bool,
        /// When the new key took over (RFC 3339; default now). For a
        /// rotation, the date of the replacement in the installation
        /// report.
        #[arg(long, value_name = "TIME")]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// A word for people: the report's number, who installed.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// The enrolled keys.
    Ls {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Compare the key each box announces (its retained status) with the
    /// enrolled one. Exit 0 only when every box announces its enrolled key.
    Check {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// Seconds to collect the retained statuses.
        #[arg(long, default_value_t = 2)]
        wait: u64,
    },
}

/// Read the keys file; a missing file is an empty fleet only when `may_be_new`.
pub fn read(file: &Path, may_be_new: bool) -> anyhow::Result<FleetKeys> {
    match std::fs::read_to_string(file) {
        Ok(text) => FleetKeys::parse(&text).with_context(|| format!("{}", file.display())),
        Err(e) if may_be_new && e.kind() == std::io::ErrorKind::NotFound => {
            Ok(FleetKeys::default())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the keys file {}", file.display())),
    }
}

/// The public key given on the command line: hex, or found in an
/// installation report (`KET-QUA.txt`, its "public key:" line).
fn key_arg(arg: &str) -> anyhow::Result<String> {
    if device_key::is_public_key(arg) {
        return Ok(arg.trim().to_ascii_lowercase());
    }
    let text = std::fs::read_to_string(arg).with_context(|| {
        format!("'{arg}' is neither a public key (64 hex digits) nor a readable KET-QUA.txt")
    })?;
    text.lines()
        .filter_map(|l| l.split_once("public key:"))
        .map(|(_, k)| k.trim())
        .find(|k| device_key::is_public_key(k))
        .map(str::to_ascii_lowercase)
        .with_context(|| format!("{arg} holds no public key line (is it the box's KET-QUA.txt?)"))
}

pub fn run(cmd: KeysCommand, noc: Option<&crate::mqtt::fleet::Noc>) -> anyhow::Result<i32> {
    match cmd {
        KeysCommand::Enroll {
            file,
            site,
            key,
            rotate,
            from,
            note,
        } => {
            let mut keys = read(&file, true)?;
            let key = key_arg(&key)?;
            let at = from.unwrap_or_else(chrono::Utc::now);
            let done = keys.enroll(&site, &key, at, rotate, &note)?;
            crate::util::atomic_write(&file, keys.to_json().as_bytes(), None)
                .with_context(|| format!("cannot write {}", file.display()))?;
            let fp = device_key::fingerprint(&key);
            match done {
                Enrolled::New => println!("{site}: enrolled key {fp}"),
                Enrolled::Same => println!("{site}: key {fp} was already enrolled"),
                Enrolled::Rotated { old } => println!(
                    "{site}: key {fp} from {at}; the old key {} signs only recordings started before",
                    device_key::fingerprint(&old)
                ),
            }
            Ok(0)
        }
        KeysCommand::Ls { file } => {
            let keys = read(&file, false)?;
            for (site, list) in &keys.sites {
                for k in list {
                    let t = |d: Option<chrono::DateTime<chrono::Utc>>| {
                        d.map(|d| d.to_rfc3339()).unwrap_or_else(|| "…".into())
                    };
                    println!(
                        "{site:<28} {}  {} – {}  {}",
                        device_key::fingerprint(&k.public_key),
                        t(k.from),
                        t(k.until),
                        k.note
                    );
                }
            }
            Ok(0)
        }
        KeysCommand::Check { file, wait } => {
            let Some(noc) = noc else {
                bail!("fleet keys check reads the boxes' status: give --broker");
            };
            let keys = read(&file, false)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let statuses =
                rt.block_on(crate::mqtt::fleet::statuses(noc, Duration::from_secs(wait)))?;
            let mut bad = 0;
            for (site, st) in &statuses {
                let announced = st["device_key"]["public_key"].as_str();
                let current = keys.current(site).map(|k| k.public_key.as_str());
                let said = match (announced, current) {
                    (None, _) => {
                        bad += 1;
                        "NO KEY ANNOUNCED (a version before key pinning?)".to_owned()
                    }
                    (Some(a), Some(c)) if a == c => {
                        format!("OK {}", device_key::fingerprint(a))
                    }
                    (Some(a), None) => {
                        bad += 1;
                        format!(
                            "NOT ENROLLED: announces {}; compare with the installation report, \
                             then `diemcau fleet keys enroll --file {} {site} KET-QUA.txt`",
                            device_key::fingerprint(a),
                            file.display()
                        )
                    }
                    (Some(a), Some(c)) => {
                        bad += 1;
                        format!(
                            "DIFFERENT: announces {}, enrolled {}. Not adopted: a replaced box or \
                             disk is enrolled with --rotate from its new report; otherwise treat \
                             the box as not ours",
                            device_key::fingerprint(a),
                            device_key::fingerprint(c)
                        )
                    }
                };
                println!("{site:<28} {said}");
            }
            for site in keys.sites.keys().filter(|s| !statuses.contains_key(*s)) {
                bad += 1;
                println!("{site:<28} NOT SEEN: enrolled, but no status on the broker");
            }
            Ok(if bad == 0 { 0 } else { 1 })
        }
    }
}
