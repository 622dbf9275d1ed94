//! What the daemon reports about itself: the status the socket, MQTT, the
//! display and the light all read, and the statistics inside it. Plain data,
//! so that the actors that fill it and the adapters that show it share one
//! definition without importing each other.

use serde::{Deserialize, Serialize};

use super::session::{Degradation, Origin, Phase, SessionRecord};

/// What `status` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub site_id: String,
    pub site_name: String,
    pub phase: Phase,
    /// Why the box is in `fault`, if it is.
    pub fault: Option<String>,
    pub session: Option<SessionRecord>,
    pub degraded: Vec<Degradation>,
    /// The most recent finished session (ended, interrupted or failed).
    pub last_session: Option<SessionRecord>,
    pub uptime_s: u64,
    pub media: MediaStats,
    /// The archive upload: backlog and progress.
    #[serde(default)]
    pub upload: UploadStats,
    /// The SIP room endpoint: registration and the conference call.
    #[serde(default)]
    pub call: CallStats,
    /// Scheduled sessions: the next one, the one running, the clock.
    #[serde(default)]
    pub schedule: ScheduleStatus,
}

/// Where the schedules stand, filled by the scheduler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleStatus {
    /// The zone the schedules' local times are in.
    pub time_zone: String,
    /// The schedules the box holds: `site`, `group/NAME`, `holidays`.
    pub sources: Vec<ScheduleSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<ScheduledSession>,
    /// The scheduled session running now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<ScheduledSession>,
    /// What the room's screen says about it now, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<ScheduleNotice>,
    pub clock: Clock,
    /// An occurrence whose window is open with no scheduled session
    /// running (ended early by hand, or skipped): the metadata a start by
    /// the button takes, so a restart in the room belongs to it. Not in
    /// the state: case metadata goes out with sessions only.
    #[serde(skip)]
    pub open: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSource {
    pub source: String,
    pub revision: u64,
    pub entries: usize,
}

/// An occurrence, with its times as the room reads them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledSession {
    pub occurrence: String,
    pub title: String,
    pub start: chrono::DateTime<chrono::Utc>,
    /// Local start, `2026-12-03T08:00`, and its weekday (1 Monday to 7
    /// Sunday).
    pub local_start: String,
    pub weekday: u8,
    /// Seconds until it starts (the next one only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_in_s: Option<i64>,
    /// The planned end (moved by extensions), and its local time `11:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// A message about the scheduled session on the room's screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ScheduleNotice {
    /// The session ends at `end` (local `11:00`); a press puts it off.
    EndsAt { end: String },
    /// A press just put the end off to `end`.
    Extended { end: String },
}

/// The box's clock as the kernel sees it (NTP discipline).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    pub synchronized: bool,
    /// The kernel's maximum error estimate, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_ms: Option<u64>,
    /// The offset from the time server the kernel is still slewing away,
    /// whole milliseconds (what the time service measured and is
    /// correcting; finer would change the status at every look).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_ms: Option<i64>,
}

/// Where the conference call stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// No SIP configured, or no session.
    #[default]
    Idle,
    /// An INVITE is out, no final answer yet.
    Dialing,
    /// An incoming call waits for the button.
    Ringing,
    /// In the call.
    Connected,
    /// The call failed or ended while the session goes on: redialling.
    Redialing,
}

/// The SIP side of status, filled by the SIP actor (signalling) and the
/// call's media task (RTP and RTCP figures).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallStats {
    pub configured: bool,
    pub state: CallState,
    /// The conference or caller, as a SIP URI.
    pub remote: Option<String>,
    /// `G722/8000 + H264/90000`.
    pub codecs: Option<String>,
    /// Registered with the registrar (false when none is configured).
    pub registered: bool,
    /// Why registration fails, in the registrar's words (`401 Unauthorized`).
    pub registration_error: Option<String>,
    /// Why the last call attempt failed or ended (`486 Busy Here`).
    pub last_error: Option<String>,
    /// Calls connected since the daemon started.
    pub calls: u64,
    /// Incoming calls refused (not allowed, busy, no common codec).
    pub refused: u64,
    /// Where the far end is told to send the media, when STUN found it
    /// (`203.0.113.7:61000 (STUN)`); `None`: the box's own address.
    #[serde(default)]
    pub media_address: Option<String>,
    pub media: CallMediaStats,
}

