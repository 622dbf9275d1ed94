//! The recording buffer: sessions, segment metadata and the segment bytes
//! in chunks, plus verification, export, manifests and pruning.
//!
//! Layout: the index in the daemon's sled database, the bytes once, in the
//! session's journal file ([`super::journal`], `<state>/journal/<id>.wal`):
//! - `rec_sessions`: session id → [`RecSession`] (JSON)
//! - `rec_segments`: session id ‖ 0 ‖ seq (u32 BE) → [`SegmentMeta`] (JSON)
//! - `rec_chunk_locs`: session id ‖ 0 ‖ seq (u32 BE) ‖ chunk (u32 BE) →
//!   where the chunk's bytes are in the journal: offset (u64 BE) ‖ length
//!   (u32 BE)
//! - `rec_chunks`: the same keys → the bytes themselves, as versions before
//!   the journal held them wrote; still read, never written.
//!
//! A segment's bytes are its chunks in key order. A segment has metadata
//! only once it is complete (or was closed as partial after a crash), so
//! chunks without metadata are the tail of an interrupted segment.
//! Read-modify-write of a record goes through sled's compare-and-swap
//! (`update_and_fetch`), so the recorder and the uploader never lose each
//! other's updates.
//!
//! Every session, segment and chunk write is appended to the journal first
//! and made durable at each flush; sled writes the index behind it. The
//! journal is the authority: at start-up ([`RecStore::reconcile_journals`])
//! an open session's index is rebuilt from its journal, and a store sled
//! could not reopen gets every session back from them.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::journal::{Journal, JournalError, Record};
use super::segment::{self, Hash};

#[derive(Debug, thiserror::Error)]
pub enum RecError {
    #[error("recording store: {0}")]
    Sled(#[from] sled::Error),
    #[error("recording {0} not found; `diemcau recordings ls` lists them")]
    NotFound(String),
    #[error("recording {id}: record {what} is unreadable: {source}")]
    Decode {
        id: String,
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("recording {0} is still being recorded; stop the session first")]
    Live(String),
    #[error("recording {0} has segments the archive has not confirmed; add --force to delete them anyway")]
    Unconfirmed(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Seal(#[from] super::seal::SealError),
}

/// One segment's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    pub seq: u32,
    pub bytes: u64,
    pub chunks: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub sha256: String,
    /// This segment's link of the session's hash chain.
    pub chain: String,
    /// The tail of a segment cut short by a crash or power cut: complete up
    /// to the last flushed chunk.
    pub partial: bool,
    /// When the archive confirmed it (never set before the store's ack).
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Why the segment was set aside (its bytes no longer match its hash).
    pub quarantined: Option<String>,
    /// Its bytes were removed from the box after confirmation, for space.
    #[serde(default)]
    pub pruned: bool,
}

/// One session's recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecSession {
    pub id: String,
    pub site: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The clock was synchronised (NTP) when the session started.
    pub time_synced: bool,
    pub started_by: String,
    pub stopped_by: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// "ended", "interrupted", or empty while recording.
    pub outcome: String,
    pub segments: u32,
    pub bytes: u64,
    pub chain_head: String,
    pub closed: bool,
    /// Times the recording was halted (disk full) and why, for the record.
    #[serde(default)]
    pub gaps: Vec<String>,
    pub manifest_confirmed_at: Option<DateTime<Utc>>,
    /// On a far-end track: the id of the room's recording it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<String>,
    /// On a room's recording: the id of its far-end track, when the session
    /// had a call or a return feed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub far: Option<String>,
    /// Its bytes are sealed (encryption at rest), and its key is wrapped
    /// to these recipients; absent on a recording kept in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Sealing>,
}

/// How a recording's bytes are sealed (docs/RECORDING-FORMAT.md, version
/// 2): in its record on the box and in its signed manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sealing {
    /// [`super::seal::SCHEME`].
    pub scheme: String,
    /// The age X25519 recipients its key is wrapped to (`age1…`).
    pub recipients: Vec<String>,
    /// The recording's key wrapped to them: an age file, in base64.
    pub wrapped_key: String,
}

impl Sealing {
    /// What a record says of a key wrapped (an age file) to `recipients`.
    pub fn new(recipients: &[String], wrapped: &[u8]) -> Sealing {
        use base64::Engine as _;
        Sealing {
            scheme: super::seal::SCHEME.into(),
            recipients: recipients.to_vec(),
            wrapped_key: base64::engine::general_purpose::STANDARD.encode(wrapped),
        }
    }

    /// The wrapped key as the age file `age -d` reads.
    pub fn wrapped_bytes(&self) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&self.wrapped_key)
            .map_err(|e| format!("the wrapped key is not base64: {e}"))
    }
}

impl RecSession {
    /// A recording that starts now: open, empty, its chain not begun.
    pub fn begin(
        id: String,
        site: String,
        started_at: DateTime<Utc>,
        time_synced: bool,
        started_by: String,
        metadata: BTreeMap<String, String>,
    ) -> RecSession {
        RecSession {
            id,
            site,
            started_at,
            ended_at: None,
            time_synced,
            started_by,
            stopped_by: None,
            metadata,
            outcome: String::new(),
            segments: 0,
            bytes: 0,
            chain_head: String::new(),
            closed: false,
            gaps: Vec::new(),
            manifest_confirmed_at: None,
            of: None,
            far: None,
            sealed: None,
        }
    }

    /// The far end's track of this (room) recording, begun with it.
    pub fn far_track(&self) -> RecSession {
        RecSession {
            of: Some(self.id.clone()),
            ..RecSession::begin(
                far_id(&self.id),
                self.site.clone(),
                self.started_at,
                self.time_synced,
                self.started_by.clone(),
                self.metadata.clone(),
            )
        }
    }
}

/// The id of a room recording's far-end track.
pub fn far_id(room: &str) -> String {
    format!("{room}.far")
}

/// What a room's manifest says of its far-end track, so that the room's
/// signature also binds the other side of the conversation: a far track
/// that is swapped, cut or dropped no longer matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FarTrack {
    pub session: String,
    /// The far track's folder, relative to the room's.
    pub folder: String,
    pub segments: u32,
    pub bytes: u64,
    pub chain_head: String,
}

/// A segment as listed in the signed manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestSegment {
    pub seq: u32,
    pub object: String,
    pub bytes: u64,
    pub duration_ms: u64,
    pub sha256: String,
    pub chain: String,
    pub partial: bool,
    pub quarantined: bool,
}

/// The session manifest the archive keeps beside the segments. Signed with
/// the box's Ed25519 key over the canonical JSON with `signature` empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub site: String,
    pub session: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub time_synced_at_start: bool,
    pub started_by: String,
    pub stopped_by: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub outcome: String,
    pub gaps: Vec<String>,
    pub segments: Vec<ManifestSegment>,
    pub chain_head: String,
    /// `Some("far")` on the far end's track (what the far end said, as the
    /// room heard it); absent on the room's own recording, so a manifest
    /// made before far tracks existed re-serialises to the bytes it was
    /// signed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// On a far track: the room's recording it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<String>,
    /// On a room's recording that has one: its far track.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub far: Option<FarTrack>,
    /// The time-stamping authority whose token (`manifest.tsr`) the
    /// archive keeps beside this manifest; absent when none was asked.
    /// Signed, so a copy cannot drop the token unnoticed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_authority: Option<String>,
    /// Version 2: the segments are sealed, and this says how and to whom.
    /// Absent in version 1 (clear) manifests, which re-serialise to the
    /// bytes they were signed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Sealing>,
    pub public_key: String,
    pub signature: String,
}

