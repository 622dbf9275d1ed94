//! The one list of configuration keys whose values are secrets, and the
//! redaction every output that shows configuration goes through.
//!
//! A secret is a value that lets someone act as the box or read what it
//! protects: the SRT passphrases (the hub's stream and the return feed), the
//! broker password and the archive's secret key. The client's private key
//! is a file whose *path* is configured; the path is not secret, its
//! contents are, and nothing ever reads them into an output. A secret may
//! also hide inside a URL (`srt://hub?passphrase=...`,
//! `mqtts://user:password@noc`), so URLs are cleaned too.
//!
//! `config.get`, `provision` (the site file on the FAT partition and
//! `KET-QUA.txt`) and everything else that shows configuration use this
//! list; a test plants a distinct secret in each key and looks for it in
//! everything the box says.

use serde_json::Value;

/// `(section, key)` of every secret configuration value.
pub const SECRET_KEYS: &[(&str, &str)] = &[
    ("uplink", "passphrase"),
    ("return_feed", "passphrase"),
    ("mqtt", "password"),
    ("archive", "secret_access_key"),
    ("sip", "password"),
    ("sip", "pin"),
];

/// Query parameters of a URL whose values are secrets.
const SECRET_PARAMS: &[&str] = &["passphrase", "password", "secret", "token"];

/// What a shown secret is replaced with.
pub const REDACTED: &str = "***";

/// Whether `section.key` holds a secret.
pub fn is_secret(section: &str, key: &str) -> bool {
    SECRET_KEYS.iter().any(|(s, k)| *s == section && *k == key)
}