/// The call's RTP figures, from RTCP where the far end reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallMediaStats {
    pub audio_packets_sent: u64,
    pub video_packets_sent: u64,
    /// The far end's sound, in buffers decoded on their way to the speaker.
    pub audio_packets_received: u64,
    /// The far end's picture, in frames decoded on their way to the screen.
    pub video_packets_received: u64,
    /// The far end's video RTP packets as they arrived, before decoding:
    /// beside `video_packets_received` it tells a picture that never came
    /// from one that came and could not be decoded.
    #[serde(default)]
    pub video_rtp_received: u64,
    /// Keyframes the box asked the far end for (RTCP PLI) because its
    /// picture arrived but nothing could be decoded from it.
    #[serde(default)]
    pub keyframe_requests: u64,
    /// Round-trip time from the far end's receiver reports (ms).
    pub rtt_ms: Option<f64>,
    /// Interarrival jitter of what the box receives (ms).
    pub jitter_ms: Option<f64>,
    /// Packets lost of what the box receives, in percent.
    pub loss_percent: Option<f64>,
    /// The encoder's ceiling from the far end's `b=AS` (kbit/s).
    pub video_cap_kbps: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, unknown command, wrong fields, too long.
    BadRequest,
    /// Valid, but refused in the current state (already live, not running).
    Rejected,
    /// Accepted, but carrying it out failed.
    Failed,
    /// The daemon is shutting down.
    Unavailable,
}

/// What the engine tells the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// The session's encoder produces output.
    Started,
    /// The session could not start, or died for good.
    Failed(String),
    /// The session's pipelines are down after a stop.
    Stopped,
    Degraded(Degradation),
    Restored(Degradation),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaStats {
    pub running: bool,
    /// The H.264 encoder's element (`x264enc`, `vaapih264enc`, ...).
    pub encoder: String,
    /// Why a hardware encoder is not the one running (missing, or it did
    /// not start), when x264 took its place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_fallback: Option<String>,
    pub camera_present: bool,
    pub microphone_present: bool,
    pub video_frames_in: u64,
    pub ts_bytes_out: u64,
    pub camera_restarts: u64,
    pub microphone_restarts: u64,
    /// The echo canceller runs on the microphone (a return feed or a call
    /// plays into the room, and the speaker's reference reaches it).
    #[serde(default)]
    pub echo_canceller: bool,
    /// Microphone peak and RMS over the last second, dBFS (-100 when silent or absent).
    pub mic_peak_dbfs: f64,
    pub mic_rms_dbfs: f64,
    pub uplink: UplinkStats,
    pub return_feed: ReturnStats,
    pub recording: RecorderStats,
    pub recorder_dropped_buffers: u64,
    /// Microphone quieter than -60 dBFS for 10 s (unplugged, muted, broken).
    pub mic_silent: bool,
    /// Microphone peaks at full scale in the last second.
    pub mic_clipping: bool,
    pub video_frames_encoded: u64,
    /// Measured over the last second, from the muxer's output.
    pub output_kbps: f64,
    /// The call's RTP figures; shown under `call.media`, not here.
    #[serde(skip)]
    pub call: CallMediaStats,
}