/// The format of a recording kept in clear.
pub const MANIFEST_FORMAT: &str = "diemcau-recording-manifest/1";
/// The format of a sealed recording (encryption at rest).
pub const MANIFEST_FORMAT_SEALED: &str = "diemcau-recording-manifest/2";

/// The time-stamp token's object (an RFC 3161 TimeStampResp), beside
/// `manifest.json` in the archive.
pub const TOKEN_OBJECT: &str = "manifest.tsr";

/// The far track's folder inside the room recording's folder in the archive.
pub const FAR_FOLDER: &str = "far";

impl Manifest {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut m = self.clone();
        m.signature = String::new();
        serde_json::to_vec(&m).expect("manifests always serialise")
    }

    pub fn sign(&mut self, key: &SigningKey) {
        self.public_key = hex::encode(key.verifying_key().as_bytes());
        self.signature = hex::encode(key.sign(&self.signed_bytes()).to_bytes());
    }

    /// Check the signature against the key in the manifest.
    pub fn signature_ok(&self) -> bool {
        let (Ok(pk), Ok(sig)) = (hex::decode(&self.public_key), hex::decode(&self.signature))
        else {
            return false;
        };
        let (Ok(pk), Ok(sig)) = (<[u8; 32]>::try_from(pk), <[u8; 64]>::try_from(sig)) else {
            return false;
        };
        let Ok(vk) = VerifyingKey::from_bytes(&pk) else {
            return false;
        };
        vk.verify(
            &self.signed_bytes(),
            &ed25519_dalek::Signature::from_bytes(&sig),
        )
        .is_ok()
    }
}

/// What a check of a recording concludes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every segment the manifest names is here and matches; the chain and
    /// the signature hold.
    #[default]
    Intact,
    /// Nothing contradicts the manifest, but segments it names are not here
    /// (an archive copy missing objects): the recording is not whole.
    Incomplete,
    /// Something does not match: a segment's bytes, the chain, the
    /// signature, the order.
    Tampered,
}

/// Where a segment's bytes are, for [`verify`].
pub enum SegmentBytes {
    Here(Vec<u8>),
    /// Removed from the box after the archive confirmed it (a note, on the
    /// box only).
    Pruned,
    /// Not where they should be.
    Missing,
}

/// The result of checking a recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub session: String,
    /// Intact: nothing missing, nothing wrong.
    pub ok: bool,
    #[serde(default)]
    pub verdict: Verdict,
    /// Segments the manifest names whose bytes are not here.
    #[serde(default)]
    pub missing: Vec<u32>,
    /// The key the manifest says signed it (hex). A valid signature only
    /// proves that *this* key signed; compare it with the box's registered
    /// key ([`VerifyReport::pin`]) to know the box did.
    #[serde(default)]
    pub public_key: String,
    pub segments: u32,
    pub bytes_checked: u64,
    pub signature_ok: bool,
    pub chain_ok: bool,
    /// Segments that are partial, quarantined or missing (for the record).
    pub notes: Vec<String>,
    /// Anything that makes the recording untrustworthy.
    pub problems: Vec<String>,
    /// The far end's track, checked the same way, when the room's manifest
    /// names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub far: Option<Box<VerifyReport>>,
    /// The time the authority's token (`manifest.tsr`) vouches for, on an
    /// archive copy that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_stamped_at: Option<DateTime<Utc>>,
}

