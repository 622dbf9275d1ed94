//! Raw configuration: the TOML file exactly as written, deserialised with serde.
//!
//! Every table denies unknown keys so that a misspelt key is an error with a
//! suggestion, never a silently ignored setting. Nothing here is validated
//! beyond types; `super::Config::from_raw` turns this into the typed config.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub site: RawSite,
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub video: RawVideo,
    #[serde(default)]
    pub audio: RawAudio,
    #[serde(default)]
    pub uplink: RawUplink,
    #[serde(default)]
    pub return_feed: RawReturnFeed,
    #[serde(default)]
    pub display: RawDisplay,
    #[serde(default)]
    pub speaker: RawSpeaker,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSite {
    pub id: String,
    pub name: String,
    pub province: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDaemon {
    pub state_dir: String,
    pub socket: String,
    pub socket_mode: String,
    pub language: String,
    pub on_interrupted: String,
    pub start_timeout_s: u64,
    pub stop_timeout_s: u64,
}

impl Default for RawDaemon {
    fn default() -> Self {
        Self {
            state_dir: "/var/lib/diemcau".into(),
            socket: "/run/diemcau/api.sock".into(),
            socket_mode: "0660".into(),
            language: "vi".into(),
            on_interrupted: "idle".into(),
            start_timeout_s: 10,
            stop_timeout_s: 5,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawVideo {
    pub source: String,
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub encoder: String,
    pub bitrate_kbps: u32,
    pub min_bitrate_kbps: u32,
    pub max_bitrate_kbps: u32,
    pub keyframe_interval_s: u32,
    pub stall_timeout_s: u32,
}

impl Default for RawVideo {
    fn default() -> Self {
        Self {
            source: "v4l2".into(),
            device: "/dev/video0".into(),
            width: 1280,
            height: 720,
            framerate: 30,
            encoder: "auto".into(),
            bitrate_kbps: 2500,
            min_bitrate_kbps: 600,
            max_bitrate_kbps: 4000,
            keyframe_interval_s: 2,
            stall_timeout_s: 3,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAudio {
    pub source: String,
    pub device: String,
    pub rate: u32,
    pub channels: u32,
    pub codec: String,
    pub bitrate_kbps: u32,
    pub echo_cancel: bool,
}

impl Default for RawAudio {
    fn default() -> Self {
        Self {
            source: "alsa".into(),
            device: "default".into(),
            rate: 48000,
            channels: 1,
            codec: "opus".into(),
            bitrate_kbps: 64,
            echo_cancel: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUplink {
    pub url: String,
    pub passphrase: String,
    pub pbkeylen: u32,
    pub latency_ms: u32,
    pub streamid: String,
    pub reconnect_max_s: f64,
    pub adaptive_bitrate: bool,
}

impl Default for RawUplink {
    fn default() -> Self {
        Self {
            url: String::new(),
            passphrase: String::new(),
            pbkeylen: 16,
            latency_ms: 200,
            streamid: String::new(),
            reconnect_max_s: 2.0,
            adaptive_bitrate: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReturnFeed {
    pub enabled: bool,
    pub url: String,
    pub passphrase: String,
    pub latency_ms: u32,
    pub streamid: String,
}

impl Default for RawReturnFeed {
    fn default() -> Self {
        Self {
            enabled: false,
            url: String::new(),
            passphrase: String::new(),
            latency_ms: 200,
            streamid: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDisplay {
    pub sink: String,
    pub kms_driver: String,
    pub kms_connector: u32,
    pub width: u32,
    pub height: u32,
}

impl Default for RawDisplay {
    fn default() -> Self {
        Self {
            sink: "kms".into(),
            kms_driver: String::new(),
            kms_connector: 0,
            width: 1280,
            height: 720,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSpeaker {
    pub sink: String,
    pub device: String,
}

impl Default for RawSpeaker {
    fn default() -> Self {
        Self {
            sink: "alsa".into(),
            device: "default".into(),
        }
    }
}
