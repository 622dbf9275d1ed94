//! Which key is a box's: the device key's fingerprint, and the fleet's
//! keys file the NOC keeps.
//!
//! A manifest's signature only proves that the key named in it signed. A
//! box's key is therefore *enrolled*: provisioning writes its fingerprint
//! and public key into `KET-QUA.txt`, the technician's installation report
//! carries them to the province, and the NOC records them in a keys file
//! (`diemcau fleet keys enroll`). Both verifiers take that file and refuse
//! a manifest whose key is not its site's for the time it was recorded.
//! What a box announces over MQTT is compared with the file, never added
//! to it: a stolen or forged box could otherwise re-key itself.
//!
//! The file (`docs/RECORDING-FORMAT.md`, "Pinned keys") is JSON:
//!
//! ```json
//! {"format": "diemcau-fleet-keys/1",
//!  "sites": {"xa-1": [{"public_key": "…64 hex…", "from": null, "until": "2027-03-01T00:00:00Z"},
//!                     {"public_key": "…", "from": "2027-03-01T00:00:00Z", "until": null}]}}
//! ```
//!
//! A site's keys follow each other in time: a rotation (a replaced box or
//! disk) closes the current key's period where the new one's starts, so
//! recordings made before it still verify against the old key.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const KEYS_FORMAT: &str = "diemcau-fleet-keys/1";

/// A device key as people compare it: the public key and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceKeyId {
    /// The Ed25519 public key, 64 lower-case hex digits (as in manifests).
    pub public_key: String,
    /// [`fingerprint`] of it.
    pub fingerprint: String,
}

impl DeviceKeyId {
    pub fn new(public_key_hex: &str) -> DeviceKeyId {
        let public_key = public_key_hex.trim().to_ascii_lowercase();
        DeviceKeyId {
            fingerprint: fingerprint(&public_key),
            public_key,
        }
    }
}

/// What a person reads aloud or copies onto paper: the first 16 bytes of
/// SHA-256 over the 32 raw key bytes, in eight groups of four hex digits.
/// 128 bits: finding another key with the same fingerprint is as hard as
/// breaking SHA-256's collision resistance at that length.
pub fn fingerprint(public_key_hex: &str) -> String {
    let raw = hex::decode(public_key_hex.trim()).unwrap_or_default();
    let digest = Sha256::digest(&raw);
    let h = hex::encode(&digest[..16]);
    h.as_bytes()
        .chunks(4)
        // Hex digits are ASCII, so every chunk is valid UTF-8.
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `s` is an Ed25519 public key in hex (64 digits).
pub fn is_public_key(s: &str) -> bool {
    let s = s.trim();
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One enrolled key of a site and the recordings it may sign: those that
/// started in `[from, until)`; an open end has no bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolledKey {
    pub public_key: String,
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Where it came from (an installation report, a date): for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl EnrolledKey {
    fn covers(&self, at: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| f <= at) && self.until.is_none_or(|u| at < u)
    }

    fn period(&self) -> String {
        let t = |d: &Option<DateTime<Utc>>| {
            d.map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| "…".into())
        };
        format!("{} – {}", t(&self.from), t(&self.until))
    }
}

/// The fleet's keys file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetKeys {
    pub format: String,
    pub sites: BTreeMap<String, Vec<EnrolledKey>>,
}

impl Default for FleetKeys {
    fn default() -> Self {
        FleetKeys {
            format: KEYS_FORMAT.into(),
            sites: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("not a fleet keys file: {0}")]
    Json(String),
    #[error("the keys file is format {0:?}; this version reads {KEYS_FORMAT}")]
    Format(String),
    #[error("site {site}: {key:?} is not an Ed25519 public key (64 hex digits)")]
    NotAKey { site: String, key: String },
    #[error("site {site}: the periods of its keys overlap or are out of order ({a} and {b})")]
    Overlap { site: String, a: String, b: String },
    #[error(
        "site {site} already has key {current} (fingerprint {fingerprint}); a different key is a \
         rotation: give --rotate, after checking the new key against the installation report"
    )]
    HasAnother {
        site: String,
        current: String,
        fingerprint: String,
    },
    #[error("site {site}: a rotation must start after its current key's ({from})")]
    RotateBefore { site: String, from: String },
}

/// What enrolling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrolled {
    /// The site's first key (covers everything before it too).
    New,
    /// Already the site's current key: nothing changed.
    Same,
    /// The old key's period now ends where the new one starts.
    Rotated { old: String },
}

/// Why a manifest's key is not its site's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerdict {
    Enrolled,
    UnknownSite { site: String },
    NotTheSites { site: String, key: String },
    OutsidePeriod { site: String, period: String },
}