/// Verify a manifest and the segments' bytes. A missing segment is never
/// intact: it makes the verdict `incomplete` (or `tampered`, if anything
/// else is wrong too).
pub fn verify(
    manifest: &Manifest,
    mut bytes_of: impl FnMut(&ManifestSegment) -> SegmentBytes,
) -> VerifyReport {
    let mut r = VerifyReport {
        session: manifest.session.clone(),
        public_key: manifest.public_key.clone(),
        signature_ok: manifest.signature_ok(),
        chain_ok: true,
        ..Default::default()
    };
    if !r.signature_ok {
        r.problems
            .push("the manifest's signature does not verify".into());
    }
    match (manifest.format.as_str(), &manifest.encryption) {
        (MANIFEST_FORMAT, None) => {}
        (MANIFEST_FORMAT_SEALED, Some(e)) => r.notes.push(format!(
            "the segments are sealed ({}) to {}: checked as stored; opening them needs one of those identities",
            e.scheme,
            e.recipients.join(", ")
        )),
        (f, e) => r.problems.push(format!(
            "format {f:?} {} an encryption field: not a format this verifier knows",
            if e.is_some() { "with" } else { "without" }
        )),
    }
    let mut chain = segment::chain_start(&manifest.session);
    for (i, s) in manifest.segments.iter().enumerate() {
        r.segments += 1;
        if s.seq as usize != i {
            r.problems.push(format!(
                "segment {} is out of place (expected {i}): a gap or reordering",
                s.seq
            ));
        }
        let Some(sha) = segment::unhex(&s.sha256) else {
            r.problems
                .push(format!("segment {}: unreadable sha256", s.seq));
            r.chain_ok = false;
            continue;
        };
        chain = segment::chain_next(&chain, u64::from(s.seq), &sha, s.bytes);
        if segment::hex(&chain) != s.chain {
            r.chain_ok = false;
            r.problems
                .push(format!("segment {}: hash chain broken", s.seq));
        }
        if s.partial {
            r.notes.push(format!(
                "segment {} is partial (cut short by an interruption)",
                s.seq
            ));
        }
        if s.quarantined {
            r.notes.push(format!(
                "segment {} was quarantined on the box (damaged)",
                s.seq
            ));
            continue;
        }
        match bytes_of(s) {
            SegmentBytes::Pruned => r.notes.push(format!(
                "segment {}: removed from the box after the archive confirmed it",
                s.seq
            )),
            SegmentBytes::Missing => r.missing.push(s.seq),
            SegmentBytes::Here(b) => {
                r.bytes_checked += b.len() as u64;
                if b.len() as u64 != s.bytes || segment::hex(&segment::sha256(&b)) != s.sha256 {
                    r.problems.push(format!(
                        "segment {}: content does not match its hash",
                        s.seq
                    ));
                }
            }
        }
    }
    // A recording with no segment (stopped before its first keyframe) has
    // an empty head.
    let head_ok = if manifest.segments.is_empty() {
        manifest.chain_head.is_empty() || manifest.chain_head == segment::hex(&chain)
    } else {
        segment::hex(&chain) == manifest.chain_head
    };
    if !head_ok {
        r.chain_ok = false;
        r.problems
            .push("the chain head does not match the segments".into());
    }
    if !r.missing.is_empty() {
        r.notes.push(format!(
            "{} of {} segments missing: {}",
            r.missing.len(),
            r.segments,
            r.missing
                .iter()
                .map(|s| object_name(*s))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    r.verdict = if !r.problems.is_empty() {
        Verdict::Tampered
    } else if !r.missing.is_empty() {
        Verdict::Incomplete
    } else {
        Verdict::Intact
    };
    r.ok = r.verdict == Verdict::Intact;
    r
}

impl VerifyReport {
    /// Fold in the check of the far track the room's manifest names (`None`
    /// when its manifest is not to be found). The room's verdict is the
    /// worse of the two: the record is the whole conversation.
    pub fn with_far(mut self, named: &FarTrack, far: Option<VerifyReport>, head: &str) -> Self {
        // Missing, like a missing segment, makes the record incomplete;
        // present but different makes it tampered.
        let mut far_incomplete = far.is_none();
        match far {
            None => {
                self.notes.push(format!(
                    "the far end's track {} that the manifest names is not here",
                    named.session
                ));
            }
            Some(f) => {
                if head != named.chain_head || f.segments != named.segments {
                    self.problems.push(format!(
                        "the far end's track {} is not the one the room's manifest names \
                         (chain head {head}, {} segments; the manifest says {}, {})",
                        named.session, f.segments, named.chain_head, named.segments
                    ));
                }
                for p in &f.problems {
                    self.problems.push(format!("far end: {p}"));
                }
                if !f.missing.is_empty() {
                    self.notes
                        .push(format!("far end: {} segments missing", f.missing.len()));
                }
                self.far = Some(Box::new(f));
            }
        }
        far_incomplete |= self
            .far
            .as_ref()
            .is_some_and(|f| f.verdict == Verdict::Incomplete);
        self.verdict = if !self.problems.is_empty() {
            Verdict::Tampered
        } else if !self.missing.is_empty() || far_incomplete {
            Verdict::Incomplete
        } else {
            Verdict::Intact
        };
        self.ok = self.verdict == Verdict::Intact;
        self
    }

    /// Require the manifest to be signed by `key_hex`, the box's key as
    /// registered (pinned) elsewhere: a copy re-signed with another key is
    /// a forgery, however well its own signature checks.
    pub fn pin(&mut self, key_hex: &str) {
        if !self.public_key.eq_ignore_ascii_case(key_hex.trim()) {
            self.refuse(format!(
                "signed by key {}, not by the box's pinned key {}: not this box's recording",
                self.public_key,
                key_hex.trim()
            ));
        }
    }

    /// Something the recording names is not here (its time-stamp token):
    /// incomplete, unless it is already worse.
    pub fn lack(&mut self, note: String) {
        self.notes.push(note);
        if self.verdict == Verdict::Intact {
            self.verdict = Verdict::Incomplete;
        }
        self.ok = false;
    }

    /// Something outside the recording says it cannot be trusted (its key
    /// is not its site's): tampered.
    pub fn refuse(&mut self, problem: String) {
        self.problems.push(problem);
        self.verdict = Verdict::Tampered;
        self.ok = false;
    }
}

fn seg_key(id: &str, seq: u32) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.push(0);
    k.extend(seq.to_be_bytes());
    k
}

fn chunk_key(id: &str, seq: u32, chunk: u32) -> Vec<u8> {
    let mut k = seg_key(id, seq);
    k.extend(chunk.to_be_bytes());
    k
}

fn prefix(id: &str) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.push(0);
    k
}

/// The object name of a segment inside the session's archive folder.
pub fn object_name(seq: u32) -> String {
    format!("{seq:06}.ts")
}

/// A session brought back from its journal into a store that had lost it.
#[derive(Debug, Clone, PartialEq)]
pub struct Salvaged {
    pub session: String,
    pub segments: u32,
    pub chunks: u32,
    pub bytes: u64,
    /// Bytes of a torn last record, cut off.
    pub torn_bytes: u64,
    /// The store held the session but not all of it (its flushed tail was
    /// in the journal only): the missing chunks and segments were added.
    pub tail_only: bool,
}

#[derive(Clone)]
pub struct RecStore {
    db: sled::Db,
    sessions: sled::Tree,
    segments: sled::Tree,
    /// Where each chunk's bytes are in its session's journal.
    locs: sled::Tree,
    /// Chunk bytes held in sled by earlier versions: read, never written.
    legacy: sled::Tree,
    /// The recordings' bytes, and the records to rebuild the index from
    /// (see [`super::journal`]).
    journal: Journal,
}

/// A chunk's place in its journal: where its bytes start, and how many.
fn loc(at: u64, len: usize) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..8].copy_from_slice(&at.to_be_bytes());
    // A chunk is bounded by config far below 4 GiB.
    v[8..].copy_from_slice(&(len as u32).to_be_bytes());
    v
}

fn unloc(v: &[u8]) -> Option<(u64, u64)> {
    let at = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let len = u32::from_be_bytes(v.get(8..12)?.try_into().ok()?);
    Some((at, u64::from(len)))
}

impl RecStore {
    /// The store over `db`, with the recordings' bytes in
    /// `<state_dir>/journal`: what the daemon, every command and the tests
    /// use.
    pub fn open(db: &sled::Db, state_dir: &std::path::Path) -> Result<Self, RecError> {
        Ok(Self {
            db: db.clone(),
            sessions: db.open_tree(crate::core::trees::REC_SESSIONS)?,
            segments: db.open_tree(crate::core::trees::REC_SEGMENTS)?,
            locs: db.open_tree(crate::core::trees::REC_CHUNK_LOCS)?,
            legacy: db.open_tree(crate::core::trees::REC_CHUNKS)?,
            journal: Journal::new(state_dir.join("journal")),
        })
    }

    /// Make everything written so far durable: the journal, then sled.
    pub fn flush(&self) -> Result<(), RecError> {
        self.journal.sync()?;
        self.db.flush()?;
        Ok(())
    }

    pub fn put_session(&self, s: &RecSession) -> Result<(), RecError> {
        self.journal.session(s)?;
        self.sessions.insert(
            s.id.as_bytes(),
            serde_json::to_vec(s).expect("sessions serialise"),
        )?;
        Ok(())
    }

    /// Bytes in the journals: the recordings' bytes on the box.
    pub fn journal_bytes(&self) -> u64 {
        self.journal.bytes()
    }

