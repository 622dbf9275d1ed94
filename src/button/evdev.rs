//! A USB button that presents itself as a keyboard (HID), read through evdev.
//!
//! The device is found by path (a stable `/dev/diemcau/button` from the
//! udev rules in `hw/`, or `/dev/input/by-id/...`) or by the name the kernel
//! gives it. It is grabbed (`EVIOCGRAB`) so that its key presses never reach
//! a console or the display's login prompt. Only the configured key counts;
//! the kernel's autorepeat (value 2) is dropped here.

use std::path::PathBuf;
use std::time::Instant;

use evdev::{Device, EventStream, EventSummary, KeyCode};
use futures::future::BoxFuture;

use super::{ButtonError, Edge, LineSource};
use crate::config::EvdevDevice;

/// evdev key event values.
const RELEASED: i32 = 0;
const PRESSED: i32 = 1;

pub struct EvdevButton {
    device: EvdevDevice,
    key: KeyCode,
    key_name: String,
    stream: Option<EventStream>,
    path: String,
}

impl EvdevButton {
    pub fn new(device: EvdevDevice, key: u16, key_name: String) -> Self {
        Self {
            device,
            key: KeyCode::new(key),
            key_name,
            stream: None,
            path: String::new(),
        }
    }

    fn find(&self) -> Result<(PathBuf, Device), ButtonError> {
        match &self.device {
            EvdevDevice::Path(p) => {
                Device::open(p)
                    .map(|d| (p.clone(), d))
                    .map_err(|source| ButtonError::Device {
                        path: p.display().to_string(),
                        source,
                    })
            }
            EvdevDevice::Name(name) => {
                let mut found = Vec::new();
                for (path, dev) in evdev::enumerate() {
                    let n = dev.name().unwrap_or("").to_owned();
                    if n == *name {
                        return Ok((path, dev));
                    }
                    found.push(n);
                }
                found.sort();
                found.dedup();
                Err(ButtonError::NotFound {
                    name: name.clone(),
                    found: if found.is_empty() {
                        "no input devices".into()
                    } else {
                        found.join(", ")
                    },
                })
            }
        }
    }

    fn open_now(&mut self) -> Result<bool, ButtonError> {
        self.stream = None;
        let (path, mut dev) = self.find()?;
        let shown = path.display().to_string();
        let name = dev.name().unwrap_or("").to_owned();
        let device_err = |source| ButtonError::Device {
            path: shown.clone(),
            source,
        };
        if !dev.supported_keys().is_some_and(|k| k.contains(self.key)) {
            return Err(ButtonError::NoSuchKey {
                path: shown,
                name,
                key: self.key_name.clone(),
            });
        }
        // Take the device for ourselves: its key must not type into a console.
        dev.grab().map_err(device_err)?;
        let pressed = dev.get_key_state().map_err(device_err)?.contains(self.key);
        self.stream = Some(dev.into_event_stream().map_err(device_err)?);
        self.path = format!("{shown} ({name})");
        Ok(pressed)
    }

    async fn next(&mut self) -> Result<Edge, ButtonError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(ButtonError::Closed);
        };
        loop {
            let ev = stream
                .next_event()
                .await
                .map_err(|source| ButtonError::Device {
                    path: self.path.clone(),
                    source,
                })?;
            if let Some(pressed) = key_level(ev.destructure(), self.key) {
                // The event's own timestamp is wall-clock time; the press rules
                // need the monotonic clock, and reading it now is microseconds late.
                return Ok(Edge {
                    pressed,
                    at: Instant::now(),
                });
            }
        }
    }
}

/// The level a key event reports for `key`, or None for anything else
/// (other keys, autorepeat, sync and scan-code events).
pub fn key_level(ev: EventSummary, key: KeyCode) -> Option<bool> {
    match ev {
        EventSummary::Key(_, k, PRESSED) if k == key => Some(true),
        EventSummary::Key(_, k, RELEASED) if k == key => Some(false),
        _ => None,
    }
}

impl LineSource for EvdevButton {
    fn describe(&self) -> String {
        let dev = match &self.device {
            EvdevDevice::Path(p) => p.display().to_string(),
            EvdevDevice::Name(n) => format!("named '{n}'"),
        };
        format!("USB button {dev}, key {}", self.key_name)
    }

    fn open(&mut self) -> BoxFuture<'_, Result<bool, ButtonError>> {
        Box::pin(async move { self.open_now() })
    }

    fn next_edge(&mut self) -> BoxFuture<'_, Result<Edge, ButtonError>> {
        Box::pin(self.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evdev::{EventType, InputEvent};

    fn key(code: KeyCode, value: i32) -> EventSummary {
        InputEvent::new(EventType::KEY.0, code.code(), value).destructure()
    }

    #[test]
    fn only_the_configured_key_and_no_autorepeat() {
        let k = KeyCode::KEY_ENTER;
        assert_eq!(key_level(key(k, 1), k), Some(true));
        assert_eq!(key_level(key(k, 0), k), Some(false));
        assert_eq!(key_level(key(k, 2), k), None, "autorepeat");
        assert_eq!(key_level(key(KeyCode::KEY_A, 1), k), None, "other key");
        let syn = InputEvent::new(EventType::SYNCHRONIZATION.0, 0, 0).destructure();
        assert_eq!(key_level(syn, k), None);
    }

    #[test]
    fn a_missing_device_is_an_error_naming_it() {
        let mut b = EvdevButton::new(
            EvdevDevice::Path("/nonexistent/button".into()),
            KeyCode::KEY_ENTER.code(),
            "KEY_ENTER".into(),
        );
        let e = b.open_now().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/button"), "{e}");
        let mut b = EvdevButton::new(
            EvdevDevice::Name("No Such Button 1234".into()),
            KeyCode::KEY_ENTER.code(),
            "KEY_ENTER".into(),
        );
        let e = b.open_now().unwrap_err().to_string();
        assert!(e.contains("No Such Button 1234"), "{e}");
    }
}