/// A configuration document (sections of keys, as JSON) with every non-empty
/// secret replaced by [`REDACTED`] and every URL cleaned by [`redact_url`].
pub fn redact_config(v: &mut Value) {
    let Value::Object(sections) = v else { return };
    for (section, body) in sections.iter_mut() {
        let Value::Object(keys) = body else { continue };
        for (key, value) in keys.iter_mut() {
            match value {
                Value::String(s) if is_secret(section, key) && !s.is_empty() => {
                    *s = REDACTED.to_owned();
                }
                Value::String(s) => *s = redact_url(s),
                Value::Array(items) => {
                    for item in items {
                        if let Value::String(s) = item {
                            *s = redact_url(s);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// `text` with a URL's password (`scheme://user:password@host`) and secret
/// query values (`?passphrase=...`) replaced; anything that is not a URL
/// comes back unchanged.
pub fn redact_url(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_owned();
    };
    let (head, rest) = text.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}{}", &authority[at..]),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let cleaned: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v))
                        if !v.is_empty()
                            && SECRET_PARAMS.iter().any(|p| k.eq_ignore_ascii_case(p)) =>
                    {
                        format!("{k}={REDACTED}")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            let mut t = format!("{path}?{}", cleaned.join("&"));
            if let Some(f) = fragment {
                t.push('#');
                t.push_str(f);
            }
            t
        }
        None => tail.to_owned(),
    };
    format!("{head}{authority}{tail}")
}

/// A secret written as a placeholder (`marker`) that the box has no value
/// for: where it is, for the message that asks for the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: [{section}] {key} is \"{marker}\", but the box holds no {section}.{key} to keep; write the value itself")]
pub struct SecretLost {
    /// 1-based.
    pub line: usize,
    pub section: String,
    pub key: String,
    pub marker: String,
}

/// `text` (a configuration file) with every secret whose value is `marker`
/// given the value it has in `current` (the configuration in force), so a
/// file that came back from a redacted view keeps the box's secrets: the
/// site file's placeholder after provisioning, `***` from `config.get`.
/// A marker with nothing to keep is an error naming its line.
pub fn keep_marked(
    text: &str,
    current: Option<&toml::Table>,
    marker: &str,
) -> Result<String, SecretLost> {
    let mut text = text.to_owned();
    for (section, key) in SECRET_KEYS {
        let Some((line, v)) = find_value(&text, section, key) else {
            continue;
        };
        if v != marker {
            continue;
        }
        let kept = current.and_then(|c| c.get(*section)?.get(*key)?.as_str());
        match kept {
            Some(kept) => text = replace_value(&text, line, kept),
            None => {
                return Err(SecretLost {
                    line: line + 1,
                    section: (*section).to_owned(),
                    key: (*key).to_owned(),
                    marker: marker.to_owned(),
                })
            }
        }
    }
    Ok(text)
}

/// The 0-based line and string value of `key` in `[section]`, if the file
/// sets it as a string.
pub fn find_value(text: &str, section: &str, key: &str) -> Option<(usize, String)> {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[') {
            current = h.split(']').next().unwrap_or("").trim().to_owned();
            continue;
        }
        if current != section {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        if k.trim() != key {
            continue;
        }
        // Parse the value as TOML, comments and all.
        let parsed: toml::Table = format!("v = {}", v.trim()).parse().ok()?;
        return Some((i, parsed.get("v")?.as_str()?.to_owned()));
    }
    None
}

/// `text` with the value on line `line` replaced by `value` (a TOML basic
/// string), keeping the key, indentation and any trailing comment.
pub fn replace_value(text: &str, line: usize, value: &str) -> String {
    let quoted = toml::Value::String(value.to_owned()).to_string();
    let mut out = String::with_capacity(text.len() + quoted.len());
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i != line {
            out.push_str(l);
            continue;
        }
        let (head, rest) = l.split_once('=').unwrap_or((l, ""));
        let comment = rest
            .rfind('#')
            .filter(|&at| {
                // A '#' after the closing quote, not inside the value.
                rest[..at].trim().ends_with(['"', '\''])
            })
            .map(|at| format!("  {}", rest[at..].trim_end()))
            .unwrap_or_default();
        let eol = if l.ends_with("\r\n") {
            "\r\n"
        } else if l.ends_with('\n') {
            "\n"
        } else {
            ""
        };
        out.push_str(&format!("{}= {quoted}{comment}{eol}", head));
    }
    out
}

/// The first string value in a configuration document that still holds
/// [`REDACTED`] inside a URL (`srt://hub?passphrase=***`), as
/// `(section, key)`: such a value came from `config.get` and would replace
/// the real secret with three stars.
pub fn redacted_url(doc: &toml::Table) -> Option<(String, String)> {
    for (section, body) in doc {
        let Some(keys) = body.as_table() else {
            continue;
        };
        for (key, value) in keys {
            let strings: Vec<&str> = match value {
                toml::Value::String(s) => vec![s.as_str()],
                toml::Value::Array(items) => items.iter().filter_map(|i| i.as_str()).collect(),
                _ => Vec::new(),
            };
            if strings
                .iter()
                .any(|s| s.contains("://") && redact_url(s) == *s && s.contains(REDACTED))
            {
                return Some((section.clone(), key.clone()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_secrets_take_the_current_value_and_nothing_else_changes() {
        let current: toml::Table =
            "[uplink]\npassphrase = \"real-pass-1234\"\n[sip]\npassword = \"pw\"\n"
                .parse()
                .unwrap();
        let text = "[uplink]\nurl = \"srt://h:1\"\npassphrase = \"***\"  # << SRT\n[sip]\npassword = \"new\"\n";
        let kept = keep_marked(text, Some(&current), REDACTED).unwrap();
        assert_eq!(
            kept,
            "[uplink]\nurl = \"srt://h:1\"\npassphrase = \"real-pass-1234\"  # << SRT\n[sip]\npassword = \"new\"\n"
        );
        // Nothing to keep: the line is named.
        let e = keep_marked("[sip]\npin = \"***\"\n", Some(&current), REDACTED).unwrap_err();
        assert_eq!(
            (e.line, e.section.as_str(), e.key.as_str()),
            (2, "sip", "pin")
        );
        assert!(e.to_string().contains("write the value itself"), "{e}");
    }

    #[test]
    fn a_url_still_redacted_is_found() {
        let doc: toml::Table =
            "[uplink]\nurl = \"srt://h:1?passphrase=***\"\n[mqtt]\nurl = \"mqtts://n:8883\"\n"
                .parse()
                .unwrap();
        assert_eq!(
            redacted_url(&doc),
            Some(("uplink".to_owned(), "url".to_owned()))
        );
        let clean: toml::Table = "[uplink]\nurl = \"srt://h:1?passphrase=secret12345\"\n"
            .parse()
            .unwrap();
        assert_eq!(redacted_url(&clean), None);
    }
}

#[cfg(test)]
mod redact_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_listed_key_is_redacted_and_nothing_else() {
        let mut v = json!({
            "uplink": {"passphrase": "s-uplink", "url": "srt://h:1"},
            "return_feed": {"passphrase": "s-return"},
            "mqtt": {"password": "s-mqtt", "username": "box", "key": "/etc/diemcau/box.key"},
            "archive": {"secret_access_key": "s-archive", "access_key_id": "GK1"},
            "sip": {"password": "s-sip", "pin": "s-pin", "user": "room1"},
        });
        redact_config(&mut v);
        let text = v.to_string();
        for s in [
            "s-uplink",
            "s-return",
            "s-mqtt",
            "s-archive",
            "s-sip",
            "s-pin",
        ] {
            assert!(!text.contains(s), "{s} leaked: {text}");
        }
        assert_eq!(v["uplink"]["url"], "srt://h:1");
        assert_eq!(v["mqtt"]["username"], "box");
        assert_eq!(v["mqtt"]["key"], "/etc/diemcau/box.key");
        assert_eq!(v["archive"]["access_key_id"], "GK1");
        assert_eq!(v["sip"]["user"], "room1");
    }

    #[test]
    fn an_empty_secret_stays_empty() {
        let mut v = json!({"mqtt": {"password": ""}});
        redact_config(&mut v);
        assert_eq!(v["mqtt"]["password"], "");
    }

    #[test]
    fn secrets_inside_urls_are_redacted() {
        assert_eq!(
            redact_url("srt://hub:8890?streamid=publish:xa&passphrase=abcdefghij"),
            "srt://hub:8890?streamid=publish:xa&passphrase=***"
        );
        assert_eq!(
            redact_url("mqtts://box:hunter22@noc.example:8883/x"),
            "mqtts://box:***@noc.example:8883/x"
        );
        assert_eq!(redact_url("mqtts://noc:8883"), "mqtts://noc:8883");
        assert_eq!(redact_url("not a url"), "not a url");
        let mut v = json!({"mqtt": {"fallback_urls": ["mqtt://a:pw@b"]}});
        redact_config(&mut v);
        assert_eq!(v["mqtt"]["fallback_urls"][0], "mqtt://a:***@b");
    }
}