/// What the rest of the daemon sees of the uplink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UplinkStats {
    pub configured: bool,
    pub connected: bool,
    pub connects: u64,
    pub bytes_sent: u64,
    pub bytes_dropped_while_down: u64,
    pub rtt_ms: f64,
    pub packets_lost: u64,
    pub packets_retransmitted: u64,
    pub bandwidth_mbps: f64,
    pub send_rate_mbps: f64,
    pub bitrate_kbps: u32,
    /// Where the adaptive bitrate started this session: what the box
    /// learned about this link last time, or the floor.
    pub start_kbps: u32,
    /// What the last second said about the link.
    pub link: LinkVerdict,
    /// The SRT latency in use, and why.
    pub latency_ms: u32,
    pub latency_why: LatencyWhy,
    /// Speech first: the link cannot carry the picture at the floor, so
    /// the hub gets the sound whole and a still now and then; the encoder
    /// (and so the recording) is back at the configured bitrate meanwhile.
    #[serde(default)]
    pub speech_first: bool,
    /// Times this session went to speech first, and the stills sent.
    #[serde(default)]
    pub speech_first_episodes: u32,
    #[serde(default)]
    pub stills_sent: u64,
}

/// What a second of SRT statistics says about the link (see
/// `media::abr`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkVerdict {
    #[default]
    Clean,
    /// Loss without a growing queue: repaired by SRT, not a reason to cut.
    Lossy,
    /// A queue grows, packets go too late, or the bitrate is over SRT's
    /// estimate of the link: the bitrate comes down.
    Congested,
}

/// Why the uplink uses the SRT latency it does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyWhy {
    /// `[uplink] latency_ms`, which covers four RTTs of this link (or no
    /// RTT is known yet).
    #[default]
    Configured,
    /// Raised to four RTTs of this link.
    FourRtt,
    /// Four RTTs would be more than `[uplink] latency_max_ms`: held there.
    Ceiling,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReturnStats {
    pub configured: bool,
    /// Pictures are arriving from the hub.
    pub live: bool,
    pub connects: u64,
    pub video_frames: u64,
    pub audio_buffers: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecorderStats {
    pub enabled: bool,
    pub recording: bool,
    pub session: Option<String>,
    pub segments: u32,
    pub bytes: u64,
    /// The recording is halted (disk quota): the session goes on unrecorded.
    pub halted: bool,
    pub quota_bytes: u64,
    /// Recording bytes held on the box: the journals' blocks on disk (the
    /// bytes, once, and their records), or the segments held if more.
    pub held_bytes: u64,
    pub used_percent: f64,
    /// Buffers the recorder could not take (never expected; counted).
    pub dropped_buffers: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UploadStats {
    pub configured: bool,
    pub backlog_segments: u64,
    pub backlog_bytes: u64,
    /// Age of the oldest segment the archive has not confirmed, seconds.
    pub oldest_unconfirmed_age_s: u64,
    pub uploaded_segments: u64,
    pub uploaded_bytes: u64,
    pub last_error: Option<String>,
    /// The rate limit in force, kbit/s (0: none).
    pub rate_limit_kbps: u64,
    /// Waiting: a live session needs the whole link (the room above the
    /// live stream's ceiling is none, or SRT has no estimate of the link).
    #[serde(default)]
    pub paused_for_live: bool,
}

/// How an origin is named in events: `cli`, `button`, `mqtt:<id>`, `daemon:<why>`.
pub fn origin_name(o: Option<&Origin>) -> String {
    match o {
        None => "unknown".into(),
        Some(Origin::Cli) => "cli".into(),
        Some(Origin::Button) => "button".into(),
        Some(Origin::Mqtt(id)) => format!("mqtt:{id}"),
        Some(Origin::Daemon(why)) => format!("daemon:{why}"),
        Some(Origin::Call(from)) => format!("call:{from}"),
        Some(Origin::Schedule(occurrence)) => format!("schedule:{occurrence}"),
    }
}

/// A short message for the staff, shown until `until` (e.g. the button's
/// "hold 2 s to end" hint).
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    pub text: String,
    pub until: std::time::Instant,
}

/// How well the uplink carries the stream, for the mark on the room's
/// screen (the display judges it, the words say it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkQuality {
    Good,
    Weak,
    Lost,
    NotConfigured,
}
