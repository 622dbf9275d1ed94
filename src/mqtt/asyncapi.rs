//! The AsyncAPI 3 document of the topic tree, generated from the payload
//! types so that it cannot drift: every message's example is a real value
//! of the Rust type, serialised; a test checks each example against its
//! schema (no field missing, none unknown, types right) and that
//! `docs/mqtt-api.asyncapi.yaml` is exactly [`document`]'s output.
//! Regenerate with `DIEMCAU_WRITE_DOCS=1 cargo test --test generated_docs`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::command::{names, CommandReply, ReplyStatus};
use super::payload::{
    CallSummary, Health, LastSession, Presence, RecordingState, StateMsg, StatusMsg, StreamState,
    UploadState,
};
use crate::core::events::{Event, EventKind};
use crate::core::session::{Degradation, Phase};

fn t0() -> DateTime<Utc> {
    // A fixed time keeps the generated document stable.
    DateTime::from_timestamp(1_772_352_000, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn s(t: &str) -> Value {
    json!({"type": "string", "description": t})
}
fn ns(t: &str) -> Value {
    json!({"type": ["string", "null"], "description": t})
}
fn i(t: &str) -> Value {
    json!({"type": "integer", "description": t})
}
fn b(t: &str) -> Value {
    json!({"type": "boolean", "description": t})
}
fn obj(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": props})
}

/// (message name, channel, description, schema, examples)
pub fn messages() -> Vec<(&'static str, &'static str, &'static str, Value, Vec<Value>)> {
    let status = StatusMsg {
        status: Presence::Online,
        site: "nghean-xa-nghiloc".into(),
        boot_id: "3f2a9c0d11e4b7a2".into(),
        version: "0.1.0".into(),
        api_version: crate::core::command::API_VERSION,
        sessions: 42,
        device_key: Some(crate::core::device_key::DeviceKeyId::new(
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        )),
        at: t0(),
    };
    let lost = StatusMsg {
        status: Presence::Lost,
        ..status.clone()
    };
    let state = StateMsg {
        seq: 17,
        boot_id: status.boot_id.clone(),
        site: status.site.clone(),
        at: t0(),
        phase: Phase::Live,
        session: Some("20260301T080000Z-1a2b".into()),
        metadata: BTreeMap::from([("case".to_owned(), "HS-2026-001".to_owned())]),
        since: Some(t0()),
        degraded: vec![Degradation::UplinkDown],
        fault: None,
        stream: StreamState {
            configured: true,
            connected: false,
        },
        recording: RecordingState { active: true },
        upload: UploadState {
            backlog_segments: 0,
            oldest_unconfirmed_s: 0,
        },
        last_session: Some(LastSession {
            id: "20260228T090000Z-9f9f".into(),
            outcome: "ended".into(),
        }),
        config_version: "9ae1c0ffee15600d".into(),
        call: Some(CallSummary {
            state: crate::core::status::CallState::Connected,
            remote: Some("sip:8001@mcu.nghean.example".into()),
            codecs: Some("G722/8000 + H264/90000 (SRTP)".into()),
            registered: true,
        }),
        schedule: Some(super::payload::ScheduleSummary {
            next: Some(super::payload::ScheduledSummary {
                occurrence: "site/tiep-dan-thu-5/2026-03-05T08:00".into(),
                title: "Tiep cong dan dinh ky".into(),
                start: t0() + chrono::Duration::days(4),
                end: Some(t0() + chrono::Duration::days(4) + chrono::Duration::hours(3)),
            }),
            current: None,
            clock_synchronized: true,
        }),
    };
    let health = Health {
        ts: t0().timestamp(),
        uptime_s: 86_400,
        cpu_percent: 23.5,
        load1: 0.7,
        mem_used_percent: 41.0,
        mem_available_mb: 2300,
        daemon_rss_kb: 38_000,
        temperature_c: Some(52.0),
        disk_used_percent: 12.5,
        disk_free_mb: 180_000,
        session_live: 1,
        degraded_count: 1,
        camera_present: 1,
        microphone_present: 1,
        mic_peak_dbfs: -12.0,
        mic_rms_dbfs: -30.0,
        srt_connected: 1,
        srt_rtt_ms: 38.0,
        srt_packets_lost: 3,
        srt_packets_retransmitted: 5,
        srt_bitrate_kbps: 2500,
        srt_send_rate_mbps: 2.6,
        srt_connects: 2,
        upload_backlog_segments: 0,
        upload_oldest_unconfirmed_s: 0,
        event_backlog: 0,
        mqtt_connects: 1,
        time_synced: 1,
        clock_offset_ms: 0,
        clock_max_error_ms: 16,
    };
    let event = |seq: u64, kind: EventKind| Event {
        id: format!("nghean-xa-nghiloc-{seq}"),
        seq,
        site: "nghean-xa-nghiloc".into(),
        at: t0(),
        kind,
    };
    let events = [
        event(
            101,
            EventKind::SessionStarting {
                session: "20260301T080000Z-1a2b".into(),
                by: "mqtt:cmd-7".into(),
                group_session: Some("toan-tinh/cmd-7".into()),
            },
        ),
        event(
            102,
            EventKind::SessionStarted {
                session: "20260301T080000Z-1a2b".into(),
            },
        ),
        event(
            103,
            EventKind::Degraded {
                condition: Degradation::UplinkDown,
                session: Some("20260301T080000Z-1a2b".into()),
            },
        ),
        event(
            104,
            EventKind::SessionStopped {
                session: "20260301T080000Z-1a2b".into(),
                by: "button".into(),
            },
        ),
        event(
            105,
            EventKind::SessionInterrupted {
                session: "20260301T080000Z-1a2b".into(),
                reason: "power cut".into(),
            },
        ),
        event(
            106,
            EventKind::StoreSetAside {
                path: "/var/lib/diemcau/db.damaged-20260301T090000Z".into(),
                reason: "tried to serialize Uninitialized".into(),
            },
        ),
        event(
            107,
            EventKind::RecordingSalvaged {
                session: "20260301T085512Z-3f2a".into(),
                segments: 61,
                bytes: 38_512_640,
            },
        ),
        event(
            111,
            EventKind::ChainWitness {
                session: "20260301T080000Z-1a2b".into(),
                segments: 30,
                bytes: 18_874_368,
                chain_head: "9b1f0c6e2d4a8b7c3e5f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d"
                    .into(),
                far_segments: Some(30),
                far_chain_head: Some(
                    "2c4e6a8b0d1f3a5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c".into(),
                ),
                closing: false,
            },
        ),
        event(
            112,
            EventKind::Audited {
                record: 57,
                action: "recording.export".into(),
                who: crate::core::audit::Who {
                    via: "socket".into(),
                    user: Some("ky-thuat".into()),
                    name: Some("Nguyen Van An".into()),
                    detail: None,
                },
                target: Some("20260301T080000Z-1a2b".into()),
                outcome: "done".into(),
                hash: "5d0c3e7a9b1f2d4c6e8a0b2d4f6a8c0e2b4d6f8a1c3e5b7d9f0a2c4e6b8d0f1a".into(),
            },
        ),
        event(
            113,
            EventKind::Scheduled(crate::core::events::Scheduled {
                occurrence: "site/tiep-dan-thu-5/2026-03-05T08:00".into(),
                title: "Tiep cong dan dinh ky".into(),
                state: "started".into(),
                session: Some("20260305T010000Z-3c4d".into()),
                late_s: Some(0),
                end: Some(t0() + chrono::Duration::hours(3)),
                clock_synchronized: true,
                ..Default::default()
            }),
        ),
        event(
            114,
            EventKind::ScheduleReceived {
                source: "group/toan-tinh".into(),
                revision: 0,
                entries: 0,
                error: Some("entry 'thu-5', field 'rrule': FREQ=YEARLY is not taken (DAILY, WEEKLY or MONTHLY)".into()),
            },
        ),
        event(
            108,
            EventKind::CallConnected {
                remote: "sip:8001@mcu.nghean.example".into(),
                direction: "outgoing".into(),
                codecs: "G722/8000 + H264/90000 (SRTP)".into(),
            },
        ),
        event(
            109,
            EventKind::CallEnded {
                remote: "sip:8001@mcu.nghean.example".into(),
                reason: "the call ended (UacBye)".into(),
            },
        ),
        event(
            110,
            EventKind::CallRefused {
                from: "sip:sipp@198.51.100.7".into(),
                source: "198.51.100.7:5060".into(),
                reason: "forbidden".into(),
            },
        ),
    ];
    let reply = |status, error: Option<&str>, result: Option<Value>| CommandReply {
        id: Some("cmd-7".into()),
        site: "nghean-xa-nghiloc".into(),
        command: "session.start".into(),
        status,
        error: error.map(str::to_owned),
        result,
        at: t0(),
    };
    let replies = [
        reply(ReplyStatus::Accepted, None, None),
        reply(
            ReplyStatus::Done,
            None,
            Some(json!({"session": {"id": "20260301T080000Z-1a2b"}})),
        ),
        reply(
            ReplyStatus::Rejected,
            Some("bad args for session.start: unknown field `force`"),
            None,
        ),
        reply(
            ReplyStatus::Duplicate,
            Some("this command id was seen before; not executed again"),
            Some(json!({"first_seen": t0(), "first_status": "done"})),
        ),
    ];
    let to = |v: &dyn erased::Ser| v.value();

    let status_schema = obj(
        &[
            "status",
            "site",
            "boot_id",
            "version",
            "api_version",
            "sessions",
            "at",
        ],
        json!({
            "status": {"type": "string", "enum": ["online", "offline", "lost"], "description": "online on connect, offline on clean shutdown, lost: the last will"},
            "site": s("site id"), "boot_id": s("random per daemon start"), "version": s("software version"),
            "api_version": i("version of the command API: 2 since the command layer; absent (1) before it"),
            "sessions": i("finished sessions in the box's history"), "at": s("RFC 3339 time"),
            "device_key": obj(&["public_key", "fingerprint"], json!({
                "public_key": s("the Ed25519 key the box signs recordings with (64 hex digits); compare with the enrolled key, never adopt it from here"),
                "fingerprint": s("first 16 bytes of SHA-256 of the key, 8 groups of 4 hex digits")})),
        }),
    );
    let phase =
        json!({"type": "string", "enum": ["idle", "starting", "live", "stopping", "fault"]});
    let degr = json!({"type": "array", "items": {"type": "string", "enum": ["camera_lost", "microphone_lost", "uplink_down", "return_feed_lost", "recording_halted", "call_down"]}});
    let state_schema = obj(
        &[
            "seq",
            "boot_id",
            "site",
            "at",
            "phase",
            "session",
            "metadata",
            "since",
            "degraded",
            "fault",
            "stream",
            "recording",
            "upload",
            "last_session",
            "config_version",
        ],
        json!({
            "seq": i("increases with every publication since boot_id"), "boot_id": s("as in status"), "site": s("site id"), "at": s("RFC 3339"),
            "phase": phase, "session": ns("session in progress"),
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}, "description": "session metadata, e.g. case"},
            "since": ns("when the session went live (or was requested)"), "degraded": degr, "fault": ns("why the box is in fault"),
            "stream": obj(&["configured", "connected"], json!({"configured": b("uplink configured"), "connected": b("SRT link up")})),
            "recording": obj(&["active"], json!({"active": b("a session is being recorded")})),
            "upload": obj(&["backlog_segments", "oldest_unconfirmed_s"], json!({"backlog_segments": i("segments not confirmed by the archive"), "oldest_unconfirmed_s": i("age of the oldest, s")})),
            "last_session": {"type": ["object", "null"], "additionalProperties": false, "required": ["id", "outcome"], "properties": {"id": s("session id"), "outcome": {"type": "string", "enum": ["ended", "interrupted", "failed"]}}},
            "config_version": s("hash of the configuration file"),
            "call": {"type": "object", "additionalProperties": false, "required": ["state", "remote", "codecs", "registered"], "description": "only when the box is a SIP room endpoint",
                "properties": {"state": {"type": "string", "enum": ["idle", "dialing", "ringing", "connected", "redialing"]}, "remote": ns("the conference or the caller (SIP URI)"),
                "codecs": ns("e.g. G722/8000 + H264/90000 (SRTP)"), "registered": b("registered with the province's SIP server")}},
            "schedule": {"type": "object", "additionalProperties": false, "required": ["clock_synchronized"], "description": "only when the box holds a schedule: the next scheduled session and the one running (the standby screen shows the next, with a countdown in its last 10 minutes)",
                "properties": {
                    "next": {"type": "object", "additionalProperties": false, "required": ["occurrence", "title", "start"], "properties": {"occurrence": s("SOURCE/ENTRY/LOCAL-START"), "title": s("the entry's title"), "start": s("RFC 3339"), "end": s("planned end, RFC 3339")}},
                    "current": {"type": "object", "additionalProperties": false, "required": ["occurrence", "title", "start"], "properties": {"occurrence": s("SOURCE/ENTRY/LOCAL-START"), "title": s("the entry's title"), "start": s("RFC 3339"), "end": s("planned end, moved by extensions, RFC 3339")}},
                    "clock_synchronized": b("the box's clock is synchronized; when not, it runs the schedule by its best clock")}},
        }),
    );
    let health_value = to(&health);
    let mut hp = serde_json::Map::new();
    for k in health_value
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        hp.insert(k, json!({"type": "number"}));
    }
    let health_schema = json!({"type": "object", "additionalProperties": false, "description": "flat numbers (0/1 for yes/no); temperature_c only where a sensor exists",
        "required": hp.keys().filter(|k| *k != "temperature_c").collect::<Vec<_>>(), "properties": hp});
    let event_schema = json!({"type": "object", "required": ["id", "seq", "site", "at", "type"], "description": "fields beyond these depend on type",
        "properties": {"id": s("unique: <site>-<seq>; deduplicate on it"), "seq": i("per box, strictly increasing across restarts"), "site": s("site id"), "at": s("RFC 3339"),
        "type": {"type": "string", "enum": ["button_pressed", "session_starting", "session_started", "session_stopped", "session_interrupted", "session_failed", "degraded", "restored", "disk_alarm", "segment_quarantined", "store_set_aside", "recording_salvaged", "chain_witness", "audited", "scheduled", "schedule_received", "upload_completed", "config_changed", "call_connected", "call_ended", "call_refused"]}}});
    let command_schema = obj(
        &["id", "expires_at"],
        json!({
            "id": s("1 to 128 printable ASCII characters; the box executes an id once"),
            "expires_at": s("RFC 3339; past: reply expired; at most command_max_ttl_s ahead"),
            "args": {"type": ["object", "null"], "description": "per command; unknown fields are rejected. diagnostics: {\"self_test\": true} adds the doctor report (`result.doctor`)"},
            "by": s("who at the NOC sends it, for the box's audit trail (boxes before the audit trail refuse this field)"),
        }),
    );
    let reply_schema = obj(
        &["id", "site", "command", "status", "at"],
        json!({
            "id": ns("the command's id; null if it could not be read"), "site": s("the box answering"), "command": s("command name"),
            "status": {"type": "string", "enum": ["accepted", "done", "rejected", "failed", "expired", "duplicate"]},
            "error": s("why (rejected, failed, expired, duplicate)"), "result": {"description": "command specific"}, "at": s("RFC 3339"),
        }),
    );
    let exp = t0() + chrono::Duration::seconds(60);
    vec![
        ("status", "status", "Retained presence; the last will is `lost`.", status_schema, vec![to(&status), to(&lost)]),
        ("state", "state", "Retained; republished on every change.", state_schema, vec![to(&state)]),
        ("health", "health", "Every health_interval_s, QoS 0; Telegraf `json` parser ready.", health_schema, vec![health_value]),
        ("event", "event", "QoS 1 from a durable outbox; at least once, in order.", event_schema, events.iter().map(|e| to(e)).collect()),
        ("command", "command", "A command; reply on the MQTT 5 response topic with the correlation data and on .../reply.", command_schema,
            vec![json!({"id": "cmd-7", "expires_at": exp, "args": {"metadata": {"case": "HS-2026-001"}}}), json!({"id": "cmd-8", "expires_at": exp})]),
        ("reply", "reply", "The box's answer to a command.", reply_schema, replies.iter().map(|r| to(r)).collect()),
        ("schedule", "schedule", "Retained, published by the NOC: the box's scheduled sessions (at diemcau/v1/{site}/schedule, and diemcau/v1/group/{group}/schedule for each group in the box's [schedule] groups). Local times in the box's time zone; `rrule` and `exdate` in RFC 5545's vocabulary (FREQ DAILY, WEEKLY or MONTHLY; INTERVAL, COUNT, UNTIL, BYDAY, BYMONTHDAY, WKST=MO). An empty retained message clears it. The box answers with a `schedule_received` event.",
            obj(&["entries"], json!({
                "revision": i("the NOC's revision, echoed in the box's status"),
                "entries": {"type": "array", "items": obj(&["id", "title", "start"], json!({
                    "id": s("1 to 64 letters, digits, '-', '_', '.'"), "title": s("shown on the standby screen"),
                    "start": s("first start, local: 2026-03-05T08:00"), "end": s("planned end of the first occurrence, local, within 24 h; each lasts as long"),
                    "rrule": s("RFC 5545 RRULE value"), "exdate": {"type": "array", "items": s("local start or date left out")},
                    "metadata": {"type": "object", "description": "case metadata, as session.start takes it"}}))}})),
            vec![json!({"revision": 4, "entries": [{"id": "tiep-dan-thu-5", "title": "Tiep cong dan dinh ky", "start": "2026-03-05T08:00", "end": "2026-03-05T11:00", "rrule": "FREQ=WEEKLY;BYDAY=TH", "exdate": ["2026-04-30T08:00"], "metadata": {"kind": "dinh-ky"}}]})]),
        ("holidays", "holidays", "Retained, published by the NOC at diemcau/v1/all/holidays: the province's holidays, dates (Tet follows the lunar calendar); every recurring entry skips them.",
            obj(&["dates"], json!({"revision": i("the NOC's revision"), "dates": {"type": "array", "items": s("YYYY-MM-DD")}})),
            vec![json!({"revision": 2, "dates": ["2027-02-05", "2027-02-06", "2027-02-08", "2027-04-30", "2027-05-01", "2027-09-02"]})]),
    ]
}

