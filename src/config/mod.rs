//! Configuration in two stages: [`raw`] is the TOML file as serde reads it;
//! [`Config`] is the validated, typed form every subsystem receives.
//!
//! A bad file never starts the daemon. Every error names the file, the line
//! and column, the key, and what was expected, in the form an editor jumps to:
//! `config.toml:12:1: unknown key 'bitrat' in [video]; did you mean 'bitrate_kbps'?`

pub mod apply;
mod locate;
pub mod raw;
pub mod sip;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::core::words::Language;
use raw::RawConfig;

/// Default location of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/diemcau/config.toml";

/// A configuration error, already located in the file where possible.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the configuration file: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        col: usize,
        /// Dotted key, e.g. `video.bitrate_kbps`; empty for syntax errors.
        key: String,
        message: String,
    },
}

/// One validation failure before it is located in the file.
#[derive(Debug, Clone, PartialEq)]
struct Problem {
    section: &'static str,
    key: &'static str,
    message: String,
}

fn problem(section: &'static str, key: &'static str, message: impl Into<String>) -> Problem {
    Problem {
        section,
        key,
        message: message.into(),
    }
}

/// What the daemon does after finding a session that a crash interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupted {
    /// Stay idle; staff press the button again.
    Idle,
    /// Start a new session at once (the old one stays marked interrupted).
    Resume,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub id: String,
    pub name: String,
    pub province: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Daemon {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub socket_mode: u32,
    pub language: Language,
    pub on_interrupted: OnInterrupted,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VideoSource {
    /// `videotestsrc`: demo and tests. With `Some(n)` the camera "unplugs"
    /// itself after n frames, to exercise device loss and recovery.
    Synthetic(Option<u32>),
    /// A V4L2 camera at this path.
    V4l2(PathBuf),
    /// A video file played as the camera, paced in real time (demos,
    /// benchmarks on a fixed clip).
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    /// A hardware encoder when one is present, otherwise x264.
    Auto,
    X264,
    Vaapi,
    V4l2,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    pub source: VideoSource,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub encoder: Encoder,
    pub bitrate_kbps: u32,
    pub min_bitrate_kbps: u32,
    pub max_bitrate_kbps: u32,
    pub keyframe_interval_s: u32,
    pub stall_timeout: Duration,
    /// PTZ preset recalled when a session starts.
    pub default_preset: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AudioSource {
    Synthetic,
    Alsa(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    Opus,
    Aac,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub source: AudioSource,
    pub rate: u32,
    pub channels: u32,
    pub codec: AudioCodec,
    pub bitrate_kbps: u32,
    pub echo_cancel: bool,
    /// Microphone capture gain set at session start, percent (None: leave it).
    pub gain_percent: Option<u8>,
}

/// An SRT peer the box dials (it never listens).
#[derive(Debug, Clone, PartialEq)]
pub struct SrtPeer {
    pub host: String,
    pub port: u16,
    pub passphrase: Option<String>,
    pub pbkeylen: u32,
    pub latency_ms: u32,
    pub streamid: Option<String>,
}

impl SrtPeer {
    /// The `srt://` URI for `srtsink`/`srtsrc` in caller mode.
    pub fn uri(&self) -> String {
        format!(
            "srt://{}:{}?mode=caller&latency={}",
            self.host, self.port, self.latency_ms
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Uplink {
    pub peer: Option<SrtPeer>,
    pub reconnect_max: Duration,
    pub adaptive_bitrate: bool,
    /// The most the SRT latency is raised to, to cover four RTTs of a slow
    /// link (ms).
    pub latency_max_ms: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReturnFeed {
    pub peer: Option<SrtPeer>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DisplaySink {
    Kms {
        driver: Option<String>,
        connector: u32,
    },
    Window,
    /// Rendered and counted, shown nowhere (tests).
    Fake,
    /// No display pipeline at all (headless boxes, benchmarks).
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Display {
    pub sink: DisplaySink,
    pub width: u32,
    pub height: u32,
    /// The province's wording of the notice that the room is recorded
    /// (None: the default words in the daemon's language).
    pub recording_notice: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SpeakerSink {
    Alsa(String),
    Fake,
    /// No speaker pipeline (and so no echo cancellation).
    None,
}

/// A GPIO line on a character-device chip (button input or LED output).
#[derive(Debug, Clone, PartialEq)]
pub struct GpioLine {
    /// `/dev/gpiochipN`.
    pub chip: PathBuf,
    /// Line offset on the chip.
    pub line: u32,
    /// The line reads low when the button is pressed / drives low to light.
    pub active_low: bool,
    pub bias: GpioBias,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpioBias {
    /// Leave the line's bias as the board set it.
    AsIs,
    PullUp,
    PullDown,
    Disabled,
}

/// Which USB input device is the button.
#[derive(Debug, Clone, PartialEq)]
pub enum EvdevDevice {
    /// A device node, e.g. `/dev/diemcau/button` or `/dev/input/by-id/...`.
    Path(PathBuf),
    /// The device's name as the kernel reports it.
    Name(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ButtonInput {
    None,
    Evdev {
        device: EvdevDevice,
        /// Linux key code (`KEY_*`/`BTN_*`), and its name for messages.
        key: u16,
        key_name: String,
    },
    Gpio(GpioLine),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Button {
    pub input: ButtonInput,
    /// A level must hold this long before it counts (contact bounce).
    pub debounce: Duration,
    /// Holding this long ends a live session.
    pub long_press: Duration,
    /// Presses this soon after one that started or stopped a session are repeats.
    pub repeat_guard: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Led {
    None,
    /// A Linux LED class directory (`/sys/class/leds/NAME`).
    Sysfs(PathBuf),
    Gpio(GpioLine),
}

/// The validated configuration. Built only by [`load`] or [`Config::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub site: Site,
    pub daemon: Daemon,
    pub video: Video,
    pub audio: Audio,
    pub uplink: Uplink,
    pub return_feed: ReturnFeed,
    pub display: Display,
    pub speaker: SpeakerSink,
    pub button: Button,
    pub led: Led,
    /// The NOC control plane; `None` when `[mqtt] url` is empty.
    pub mqtt: Option<Mqtt>,
    pub recording: Recording,
    /// The central archive; `None` when `[archive] endpoint` is empty.
    pub archive: Option<Archive>,
    /// The SIP room endpoint; `None` when `[sip] mode` is `srt`.
    pub sip: Option<sip::Sip>,
    pub schedule: Schedule,
}

/// Scheduled sessions: the box's time zone, its groups, and how a planned
/// end is announced and put off.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub time_zone: jiff::tz::TimeZone,
    pub time_zone_name: String,
    pub groups: Vec<String>,
    pub rules: crate::core::schedule::Rules,
}

/// An S3-compatible object store.
#[derive(Debug, Clone, PartialEq)]
pub struct Archive {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub path_style: bool,
    /// While live, at most this share of the uplink's measured bandwidth.
    pub live_share: f64,
    /// While live, at most this rate (kbit/s; 0: no cap).
    pub live_max_kbps: u64,
    /// Otherwise at most this rate (kbit/s; 0: no cap).
    pub idle_max_kbps: u64,
    /// An RFC 3161 time-stamping authority (http or https): each manifest
    /// is time-stamped before it goes to the archive.
    pub timestamp_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub enabled: bool,
    /// Target segment length; segments are cut at the next keyframe after it.
    pub segment: Duration,
    /// Size of the pieces a segment is stored in.
    pub chunk_bytes: usize,
    /// Longest time recorded bytes stay unflushed (the most a power cut loses).
    pub flush_interval: Duration,
    /// Quota in bytes (0: none) and in percent of the state filesystem (0: none).
    pub quota_bytes: u64,
    pub quota_percent: u32,
    /// How often the chain head goes to the NOC while recording (an event
    /// it stores): a time witness no later copy can match.
    pub witness_interval: Duration,
    /// How long a recording stays on the box after the archive confirmed
    /// all of it (None: until the quota needs the room).
    pub retention: Option<Duration>,
    /// Encryption at rest: the age X25519 recipients (`age1…`) each
    /// recording's key is wrapped to. Empty: recordings are kept in clear.
    pub recipients: Vec<String>,
}

/// Read, parse and validate the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    Config::parse(path, &text)
}

impl Config {
    /// Parse and validate `text`, reporting errors against `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| locate::toml_error(path, text, &e))?;
        Config::from_raw(path, raw).map_err(|p| {
            let (line, col) = locate::key_position(text, p.section, p.key);
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                col,
                key: format!("{}.{}", p.section, p.key),
                message: format!(
                    "invalid value for '{}' in [{}]: {}",
                    p.key, p.section, p.message
                ),
            }
        })
    }

    fn from_raw(path: &Path, raw: RawConfig) -> Result<Config, Problem> {
        let site = validate_site(raw.site)?;
        let daemon = validate_daemon(raw.daemon)?;
        let video = validate_video(raw.video)?;
        let audio = validate_audio(raw.audio)?;
        let uplink = Uplink {
            peer: srt_peer(
                "uplink",
                &raw.uplink.url,
                &raw.uplink.passphrase,
                raw.uplink.pbkeylen,
                raw.uplink.latency_ms,
                &raw.uplink.streamid,
            )?,
            reconnect_max: {
                let s = raw.uplink.reconnect_max_s;
                if !(0.1..=60.0).contains(&s) {
                    return Err(problem(
                        "uplink",
                        "reconnect_max_s",
                        format!("{s} is out of range; expected 0.1 to 60 seconds"),
                    ));
                }
                Duration::from_secs_f64(s)
            },
            adaptive_bitrate: raw.uplink.adaptive_bitrate,
            latency_max_ms: {
                let m = raw.uplink.latency_max_ms;
                if !(20..=8000).contains(&m) {
                    return Err(problem(
                        "uplink",
                        "latency_max_ms",
                        format!("{m} is out of range; expected 20 to 8000 milliseconds"),
                    ));
                }
                if m < raw.uplink.latency_ms {
                    return Err(problem(
                        "uplink",
                        "latency_max_ms",
                        format!(
                            "{m} is below latency_ms ({}); the ceiling must be at least the latency",
                            raw.uplink.latency_ms
                        ),
                    ));
                }
                m
            },
        };
        let return_feed = ReturnFeed {
            peer: if raw.return_feed.enabled {
                let peer = srt_peer(
                    "return_feed",
                    &raw.return_feed.url,
                    &raw.return_feed.passphrase,
                    16,
                    raw.return_feed.latency_ms,
                    &raw.return_feed.streamid,
                )?;
                if peer.is_none() {
                    return Err(problem(
                        "return_feed",
                        "url",
                        "the return feed is enabled but has no url; expected srt://HOST:PORT",
                    ));
                }
                peer
            } else {
                None
            },
        };
        let display = validate_display(raw.display)?;
        let speaker = match raw.speaker.sink.as_str() {
            "alsa" => SpeakerSink::Alsa(raw.speaker.device),
            "fake" => SpeakerSink::Fake,
            "none" => SpeakerSink::None,
            other => {
                return Err(problem(
                    "speaker",
                    "sink",
                    format!(
                        "'{other}' is not a speaker sink; expected \"alsa\", \"fake\" or \"none\""
                    ),
                ))
            }
        };
        let button = validate_button(raw.button)?;
        let led = validate_led(raw.led)?;
        let mqtt = validate_mqtt(path, raw.mqtt)?;
        let recording = validate_recording(raw.recording)?;
        let archive = validate_archive(raw.archive)?;
        let sip = sip::validate(
            path,
            raw.sip,
            uplink.peer.is_some(),
            return_feed.peer.is_some(),
        )?;
        let schedule = validate_schedule(raw.schedule)?;
        Ok(Config {
            schedule,
            sip,
            recording,
            archive,
            path: path.to_owned(),
            site,
            daemon,
            video,
            audio,
            uplink,
            return_feed,
            display,
            speaker,
            button,
            led,
            mqtt,
        })
    }
}

impl Config {
    /// Every secret value this configuration holds (the keys of
    /// `core::secrets::SECRET_KEYS`), for taking them out of what leaves
    /// the box, such as its logs.
    pub fn secret_values(&self) -> Vec<String> {
        let mut v = Vec::new();
        v.extend(self.uplink.peer.as_ref().and_then(|p| p.passphrase.clone()));
        v.extend(
            self.return_feed
                .peer
                .as_ref()
                .and_then(|p| p.passphrase.clone()),
        );
        v.extend(
            self.mqtt
                .as_ref()
                .and_then(|m| m.credentials.as_ref())
                .map(|(_, p)| p.clone()),
        );
        v.extend(self.archive.as_ref().map(|a| a.secret_access_key.clone()));
        if let Some(s) = &self.sip {
            v.extend(s.credentials.as_ref().map(|(_, p)| p.clone()));
            v.extend(s.pin.clone());
        }
        v.retain(|s| !s.is_empty());
        v
    }
}

fn validate_schedule(raw: raw::RawSchedule) -> Result<Schedule, Problem> {
    use jiff::SignedDuration;
    let time_zone = jiff::tz::TimeZone::get(&raw.time_zone).map_err(|_| {
        problem(
            "schedule",
            "time_zone",
            format!(
                "'{}' is not a time zone the box knows; expected an IANA name such as Asia/Ho_Chi_Minh",
                raw.time_zone
            ),
        )
    })?;
    for g in &raw.groups {
        if g.is_empty()
            || g.len() > 64
            || g == "all"
            || !g
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(problem(
                "schedule",
                "groups",
                format!(
                    "'{g}' is not a group name; expected 1 to 64 lowercase letters, digits, '-' or '_' (and not 'all')"
                ),
            ));
        }
    }
    if raw.groups.len() > 16 {
        return Err(problem(
            "schedule",
            "groups",
            format!("{} groups; a box belongs to at most 16", raw.groups.len()),
        ));
    }
    let mut warn = raw.warn_before_s.clone();
    for w in &warn {
        range("schedule", "warn_before_s", *w, 10, 3600)?;
    }
    warn.sort_unstable_by(|a, b| b.cmp(a));
    warn.dedup();
    range("schedule", "extend_min", raw.extend_min, 1, 240)?;
    range("schedule", "late_start_min", raw.late_start_min, 0, 240)?;
    Ok(Schedule {
        time_zone,
        time_zone_name: raw.time_zone,
        groups: raw.groups,
        rules: crate::core::schedule::Rules {
            warn_before: warn
                .into_iter()
                .map(|s| SignedDuration::from_secs(s as i64))
                .collect(),
            extend_by: SignedDuration::from_mins(raw.extend_min as i64),
            late_start: SignedDuration::from_mins(raw.late_start_min as i64),
        },
    })
}

fn validate_site(raw: raw::RawSite) -> Result<Site, Problem> {
    if raw.id.is_empty() {
        return Err(problem(
            "site",
            "id",
            "missing; expected the site id, e.g. id = \"nghean-xa-nghiloc\"",
        ));
    }
    let id_ok = !raw.id.is_empty()
        && raw.id.len() <= 64
        && raw
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !raw.id.starts_with('-');
    if !id_ok {
        return Err(problem(
            "site",
            "id",
            format!(
                "'{}' is not a site id; expected 1 to 64 lowercase letters, digits and '-', e.g. \"nghean-xa-nghiloc\"",
                raw.id
            ),
        ));
    }
    if raw.id == "all" {
        return Err(problem(
            "site",
            "id",
            "'all' is reserved for fleet-wide commands; choose another site id",
        ));
    }
    if raw.name.trim().is_empty() {
        return Err(problem(
            "site",
            "name",
            "the commune's name is empty; it is shown on the display",
        ));
    }
    Ok(Site {
        id: raw.id,
        name: raw.name,
        province: raw.province,
    })
}

fn validate_daemon(raw: raw::RawDaemon) -> Result<Daemon, Problem> {
    let socket_mode = u32::from_str_radix(raw.socket_mode.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            problem(
                "daemon",
                "socket_mode",
                format!(
                    "'{}' is not an octal file mode; expected e.g. \"0660\"",
                    raw.socket_mode
                ),
            )
        })?;
    let language = Language::parse(&raw.language).ok_or_else(|| {
        problem(
            "daemon",
            "language",
            format!(
                "'{}' is not a language; expected \"vi\" or \"en\"",
                raw.language
            ),
        )
    })?;
    let on_interrupted = match raw.on_interrupted.as_str() {
        "idle" => OnInterrupted::Idle,
        "resume" => OnInterrupted::Resume,
        other => {
            return Err(problem(
                "daemon",
                "on_interrupted",
                format!("'{other}' is not a choice; expected \"idle\" or \"resume\""),
            ))
        }
    };
    if raw.state_dir.is_empty() {
        return Err(problem(
            "daemon",
            "state_dir",
            "empty path; expected a directory",
        ));
    }
    if raw.socket.is_empty() {
        return Err(problem(
            "daemon",
            "socket",
            "empty path; expected a socket path",
        ));
    }
    range("daemon", "start_timeout_s", raw.start_timeout_s, 1, 120)?;
    range("daemon", "stop_timeout_s", raw.stop_timeout_s, 1, 120)?;
    Ok(Daemon {
        state_dir: raw.state_dir.into(),
        socket: raw.socket.into(),
        socket_mode,
        language,
        on_interrupted,
        start_timeout: Duration::from_secs(raw.start_timeout_s),
        stop_timeout: Duration::from_secs(raw.stop_timeout_s),
    })
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(
    section: &'static str,
    key: &'static str,
    v: T,
    lo: T,
    hi: T,
) -> Result<T, Problem> {
    if v < lo || v > hi {
        Err(problem(
            section,
            key,
            format!("{v} is out of range; expected {lo} to {hi}"),
        ))
    } else {
        Ok(v)
    }
}

fn validate_video(raw: raw::RawVideo) -> Result<Video, Problem> {
    let source = match raw.source.as_str() {
        "synthetic" => {
            VideoSource::Synthetic((raw.synthetic_frames > 0).then_some(raw.synthetic_frames))
        }
        "v4l2" => {
            if !raw.device.starts_with('/') {
                return Err(problem(
                    "video",
                    "device",
                    format!("'{}' is not a device path; expected e.g. \"/dev/video0\" or \"/dev/diemcau/camera\"", raw.device),
                ));
            }
            VideoSource::V4l2(raw.device.into())
        }
        "file" => {
            if raw.device.is_empty() {
                return Err(problem(
                    "video",
                    "device",
                    "source = \"file\" needs the file's path in device",
                ));
            }
            VideoSource::File(raw.device.into())
        }
        other => {
            return Err(problem(
                "video",
                "source",
                format!(
                    "'{other}' is not a video source; expected \"v4l2\", \"synthetic\" or \"file\""
                ),
            ))
        }
    };
    range("video", "width", raw.width, 160, 3840)?;
    range("video", "height", raw.height, 120, 2160)?;
    if raw.width % 2 != 0 || raw.height % 2 != 0 {
        return Err(problem(
            "video",
            "width",
            "width and height must be even for H.264",
        ));
    }
    range("video", "framerate", raw.framerate, 1, 60)?;
    let encoder = match raw.encoder.as_str() {
        "auto" => Encoder::Auto,
        "x264" => Encoder::X264,
        "vaapi" => Encoder::Vaapi,
        "v4l2" => Encoder::V4l2,
        other => {
            return Err(problem(
                "video",
                "encoder",
                format!(
                "'{other}' is not an encoder; expected \"auto\", \"x264\", \"vaapi\" or \"v4l2\""
            ),
            ))
        }
    };
    range(
        "video",
        "min_bitrate_kbps",
        raw.min_bitrate_kbps,
        100,
        50_000,
    )?;
    range(
        "video",
        "max_bitrate_kbps",
        raw.max_bitrate_kbps,
        100,
        50_000,
    )?;
    if raw.min_bitrate_kbps > raw.max_bitrate_kbps {
        return Err(problem(
            "video",
            "min_bitrate_kbps",
            format!(
                "{} is above max_bitrate_kbps ({}); expected min <= max",
                raw.min_bitrate_kbps, raw.max_bitrate_kbps
            ),
        ));
    }
    range(
        "video",
        "bitrate_kbps",
        raw.bitrate_kbps,
        raw.min_bitrate_kbps,
        raw.max_bitrate_kbps,
    )?;
    range(
        "video",
        "keyframe_interval_s",
        raw.keyframe_interval_s,
        1,
        10,
    )?;
    range("video", "stall_timeout_s", raw.stall_timeout_s, 1, 60)?;
    Ok(Video {
        source,
        width: raw.width,
        height: raw.height,
        framerate: raw.framerate,
        encoder,
        bitrate_kbps: raw.bitrate_kbps,
        min_bitrate_kbps: raw.min_bitrate_kbps,
        max_bitrate_kbps: raw.max_bitrate_kbps,
        keyframe_interval_s: raw.keyframe_interval_s,
        stall_timeout: Duration::from_secs(raw.stall_timeout_s.into()),
        default_preset: (!raw.default_preset.is_empty()).then_some(raw.default_preset),
    })
}

fn validate_audio(raw: raw::RawAudio) -> Result<Audio, Problem> {
    let source = match raw.source.as_str() {
        "synthetic" => AudioSource::Synthetic,
        "alsa" => AudioSource::Alsa(raw.device),
        other => {
            return Err(problem(
                "audio",
                "source",
                format!("'{other}' is not an audio source; expected \"alsa\" or \"synthetic\""),
            ))
        }
    };
    if ![16000, 32000, 44100, 48000].contains(&raw.rate) {
        return Err(problem(
            "audio",
            "rate",
            format!(
                "{} Hz is not supported; expected 16000, 32000, 44100 or 48000",
                raw.rate
            ),
        ));
    }
    range("audio", "channels", raw.channels, 1, 2)?;
    let codec = match raw.codec.as_str() {
        "opus" => AudioCodec::Opus,
        "aac" => AudioCodec::Aac,
        other => {
            return Err(problem(
                "audio",
                "codec",
                format!("'{other}' is not an audio codec; expected \"opus\" or \"aac\""),
            ))
        }
    };
    if codec == AudioCodec::Opus && raw.rate == 44100 {
        return Err(problem(
            "audio",
            "rate",
            "Opus does not take 44100 Hz; expected 48000 (or use codec = \"aac\")",
        ));
    }
    range("audio", "bitrate_kbps", raw.bitrate_kbps, 16, 320)?;
    range("audio", "gain_percent", raw.gain_percent, -1, 100)?;
    Ok(Audio {
        source,
        rate: raw.rate,
        channels: raw.channels,
        codec,
        bitrate_kbps: raw.bitrate_kbps,
        echo_cancel: raw.echo_cancel,
        gain_percent: u8::try_from(raw.gain_percent).ok(),
    })
}

fn validate_archive(raw: raw::RawArchive) -> Result<Option<Archive>, Problem> {
    if raw.endpoint.is_empty() {
        return Ok(None);
    }
    if !(raw.endpoint.starts_with("http://") || raw.endpoint.starts_with("https://")) {
        return Err(problem(
            "archive",
            "endpoint",
            format!(
                "'{}' is not an http(s) URL; expected e.g. \"https://s3.example.vn\"",
                raw.endpoint
            ),
        ));
    }
    if raw.bucket.is_empty() {
        return Err(problem(
            "archive",
            "bucket",
            "missing; expected the bucket name",
        ));
    }
    if !(0.0..=1.0).contains(&raw.live_share) {
        return Err(problem(
            "archive",
            "live_share",
            format!("{} is out of range; expected 0.0 to 1.0", raw.live_share),
        ));
    }
    let (mut key, mut secret) = (raw.access_key_id, raw.secret_access_key);
    if !raw.credentials_file.is_empty() {
        let text = std::fs::read_to_string(&raw.credentials_file).map_err(|e| {
            problem(
                "archive",
                "credentials_file",
                format!("cannot read '{}': {e}", raw.credentials_file),
            )
        })?;
        // The AWS credentials format: key = value lines, sections ignored.
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                match k.trim() {
                    "aws_access_key_id" | "access_key_id" => key = v.trim().to_owned(),
                    "aws_secret_access_key" | "secret_access_key" => secret = v.trim().to_owned(),
                    _ => {}
                }
            }
        }
    }
    let url = &raw.timestamp_url;
    if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
        return Err(problem(
            "archive",
            "timestamp_url",
            format!(
                "'{}' is not an http(s) URL; expected the time-stamping authority's address, e.g. \"http://tsa.example.vn/tsr\"",
                raw.timestamp_url
            ),
        ));
    }
    if key.is_empty() || secret.is_empty() {
        return Err(problem(
            "archive",
            "access_key_id",
            "the archive needs credentials: access_key_id and secret_access_key, or a credentials_file",
        ));
    }
    Ok(Some(Archive {
        endpoint: raw.endpoint,
        region: raw.region,
        bucket: raw.bucket,
        prefix: raw.prefix,
        access_key_id: key,
        secret_access_key: secret,
        path_style: raw.path_style,
        live_share: raw.live_share,
        live_max_kbps: raw.live_max_kbps,
        idle_max_kbps: raw.idle_max_kbps,
        timestamp_url: (!raw.timestamp_url.is_empty()).then_some(raw.timestamp_url),
    }))
}

fn validate_recording(raw: raw::RawRecording) -> Result<Recording, Problem> {
    if !(0.5..=30.0).contains(&raw.segment_s) {
        return Err(problem(
            "recording",
            "segment_s",
            format!(
                "{} is out of range; expected 0.5 to 30 seconds",
                raw.segment_s
            ),
        ));
    }
    // sled stores values above a quarter of its 512 KiB log segment as
    // separate blob files, which it reclaims lazily: measured at 7 to 20
    // times space amplification (bench/store.sh). Chunks stay below that.
    range("recording", "chunk_kib", raw.chunk_kib, 4, 120)?;
    range(
        "recording",
        "flush_interval_ms",
        raw.flush_interval_ms,
        50,
        1000,
    )?;
    range("recording", "quota_percent", raw.quota_percent, 0, 95)?;
    // At least once a minute: the record format promises the NOC a
    // witnessed chain head for every minute of a session.
    range(
        "recording",
        "witness_interval_s",
        raw.witness_interval_s,
        1,
        60,
    )?;
    if raw.quota_bytes > 0 && raw.quota_bytes < 1 << 20 {
        return Err(problem(
            "recording",
            "quota_bytes",
            format!("{} bytes is too small to hold a session; expected 0 (none) or at least 1048576 (1 MiB)", raw.quota_bytes),
        ));
    }
    if !(0.0..=3650.0).contains(&raw.retention_days) {
        return Err(problem(
            "recording",
            "retention_days",
            format!(
                "{} is out of range; expected 0 (keep until the space is needed) to 3650 days",
                raw.retention_days
            ),
        ));
    }
    let mut recipients: Vec<String> = Vec::new();
    for r in &raw.recipients {
        let r = r.trim();
        if let Err(e) = <age::x25519::Recipient as std::str::FromStr>::from_str(r) {
            return Err(problem(
                "recording",
                "recipients",
                format!(
                    "{r:?} is not an age X25519 recipient ({e}); each is one line starting with age1, as `age-keygen -y IDENTITY_FILE` prints it from the province's key"
                ),
            ));
        }
        if !recipients.iter().any(|x| x == r) {
            recipients.push(r.to_owned());
        }
    }
    if recipients.len() > 8 {
        return Err(problem(
            "recording",
            "recipients",
            format!(
                "{} recipients; expected at most 8 (the province's archive key and an escrow key are two)",
                recipients.len()
            ),
        ));
    }
    Ok(Recording {
        recipients,
        retention: (raw.retention_days > 0.0)
            .then(|| Duration::from_secs_f64(raw.retention_days * 86_400.0)),
        enabled: raw.enabled,
        segment: Duration::from_secs_f64(raw.segment_s),
        chunk_bytes: raw.chunk_kib as usize * 1024,
        flush_interval: Duration::from_millis(raw.flush_interval_ms),
        quota_bytes: raw.quota_bytes,
        quota_percent: raw.quota_percent,
        witness_interval: Duration::from_secs(raw.witness_interval_s),
    })
}

fn validate_display(raw: raw::RawDisplay) -> Result<Display, Problem> {
    let sink = match raw.sink.as_str() {
        "kms" => DisplaySink::Kms {
            driver: (!raw.kms_driver.is_empty()).then_some(raw.kms_driver),
            connector: raw.kms_connector,
        },
        "window" => DisplaySink::Window,
        "fake" => DisplaySink::Fake,
        "none" => DisplaySink::None,
        other => {
            return Err(problem(
                "display",
                "sink",
                format!(
                    "'{other}' is not a display sink; expected \"kms\", \"window\", \"fake\" or \"none\""
                ),
            ))
        }
    };
    range("display", "width", raw.width, 320, 3840)?;
    range("display", "height", raw.height, 240, 2160)?;
    if let Some(n) = &raw.recording_notice {
        if n.trim().is_empty() || n.chars().count() > 200 {
            return Err(problem(
                "display",
                "recording_notice",
                "must say, in at most 200 characters, that the session is recorded (people in the room must be told); leave the key out for the default words",
            ));
        }
    }
    Ok(Display {
        sink,
        width: raw.width,
        height: raw.height,
        recording_notice: raw.recording_notice.map(|n| n.trim().to_owned()),
    })
}

/// `gpiochip0` or `/dev/gpiochip0` to the device path.
fn gpio_chip(section: &'static str, chip: &str) -> Result<PathBuf, Problem> {
    if chip.starts_with('/') {
        Ok(chip.into())
    } else if !chip.is_empty() && !chip.contains('/') {
        Ok(Path::new("/dev").join(chip))
    } else {
        Err(problem(
            section,
            "chip",
            format!(
                "'{chip}' is not a GPIO chip; expected e.g. \"gpiochip0\" or \"/dev/gpiochip0\""
            ),
        ))
    }
}

fn gpio_bias(section: &'static str, bias: &str) -> Result<GpioBias, Problem> {
    match bias {
        "as-is" => Ok(GpioBias::AsIs),
        "pull-up" => Ok(GpioBias::PullUp),
        "pull-down" => Ok(GpioBias::PullDown),
        "disabled" => Ok(GpioBias::Disabled),
        other => Err(problem(
            section,
            "bias",
            format!("'{other}' is not a bias; expected \"pull-up\", \"pull-down\", \"disabled\" or \"as-is\""),
        )),
    }
}

fn validate_button(raw: raw::RawButton) -> Result<Button, Problem> {
    let input = match raw.kind.as_str() {
        "none" => ButtonInput::None,
        "evdev" => {
            if raw.device.trim().is_empty() {
                return Err(problem(
                    "button",
                    "device",
                    "empty; expected a device path such as \"/dev/diemcau/button\" or the device's name",
                ));
            }
            let device = if raw.device.starts_with('/') {
                EvdevDevice::Path(raw.device.into())
            } else {
                EvdevDevice::Name(raw.device)
            };
            let key: evdev::KeyCode = raw.key.parse().map_err(|_| {
                problem(
                    "button",
                    "key",
                    format!(
                        "'{}' is not a Linux key name; expected e.g. \"KEY_ENTER\", \"KEY_F13\" or \"BTN_0\"",
                        raw.key
                    ),
                )
            })?;
            ButtonInput::Evdev {
                device,
                key: key.code(),
                key_name: raw.key,
            }
        }
        "gpio" => ButtonInput::Gpio(GpioLine {
            chip: gpio_chip("button", &raw.chip)?,
            line: raw.line,
            active_low: raw.active_low,
            bias: gpio_bias("button", &raw.bias)?,
        }),
        other => {
            return Err(problem(
                "button",
                "kind",
                format!("'{other}' is not a button kind; expected \"none\", \"evdev\" or \"gpio\""),
            ))
        }
    };
    range("button", "debounce_ms", raw.debounce_ms, 0, 200)?;
    range("button", "long_press_ms", raw.long_press_ms, 500, 10_000)?;
    range("button", "repeat_guard_ms", raw.repeat_guard_ms, 0, 10_000)?;
    Ok(Button {
        input,
        debounce: Duration::from_millis(raw.debounce_ms),
        long_press: Duration::from_millis(raw.long_press_ms),
        repeat_guard: Duration::from_millis(raw.repeat_guard_ms),
    })
}

fn validate_led(raw: raw::RawLed) -> Result<Led, Problem> {
    match raw.kind.as_str() {
        "none" => Ok(Led::None),
        "sysfs" => {
            let name = raw.name.trim();
            if name.is_empty() || name.ends_with('/') {
                return Err(problem(
                    "led",
                    "name",
                    format!("'{name}' is not an LED; expected a name under /sys/class/leds, e.g. \"diemcau:tally\""),
                ));
            }
            Ok(Led::Sysfs(if name.starts_with('/') {
                name.into()
            } else {
                Path::new("/sys/class/leds").join(name)
            }))
        }
        "gpio" => Ok(Led::Gpio(GpioLine {
            chip: gpio_chip("led", &raw.chip)?,
            line: raw.line,
            active_low: raw.active_low,
            bias: GpioBias::AsIs,
        })),
        other => Err(problem(
            "led",
            "kind",
            format!("'{other}' is not an LED kind; expected \"none\", \"sysfs\" or \"gpio\""),
        )),
    }
}

/// Parse `srt://HOST:PORT` plus its options; an empty url means "not configured".
fn srt_peer(
    section: &'static str,
    url: &str,
    passphrase: &str,
    pbkeylen: u32,
    latency_ms: u32,
    streamid: &str,
) -> Result<Option<SrtPeer>, Problem> {
    if !passphrase.is_empty() && !(10..=79).contains(&passphrase.len()) {
        return Err(problem(
            section,
            "passphrase",
            format!(
                "{} characters; SRT needs 10 to 79 (or leave it empty for no encryption)",
                passphrase.len()
            ),
        ));
    }
    if ![16, 24, 32].contains(&pbkeylen) {
        return Err(problem(
            section,
            "pbkeylen",
            format!("{pbkeylen} is not an AES key length; expected 16, 24 or 32"),
        ));
    }
    range(section, "latency_ms", latency_ms, 20, 8000)?;
    if streamid.len() > 512 {
        return Err(problem(section, "streamid", "longer than SRT's 512 bytes"));
    }
    if url.is_empty() {
        return Ok(None);
    }
    let bad = || {
        problem(
            section,
            "url",
            format!("'{url}' is not an SRT address; expected srt://HOST:PORT"),
        )
    };
    let rest = url.strip_prefix("srt://").ok_or_else(bad)?;
    if rest.contains('?') || rest.contains('/') {
        return Err(problem(
            section,
            "url",
            format!("'{url}' carries options or a path; put them in their own keys (latency_ms, streamid, passphrase)"),
        ));
    }
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Some(SrtPeer {
        host: host.to_owned(),
        port,
        passphrase: (!passphrase.is_empty()).then(|| passphrase.to_owned()),
        pbkeylen,
        latency_ms,
        streamid: (!streamid.is_empty()).then(|| streamid.to_owned()),
    }))
}

/// One MQTT broker address.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttBroker {
    /// `mqtts://` (TLS) rather than `mqtt://`.
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for MqttBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// The MQTT control plane (see `src/mqtt/`).
#[derive(Debug, Clone, PartialEq)]
pub struct Mqtt {
    /// Tried in order, round robin, on every failed connection.
    pub brokers: Vec<MqttBroker>,
    /// CA certificate (PEM) the broker's certificate must chain to;
    /// `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// The device's client certificate and key (PEM), for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub credentials: Option<(String, String)>,
    pub topic_prefix: String,
    pub keep_alive: Duration,
    pub health_interval: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Commands whose `expires_at` lies further ahead are rejected; seen
    /// command ids are kept this long, so a replay is always caught.
    pub command_max_ttl: Duration,
    pub allow_reboot: bool,
}

/// Parse `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`.
pub fn parse_mqtt_url(url: &str) -> Result<MqttBroker, String> {
    let bad = || {
        format!("'{url}' is not an MQTT address; expected mqtts://HOST:PORT or mqtt://HOST:PORT")
    };
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') || rest.contains('?') || rest.contains('@') {
        return Err(format!(
            "'{url}' carries a path, options or credentials; put credentials in username/password"
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (
            h,
            p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        ),
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok(MqttBroker {
        tls,
        host: host.to_owned(),
        port,
    })
}

fn validate_mqtt(config_path: &Path, raw: raw::RawMqtt) -> Result<Option<Mqtt>, Problem> {
    if raw.url.is_empty() {
        if !raw.fallback_urls.is_empty() {
            return Err(problem(
                "mqtt",
                "url",
                "fallback_urls are set but url is empty; expected the main broker's mqtts://HOST:PORT",
            ));
        }
        return Ok(None);
    }
    let mut brokers = vec![parse_mqtt_url(&raw.url).map_err(|m| problem("mqtt", "url", m))?];
    for u in &raw.fallback_urls {
        brokers.push(parse_mqtt_url(u).map_err(|m| problem("mqtt", "fallback_urls", m))?);
    }
    // Relative paths are relative to the configuration file, so a
    // provisioning directory can carry its certificates beside the file.
    let base = config_path.parent().unwrap_or(Path::new("/"));
    let file = |key: &'static str, v: &str| -> Result<Option<PathBuf>, Problem> {
        if v.is_empty() {
            return Ok(None);
        }
        let p = base.join(v);
        if !p.is_file() {
            return Err(problem(
                "mqtt",
                key,
                format!(
                    "{} does not exist or is not a file; expected a PEM file",
                    p.display()
                ),
            ));
        }
        Ok(Some(p))
    };
    let ca = file("ca", &raw.ca)?;
    let client_cert = match (file("cert", &raw.cert)?, file("key", &raw.key)?) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(problem(
                "mqtt",
                "key",
                "cert is set but key is empty; expected the client key's PEM file",
            ))
        }
        (None, Some(_)) => {
            return Err(problem(
                "mqtt",
                "cert",
                "key is set but cert is empty; expected the client certificate's PEM file",
            ))
        }
    };
    let tls = brokers.iter().any(|b| b.tls);
    if !tls && (ca.is_some() || client_cert.is_some()) {
        return Err(problem(
            "mqtt",
            "url",
            "a CA or client certificate is set but no broker uses mqtts://; certificates need TLS",
        ));
    }
    if raw.username.is_empty() && !raw.password.is_empty() {
        return Err(problem(
            "mqtt",
            "username",
            "a password is set but no username",
        ));
    }
    let prefix = raw.topic_prefix.trim_matches('/');
    if prefix.is_empty() || prefix.contains(['+', '#', '\0']) {
        return Err(problem(
            "mqtt",
            "topic_prefix",
            format!(
                "'{}' is not a topic prefix; expected e.g. \"diemcau/v1\"",
                raw.topic_prefix
            ),
        ));
    }
    range("mqtt", "keep_alive_s", raw.keep_alive_s, 5, 600)?;
    range("mqtt", "health_interval_s", raw.health_interval_s, 1, 3600)?;
    if !(0.05..=60.0).contains(&raw.reconnect_min_s) {
        return Err(problem(
            "mqtt",
            "reconnect_min_s",
            format!(
                "{} is out of range; expected 0.05 to 60 seconds",
                raw.reconnect_min_s
            ),
        ));
    }
    if !(raw.reconnect_min_s..=3600.0).contains(&raw.reconnect_max_s) {
        return Err(problem(
            "mqtt",
            "reconnect_max_s",
            format!(
                "{} is out of range; expected reconnect_min_s to 3600 seconds",
                raw.reconnect_max_s
            ),
        ));
    }
    range(
        "mqtt",
        "command_max_ttl_s",
        raw.command_max_ttl_s,
        10,
        7 * 86_400,
    )?;
    Ok(Some(Mqtt {
        brokers,
        ca,
        client_cert,
        credentials: (!raw.username.is_empty()).then_some((raw.username, raw.password)),
        topic_prefix: prefix.to_owned(),
        keep_alive: Duration::from_secs(raw.keep_alive_s),
        health_interval: Duration::from_secs(raw.health_interval_s),
        reconnect_min: Duration::from_secs_f64(raw.reconnect_min_s),
        reconnect_max: Duration::from_secs_f64(raw.reconnect_max_s),
        command_max_ttl: Duration::from_secs(raw.command_max_ttl_s),
        allow_reboot: raw.allow_reboot,
    }))
}

/// A short, stable tag of the configuration file's content (FNV-1a 64).
pub fn version(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[site]\nid = \"xa-01\"\nname = \"Xã Một\"\n";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("config.toml"), text)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.site.id, "xa-01");
        assert_eq!(c.daemon.socket, PathBuf::from("/run/diemcau/api.sock"));
        assert_eq!(c.daemon.socket_mode, 0o660);
        assert_eq!(c.video.bitrate_kbps, 2500);
        assert_eq!(c.uplink.peer, None);
    }

    #[test]
    fn recipients_are_checked_and_deduplicated() {
        let good = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq";
        let c = parse(&format!(
            "{MINIMAL}[recording]\nrecipients = [\"{good}\", \" {good} \"]\n"
        ))
        .unwrap();
        assert_eq!(c.recording.recipients, vec![good.to_owned()]);
        assert!(parse(MINIMAL).unwrap().recording.recipients.is_empty());
        let e = err(&format!(
            "{MINIMAL}[recording]\nrecipients = [\"ssh-ed25519 AAAA\"]\n"
        ));
        assert!(
            e.contains("recipients") && e.contains("age-keygen -y"),
            "{e}"
        );
    }

    #[test]
    fn misspelt_key_is_located_with_suggestion() {
        let text = format!("{MINIMAL}\n[video]\nwidth = 640\nbitrat = 2000\n");
        let e = err(&text);
        assert_eq!(
            e,
            "config.toml:7:1: unknown key 'bitrat' in [video]; did you mean 'bitrate_kbps'?"
        );
    }

    #[test]
    fn wrong_type_names_key_and_expectation() {
        let text = format!("{MINIMAL}[video]\nwidth = \"wide\"\n");
        let e = err(&text);
        assert!(e.starts_with("config.toml:5:9: "), "{e}");
        assert!(e.contains("'width' in [video]"), "{e}");
        assert!(e.contains("expected"), "{e}");
    }

    #[test]
    fn out_of_range_is_located() {
        let text = format!("{MINIMAL}[video]\nframerate = 500\n");
        let e = err(&text);
        assert_eq!(
            e,
            "config.toml:5:1: invalid value for 'framerate' in [video]: 500 is out of range; expected 1 to 60"
        );
    }

    #[test]
    fn witnesses_stamps_and_the_notice_are_checked() {
        let e = err(&format!("{MINIMAL}[recording]\nwitness_interval_s = 300\n"));
        assert!(
            e.contains("'witness_interval_s' in [recording]") && e.contains("1 to 60"),
            "{e}"
        );
        let e = err(&format!(
            "{MINIMAL}[archive]\nendpoint = \"http://s3\"\nbucket = \"b\"\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\ntimestamp_url = \"tsa.example\"\n"
        ));
        assert!(e.contains("'timestamp_url' in [archive]"), "{e}");
        let e = err(&format!("{MINIMAL}[display]\nrecording_notice = \"  \"\n"));
        assert!(e.contains("'recording_notice' in [display]"), "{e}");
        let c = parse(&format!(
            "{MINIMAL}[display]\nrecording_notice = \" Có ghi hình \"\n"
        ))
        .unwrap();
        assert_eq!(c.display.recording_notice.as_deref(), Some("Có ghi hình"));
        assert_eq!(parse(MINIMAL).unwrap().display.recording_notice, None);
    }

    #[test]
    fn missing_site_is_reported() {
        let e = err("[video]\nwidth = 640\n");
        assert_eq!(
            e,
            "config.toml:1:1: invalid value for 'id' in [site]: missing; expected the site id, e.g. id = \"nghean-xa-nghiloc\""
        );
    }

    #[test]
    fn unknown_section_is_reported() {
        let e = err(&format!("{MINIMAL}[vidoe]\n"));
        assert!(e.contains("unknown section [vidoe]"), "{e}");
        assert!(e.contains("did you mean [video]"), "{e}");
    }

    #[test]
    fn srt_url_is_parsed() {
        let text = format!(
            "{MINIMAL}[uplink]\nurl = \"srt://hub.example:8890\"\nstreamid = \"publish:xa\"\npassphrase = \"0123456789\"\n"
        );
        let c = parse(&text).unwrap();
        let p = c.uplink.peer.unwrap();
        assert_eq!(p.host, "hub.example");
        assert_eq!(p.port, 8890);
        assert_eq!(p.streamid.as_deref(), Some("publish:xa"));
    }

    #[test]
    fn short_passphrase_rejected() {
        let text = format!("{MINIMAL}[uplink]\nurl = \"srt://h:1\"\npassphrase = \"short\"\n");
        let e = err(&text);
        assert!(e.starts_with("config.toml:6:1:"), "{e}");
        assert!(e.contains("10 to 79"), "{e}");
    }

    #[test]
    fn bad_site_id_rejected() {
        let e = err("[site]\nid = \"Xa 01\"\nname = \"x\"\n");
        assert!(e.starts_with("config.toml:2:1:"), "{e}");
    }

    #[test]
    fn shipped_files_are_valid() {
        for f in ["config/example.toml", "config/demo.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
            load(&path).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }
}
