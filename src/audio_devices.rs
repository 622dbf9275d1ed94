//! Sound cards through ALSA (the `alsa` crate): which cards can capture,
//! for `diemcau doctor` and the logs, and the microphone's capture gain.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Card {
    pub index: i32,
    pub name: String,
    pub long_name: String,
}

/// Every sound card the kernel knows.
pub fn cards() -> Vec<Card> {
    alsa::card::Iter::new()
        .filter_map(Result::ok)
        .map(|c| Card {
            index: c.get_index(),
            name: c.get_name().unwrap_or_default(),
            long_name: c.get_longname().unwrap_or_default(),
        })
        .collect()
}

/// The mixer card for an ALSA device string: "hw:1,0", "plughw:CARD=Array"
/// and "default" map to "hw:1", "hw:Array" and "default".
pub fn mixer_name(device: &str) -> String {
    let rest = device.split_once(':').map(|(_, r)| r);
    match rest {
        None => device.to_owned(),
        Some(r) => {
            let card = r.split(',').next().unwrap_or(r);
            let card = card.strip_prefix("CARD=").unwrap_or(card);
            format!("hw:{card}")
        }
    }
}

/// Set every capture control of the card to `percent` of its range and
/// switch capture on. Returns the controls changed.
pub fn set_capture_gain(device: &str, percent: u8) -> Result<Vec<String>, alsa::Error> {
    let mixer = alsa::mixer::Mixer::new(&mixer_name(device), false)?;
    let mut changed = Vec::new();
    for elem in mixer.iter() {
        let Some(selem) = alsa::mixer::Selem::new(elem) else {
            continue;
        };
        if !selem.has_capture_volume() {
            continue;
        }
        let (lo, hi) = selem.get_capture_volume_range();
        let v = lo + (hi - lo) * i64::from(percent.min(100)) / 100;
        selem.set_capture_volume_all(v)?;
        if selem.has_capture_switch() {
            selem.set_capture_switch_all(1)?;
        }
        changed.push(selem.get_id().get_name().unwrap_or("?").to_owned());
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixer_names() {
        assert_eq!(mixer_name("hw:1,0"), "hw:1");
        assert_eq!(mixer_name("plughw:CARD=Array,DEV=0"), "hw:Array");
        assert_eq!(mixer_name("default"), "default");
    }

    #[test]
    fn enumerating_never_fails() {
        // No card on a build machine is fine: an empty list, not an error.
        let _ = cards();
    }
}
