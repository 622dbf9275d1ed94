//! The technician's words about the setup partition: what the box says
//! about a site file it took in or refused. `provision` keeps what it found
//! ([`Ingest`]) in `provision.json`; the screen and `diemcau doctor` tell it
//! in their language, and `KET-QUA.txt` on the partition tells it in both.

use serde::{Deserialize, Serialize};

use super::Language;
use crate::core::device_key::DeviceKeyId;

/// What a secret value in `site.toml` is replaced with once the box keeps
/// it. ASCII, so that any laptop editor shows it unchanged, and in both
/// languages at once, since the technician reads it in the file itself.
///
/// Also read back: a value equal to it means "the one the box keeps".
/// Changing it makes every box that already wrote it take the old marker
/// for the secret itself.
pub const SECRET_MARKER: &str = "(da luu tren hop / kept on the box)";

/// What one ingest of the setup partition came to: the values the words
/// about it hold, so they are told in the reader's language when read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ingest {
    /// The site file was taken in; `moved` went off the partition.
    Accepted { moved: Vec<Moved> },
    /// There is no `site.toml` on the partition.
    NoSiteFile,
    /// `site.toml` could not be read (not UTF-8, or the disk failed).
    Unreadable { error: String },
    /// A secret was left as [`SECRET_MARKER`] on `line`, and the box no
    /// longer holds its value.
    SecretLost {
        line: usize,
        section: String,
        key: String,
    },
    /// The configuration is wrong on `line` (at `key`, when known).
    Invalid {
        line: usize,
        key: String,
        message: String,
    },
    /// The configuration could not be read back from staging.
    StagedUnreadable { error: String },
}

impl Ingest {
    /// Whether the site file was taken in.
    pub fn accepted(&self) -> bool {
        matches!(self, Self::Accepted { .. })
    }
}

/// What an accepted ingest moved off the FAT partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Moved {
    /// A private key, by its path on the partition (`certs/box.key`).
    PrivateKey(String),
    /// The secret values in `site.toml`.
    Secrets,
}

/// The one-line verdict: `ĐÃ NHẬN` or `CÓ LỖI`.
pub fn verdict(lang: Language, ok: bool) -> &'static str {
    if ok {
        lang.pick("ĐÃ NHẬN", "ACCEPTED")
    } else {
        lang.pick("CÓ LỖI", "ERROR")
    }
}

/// What the box says about an ingest. `kept_previous`: a refused site file
/// left the box on its previous configuration (never set on an accepted
/// one).
pub fn message(lang: Language, ingest: &Ingest, kept_previous: bool) -> String {
    let said = match ingest {
        Ingest::Accepted { moved } => {
            let moved: Vec<&str> = moved
                .iter()
                .map(|m| match m {
                    Moved::PrivateKey(path) => path.as_str(),
                    // Both languages in one, as the marker in the file.
                    Moved::Secrets => "site.toml: mật khẩu / secrets",
                })
                .collect();
            let listed = if moved.is_empty() {
                String::new()
            } else {
                format!(
                    " {}: {}.",
                    lang.pick(
                        "Đã cất vào hộp và xoá khỏi ổ DIEMCAU",
                        "Kept on the box and removed from DIEMCAU",
                    ),
                    moved.join(", ")
                )
            };
            let taken = lang.pick("Đã nhận cấu hình từ site.toml.", "site.toml taken in.");
            format!("{taken}{listed}")
        }
        Ingest::NoSiteFile => lang
            .pick(
                "Không tìm thấy tệp site.toml trên ổ DIEMCAU. Chép tệp site.toml mẫu vào ổ đó, điền thông tin của xã rồi khởi động lại hộp.",
                "site.toml is not on the DIEMCAU partition. Copy the template site.toml onto it, fill in the site's details and restart the box.",
            )
            .to_owned(),
        Ingest::Unreadable { error } => match lang {
            Language::Vi => format!(
                "Không đọc được site.toml ({error}). Lưu lại tệp dạng văn bản UTF-8 rồi khởi động lại hộp."
            ),
            Language::En => {
                format!("site.toml cannot be read ({error}). Save it as UTF-8 text and restart the box.")
            }
        },
        Ingest::SecretLost { line, section, key } => match lang {
            Language::Vi => format!(
                "site.toml, dòng {line}: hộp không còn giữ {section}.{key}. Gõ lại giá trị này rồi khởi động lại hộp."
            ),
            Language::En => format!(
                "site.toml, line {line}: the box no longer holds {section}.{key}. Type the value in again and restart the box."
            ),
        },
        Ingest::Invalid { line, key, message } => {
            let what = if key.is_empty() {
                String::new()
            } else {
                format!(" ({key})")
            };
            match lang {
                Language::Vi => format!(
                    "site.toml, dòng {line}{what}: {message}. Sửa dòng {line} trên ổ DIEMCAU rồi khởi động lại hộp."
                ),
                Language::En => format!(
                    "site.toml, line {line}{what}: {message}. Fix line {line} on the DIEMCAU partition and restart the box."
                ),
            }
        }
        Ingest::StagedUnreadable { error } => match lang {
            Language::Vi => format!("Không đọc được site.toml: {error}"),
            Language::En => format!("site.toml cannot be read: {error}"),
        },
    };
    let kept = if kept_previous {
        lang.pick(
            " Hộp vẫn chạy với cấu hình cũ.",
            " The box keeps running on its previous configuration.",
        )
    } else {
        ""
    };
    format!("{said}{kept}")
}

