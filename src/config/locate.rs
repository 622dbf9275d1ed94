//! Turning parser and validation failures into `file:line:col: message` with
//! the key and section named, and a suggestion for misspelt keys.

use std::path::Path;

use super::ConfigError;

/// 1-based line and column of byte offset `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The `[table]` header in force at byte offset `at`, if any.
fn section_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    text[..at]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
}

/// The key written on the line containing byte offset `at` (`key = value`).
fn key_on_line(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let (k, _) = line.split_once('=')?;
    let k = k.trim().trim_matches('"');
    (!k.is_empty()).then(|| k.to_owned())
}

/// Extract the backquoted names from a serde message such as
/// "unknown field `bitrat`, expected one of `width`, `height`".
fn backquoted(msg: &str) -> Vec<&str> {
    msg.split('`').skip(1).step_by(2).collect()
}

/// The closest candidate to `word`, if any is close enough to be a typo.
fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

pub(super) fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let at = e.span().map_or(0, |s| s.start);
    let (line, col) = line_col(text, at);
    let msg = e.message().trim().to_owned();
    let line_start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let on_header = text[line_start..].trim_start().starts_with('[');
    let section = if on_header {
        None
    } else {
        section_at(text, at)
    };
    let (key, message) = if let Some(rest) = msg.strip_prefix("unknown field ") {
        let names = backquoted(rest);
        let unknown = names.first().copied().unwrap_or("?");
        let expected = &names[names.len().min(1)..];
        let hint = suggest(unknown, expected);
        match &section {
            // A top-level name is a section header, e.g. `[vidoe]`.
            Some(s) => {
                let hint = hint.map_or_else(
                    || format!("; expected one of: {}", expected.join(", ")),
                    |h| format!("; did you mean '{h}'?"),
                );
                (
                    format!("{s}.{unknown}"),
                    format!("unknown key '{unknown}' in [{s}]{hint}"),
                )
            }
            _ => {
                let hint = hint.map_or_else(
                    || format!("; expected one of: [{}]", expected.join("], [")),
                    |h| format!("; did you mean [{h}]?"),
                );
                (
                    unknown.to_owned(),
                    format!("unknown section [{unknown}]{hint}"),
                )
            }
        }
    } else if let Some(rest) = msg.strip_prefix("missing field ") {
        let field = backquoted(rest).first().copied().unwrap_or("?").to_owned();
        let where_ = section.map_or_else(|| "at the top level".to_owned(), |s| format!("in [{s}]"));
        (field.clone(), format!("missing key '{field}' {where_}"))
    } else {
        let key = key_on_line(text, at);
        match (key, section) {
            (Some(k), Some(s)) => (format!("{s}.{k}"), format!("'{k}' in [{s}]: {msg}")),
            (Some(k), None) => (k.clone(), format!("'{k}': {msg}")),
            _ => (String::new(), msg),
        }
    };
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        col,
        key,
        message,
    }
}

/// Where `key` is written inside `[section]`; the section header if the key
/// is not written (it took its default), or 1:1 if neither is.
pub(super) fn key_position(text: &str, section: &str, key: &str) -> (usize, usize) {
    let mut current: Option<&str> = None;
    let mut header: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            current = Some(
                t.trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .trim(),
            );
            if current == Some(section) {
                header = Some(i + 1);
            }
            continue;
        }
        if current == Some(section) {
            if let Some((k, _)) = t.split_once('=') {
                if k.trim().trim_matches('"') == key {
                    let col = line.len() - line.trim_start().len() + 1;
                    return (i + 1, col);
                }
            }
        }
    }
    (header.unwrap_or(1), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars_not_bytes() {
        let t = "a = \"ữ\"\nb = 1";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, t.find('b').unwrap()), (2, 1));
        assert_eq!(line_col(t, t.find('"').unwrap() + 4), (1, 7));
    }

    #[test]
    fn suggestion_finds_typos_only() {
        assert_eq!(
            suggest("bitrat", &["bitrate_kbps", "width"]),
            Some("bitrate_kbps")
        );
        assert_eq!(suggest("zzz", &["bitrate_kbps", "width"]), None);
    }

    #[test]
    fn key_position_falls_back_to_header() {
        let t = "[a]\nx = 1\n[b]\ny = 2\n";
        assert_eq!(key_position(t, "b", "y"), (4, 1));
        assert_eq!(key_position(t, "b", "z"), (3, 1));
        assert_eq!(key_position(t, "c", "z"), (1, 1));
    }
}
