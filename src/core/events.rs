//! The events a box reports to the NOC: what happened in the room. The
//! durable outbox that carries them is `crate::events`; the kinds are here
//! so that every actor that reports one, and the MQTT publisher, share them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::session::Degradation;

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    ButtonPressed {
        /// "short" or "long".
        press: String,
        /// What the press did: "start", "stop", "hint", "ignored".
        effect: String,
    },
    SessionStarting {
        session: String,
        by: String,
        /// A multi-point session's group session id (`group_session` in
        /// its metadata), the same at every member.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_session: Option<String>,
    },
    SessionStarted {
        session: String,
    },
    SessionStopped {
        session: String,
        by: String,
    },
    SessionInterrupted {
        session: String,
        reason: String,
    },
    SessionFailed {
        session: String,
        reason: String,
    },
    /// A device or link problem began (`camera_lost`, `uplink_down`, ...).
    Degraded {
        condition: Degradation,
        session: Option<String>,
    },
    /// ... and ended.
    Restored {
        condition: Degradation,
        session: Option<String>,
    },
    DiskAlarm {
        level: String,
        used_percent: f64,
    },
    /// A stored segment no longer matches its hash; set aside, not deleted.
    SegmentQuarantined {
        session: String,
        segment: u32,
        reason: String,
    },
    /// sled could not reopen the state store after an unclean stop; it was
    /// set aside (kept, with any recordings in it) and a fresh one started.
    StoreSetAside {
        path: String,
        reason: String,
    },
    /// A recording the store had lost (it was set aside) was brought back
    /// whole from its journal, up to the last flush before the stop.
    RecordingSalvaged {
        session: String,
        segments: u32,
        bytes: u64,
    },
    /// The recording so far, as its chain head: sent at least once a
    /// minute while a session records, and when it closes (`closing`).
    /// The NOC keeps it; a manifest whose chain does not pass through this
    /// head after `segments` segments is not the recording that was being
    /// made at this time (docs/RECORDING-FORMAT.md, "Time witnesses").
    ChainWitness {
        session: String,
        segments: u32,
        bytes: u64,
        chain_head: String,
        /// The far end's track, when the session has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        far_segments: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        far_chain_head: Option<String>,
        closing: bool,
    },
    /// A scheduled occurrence (`occurrence`: `SOURCE/ENTRY/LOCAL-START`):
    /// `started` (its session is live, `late_s` after its time), `skipped`
    /// (`reason`: `already_live`, `box_was_off`, `failed`), `warned` (the
    /// room was told the session ends at `end`), `extended` (a press during
    /// the warning moved the end to `end`), `resumed` (a session started by
    /// the button inside its window, after its session ended early or it
    /// was skipped, or resumed after a crash, is its session now, with its
    /// metadata and group session, `late_s` after its time), `ended`
    /// (`planned`: at its planned end, or earlier by someone's hand).
    Scheduled(Scheduled),
    /// A schedule or the holiday list arrived from the NOC (`source`:
    /// `site`, `group/NAME` or `holidays`): taken, or refused with `error`
    /// (the box keeps the one it had).
    ScheduleReceived {
        source: String,
        revision: u64,
        entries: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A record of the audit trail (`diemcau audit`): who did what to the
    /// recordings or the box. `hash` links it to the record before.
    Audited {
        /// The record's number in the trail (`seq` there; the event's own
        /// `seq` is the outbox's).
        record: u64,
        action: String,
        who: super::audit::Who,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        outcome: String,
        hash: String,
    },
    UploadCompleted {
        session: String,
        segments: u64,
        bytes: u64,
    },
    ConfigChanged {
        version: String,
    },
    /// The conference call is up (`direction`: "outgoing" when the box
    /// dialled, "incoming" when the MCU called).
    CallConnected {
        remote: String,
        direction: String,
        codecs: String,
    },
    /// ... and ended, with why (`486 Busy Here`, `the call ended (UacBye)`,
    /// `hung up`).
    CallEnded {
        remote: String,
        reason: String,
    },
    /// An incoming call was refused (`forbidden`, `busy`, `not acceptable`).
    CallRefused {
        from: String,
        source: String,
        reason: String,
    },
}

/// One event as stored and published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique: `<site>-<seq>`; the NOC deduplicates on it.
    pub id: String,
    /// Per-box sequence number, strictly increasing across restarts.
    pub seq: u64,
    pub site: String,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The `scheduled` event: see [`EventKind::Scheduled`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scheduled {
    pub occurrence: String,
    pub title: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_s: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
    /// False when the box's clock was not synchronized: the box acted
    /// on its best clock, which may be wrong.
    pub clock_synchronized: bool,
}
