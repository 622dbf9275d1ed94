//! Logs on request (`logs.upload`): what leaves the box is the journal of
//! its own services for a time range, with every secret the box holds
//! taken out, under a key that says whose and when; and the keys of the
//! other objects the NOC asks for (stills too large for a reply). Pure: text in, text
//! out; the command layer runs `journalctl` and the upload.

use chrono::{DateTime, Utc};

use super::secrets;

/// `prefix/` as keys begin with it, or nothing for an empty prefix.
fn key_prefix(prefix: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

/// Where a still the NOC asked for goes in the archive (`snapshot` with
/// `archive`, or one too large for a reply): under the box's stills, named
/// by the second it was taken and what it shows, so two stills of one
/// second from the camera and the screen do not overwrite each other.
pub fn still_key(prefix: &str, site: &str, source: &str, at: DateTime<Utc>) -> String {
    format!(
        "{}stills/{site}/{}-{source}.jpg",
        key_prefix(prefix),
        at.format("%Y%m%dT%H%M%S%.3fZ")
    )
}

/// The longest range one request takes: a week of a box's journal is a
/// few megabytes compressed.
pub const MAX_RANGE_HOURS: i64 = 7 * 24;

/// `text` with each of `secrets` (the values the box's configuration
/// holds) replaced by `***`, and every URL's password and secret query
/// values too. Values shorter than 4 characters are left: replacing "1"
/// everywhere would only ruin the log.
pub fn redact(text: &str, secret_values: &[String]) -> String {
    let mut out = text.to_owned();
    let mut values: Vec<&String> = secret_values.iter().filter(|s| s.len() >= 4).collect();
    // Longest first: a secret that contains another goes whole.
    values.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for v in values {
        out = out.replace(v.as_str(), secrets::REDACTED);
    }
    out.lines()
        .map(|line| {
            if line.contains("://") {
                line.split(' ')
                    .map(secrets::redact_url)
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if text.ends_with('\n') { "\n" } else { "" }
}

/// Where the logs go in the archive: beside the box's recordings, named by
/// the range they cover.
pub fn object_key(prefix: &str, site: &str, since: DateTime<Utc>, until: DateTime<Utc>) -> String {
    format!(
        "{}logs/{site}/{}--{}.log.gz",
        key_prefix(prefix),
        since.format("%Y%m%dT%H%M%SZ"),
        until.format("%Y%m%dT%H%M%SZ")
    )
}

/// The range asked for, checked: `until` defaults to `now`, `since` to an
/// hour before it.
pub fn range(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let until = until.unwrap_or(now).min(now);
    let since = since.unwrap_or(until - chrono::Duration::hours(1));
    if since >= until {
        return Err(format!("since ({since}) must be before until ({until})"));
    }
    if until - since > chrono::Duration::hours(MAX_RANGE_HOURS) {
        return Err(format!(
            "{} hours asked; one request takes at most {MAX_RANGE_HOURS} (ask again for the rest)",
            (until - since).num_hours()
        ));
    }
    Ok((since, until))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_and_url_password_is_taken_out() {
        let log = "connecting srt://hub:7001?passphrase=hub-pass-123456&latency=120\n\
                   mqtt password rejected: s3cr3t-mqtt\n\
                   short pin 12 stays\n";
        let out = redact(log, &["s3cr3t-mqtt".into(), "12".into(), String::new()]);
        assert!(!out.contains("hub-pass-123456"), "{out}");
        assert!(!out.contains("s3cr3t-mqtt"), "{out}");
        assert!(out.contains("pin 12 stays"), "{out}");
        assert!(out.ends_with('\n'));
        assert_eq!(out.lines().count(), 3);
    }

    #[test]
    fn the_range_is_checked_and_named() {
        let now: DateTime<Utc> = "2026-12-03T10:00:00Z".parse().unwrap();
        let (s, u) = range(None, None, now).unwrap();
        assert_eq!((u - s).num_hours(), 1);
        assert_eq!(
            object_key("/tinh/", "xa-01", s, u),
            "tinh/logs/xa-01/20261203T090000Z--20261203T100000Z.log.gz"
        );
        assert_eq!(
            still_key("", "xa-01", "screen", now),
            "stills/xa-01/20261203T100000.000Z-screen.jpg"
        );
        assert!(range(Some(now), Some(now), now).is_err());
        let e = range(Some(now - chrono::Duration::days(8)), None, now).unwrap_err();
        assert!(e.contains("at most 168"), "{e}");
    }
}