impl KeyVerdict {
    /// The problem as a verifier reports it (None when the key is the
    /// site's).
    pub fn problem(&self, at: DateTime<Utc>) -> Option<String> {
        match self {
            KeyVerdict::Enrolled => None,
            KeyVerdict::UnknownSite { site } => Some(format!(
                "the keys file has no key for site {site}: who signed cannot be told"
            )),
            KeyVerdict::NotTheSites { site, key } => Some(format!(
                "signed by key {key} (fingerprint {}), which is not an enrolled key of site {site}: not this box's recording",
                fingerprint(key)
            )),
            KeyVerdict::OutsidePeriod { site, period } => Some(format!(
                "signed by a key of site {site} enrolled for recordings started {period}, but this one started {}",
                at.format("%Y-%m-%d %H:%M:%S UTC")
            )),
        }
    }
}

impl FleetKeys {
    pub fn parse(text: &str) -> Result<FleetKeys, KeysError> {
        let mut k: FleetKeys =
            serde_json::from_str(text).map_err(|e| KeysError::Json(e.to_string()))?;
        // Hex in either case, compared in one: a hand-edited file must
        // mean the same to every verifier.
        for keys in k.sites.values_mut() {
            for key in keys {
                key.public_key = key.public_key.trim().to_ascii_lowercase();
            }
        }
        k.validate()?;
        Ok(k)
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    fn validate(&self) -> Result<(), KeysError> {
        if self.format != KEYS_FORMAT {
            return Err(KeysError::Format(self.format.clone()));
        }
        for (site, keys) in &self.sites {
            for k in keys {
                if !is_public_key(&k.public_key) {
                    return Err(KeysError::NotAKey {
                        site: site.clone(),
                        key: k.public_key.clone(),
                    });
                }
            }
            for w in keys.windows(2) {
                let ordered = match (w[0].until, w[1].from) {
                    (Some(u), Some(f)) => u <= f,
                    _ => false,
                };
                if !ordered {
                    return Err(KeysError::Overlap {
                        site: site.clone(),
                        a: w[0].period(),
                        b: w[1].period(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The site's current key (the last one, with an open end).
    pub fn current(&self, site: &str) -> Option<&EnrolledKey> {
        self.sites
            .get(site)
            .and_then(|k| k.last())
            .filter(|k| k.until.is_none())
    }

    /// Enroll `key` as `site`'s key from `at` on. A site's first key has
    /// no start (it covers the recordings the box made before the NOC
    /// enrolled it); a different key is refused unless `rotate`, which ends
    /// the current key's period at `at`.
    pub fn enroll(
        &mut self,
        site: &str,
        key: &str,
        at: DateTime<Utc>,
        rotate: bool,
        note: &str,
    ) -> Result<Enrolled, KeysError> {
        let key = key.trim().to_ascii_lowercase();
        if !is_public_key(&key) {
            return Err(KeysError::NotAKey {
                site: site.into(),
                key,
            });
        }
        // Whole seconds: any verifier compares them with a recording's
        // start exactly, whatever fraction of a second its clock reads.
        let at = at.trunc_subsecs(0);
        let keys = self.sites.entry(site.to_owned()).or_default();
        let Some(last) = keys.last_mut() else {
            keys.push(EnrolledKey {
                public_key: key,
                from: None,
                until: None,
                note: note.into(),
            });
            return Ok(Enrolled::New);
        };
        if last.public_key == key && last.until.is_none() {
            return Ok(Enrolled::Same);
        }
        if !rotate {
            return Err(KeysError::HasAnother {
                site: site.into(),
                fingerprint: fingerprint(&last.public_key),
                current: last.public_key.clone(),
            });
        }
        if last.from.is_some_and(|f| at <= f) || last.until.is_some_and(|u| at < u) {
            return Err(KeysError::RotateBefore {
                site: site.into(),
                from: last.period(),
            });
        }
        let old = last.public_key.clone();
        if last.until.is_none() {
            last.until = Some(at);
        }
        keys.push(EnrolledKey {
            public_key: key,
            from: Some(at),
            until: None,
            note: note.into(),
        });
        Ok(Enrolled::Rotated { old })
    }

    /// Is `key` the key of `site` for a recording started at `at`?
    pub fn judge(&self, site: &str, key: &str, at: DateTime<Utc>) -> KeyVerdict {
        let Some(keys) = self.sites.get(site) else {
            return KeyVerdict::UnknownSite { site: site.into() };
        };
        let key = key.trim().to_ascii_lowercase();
        let mine: Vec<&EnrolledKey> = keys.iter().filter(|k| k.public_key == key).collect();
        if mine.is_empty() {
            return KeyVerdict::NotTheSites {
                site: site.into(),
                key,
            };
        }
        if mine.iter().any(|k| k.covers(at)) {
            KeyVerdict::Enrolled
        } else {
            KeyVerdict::OutsidePeriod {
                site: site.into(),
                period: mine
                    .iter()
                    .map(|k| k.period())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const A: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
    const B: &str = "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025";

    #[test]
    fn the_fingerprint_is_sha256_of_the_raw_key_in_groups() {
        // sha256(bytes.fromhex(A)).hexdigest()[:32], by an independent tool.
        let f = fingerprint(A);
        assert_eq!(f.len(), 39, "{f}");
        assert_eq!(f.split(' ').count(), 8);
        let want = hex::encode(&Sha256::digest(hex::decode(A).unwrap())[..16]);
        assert_eq!(f.replace(' ', ""), want);
        assert_eq!(DeviceKeyId::new(&A.to_uppercase()).public_key, A);
    }

    #[test]
    fn a_first_key_covers_everything_and_another_needs_a_rotation() {
        let mut k = FleetKeys::default();
        assert_eq!(
            k.enroll("xa-1", A, t("2026-12-01T00:00:00Z"), false, "report 12"),
            Ok(Enrolled::New)
        );
        assert_eq!(
            k.enroll("xa-1", A, t("2026-12-02T00:00:00Z"), false, ""),
            Ok(Enrolled::Same)
        );
        // A recording from before the NOC enrolled the box still verifies.
        assert_eq!(
            k.judge("xa-1", A, t("2026-11-01T00:00:00Z")),
            KeyVerdict::Enrolled
        );
        assert!(matches!(
            k.enroll("xa-1", B, t("2027-03-01T00:00:00Z"), false, ""),
            Err(KeysError::HasAnother { .. })
        ));
        assert_eq!(
            k.enroll("xa-1", B, t("2027-03-01T00:00:00Z"), true, "new disk"),
            Ok(Enrolled::Rotated { old: A.into() })
        );
        // Earlier recordings stay verifiable under the old key; the old
        // key cannot sign for the time after the rotation, nor the new
        // key for the time before.
        assert_eq!(
            k.judge("xa-1", A, t("2027-02-28T23:59:59Z")),
            KeyVerdict::Enrolled
        );
        assert!(matches!(
            k.judge("xa-1", A, t("2027-03-01T00:00:00Z")),
            KeyVerdict::OutsidePeriod { .. }
        ));
        assert!(matches!(
            k.judge("xa-1", B, t("2027-02-01T00:00:00Z")),
            KeyVerdict::OutsidePeriod { .. }
        ));
        assert_eq!(
            k.judge("xa-1", B, t("2027-03-02T00:00:00Z")),
            KeyVerdict::Enrolled
        );
        assert!(matches!(
            k.judge("xa-2", B, t("2027-03-02T00:00:00Z")),
            KeyVerdict::UnknownSite { .. }
        ));
        // A rotation cannot reach back before the current key's start.
        assert!(matches!(
            k.enroll("xa-1", A, t("2027-02-01T00:00:00Z"), true, ""),
            Err(KeysError::RotateBefore { .. })
        ));
        // The file reads back as written.
        let again = FleetKeys::parse(&k.to_json()).unwrap();
        assert_eq!(again, k);
        assert!(KeyVerdict::NotTheSites {
            site: "xa-1".into(),
            key: A.into()
        }
        .problem(t("2027-01-01T00:00:00Z"))
        .unwrap()
        .contains(&fingerprint(A)));
    }

    #[test]
    fn a_bad_file_is_refused_with_the_reason() {
        assert!(matches!(FleetKeys::parse("{"), Err(KeysError::Json(_))));
        assert!(matches!(
            FleetKeys::parse(r#"{"format":"other/9","sites":{}}"#),
            Err(KeysError::Format(_))
        ));
        let short =
            format!(r#"{{"format":"{KEYS_FORMAT}","sites":{{"x":[{{"public_key":"ab"}}]}}}}"#);
        assert!(matches!(
            FleetKeys::parse(&short),
            Err(KeysError::NotAKey { .. })
        ));
        let overlap = format!(
            r#"{{"format":"{KEYS_FORMAT}","sites":{{"x":[{{"public_key":"{A}"}},{{"public_key":"{B}"}}]}}}}"#
        );
        assert!(matches!(
            FleetKeys::parse(&overlap),
            Err(KeysError::Overlap { .. })
        ));
        let typo = format!(r#"{{"format":"{KEYS_FORMAT}","sites":{{}},"site":{{}}}}"#);
        assert!(FleetKeys::parse(&typo).is_err());
    }
}