mod erased {
    /// Serialise anything to a JSON value (one generic-free call site).
    pub trait Ser {
        fn value(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn value(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("payload types always serialise")
        }
    }
}

/// The whole AsyncAPI document as YAML.
pub fn document() -> String {
    let mut channels = serde_json::Map::new();
    let mut ops = serde_json::Map::new();
    let mut msgs = serde_json::Map::new();
    for (name, ch, desc, schema, examples) in messages() {
        let (address, action) = match ch {
            "command" => ("diemcau/v1/{site}/cmd/{name}", "receive"),
            "reply" => ("diemcau/v1/{site}/cmd/{name}/reply", "send"),
            "schedule" => ("diemcau/v1/{site}/schedule", "receive"),
            "holidays" => ("diemcau/v1/all/holidays", "receive"),
            other => (leak(format!("diemcau/v1/{{site}}/{other}")), "send"),
        };
        let mut params = json!({"site": {"description": "site id; for commands also `all` (every box) or `group/NAME` (every member of a group in its [schedule] groups, each replying for itself; a session.start sent so gives every member's session one `group_session`)"}});
        if ch == "command" || ch == "reply" {
            params["name"] = json!({"enum": names(), "description": "a command of the table below (`x-commands`); names marked deprecated are kept for one release and answer as they did"});
        }
        let mut channel = json!({"address": address, "parameters": params, "messages": {name: {"$ref": format!("#/components/messages/{name}")}}});
        if ch == "command" {
            channel["x-commands"] = commands();
        }
        channels.insert(ch.into(), channel);
        ops.insert(
            format!("{action}_{ch}"),
            json!({"action": action, "channel": {"$ref": format!("#/channels/{ch}")}}),
        );
        msgs.insert(name.into(), json!({
            "name": name, "summary": desc, "contentType": "application/json",
            "payload": schema,
            "examples": examples.into_iter().enumerate().map(|(i, e)| json!({"name": format!("{name}-{}", i + 1), "payload": e})).collect::<Vec<_>>(),
        }));
    }
    let doc = json!({
        "asyncapi": "3.0.0",
        "info": {"title": "diemcau box control plane", "version": env!("CARGO_PKG_VERSION"),
            "description": "MQTT 5 topics of one commune bridge-room box. Generated from the code (src/mqtt/asyncapi.rs); do not edit by hand."},
        "defaultContentType": "application/json",
        "channels": channels, "operations": ops, "components": {"messages": msgs},
    });
    let mut out =
        String::from("# Generated by src/mqtt/asyncapi.rs; a test fails if this file differs.\n");
    yaml(&doc, 0, &mut out);
    out
}

/// The commands MQTT takes, from the one table in `core::command`, with
/// the deprecated names marked.
fn commands() -> Value {
    use crate::core::command::{Transport, ALIASES, SPECS};
    let mut out: Vec<Value> = SPECS
        .iter()
        .filter(|s| s.mqtt)
        .map(|s| {
            let args: serde_json::Map<String, Value> = s
                .args
                .iter()
                .map(|a| {
                    (
                        a.name.to_owned(),
                        json!({"type": a.ty, "required": a.required, "description": a.doc}),
                    )
                })
                .collect();
            json!({"name": s.name, "summary": s.summary, "args": args, "result": s.result,
                "acknowledged": s.acknowledged, "deprecated": false})
        })
        .collect();
    out.extend(
        ALIASES
            .iter()
            .filter(|a| a.transport == Transport::Mqtt)
            .map(|a| {
                json!({"name": a.name, "summary": format!("Deprecated: use {} ({})", a.command, a.note),
                    "replaced_by": a.command, "deprecated": true})
            }),
    );
    Value::Array(out)
}

fn leak(s: String) -> &'static str {
    // Called a handful of times per document generation (tests, docs).
    Box::leak(s.into_boxed_str())
}

