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
    #[serde(default)]
    pub recording: RawRecording,
    #[serde(default)]
    pub archive: RawArchive,
    #[serde(default)]
    pub button: RawButton,
    #[serde(default)]
    pub led: RawLed,
    #[serde(default)]
    pub mqtt: RawMqtt,
    #[serde(default)]
    pub sip: RawSip,
    #[serde(default)]
    pub schedule: RawSchedule,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSchedule {
    pub time_zone: String,
    pub groups: Vec<String>,
    pub warn_before_s: Vec<u64>,
    pub extend_min: u64,
    pub late_start_min: u64,
}

impl Default for RawSchedule {
    fn default() -> Self {
        Self {
            time_zone: "Asia/Ho_Chi_Minh".into(),
            groups: Vec::new(),
            warn_before_s: vec![300, 60],
            extend_min: 15,
            late_start_min: 30,
        }
    }
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
    pub synthetic_frames: u32,
    pub default_preset: String,
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
            synthetic_frames: 0,
            default_preset: String::new(),
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
    pub gain_percent: i32,
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
            gain_percent: -1,
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
    pub latency_max_ms: u32,
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
            latency_max_ms: 2000,
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
    pub recording_notice: Option<String>,
}

impl Default for RawDisplay {
    fn default() -> Self {
        Self {
            sink: "kms".into(),
            kms_driver: String::new(),
            kms_connector: 0,
            width: 1280,
            height: 720,
            recording_notice: None,
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

/// The room's start/stop button; `kind = "none"` (the default) means no button.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawButton {
    pub kind: String,
    pub device: String,
    pub key: String,
    pub chip: String,
    pub line: u32,
    pub active_low: bool,
    pub bias: String,
    pub debounce_ms: u64,
    pub long_press_ms: u64,
    pub repeat_guard_ms: u64,
}

impl Default for RawButton {
    fn default() -> Self {
        Self {
            kind: "none".into(),
            device: "/dev/diemcau/button".into(),
            key: "KEY_ENTER".into(),
            chip: "gpiochip0".into(),
            line: 17,
            active_low: true,
            bias: "pull-up".into(),
            debounce_ms: 30,
            long_press_ms: 2000,
            repeat_guard_ms: 1000,
        }
    }
}

/// The tally light; `kind = "none"` (the default) means no light.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLed {
    pub kind: String,
    pub name: String,
    pub chip: String,
    pub line: u32,
    pub active_low: bool,
}

impl Default for RawLed {
    fn default() -> Self {
        Self {
            kind: "none".into(),
            name: "diemcau:tally".into(),
            chip: "gpiochip0".into(),
            line: 27,
            active_low: false,
        }
    }
}

/// The MQTT control plane to the provincial NOC; an empty `url` disables it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMqtt {
    pub url: String,
    pub fallback_urls: Vec<String>,
    pub ca: String,
    pub cert: String,
    pub key: String,
    pub username: String,
    pub password: String,
    pub topic_prefix: String,
    pub keep_alive_s: u64,
    pub health_interval_s: u64,
    pub reconnect_min_s: f64,
    pub reconnect_max_s: f64,
    pub command_max_ttl_s: u64,
    pub allow_reboot: bool,
}

impl Default for RawMqtt {
    fn default() -> Self {
        Self {
            url: String::new(),
            fallback_urls: Vec::new(),
            ca: String::new(),
            cert: String::new(),
            key: String::new(),
            username: String::new(),
            password: String::new(),
            topic_prefix: "diemcau/v1".into(),
            keep_alive_s: 30,
            health_interval_s: 30,
            reconnect_min_s: 0.5,
            reconnect_max_s: 60.0,
            command_max_ttl_s: 86_400,
            allow_reboot: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRecording {
    pub enabled: bool,
    pub segment_s: f64,
    pub chunk_kib: u32,
    pub flush_interval_ms: u64,
    pub quota_bytes: u64,
    pub quota_percent: u32,
    pub witness_interval_s: u64,
    pub retention_days: f64,
    pub recipients: Vec<String>,
}

impl Default for RawRecording {
    fn default() -> Self {
        Self {
            enabled: true,
            segment_s: 2.0,
            chunk_kib: 64,
            flush_interval_ms: 500,
            quota_bytes: 0,
            quota_percent: 80,
            witness_interval_s: 60,
            retention_days: 0.0,
            recipients: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawArchive {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub credentials_file: String,
    pub path_style: bool,
    pub live_share: f64,
    pub live_max_kbps: u64,
    pub idle_max_kbps: u64,
    pub timestamp_url: String,
}

impl Default for RawArchive {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            region: "us-east-1".into(),
            bucket: String::new(),
            prefix: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            credentials_file: String::new(),
            timestamp_url: String::new(),
            path_style: true,
            live_share: 0.0,
            live_max_kbps: 1000,
            idle_max_kbps: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSip {
    pub mode: String,
    pub conference: String,
    pub registrar: String,
    pub proxy: String,
    pub transport: String,
    pub user: String,
    pub auth_user: String,
    pub password: String,
    pub local_port: u16,
    pub rtp_port: u16,
    pub answer: String,
    pub allow: Vec<String>,
    pub register_expires_s: u32,
    pub keepalive_s: u32,
    pub redial_max_s: f64,
    pub video: bool,
    pub srtp: String,
    pub pin: String,
    pub pin_delay_s: f64,
    pub stun: String,
    pub ca: String,
}

impl Default for RawSip {
    fn default() -> Self {
        Self {
            mode: "srt".into(),
            conference: String::new(),
            registrar: String::new(),
            proxy: String::new(),
            transport: "udp".into(),
            user: String::new(),
            auth_user: String::new(),
            password: String::new(),
            local_port: 5060,
            rtp_port: 40000,
            answer: "auto".into(),
            allow: Vec::new(),
            register_expires_s: 600,
            keepalive_s: 25,
            redial_max_s: 30.0,
            video: true,
            srtp: "optional".into(),
            pin: String::new(),
            pin_delay_s: 3.0,
            stun: String::new(),
            ca: String::new(),
        }
    }
}
