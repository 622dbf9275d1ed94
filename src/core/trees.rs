//! The names of the sled trees in the state store, in one place: the store
//! is shared by several actors, and a tree opened under a misspelt name is
//! an empty tree, not an error.

/// The live session record (`store`).
pub const SESSION: &str = "session";
/// Finished sessions, newest last (`store`; read by the command layer).
pub const HISTORY: &str = "history";
/// Events not yet acknowledged by the broker (`events`).
pub const OUTBOX: &str = "outbox";
/// Outbox entries that no longer read as events, set aside (`events`).
pub const OUTBOX_UNREADABLE: &str = "outbox_unreadable";
/// The outbox's sequence base (`events`).
pub const OUTBOX_META: &str = "outbox_meta";
/// Command ids already executed, for idempotency (`mqtt`).
pub const MQTT_SEEN: &str = "mqtt_seen_commands";
/// Recordings: one record per session (`recorder::store`).
pub const REC_SESSIONS: &str = "rec_sessions";
/// Recordings: one record per segment (`recorder::store`).
pub const REC_SEGMENTS: &str = "rec_segments";
/// Recordings: the media bytes, in chunks, as versions before the journal
/// held them wrote (`recorder::store`: read, never written).
pub const REC_CHUNKS: &str = "rec_chunks";
/// Recordings: where each chunk's bytes are in its session's journal
/// (`recorder::store`).
pub const REC_CHUNK_LOCS: &str = "rec_chunk_locs";
/// Camera positions saved by name (`camera`).
pub const CAMERA_PRESETS: &str = "camera_presets";

/// What the uplink learned about each hub's link: the bitrate it carried
/// and its RTT (`media::link_memory`).
pub const UPLINK_LINKS: &str = "uplink_links";

/// How far the audit trail has been given to the outbox (`audit`).
pub const AUDIT: &str = "audit_progress";

/// Every tree, for tools that inspect or copy a store.
pub const ALL: &[&str] = &[
    SESSION,
    HISTORY,
    OUTBOX,
    OUTBOX_META,
    OUTBOX_UNREADABLE,
    MQTT_SEEN,
    REC_SESSIONS,
    REC_SEGMENTS,
    REC_CHUNKS,
    REC_CHUNK_LOCS,
    CAMERA_PRESETS,
    UPLINK_LINKS,
    AUDIT,
];