/// `KET-QUA.txt`, for the technician's laptop: both languages, Windows line
/// ends so any editor shows the lines.
///
/// With the box's signing key, the file is also the part of the
/// installation report that tells the province which key is this box's.
pub fn result_file(
    when: &str,
    ingest: &Ingest,
    kept_previous: bool,
    key: Option<&DeviceKeyId>,
) -> String {
    let ok = ingest.accepted();
    let key = key
        .map(|k| {
            format!(
                "\r\nKhoá ký biên bản của hộp / the box's recording key\r\n\
                 Vân tay / fingerprint: {}\r\n\
                 Khoá công khai / public key: {}\r\n\
                 Ghi vân tay vào biên bản lắp đặt gửi tỉnh. / Copy the fingerprint into the installation report for the province.\r\n",
                k.fingerprint, k.public_key
            )
        })
        .unwrap_or_default();
    format!(
        "diemcau: kết quả đọc site.toml / result of reading site.toml\r\n{when}\r\n\r\n{}: {}\r\n\r\n{}: {}\r\n{key}",
        verdict(Language::Vi, ok),
        message(Language::Vi, ingest, kept_previous),
        verdict(Language::En, ok),
        message(Language::En, ingest, kept_previous),
    )
}

/// The site name of a box that has not taken in a valid site file yet,
/// shown on its idle screen.
pub fn unprovisioned_site_name(lang: Language) -> &'static str {
    lang.pick(
        "Điểm cầu chưa được cấu hình",
        "Bridge room not configured yet",
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::vietnamese;
    use super::*;

    fn every_ingest() -> Vec<Ingest> {
        vec![
            Ingest::Accepted {
                moved: vec![Moved::PrivateKey("certs/box.key".into()), Moved::Secrets],
            },
            Ingest::Accepted { moved: vec![] },
            Ingest::NoSiteFile,
            Ingest::Unreadable { error: "e".into() },
            Ingest::SecretLost {
                line: 3,
                section: "uplink".into(),
                key: "passphrase".into(),
            },
            Ingest::Invalid {
                line: 7,
                key: "video.sourse".into(),
                message: "unknown field".into(),
            },
            Ingest::StagedUnreadable { error: "e".into() },
        ]
    }

    #[test]
    fn the_words_as_they_were() {
        let moved = Ingest::Accepted {
            moved: vec![Moved::PrivateKey("certs/box.key".into()), Moved::Secrets],
        };
        assert_eq!(
            message(Language::Vi, &moved, false),
            "Đã nhận cấu hình từ site.toml. Đã cất vào hộp và xoá khỏi ổ DIEMCAU: certs/box.key, site.toml: mật khẩu / secrets."
        );
        let bad = Ingest::Invalid {
            line: 7,
            key: "video.sourse".into(),
            message: "unknown field".into(),
        };
        assert_eq!(
            message(Language::Vi, &bad, true),
            "site.toml, dòng 7 (video.sourse): unknown field. Sửa dòng 7 trên ổ DIEMCAU rồi khởi động lại hộp. Hộp vẫn chạy với cấu hình cũ."
        );
        let file = result_file("2026-01-01 00:00:00 UTC", &bad, false, None);
        assert!(file.contains("\r\n\r\nCÓ LỖI: site.toml, dòng 7"), "{file}");
        assert!(file.contains("\r\n\r\nERROR: site.toml, line 7"), "{file}");
    }

    #[test]
    fn english_is_english_apart_from_the_secrets_named_in_both() {
        for i in every_ingest() {
            for kept in [false, true] {
                let en = message(Language::En, &i, kept).replace("mật khẩu / ", "");
                assert!(!vietnamese(&en), "{en}");
                assert!(vietnamese(&message(Language::Vi, &i, kept)), "{i:?}");
            }
        }
        assert!(!vietnamese(verdict(Language::En, false)));
        assert!(!vietnamese(unprovisioned_site_name(Language::En)));
    }

    #[test]
    fn an_ingest_keeps_its_values_through_the_status_file() {
        for i in every_ingest() {
            let json = serde_json::to_string(&i).unwrap();
            assert_eq!(serde_json::from_str::<Ingest>(&json).unwrap(), i, "{json}");
        }
    }
}
