//! The payloads the box publishes: `status`, `state` and `health` (events
//! are [`crate::core::events::Event`], replies [`super::command::CommandReply`]).
//! Every type here is described in `docs/mqtt-api.asyncapi.yaml`, which is
//! generated from these types by [`super::asyncapi`] and checked by a test.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::device_key::DeviceKeyId;
use crate::core::session::{Degradation, Outcome, Phase};
use crate::core::status::Status;

/// The box's presence, retained on `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Connected (published on every connect).
    Online,
    /// Shut down cleanly.
    Offline,
    /// The broker lost the connection (the last will).
    Lost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusMsg {
    pub status: Presence,
    pub site: String,
    /// Random per daemon start: tells restarts apart.
    pub boot_id: String,
    pub version: String,
    /// The command API's version (`core::command::API_VERSION`); absent
    /// from boxes older than the command layer (read as 1).
    #[serde(default = "api_v1")]
    pub api_version: u32,
    /// Sessions in the box's history (finished ones).
    pub sessions: u64,
    /// The key the box signs its recordings with. Announced, not trusted:
    /// the NOC compares it with the key enrolled from the installation
    /// report (`diemcau fleet keys check`) and never adopts it from here.
    /// Absent from boxes older than key pinning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_key: Option<DeviceKeyId>,
    pub at: DateTime<Utc>,
}