    /// Before recovery, at start-up: bring back from their journals the
    /// sessions this store does not hold (after sled's files were set
    /// aside), and rebuild from its journal the index of a session left
    /// open, or of one whose index points past its journal's end (sled
    /// wrote it behind the journal's last durable flush). Recovery then
    /// closes a salvaged live session as interrupted like any other.
    ///
    /// One journal that cannot be read is logged and left in place; the
    /// others still come back, and the daemon still starts.
    pub fn reconcile_journals(&self) -> Result<Vec<Salvaged>, RecError> {
        let j = &self.journal;
        let mut out = Vec::new();
        for id in j.ids()? {
            match self.reconcile_journal(j, &id) {
                Ok(Some(s)) => out.push(s),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(session = %id, "recording journal not brought back: {e}; left in place for a technician")
                }
            }
        }
        if !out.is_empty() {
            self.db.flush()?;
        }
        Ok(out)
    }

    fn reconcile_journal(&self, j: &Journal, id: &str) -> Result<Option<Salvaged>, RecError> {
        let id = id.to_owned();
        if let Some(v) = self.sessions.get(id.as_bytes())? {
            let held = serde_json::from_slice::<RecSession>(&v).ok();
            let open = held.as_ref().is_some_and(|s| !s.closed);
            if open || self.index_past_end(j, &id)? {
                return self.merge_tail(j, &id);
            }
            return Ok(None);
        }
        // Streamed into the store record by record. The first record is
        // always the session's (written and synced before any chunk);
        // the last session record and segment metadata written win.
        let mut session: Option<RecSession> = None;
        let mut metas = BTreeMap::new();
        let (mut chunks, mut bytes) = (0u32, 0u64);
        let mut headless = false;
        let torn = j.replay(&id, |r| -> Result<(), RecError> {
            match r {
                Record::Session(s) => session = Some(*s),
                _ if session.is_none() => headless = true,
                Record::Segment(m) => {
                    metas.insert(m.seq, m);
                }
                Record::Chunk {
                    seq,
                    chunk,
                    at,
                    bytes: b,
                } if !headless => {
                    chunks += 1;
                    bytes += b.len() as u64;
                    self.locs
                        .insert(chunk_key(&id, seq, chunk), &loc(at, b.len())[..])?;
                }
                Record::Chunk { .. } => {}
            }
            Ok(())
        })?;
        let Some(session) = session.filter(|_| !headless) else {
            if headless {
                tracing::error!(session = %id, "recording journal does not start with its session record; left in place for a technician");
            } else {
                // Torn before its first record: nothing was recorded.
                j.remove(&id)?;
            }
            return Ok(None);
        };
        if chunks == 0 && session.manifest_confirmed_at.is_some() && session.closed {
            // Archived, and its bytes all pruned: nothing of it is on the
            // box any more but its index, which comes back too.
            tracing::info!(session = %id, "archived recording's index brought back from its journal");
        }
        for m in metas.values() {
            self.segments.insert(
                seg_key(&id, m.seq),
                serde_json::to_vec(m).expect("segments serialise"),
            )?;
        }
        self.sessions.insert(
            id.as_bytes(),
            serde_json::to_vec(&session).expect("sessions serialise"),
        )?;
        Ok(Some(Salvaged {
            session: id,
            segments: metas.len() as u32,
            chunks,
            bytes,
            torn_bytes: torn,
            tail_only: false,
        }))
    }

    /// An index entry of `id` that points past the end of its journal:
    /// sled wrote it after the journal's last durable flush, and the power
    /// went before the journal's next. Cheap: lengths only, no reading.
    fn index_past_end(&self, j: &Journal, id: &str) -> Result<bool, RecError> {
        let len = j.len(id);
        for kv in self.locs.scan_prefix(prefix(id)) {
            let (_, v) = kv?;
            if unloc(&v).is_none_or(|(at, n)| at + n > len) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A session left open by a stop, or an index that ran ahead of its
    /// journal: the recorder makes each flush durable in the journal and
    /// sled writes the index behind it, so the journal decides. Segment
    /// metadata sled lacks is added; the chunk index is the journal's,
    /// entries it does not back removed. Recovery then checks every
    /// segment against its hash.
    fn merge_tail(&self, j: &Journal, id: &str) -> Result<Option<Salvaged>, RecError> {
        let (mut segments, mut chunks, mut bytes) = (0u32, 0u32, 0u64);
        let mut backed = std::collections::BTreeSet::new();
        let torn = j.replay(id, |r| -> Result<(), RecError> {
            match r {
                Record::Segment(m) => {
                    let k = seg_key(id, m.seq);
                    if !self.segments.contains_key(&k)? {
                        self.segments
                            .insert(k, serde_json::to_vec(&m).expect("segments serialise"))?;
                        segments += 1;
                    }
                }
                Record::Chunk {
                    seq,
                    chunk,
                    at,
                    bytes: b,
                } => {
                    let k = chunk_key(id, seq, chunk);
                    let v = loc(at, b.len());
                    if self.locs.insert(k.clone(), &v[..])?.as_deref() != Some(&v[..]) {
                        bytes += b.len() as u64;
                        chunks += 1;
                    }
                    backed.insert(k);
                }
                Record::Session(_) => {}
            }
            Ok(())
        })?;
        let mut dropped = 0u32;
        for k in self.locs.scan_prefix(prefix(id)).keys() {
            let k = k?;
            if !backed.contains(k.as_ref()) {
                self.locs.remove(k)?;
                dropped += 1;
            }
        }
        if dropped > 0 {
            tracing::warn!(session = %id, "{dropped} chunk(s) the index had past the journal's last flush dropped");
        }
        if segments == 0 && chunks == 0 {
            return Ok(None);
        }
        Ok(Some(Salvaged {
            session: id.to_owned(),
            segments,
            chunks,
            bytes,
            torn_bytes: torn,
            tail_only: true,
        }))
    }

    /// Make what was written so far durable, as cheaply as it can be: the
    /// journal only (one `fdatasync` of appended records; sled writes the
    /// index behind it, and a start after a stop rebuilds from the journal
    /// what sled lacks).
    pub fn make_durable(&self) -> Result<(), RecError> {
        Ok(self.journal.sync()?)
    }

    /// Atomically change a session record.
    pub fn update_session(
        &self,
        id: &str,
        f: impl Fn(&mut RecSession),
    ) -> Result<RecSession, RecError> {
        let mut decode_err = None;
        let out = self.sessions.update_and_fetch(id.as_bytes(), |old| {
            let old = old?;
            match serde_json::from_slice::<RecSession>(old) {
                Ok(mut s) => {
                    f(&mut s);
                    Some(serde_json::to_vec(&s).expect("sessions serialise"))
                }
                Err(e) => {
                    decode_err = Some(e);
                    Some(old.to_vec())
                }
            }
        })?;
        if let Some(source) = decode_err {
            return Err(RecError::Decode {
                id: id.into(),
                what: "session".into(),
                source,
            });
        }
        let bytes = out.ok_or_else(|| RecError::NotFound(id.into()))?;
        let s = serde_json::from_slice(&bytes).map_err(|source| RecError::Decode {
            id: id.into(),
            what: "session".into(),
            source,
        })?;
        self.journal.session(&s)?;
        Ok(s)
    }

    pub fn session(&self, id: &str) -> Result<RecSession, RecError> {
        let v = self
            .sessions
            .get(id.as_bytes())?
            .ok_or_else(|| RecError::NotFound(id.into()))?;
        serde_json::from_slice(&v).map_err(|source| RecError::Decode {
            id: id.into(),
            what: "session".into(),
            source,
        })
    }

    /// All recordings, newest first.
    pub fn sessions(&self) -> Result<Vec<RecSession>, RecError> {
        let mut out = Vec::new();
        for kv in self.sessions.iter().rev() {
            let (k, v) = kv?;
            out.push(
                serde_json::from_slice(&v).map_err(|source| RecError::Decode {
                    id: String::from_utf8_lossy(&k).into(),
                    what: "session".into(),
                    source,
                })?,
            );
        }
        Ok(out)
    }

    pub fn write_chunk(
        &self,
        id: &str,
        seq: u32,
        chunk: u32,
        bytes: &[u8],
    ) -> Result<(), RecError> {
        let at = self.journal.chunk(id, seq, chunk, bytes)?;
        self.locs
            .insert(chunk_key(id, seq, chunk), &loc(at, bytes.len())[..])?;
        Ok(())
    }

    pub fn put_segment(&self, id: &str, m: &SegmentMeta) -> Result<(), RecError> {
        self.journal.segment(id, m)?;
        self.segments.insert(
            seg_key(id, m.seq),
            serde_json::to_vec(m).expect("segments serialise"),
        )?;
        Ok(())
    }

    pub fn update_segment(
        &self,
        id: &str,
        seq: u32,
        f: impl Fn(&mut SegmentMeta),
    ) -> Result<(), RecError> {
        let new = self.segments.update_and_fetch(seg_key(id, seq), |old| {
            let old = old?;
            match serde_json::from_slice::<SegmentMeta>(old) {
                Ok(mut m) => {
                    f(&mut m);
                    Some(serde_json::to_vec(&m).expect("segments serialise"))
                }
                Err(_) => Some(old.to_vec()),
            }
        })?;
        // The journal keeps the change too (confirmed, quarantined, pruned),
        // so a store rebuilt from it neither uploads again what the archive
        // has nor reads a pruned segment as damaged.
        if let Some(m) = new.and_then(|v| serde_json::from_slice::<SegmentMeta>(&v).ok()) {
            self.journal.segment(id, &m)?;
        }
        Ok(())
    }

    pub fn segments(&self, id: &str) -> Result<Vec<SegmentMeta>, RecError> {
        self.segments
            .scan_prefix(prefix(id))
            .map(|kv| {
                let (_, v) = kv?;
                serde_json::from_slice(&v).map_err(|source| RecError::Decode {
                    id: id.into(),
                    what: "segment".into(),
                    source,
                })
            })
            .collect()
    }

    /// Where the chunks of one segment are in the journal, in order.
    fn chunk_locs(&self, id: &str, seq: u32) -> Result<Vec<(u64, u64)>, RecError> {
        let mut out = Vec::new();
        for kv in self.locs.scan_prefix(seg_key(id, seq)) {
            let (_, v) = kv?;
            let place = unloc(&v).ok_or_else(|| {
                RecError::Io(std::io::Error::other(format!(
                    "recording {id}: a chunk index entry of segment {seq} is unreadable"
                )))
            })?;
            out.push(place);
        }
        Ok(out)
    }

    /// The bytes of one segment (its chunks in order).
    pub fn segment_bytes(&self, id: &str, seq: u32) -> Result<Vec<u8>, RecError> {
        let mut out = Vec::new();
        let locs = self.chunk_locs(id, seq)?;
        if locs.is_empty() {
            for kv in self.legacy.scan_prefix(seg_key(id, seq)) {
                out.extend_from_slice(&kv?.1);
            }
            return Ok(out);
        }
        self.journal.read_into(id, &locs, &mut out)?;
        Ok(out)
    }

    /// Chunks stored for `seq` (count, bytes): for recovering a partial tail.
    pub fn chunk_numbers(&self, id: &str, seq: u32) -> Result<Vec<u32>, RecError> {
        let p = seg_key(id, seq);
        let number =
            |k: &[u8]| u32::from_be_bytes(k[p.len()..p.len() + 4].try_into().unwrap_or([0; 4]));
        let mut out: Vec<u32> = Vec::new();
        for k in self.locs.scan_prefix(&p).keys() {
            out.push(number(&k?));
        }
        if out.is_empty() {
            for k in self.legacy.scan_prefix(&p).keys() {
                out.push(number(&k?));
            }
        }
        Ok(out)
    }

    /// Flip a byte in the middle of a segment's first chunk, below every
    /// check but the segment's hash (for tests that simulate bit rot).
    pub fn damage_chunk(&self, id: &str, seq: u32) -> Result<bool, RecError> {
        let Some((at, len)) = self.chunk_locs(id, seq)?.into_iter().next() else {
            return Ok(false);
        };
        self.journal.damage(id, at + len / 2)?;
        Ok(true)
    }

    /// Take a segment's bytes (or, `seq` None, the whole session's) off
    /// the index, zeroing a single segment's in its journal; the caller
    /// removes a whole session's journal. Returns the bytes freed.
    fn remove_chunks(&self, id: &str, seq: Option<u32>) -> Result<u64, RecError> {
        let p = match seq {
            Some(s) => seg_key(id, s),
            None => prefix(id),
        };
        let mut freed = 0;
        let mut ranges = Vec::new();
        let mut keys = Vec::new();
        for kv in self.locs.scan_prefix(&p) {
            let (k, v) = kv?;
            if let Some((at, n)) = unloc(&v) {
                freed += n;
                ranges.push((at, n));
            }
            keys.push(k);
        }
        if seq.is_some() && !ranges.is_empty() {
            self.journal.zero(id, &ranges)?;
        }
        for k in keys {
            self.locs.remove(k)?;
        }
        for kv in self.legacy.scan_prefix(&p) {
            let (k, v) = kv?;
            freed += v.len() as u64;
            self.legacy.remove(k)?;
        }
        Ok(freed)
    }

    /// Write the recording (all segments that are on the box, in order,
    /// quarantined ones left out) to `out`. The same bytes as the archive's
    /// objects concatenated.
    pub fn export(&self, id: &str, out: &mut impl Write) -> Result<u64, RecError> {
        self.session(id)?;
        let mut n = 0;
        for m in self.segments(id)? {
            if m.quarantined.is_some() || m.pruned {
                continue;
            }
            let b = self.segment_bytes(id, m.seq)?;
            out.write_all(&b)?;
            n += b.len() as u64;
        }
        Ok(n)
    }

    pub fn manifest(&self, id: &str, key: &SigningKey) -> Result<Manifest, RecError> {
        let s = self.session(id)?;
        let mut m = Manifest {
            format: if s.sealed.is_some() {
                MANIFEST_FORMAT_SEALED
            } else {
                MANIFEST_FORMAT
            }
            .into(),
            site: s.site.clone(),
            session: s.id.clone(),
            started_at: s.started_at,
            ended_at: s.ended_at,
            time_synced_at_start: s.time_synced,
            started_by: s.started_by.clone(),
            stopped_by: s.stopped_by.clone(),
            metadata: s.metadata.clone(),
            outcome: s.outcome.clone(),
            gaps: s.gaps.clone(),
            segments: self
                .segments(id)?
                .into_iter()
                .map(|m| ManifestSegment {
                    seq: m.seq,
                    object: object_name(m.seq),
                    bytes: m.bytes,
                    duration_ms: m.duration_ms,
                    sha256: m.sha256,
                    chain: m.chain,
                    partial: m.partial,
                    quarantined: m.quarantined.is_some(),
                })
                .collect(),
            chain_head: s.chain_head.clone(),
            track: s.of.as_ref().map(|_| "far".to_owned()),
            of: s.of.clone(),
            timestamp_authority: None,
            far: match &s.far {
                Some(f) => {
                    let t = self.session(f)?;
                    Some(FarTrack {
                        session: t.id.clone(),
                        folder: FAR_FOLDER.into(),
                        segments: t.segments,
                        bytes: t.bytes,
                        chain_head: t.chain_head,
                    })
                }
                None => None,
            },
            encryption: s.sealed.clone(),
            public_key: String::new(),
            signature: String::new(),
        };
        m.sign(key);
        Ok(m)
    }

    /// Verify a recording on the box, with its far track if it has one.
    pub fn verify(&self, id: &str, key: &SigningKey) -> Result<VerifyReport, RecError> {
        let report = self.verify_one(id, key)?;
        let m = self.manifest(id, key)?;
        Ok(match &m.far {
            Some(named) => match self.verify_one(&named.session, key) {
                Ok(f) => {
                    let head = self.session(&named.session)?.chain_head;
                    report.with_far(named, Some(f), &head)
                }
                Err(RecError::NotFound(_)) => report.with_far(named, None, ""),
                Err(e) => return Err(e),
            },
            None => report,
        })
    }

    fn verify_one(&self, id: &str, key: &SigningKey) -> Result<VerifyReport, RecError> {
        let m = self.manifest(id, key)?;
        let metas: BTreeMap<u32, SegmentMeta> =
            self.segments(id)?.into_iter().map(|m| (m.seq, m)).collect();
        let mut report = verify(&m, |s| {
            if metas.get(&s.seq).is_some_and(|m| m.pruned) {
                return SegmentBytes::Pruned;
            }
            match self.segment_bytes(id, s.seq) {
                Ok(b) => SegmentBytes::Here(b),
                Err(_) => SegmentBytes::Missing,
            }
        });
        if !self.session(id)?.closed {
            report
                .notes
                .push("the session is still being recorded".into());
        }
        Ok(report)
    }

    /// Delete a recording. Refuses a live one, and one with unconfirmed
    /// segments unless `force` (an explicit operator decision).
    /// Room recordings whose manifest (and far track's) the archive
    /// confirmed at least `keep` before `now`: what retention erases.
    pub fn retention_due(
        &self,
        now: DateTime<Utc>,
        keep: chrono::Duration,
    ) -> Result<Vec<RecSession>, RecError> {
        let confirmed_long_ago =
            |s: &RecSession| s.manifest_confirmed_at.is_some_and(|t| now - t >= keep);
        let mut due = Vec::new();
        for s in self.sessions()? {
            if s.of.is_some() || !s.closed || !confirmed_long_ago(&s) {
                continue;
            }
            let far_done = match &s.far {
                None => true,
                Some(f) => match self.session(f) {
                    Ok(fs) => confirmed_long_ago(&fs),
                    Err(RecError::NotFound(_)) => true,
                    Err(e) => return Err(e),
                },
            };
            if far_done {
                due.push(s);
            }
        }
        Ok(due)
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<u64, RecError> {
        let s = self.session(id)?;
        if !s.closed {
            return Err(RecError::Live(id.into()));
        }
        let tracks: Vec<String> = std::iter::once(id.to_owned())
            .chain(s.far.clone())
            .collect();
        for t in &tracks {
            let unconfirmed = match self.segments(t) {
                Ok(v) => v
                    .iter()
                    .any(|m| m.confirmed_at.is_none() && m.quarantined.is_none()),
                Err(RecError::NotFound(_)) => false,
                Err(e) => return Err(e),
            };
            if unconfirmed && !force {
                return Err(RecError::Unconfirmed(id.into()));
            }
        }
        // The far track goes with its room: one is not a record without the other.
        let mut freed = 0;
        if let Some(f) = &s.far {
            if self.session(f).is_ok() {
                freed += self.delete_one(f)?;
            }
        }
        Ok(freed + self.delete_one(id)?)
    }

    /// The journal goes first: a power cut between the two leaves an index
    /// whose bytes are gone (the next delete finishes it), never a journal
    /// that would bring an erased recording back at the next start.
    fn delete_one(&self, id: &str) -> Result<u64, RecError> {
        self.journal.remove(id)?;
        let freed = self.remove_chunks(id, None)?;
        for kv in self.segments.scan_prefix(prefix(id)).keys() {
            self.segments.remove(kv?)?;
        }
        self.sessions.remove(id.as_bytes())?;
        self.flush()?;
        Ok(freed)
    }

    /// Bytes of segment data held on the box, and of it not yet confirmed.
    pub fn usage(&self) -> Result<(u64, u64), RecError> {
        let (mut held, mut unconfirmed) = (0, 0);
        for kv in self.segments.iter() {
            let (_, v) = kv?;
            if let Ok(m) = serde_json::from_slice::<SegmentMeta>(&v) {
                if !m.pruned {
                    held += m.bytes;
                    if m.confirmed_at.is_none() {
                        unconfirmed += m.bytes;
                    }
                }
            }
        }
        Ok((held, unconfirmed))
    }

    /// Remove confirmed segments' bytes, oldest session first, until `need`
    /// bytes are freed. Never touches an unconfirmed segment.
    pub fn prune_confirmed(&self, need: u64) -> Result<u64, RecError> {
        let mut freed = 0;
        let mut sessions = self.sessions()?;
        sessions.reverse(); // oldest first
        for s in sessions {
            if freed >= need {
                break;
            }
            let mut here = false;
            for m in self.segments(&s.id)? {
                if freed >= need {
                    break;
                }
                if m.confirmed_at.is_some() && !m.pruned {
                    freed += self.remove_chunks(&s.id, Some(m.seq))?;
                    self.update_segment(&s.id, m.seq, |m| m.pruned = true)?;
                    here = true;
                }
            }
            if here {
                self.compact_if_pruned(&s)?;
            }
        }
        Ok(freed)
    }

    /// An archived recording whose every segment has been pruned keeps
    /// only its records: its journal is rewritten without the chunks.
    fn compact_if_pruned(&self, s: &RecSession) -> Result<(), RecError> {
        if !s.closed || s.manifest_confirmed_at.is_none() || self.journal.len(&s.id) == 0 {
            return Ok(());
        }
        let segments = self.segments(&s.id)?;
        if segments.iter().all(|m| m.pruned) && !self.chunk_numbers_any(&s.id)? {
            self.journal.compact(&s.id)?;
        }
        Ok(())
    }

    /// Whether any chunk of `id` is still indexed.
    fn chunk_numbers_any(&self, id: &str) -> Result<bool, RecError> {
        Ok(self
            .locs
            .scan_prefix(prefix(id))
            .next()
            .transpose()?
            .is_some())
    }

    /// The first segment not yet confirmed by the archive, oldest session first.
    pub fn next_unconfirmed(&self) -> Result<Option<(RecSession, SegmentMeta)>, RecError> {
        let mut sessions = self.sessions()?;
        sessions.reverse();
        for s in sessions {
            for m in self.segments(&s.id)? {
                if m.confirmed_at.is_none() && m.quarantined.is_none() {
                    return Ok(Some((s, m)));
                }
            }
        }
        Ok(None)
    }

    /// Closed sessions whose segments are all confirmed but whose manifest is not.
    pub fn manifests_due(&self) -> Result<Vec<RecSession>, RecError> {
        let mut out = Vec::new();
        for s in self.sessions()?.into_iter().rev() {
            if s.closed && s.manifest_confirmed_at.is_none() {
                let done = self
                    .segments(&s.id)?
                    .iter()
                    .all(|m| m.confirmed_at.is_some() || m.quarantined.is_some());
                if done {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    /// Upload backlog: segments, bytes, oldest unconfirmed segment's start.
    pub fn backlog(&self) -> Result<(u64, u64, Option<DateTime<Utc>>), RecError> {
        let (mut n, mut bytes, mut oldest) = (0, 0, None::<DateTime<Utc>>);
        for kv in self.segments.iter() {
            let (_, v) = kv?;
            if let Ok(m) = serde_json::from_slice::<SegmentMeta>(&v) {
                if m.confirmed_at.is_none() && m.quarantined.is_none() {
                    n += 1;
                    bytes += m.bytes;
                    oldest = Some(oldest.map_or(m.started_at, |o| o.min(m.started_at)));
                }
            }
        }
        Ok((n, bytes, oldest))
    }
}

/// Check a segment's stored bytes against its hash.
pub fn segment_intact(store: &RecStore, id: &str, m: &SegmentMeta) -> Result<bool, RecError> {
    Ok(bytes_match(m, &store.segment_bytes(id, m.seq)?))
}

/// Whether `bytes` are the segment `m` describes: its length and hash.
pub fn bytes_match(m: &SegmentMeta, bytes: &[u8]) -> bool {
    bytes.len() as u64 == m.bytes && segment::hex(&segment::sha256(bytes)) == m.sha256
}

/// Compute the chain link for a segment given the previous link (hex).
pub fn link(prev_hex: &str, session: &str, seq: u32, sha: &Hash, bytes: u64) -> Hash {
    let prev = segment::unhex(prev_hex).unwrap_or_else(|| segment::chain_start(session));
    segment::chain_next(&prev, u64::from(seq), sha, bytes)
}

/// A fresh session record, for tests here and in the journal's.
#[cfg(test)]
pub(crate) fn test_session(id: &str, closed: bool) -> RecSession {
    RecSession {
        closed,
        ..RecSession::begin(
            id.into(),
            "xa".into(),
            Utc::now(),
            true,
            "button".into(),
            BTreeMap::new(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str) -> RecSession {
        test_session(id, false)
    }

    /// A manifest made before far tracks existed has no `track`, `of` or
    /// `far`; the room's manifests still do not, so the bytes its signature
    /// covers are the same, and the far track's say what it is.
    #[test]
    fn room_manifests_keep_the_format_1_fields_and_far_tracks_say_what_they_are() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let old = r#"{"format":"diemcau-recording-manifest/1","site":"xa","session":"s1","started_at":"2026-01-02T03:04:05Z","ended_at":null,"time_synced_at_start":true,"started_by":"cli","stopped_by":null,"metadata":{},"outcome":"ended","gaps":[],"segments":[],"chain_head":"","public_key":"","signature":""}"#;
        let mut m: Manifest = serde_json::from_str(old).unwrap();
        assert_eq!(m.signed_bytes(), old.as_bytes());
        m.sign(&key);
        let back: Manifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert!(back.signature_ok());
        let far = Manifest {
            track: Some("far".into()),
            of: Some("s1".into()),
            ..m.clone()
        };
        let text = String::from_utf8(far.signed_bytes()).unwrap();
        assert!(
            text.contains(r#""chain_head":"","track":"far","of":"s1","public_key""#),
            "{text}"
        );
    }

    /// Retention erases only what the archive confirmed long enough ago,
    /// with its far track confirmed too; never an open or unconfirmed one.
    #[test]
    fn retention_takes_only_what_the_archive_has_held_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir.path().join("db"), dir.path());
        let now = Utc::now();
        let day = chrono::Duration::days(1);
        let put = |id: &str, closed: bool, confirmed: Option<DateTime<Utc>>, far: Option<&str>| {
            let mut s = test_session(id, closed);
            s.manifest_confirmed_at = confirmed;
            s.far = far.map(str::to_owned);
            store.put_session(&s).unwrap();
        };
        put("old", true, Some(now - day * 40), None);
        put("young", true, Some(now - day * 10), None);
        put("unarchived", true, None, None);
        put("open", false, Some(now - day * 40), None);
        put("with-far", true, Some(now - day * 40), Some("with-far.far"));
        let mut far = test_session("with-far.far", true);
        far.of = Some("with-far".into());
        far.manifest_confirmed_at = None;
        store.put_session(&far).unwrap();
        let due: Vec<String> = store
            .retention_due(now, day * 30)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(due, vec!["old".to_owned()]);
        far.manifest_confirmed_at = Some(now - day * 31);
        store.put_session(&far).unwrap();
        let mut due: Vec<String> = store
            .retention_due(now, day * 30)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        due.sort();
        assert_eq!(due, vec!["old".to_owned(), "with-far".to_owned()]);
    }

    /// A whole segment's record, of `bytes` with `sha`.
    fn meta(seq: u32, bytes: u64, chunks: u32, sha: &[u8], confirmed: bool) -> SegmentMeta {
        SegmentMeta {
            seq,
            bytes,
            chunks,
            started_at: Utc::now(),
            duration_ms: 2000,
            sha256: segment::hex(&segment::sha256(sha)),
            chain: String::new(),
            partial: false,
            confirmed_at: confirmed.then(Utc::now),
            quarantined: None,
            pruned: false,
        }
    }

    /// A store over a fresh sled in `db` with its journals in `state`.
    fn store(db: &std::path::Path, state: &std::path::Path) -> RecStore {
        RecStore::open(&sled::open(db).unwrap(), state).unwrap()
    }

    #[test]
    fn the_bytes_live_once_in_the_journal_and_sled_holds_where() {
        let (db, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let st = store(db.path(), state.path());
        st.put_session(&session("s")).unwrap();
        let chunk = vec![0x47u8; 64 << 10];
        for n in 0..32 {
            st.write_chunk("s", n / 8, n % 8, &chunk).unwrap();
        }
        st.flush().unwrap();
        assert_eq!(st.segment_bytes("s", 1).unwrap().len(), 8 * chunk.len());
        assert_eq!(
            st.chunk_numbers("s", 3).unwrap(),
            (0..8).collect::<Vec<_>>()
        );
        // Sled holds 12 bytes per 64 KiB chunk, not the chunk.
        let index: usize = st.locs.iter().values().map(|v| v.unwrap().len()).sum();
        assert_eq!(index, 32 * 12);
        assert_eq!(st.legacy.len(), 0);
        // The journal: the bytes and their framing, 17 bytes a chunk.
        let journal = st.journal.len("s");
        let data = 32 * chunk.len() as u64;
        assert!(journal > data && journal < data + data / 100, "{journal}");
    }

    #[test]
    fn journals_bring_back_what_the_store_lost_and_stay_while_the_bytes_are_here() {
        let state = tempfile::tempdir().unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let old = store(a.path(), state.path());
        for id in ["lost", "archived"] {
            old.put_session(&session(id)).unwrap();
            old.write_chunk(id, 0, 0, b"first").unwrap();
            old.write_chunk(id, 0, 1, b"second").unwrap();
            old.put_segment(id, &meta(0, 11, 2, b"firstsecond", false))
                .unwrap();
        }
        old.update_segment("archived", 0, |m| m.confirmed_at = Some(Utc::now()))
            .unwrap();
        old.update_session("archived", |s| {
            s.closed = true;
            s.manifest_confirmed_at = Some(Utc::now());
        })
        .unwrap();
        old.flush().unwrap();
        let j = Journal::new(state.path().join("journal"));
        assert_eq!(
            j.ids().unwrap(),
            ["archived", "lost"],
            "its bytes are there"
        );
        // A journal whose first record is not its session: left alone.
        j.chunk("headless", 0, 0, b"x").unwrap();
        // The store is replaced by an empty one (as after a set-aside).
        let fresh = store(b.path(), state.path());
        let mut back = fresh.reconcile_journals().unwrap();
        back.sort_by(|x, y| x.session.cmp(&y.session));
        assert_eq!(back.len(), 2, "{back:?}");
        assert_eq!((back[1].session.as_str(), back[1].chunks), ("lost", 2));
        assert_eq!(fresh.segment_bytes("lost", 0).unwrap(), b"firstsecond");
        assert!(!fresh.session("lost").unwrap().closed);
        // What the archive confirmed comes back confirmed: not uploaded again.
        let archived = fresh.session("archived").unwrap();
        assert!(archived.manifest_confirmed_at.is_some());
        assert!(fresh.segments("archived").unwrap()[0]
            .confirmed_at
            .is_some());
        assert!(fresh.session("headless").is_err());
        assert_eq!(j.ids().unwrap(), ["archived", "headless", "lost"]);
        // A second start finds them in the store and changes nothing.
        assert!(fresh.reconcile_journals().unwrap().is_empty());
        // Deleting the recording takes its journal.
        fresh.delete("archived", false).unwrap();
        assert_eq!(j.ids().unwrap(), ["headless", "lost"]);
        assert!(fresh.reconcile_journals().unwrap().is_empty());
        assert!(fresh.session("archived").is_err(), "not brought back");
    }

    #[test]
    fn an_open_session_gets_its_index_from_its_journal() {
        let state = tempfile::tempdir().unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let full = store(a.path(), state.path());
        full.put_session(&session("live")).unwrap();
        for n in 0..4 {
            full.write_chunk("live", 0, n, &[n as u8 + 1; 100]).unwrap();
        }
        full.make_durable().unwrap();
        let first = full.locs.get(chunk_key("live", 0, 0)).unwrap().unwrap();
        // What sled had written when the power went: the session, the
        // first chunk's place, and a place past the journal's end (sled
        // wrote it, the journal's flush did not happen).
        let behind = store(b.path(), state.path());
        behind
            .sessions
            .insert(b"live", serde_json::to_vec(&session("live")).unwrap())
            .unwrap();
        behind.locs.insert(chunk_key("live", 0, 0), first).unwrap();
        behind
            .locs
            .insert(chunk_key("live", 0, 9), &loc(1 << 30, 100)[..])
            .unwrap();
        let back = behind.reconcile_journals().unwrap();
        assert_eq!(back.len(), 1);
        assert!(back[0].tail_only);
        assert_eq!(back[0].chunks, 3, "only what was missing");
        let bytes = behind.segment_bytes("live", 0).unwrap();
        assert_eq!(bytes.len(), 400, "the place past the end is gone");
        assert_eq!(&bytes[..100], &[1u8; 100]);
        assert_eq!(&bytes[300..], &[4u8; 100]);
        // A closed session whose index agrees with its journal is left alone.
        behind.update_session("live", |s| s.closed = true).unwrap();
        assert!(behind.reconcile_journals().unwrap().is_empty());
        // One whose index runs past its journal is rebuilt.
        behind
            .locs
            .insert(chunk_key("live", 1, 0), &loc(1 << 30, 100)[..])
            .unwrap();
        assert_eq!(behind.reconcile_journals().unwrap().len(), 0);
        assert!(behind.chunk_numbers("live", 1).unwrap().is_empty());
    }

    #[test]
    fn pruning_zeroes_a_segment_in_its_journal_and_gives_the_space_back() {
        let (db, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let st = store(db.path(), state.path());
        st.put_session(&session("s")).unwrap();
        let chunk = vec![0x47u8; 256 << 10];
        for seq in 0..3 {
            for n in 0..4 {
                st.write_chunk("s", seq, n, &chunk).unwrap();
            }
            let bytes = st.segment_bytes("s", seq).unwrap();
            st.put_segment("s", &meta(seq, bytes.len() as u64, 4, &bytes, seq == 0))
                .unwrap();
        }
        st.flush().unwrap();
        let before = st.journal_bytes();
        let freed = st.prune_confirmed(1).unwrap();
        assert_eq!(freed, 4 * chunk.len() as u64, "the confirmed segment only");
        let after = st.journal_bytes();
        assert!(
            before - after >= freed - 4 * 8192,
            "the file system got the blocks back: {before} -> {after}"
        );
        assert!(st.segments("s").unwrap()[0].pruned);
        assert!(segment_intact(&st, "s", &st.segments("s").unwrap()[1]).unwrap());
        // The journal still reads whole past the pruned chunks: a store
        // rebuilt from it gets the other segments, and the pruned one as
        // pruned.
        st.update_session("s", |s| s.closed = true).unwrap();
        st.flush().unwrap();
        let again = tempfile::tempdir().unwrap();
        let fresh = store(again.path(), state.path());
        let back = fresh.reconcile_journals().unwrap();
        assert_eq!(back[0].chunks, 8, "{back:?}");
        assert_eq!(back[0].torn_bytes, 0);
        let segs = fresh.segments("s").unwrap();
        assert!(segs[0].pruned);
        assert!(segment_intact(&fresh, "s", &segs[2]).unwrap());
        assert!(fresh.session("s").unwrap().closed);

        // Archived, and every segment pruned: the journal keeps its records
        // alone, and they still bring the recording's index back.
        for seq in 1..3 {
            st.update_segment("s", seq, |m| m.confirmed_at = Some(Utc::now()))
                .unwrap();
        }
        st.update_session("s", |s| s.manifest_confirmed_at = Some(Utc::now()))
            .unwrap();
        st.prune_confirmed(u64::MAX).unwrap();
        assert!(st.journal.len("s") < 16 << 10, "{}", st.journal.len("s"));
        assert!(st.segments("s").unwrap().iter().all(|m| m.pruned));
        let last = tempfile::tempdir().unwrap();
        let rebuilt = store(last.path(), state.path());
        rebuilt.reconcile_journals().unwrap();
        assert!(rebuilt
            .session("s")
            .unwrap()
            .manifest_confirmed_at
            .is_some());
        assert_eq!(rebuilt.segments("s").unwrap().len(), 3);
        assert!(rebuilt.segments("s").unwrap().iter().all(|m| m.pruned));
    }
}