/// A small YAML emitter: block style, strings JSON-quoted (valid YAML).
fn yaml(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let key = serde_json::to_string(k).unwrap_or_default();
                match x {
                    Value::Object(o) if !o.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        yaml(x, indent + 2, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        yaml(x, indent + 2, out);
                    }
                    _ => out.push_str(&format!("{pad}{key}: {}\n", scalar(x))),
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for x in a {
                match x {
                    Value::Object(o) if !o.is_empty() => {
                        let mut inner = String::new();
                        yaml(x, indent + 2, &mut inner);
                        out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                    }
                    Value::Array(a2) if !a2.is_empty() => {
                        out.push_str(&format!("{pad}-\n"));
                        yaml(x, indent + 2, out);
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(x))),
                }
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", scalar(v))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JSON-schema subset: type, enum, required, properties, additionalProperties.
    fn check(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
        if let Some(t) = schema.get("type") {
            let types: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let ok = types.iter().any(|t| match *t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "number" => v.is_number(),
                "integer" => v.is_u64() || v.is_i64(),
                "boolean" => v.is_boolean(),
                "null" => v.is_null(),
                _ => false,
            });
            if !ok {
                return Err(format!("{path}: {v} is not {types:?}"));
            }
        }
        if let Some(e) = schema.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                return Err(format!("{path}: {v} not in {e:?}"));
            }
        }
        if let Value::Object(m) = v {
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap_or_default();
                if !m.contains_key(r) {
                    return Err(format!("{path}: required field {r} missing"));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, x) in m {
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => check(ps, x, &format!("{path}.{k}"))?,
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            return Err(format!("{path}: field {k} is not documented"))
                        }
                        Some(ap @ Value::Object(_)) => check(ap, x, &format!("{path}.{k}"))?,
                        _ => {}
                    },
                }
            }
        }
        if let (Value::Array(a), Some(items)) = (v, schema.get("items")) {
            for (i, x) in a.iter().enumerate() {
                check(items, x, &format!("{path}[{i}]"))?;
            }
        }
        Ok(())
    }

    #[test]
    fn examples_match_their_schemas_and_types() {
        for (name, _, _, schema, examples) in messages() {
            assert!(!examples.is_empty(), "{name} has an example");
            for e in &examples {
                check(&schema, e, name).unwrap();
                // An event kind with a field of the envelope's own (`seq`,
                // `at`) serialises but never reads back, and stalls the
                // outbox behind it.
                if name == "event" {
                    serde_json::from_value::<crate::core::events::Event>(e.clone())
                        .unwrap_or_else(|err| panic!("{e} does not read back: {err}"));
                }
            }
        }
        // The schemas reject drift both ways: an unknown field and a missing one.
        let (_, _, _, schema, ex) = &messages()[1];
        let mut extra = ex[0].clone();
        extra["new_field"] = json!(1);
        assert!(check(schema, &extra, "state").is_err());
        let mut missing = ex[0].clone();
        missing.as_object_mut().unwrap().remove("phase");
        assert!(check(schema, &missing, "state").is_err());
        // And examples deserialise into the types (deny_unknown_fields).
        let _: StateMsg = serde_json::from_value(ex[0].clone()).unwrap();
    }
}