fn api_v1() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamState {
    /// An uplink is configured.
    pub configured: bool,
    /// The SRT link to the hub is up.
    pub connected: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingState {
    /// A session is being recorded.
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadState {
    /// Segments not yet confirmed by the central archive.
    pub backlog_segments: u64,
    /// Age of the oldest unconfirmed segment, seconds.
    pub oldest_unconfirmed_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastSession {
    pub id: String,
    /// `ended`, `interrupted` or `failed`.
    pub outcome: String,
}

/// The conference call, when the box is a SIP room endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSummary {
    pub state: crate::core::status::CallState,
    /// The conference or the caller.
    pub remote: Option<String>,
    /// `G722/8000 + H264/90000 (SRTP)`.
    pub codecs: Option<String>,
    /// With the province's SIP server (false when none is configured).
    pub registered: bool,
}

/// What the box is doing, retained on `state`, republished on every change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateMsg {
    /// Increases with every publication since `boot_id`.
    pub seq: u64,
    pub boot_id: String,
    pub site: String,
    pub at: DateTime<Utc>,
    pub phase: Phase,
    /// The session in progress.
    pub session: Option<String>,
    /// Its metadata (case reference, ...).
    pub metadata: BTreeMap<String, String>,
    /// When it went live (or was requested, while starting).
    pub since: Option<DateTime<Utc>>,
    pub degraded: Vec<Degradation>,
    pub fault: Option<String>,
    pub stream: StreamState,
    pub recording: RecordingState,
    pub upload: UploadState,
    pub last_session: Option<LastSession>,
    /// Hash of the configuration file the daemon runs with.
    pub config_version: String,
    /// Only when `[sip]` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallSummary>,
    /// Only when the box holds a schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSummary>,
}

/// The schedule in the state: the next occurrence and the one running.
/// Times only, no countdown, so that the state changes when they do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<ScheduledSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<ScheduledSummary>,
    /// The box's clock is synchronized; when not, it runs the schedule by
    /// its best clock.
    pub clock_synchronized: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledSummary {
    pub occurrence: String,
    pub title: String,
    pub start: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
}

impl StateMsg {
    /// Build from the supervisor's status; `seq` and `at` are set on publish.
    pub fn from_status(s: &Status, boot_id: &str, config_version: &str) -> Self {
        let sess = s.session.as_ref();
        StateMsg {
            seq: 0,
            boot_id: boot_id.to_owned(),
            site: s.site_id.clone(),
            at: Utc::now(),
            phase: s.phase,
            session: sess.map(|r| r.id.clone()),
            metadata: sess.map(|r| r.metadata.clone()).unwrap_or_default(),
            since: sess.map(|r| r.live_at.unwrap_or(r.requested_at)),
            degraded: s.degraded.clone(),
            fault: s.fault.clone(),
            schedule: (!s.schedule.sources.is_empty()).then(|| {
                let summary = |o: &crate::core::status::ScheduledSession| ScheduledSummary {
                    occurrence: o.occurrence.clone(),
                    title: o.title.clone(),
                    start: o.start,
                    end: o.end,
                };
                ScheduleSummary {
                    next: s.schedule.next.as_ref().map(summary),
                    current: s.schedule.current.as_ref().map(summary),
                    clock_synchronized: s.schedule.clock.synchronized,
                }
            }),
            call: s.call.configured.then(|| CallSummary {
                state: s.call.state,
                remote: s.call.remote.clone(),
                codecs: s.call.codecs.clone(),
                registered: s.call.registered,
            }),
            stream: StreamState {
                configured: s.media.uplink.configured,
                connected: s.media.uplink.connected,
            },
            recording: RecordingState {
                active: s.phase == Phase::Live
                    && !s.degraded.contains(&Degradation::RecordingHalted),
            },
            upload: UploadState {
                backlog_segments: s.upload.backlog_segments,
                // Whole minutes, so the retained state does not change every second.
                oldest_unconfirmed_s: s.upload.oldest_unconfirmed_age_s / 60 * 60,
            },
            last_session: s.last_session.as_ref().map(|r| LastSession {
                id: r.id.clone(),
                outcome: match &r.outcome {
                    Some(Outcome::Ended) | None => "ended".into(),
                    Some(Outcome::Interrupted(_)) => "interrupted".into(),
                    Some(Outcome::Failed(_)) => "failed".into(),
                },
            }),
            config_version: config_version.to_owned(),
        }
    }

    /// Equal apart from the publication's own fields.
    pub fn same_as(&self, other: &StateMsg) -> bool {
        let strip = |m: &StateMsg| StateMsg {
            seq: 0,
            at: DateTime::<Utc>::MIN_UTC,
            ..m.clone()
        };
        strip(self) == strip(other)
    }
}

/// Periodic telemetry on `health`: one flat object of numbers (booleans as
/// 0/1), so that Telegraf's `json` parser ingests it without code. A field
/// the box cannot measure (no thermal sensor) is left out, never faked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Unix time of the sample, seconds.
    pub ts: i64,
    pub uptime_s: u64,
    pub cpu_percent: f64,
    pub load1: f64,
    pub mem_used_percent: f64,
    pub mem_available_mb: u64,
    /// The daemon's resident memory, kB.
    pub daemon_rss_kb: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f64>,
    pub disk_used_percent: f64,
    pub disk_free_mb: u64,
    pub session_live: u8,
    pub degraded_count: u64,
    pub camera_present: u8,
    pub microphone_present: u8,
    pub mic_peak_dbfs: f64,
    pub mic_rms_dbfs: f64,
    pub srt_connected: u8,
    pub srt_rtt_ms: f64,
    pub srt_packets_lost: u64,
    pub srt_packets_retransmitted: u64,
    pub srt_bitrate_kbps: u64,
    pub srt_send_rate_mbps: f64,
    pub srt_connects: u64,
    pub upload_backlog_segments: u64,
    pub upload_oldest_unconfirmed_s: u64,
    /// Events waiting in the outbox for the broker's acknowledgement.
    pub event_backlog: u64,
    pub mqtt_connects: u64,
    /// 1 when the kernel clock is synchronised (NTP), else 0.
    pub time_synced: u8,
    /// The offset from the time server the kernel is still correcting,
    /// milliseconds; with the maximum error, what a scheduled start or a
    /// recording's times may be off by (0 when the kernel does not say).
    pub clock_offset_ms: i64,
    pub clock_max_error_ms: u64,
}
