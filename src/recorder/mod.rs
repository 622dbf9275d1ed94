//! The recorder: the encoded uplink's bytes, cut into segments at keyframes
//! and kept in sled until the central archive holds them.
//!
//! It is an actor on its own OS thread (its work is blocking disk I/O): the
//! encode pipeline's appsink hands it every TS buffer through a bounded
//! channel, the media engine tells it when a session starts and stops. It
//! writes chunks as they fill and flushes at least every
//! `flush_interval`, so a power cut loses at most that much. It watches the
//! disk quota: confirmed segments are pruned oldest first; unconfirmed ones
//! never, and at the hard floor it stops adding to the recording (the
//! session itself goes on) and says so.
//!
//! [`recover`] runs before the daemon starts anything: it closes recordings a
//! crash left open (keeping the flushed tail of the interrupted segment as a
//! partial segment) and quarantines segments whose bytes no longer match
//! their hash.

pub mod journal;
pub mod keys;
pub mod seal;
pub mod segment;
pub mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gstreamer as gst;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::config::Recording as RecordingConfig;
use crate::core::events::EventKind;
use crate::core::session::Degradation;
use crate::core::status::{MediaEvent, RecorderStats};
use crate::events::Outbox;
use segment::{Piece, Segmenter};
use store::{RecError, RecSession, RecStore, SegmentMeta};

/// What the recorder is told.
pub enum Msg {
    /// One buffer of the encoded TS stream.
    Data(gst::Buffer),
    /// One buffer of the far end's track (TS, sound only).
    Far(gst::Buffer),
    Start(SessionStart),
    Stop {
        stopped_by: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct SessionStart {
    pub id: String,
    pub started_by: String,
    pub metadata: BTreeMap<String, String>,
}

/// Handle to the recorder thread.
#[derive(Clone)]
pub struct RecorderHandle {
    tx: SyncSender<Msg>,
    stats: watch::Receiver<RecorderStats>,
}

impl RecorderHandle {
    /// For the appsink callback: never blocks; a full queue is counted.
    pub fn offer(&self, buf: gst::Buffer) -> bool {
        match self.tx.try_send(Msg::Data(buf)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// The far end's track, from its appsink: like [`Self::offer`].
    pub fn offer_far(&self, buf: gst::Buffer) -> bool {
        self.tx.try_send(Msg::Far(buf)).is_ok()
    }

    pub fn start(&self, s: SessionStart) {
        // Control messages wait for room: they must not be lost.
        let _ = self.tx.send(Msg::Start(s));
    }

    pub fn stop(&self, stopped_by: Option<String>) {
        let _ = self.tx.send(Msg::Stop { stopped_by });
    }

    pub fn stats(&self) -> RecorderStats {
        self.stats.borrow().clone()
    }
}

/// Whether the system clock is synchronised (kernel NTP state).
pub fn time_synced() -> bool {
    crate::util::clock().synchronized
}

/// What recovery found, for the log and the NOC.
#[derive(Debug, Default)]
pub struct Recovered {
    pub closed: Vec<String>,
    pub partial_segments: u32,
    pub quarantined: Vec<(String, u32)>,
}

/// Close recordings left open by a crash, and check the segments of each
/// against its hash. Runs before any new recording starts; the check of
/// every other recording the archive has not confirmed is
/// [`check_held`]'s, after the daemon is up.
pub fn recover(
    store: &RecStore,
    outbox: &Outbox,
    now: DateTime<Utc>,
) -> Result<Recovered, RecError> {
    let mut out = Recovered::default();
    for s in store.sessions()? {
        let metas = store.segments(&s.id)?;
        if !s.closed {
            // The tail: chunks of the segment after the last complete one.
            let next = metas.last().map_or(0, |m| m.seq + 1);
            let chunks = store.chunk_numbers(&s.id, next)?;
            // Counted from the segments themselves: the session record is
            // updated after each segment's, so a cut between the two leaves
            // it one behind.
            let mut head = metas
                .last()
                .map_or_else(|| s.chain_head.clone(), |m| m.chain.clone());
            let (mut segs, mut bytes) = (
                metas.len() as u32,
                metas.iter().map(|m| m.bytes).sum::<u64>(),
            );
            if !chunks.is_empty() {
                let data = store.segment_bytes(&s.id, next)?;
                let sha = segment::sha256(&data);
                let chain = store::link(&head, &s.id, next, &sha, data.len() as u64);
                head = segment::hex(&chain);
                store.put_segment(
                    &s.id,
                    &SegmentMeta {
                        seq: next,
                        bytes: data.len() as u64,
                        chunks: chunks.len() as u32,
                        started_at: now,
                        duration_ms: 0,
                        sha256: segment::hex(&sha),
                        chain: head.clone(),
                        partial: true,
                        confirmed_at: None,
                        quarantined: None,
                        pruned: false,
                    },
                )?;
                segs += 1;
                bytes += data.len() as u64;
                out.partial_segments += 1;
                tracing::warn!(session = %s.id, segment = next, bytes = data.len(), "kept the interrupted segment's flushed tail as a partial segment");
            }
            store.update_session(&s.id, |r| {
                r.closed = true;
                r.outcome = "interrupted".into();
                r.ended_at = Some(now);
                r.segments = segs;
                r.bytes = bytes;
                r.chain_head = head.clone();
            })?;
            out.closed.push(s.id.clone());
            out.quarantined
                .extend(check_session(store, outbox, &s.id, now, &|| false)?);
        }
    }
    store.flush()?;
    Ok(out)
}

/// Check every segment the archive has not confirmed against its hash, and
/// quarantine those whose bytes changed (bit rot, a bad sector). Runs in
/// the background once the daemon is up: a box whose link was down for
/// days holds tens of gigabytes, and reading them all before the daemon
/// answered took longer than systemd waits for a start (60 s), so such a
/// box would never have come up. The uploader checks each segment before
/// it sends it too, so none goes out damaged before this gets to it.
/// Returns early once `stop` says so: the daemon is stopping.
pub fn check_held(
    store: &RecStore,
    outbox: &Outbox,
    now: DateTime<Utc>,
    stop: &dyn Fn() -> bool,
) -> Result<Vec<(String, u32)>, RecError> {
    let mut out = Vec::new();
    for s in store.sessions()? {
        if stop() {
            break;
        }
        if s.closed {
            out.extend(check_session(store, outbox, &s.id, now, stop)?);
        }
    }
    store.flush()?;
    Ok(out)
}

/// Check one recording's unconfirmed segments; quarantine the damaged.
fn check_session(
    store: &RecStore,
    outbox: &Outbox,
    id: &str,
    now: DateTime<Utc>,
    stop: &dyn Fn() -> bool,
) -> Result<Vec<(String, u32)>, RecError> {
    let mut out = Vec::new();
    for m in store.segments(id)? {
        if stop() {
            break;
        }
        if m.confirmed_at.is_some() || m.quarantined.is_some() || m.pruned {
            continue;
        }
        if !store::segment_intact(store, id, &m)? {
            quarantine(store, outbox, id, &m, &format!("found on start-up {now}"))?;
            out.push((id.to_owned(), m.seq));
        }
    }
    Ok(out)
}

/// Set a damaged segment aside: kept, listed in the manifest, never sent;
/// logged and reported to the NOC.
pub fn quarantine(
    store: &RecStore,
    outbox: &Outbox,
    id: &str,
    m: &SegmentMeta,
    when: &str,
) -> Result<(), RecError> {
    let why = format!("bytes do not match sha256 {} ({when})", m.sha256);
    store.update_segment(id, m.seq, |x| x.quarantined = Some(why.clone()))?;
    tracing::error!(session = %id, segment = m.seq, "damaged segment quarantined: {why}");
    outbox.emit(EventKind::SegmentQuarantined {
        session: id.to_owned(),
        segment: m.seq,
        reason: why,
    });
    Ok(())
}

/// Start the recorder thread.
pub fn spawn(
    config: RecordingConfig,
    state_dir: PathBuf,
    site: String,
    store: RecStore,
    outbox: Outbox,
    events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
) -> std::io::Result<RecorderHandle> {
    // About 16 s of a 2.5 Mbit/s stream in 1316-byte buffers: far more than a
    // healthy store ever lags.
    let (tx, rx) = mpsc::sync_channel(4096);
    let (stats_tx, stats) = watch::channel(RecorderStats {
        enabled: true,
        ..Default::default()
    });
    let held = store.usage().map(|(h, _)| h).unwrap_or(0);
    let rec = Recorder {
        config,
        state_dir,
        site,
        store,
        outbox,
        events,
        stats: stats_tx,
        active: None,
        held,
        journal: 0,
        alarm_level: 0,
        halted: false,
        dropped: 0,
    };
    std::thread::Builder::new()
        .name("recorder".into())
        .spawn(move || rec.run(rx))?;
    Ok(RecorderHandle { tx, stats })
}

struct OpenSegment {
    seq: u32,
    chunk: u32,
    pending: Vec<u8>,
    hasher: Sha256,
    bytes: u64,
    started_at: DateTime<Utc>,
    started: Instant,
}

/// Which of a session's two streams a buffer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The room as sent: the uplink's own bytes.
    Room,
    /// The far end as the room heard it (the call's or the return feed's
    /// sound), a separately hash-chained recording of its own.
    Far,
}

/// One hash-chained stream of the session being recorded.
struct Track {
    session: RecSession,
    segmenter: Segmenter,
    open: Option<OpenSegment>,
    /// Its key, while it records, when recordings are sealed; only in
    /// memory, and wiped when the track closes.
    key: Option<seal::SessionKey>,
}

/// A new track's key and what its record says of it, when recipients are
/// configured.
fn new_key(
    recipients: &[String],
) -> Result<(Option<store::Sealing>, Option<seal::SessionKey>), RecError> {
    if recipients.is_empty() {
        return Ok((None, None));
    }
    let key = seal::SessionKey::generate()?;
    let wrapped = key.wrap(recipients)?;
    Ok((Some(store::Sealing::new(recipients, &wrapped)), Some(key)))
}

/// Write an open segment's pending bytes as its next chunk: sealed first
/// when the track has a key, so no plaintext reaches the disk. The hash
/// and the length are of the bytes as stored (what the archive gets).
fn write_pending(
    store: &RecStore,
    id: &str,
    key: Option<&seal::SessionKey>,
    open: &mut OpenSegment,
) -> Result<(), RecError> {
    if open.pending.is_empty() {
        return Ok(());
    }
    let sealed;
    let stored: &[u8] = match key {
        Some(k) => {
            sealed = k.seal(open.seq, open.chunk, &open.pending);
            &sealed
        }
        None => &open.pending,
    };
    store.write_chunk(id, open.seq, open.chunk, stored)?;
    open.hasher.update(stored);
    open.bytes += stored.len() as u64;
    open.chunk += 1;
    open.pending.clear();
    Ok(())
}

struct Active {
    room: Track,
    far: Option<Track>,
    origin: Instant,
    /// When the chain head last went to the NOC.
    witnessed: Instant,
}

impl Active {
    fn track(&mut self, side: Side) -> Option<&mut Track> {
        match side {
            Side::Room => Some(&mut self.room),
            Side::Far => self.far.as_mut(),
        }
    }
}

struct Recorder {
    config: RecordingConfig,
    state_dir: PathBuf,
    site: String,
    store: RecStore,
    outbox: Outbox,
    events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    stats: watch::Sender<RecorderStats>,
    active: Option<Active>,
    /// Segment bytes in the store (kept incrementally; recomputed at start).
    held: u64,
    /// The journals' bytes, as last measured (each quota check).
    journal: u64,
    /// 0 none, 1 at 80%, 2 at 95%, 3 at the hard floor.
    alarm_level: u8,
    halted: bool,
    dropped: u64,
}

impl Recorder {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut last_flush = Instant::now();
        let mut last_check = Instant::now() - Duration::from_secs(10);
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Msg::Data(buf)) => {
                    if let Err(e) = self.data(Side::Room, &buf) {
                        self.fail(e);
                    }
                }
                Ok(Msg::Far(buf)) => {
                    if let Err(e) = self.data(Side::Far, &buf) {
                        self.fail(e);
                    }
                }
                Ok(Msg::Start(s)) => {
                    if let Err(e) = self.start(s) {
                        self.fail(e);
                    }
                }
                Ok(Msg::Stop { stopped_by }) => {
                    if let Err(e) = self.stop(stopped_by) {
                        self.fail(e);
                    }
                    last_flush = Instant::now();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.stop(Some("daemon:shutdown".into()));
                    return;
                }
            }
            if last_flush.elapsed() >= self.config.flush_interval {
                last_flush = Instant::now();
                if let Err(e) = self.flush() {
                    self.fail(e);
                }
            }
            if last_check.elapsed() >= Duration::from_secs(1) {
                last_check = Instant::now();
                self.check_quota();
                self.publish();
                self.witness(false);
            }
        }
    }

    fn fail(&mut self, e: RecError) {
        tracing::error!("recording store error: {e}");
        if !self.halted {
            self.halted = true;
            let _ = self
                .events
                .send(MediaEvent::Degraded(Degradation::RecordingHalted));
        }
    }

    fn start(&mut self, s: SessionStart) -> Result<(), RecError> {
        if self.active.is_some() {
            self.stop(Some("daemon:new session".into()))?;
        }
        let mut session = RecSession::begin(
            s.id.clone(),
            self.site.clone(),
            Utc::now(),
            time_synced(),
            s.started_by,
            s.metadata,
        );
        let (sealed, key) = new_key(&self.config.recipients)?;
        session.sealed = sealed;
        self.store.put_session(&session)?;
        self.store.flush()?;
        tracing::info!(session = %s.id, "recording started");
        self.active = Some(Active {
            room: Track {
                session,
                segmenter: Segmenter::new(self.config.segment.as_millis() as u64),
                open: None,
                key,
            },
            far: None,
            origin: Instant::now(),
            witnessed: Instant::now(),
        });
        Ok(())
    }

    /// The far track begins with the first of its bytes: a session with
    /// neither a call nor a return feed has none. It is written before the
    /// room's record names it, so a cut between the two leaves a track the
    /// room does not name (kept, closed by recovery), never a name without
    /// its track.
    fn open_far(&mut self) -> Result<(), RecError> {
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        if active.far.is_some() {
            return Ok(());
        }
        let mut session = active.room.session.far_track();
        let (sealed, key) = new_key(&self.config.recipients)?;
        session.sealed = sealed;
        self.store.put_session(&session)?;
        let far = session.id.clone();
        active.room.session.far = Some(far.clone());
        self.store
            .update_session(&active.room.session.id, |s| s.far = Some(far.clone()))?;
        self.store.flush()?;
        tracing::info!(session = %active.room.session.id, track = %far, "recording the far end's track");
        active.far = Some(Track {
            session,
            segmenter: Segmenter::audio(self.config.segment.as_millis() as u64),
            open: None,
            key,
        });
        Ok(())
    }

    fn data(&mut self, side: Side, buf: &gst::Buffer) -> Result<(), RecError> {
        if self.active.is_none() {
            return Ok(());
        }
        if side == Side::Far {
            self.open_far()?;
        }
        let Ok(map) = buf.map_readable() else {
            return Ok(());
        };
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        let now_ms = active.origin.elapsed().as_millis() as u64;
        let Some(track) = active.track(side) else {
            return Ok(());
        };
        let pieces = track.segmenter.push(&map, now_ms);
        for p in pieces {
            match p {
                Piece::Open(psi) => {
                    self.close_segment(side, false)?;
                    if self.halted {
                        continue;
                    }
                    let Some(track) = self.active.as_mut().and_then(|a| a.track(side)) else {
                        break;
                    };
                    let seq = track.session.segments;
                    track.open = Some(OpenSegment {
                        seq,
                        chunk: 0,
                        pending: Vec::with_capacity(self.config.chunk_bytes),
                        hasher: Sha256::new(),
                        bytes: 0,
                        started_at: Utc::now(),
                        started: Instant::now(),
                    });
                    self.append(side, &psi)?;
                }
                Piece::Data(d) => self.append(side, &d)?,
            }
        }
        Ok(())
    }

    fn append(&mut self, side: Side, d: &[u8]) -> Result<(), RecError> {
        let chunk_bytes = self.config.chunk_bytes;
        let Some(track) = self.active.as_mut().and_then(|a| a.track(side)) else {
            return Ok(());
        };
        let Some(open) = track.open.as_mut() else {
            return Ok(());
        };
        open.pending.extend_from_slice(d);
        if open.pending.len() >= chunk_bytes {
            write_pending(&self.store, &track.session.id, track.key.as_ref(), open)?;
        }
        Ok(())
    }

    /// Write what is pending and make it durable.
    fn flush(&mut self) -> Result<(), RecError> {
        if let Some(active) = self.active.as_mut() {
            for track in std::iter::once(&mut active.room).chain(active.far.as_mut()) {
                if let Some(open) = track.open.as_mut() {
                    write_pending(&self.store, &track.session.id, track.key.as_ref(), open)?;
                }
            }
        }
        let t0 = Instant::now();
        // The journal's fsync only: one append-only file, cheap even on slow
        // storage; sled writes the index behind it (see store::make_durable).
        let r = self.store.make_durable();
        let took = t0.elapsed();
        // What a power cut can lose is the flush interval plus this: slow
        // storage (an SD card, a worn SSD) shows here first.
        if took > Duration::from_millis(250) {
            tracing::warn!(
                ms = took.as_millis() as u64,
                "making the recording durable took {} ms; the storage is slow",
                took.as_millis()
            );
        }
        r
    }

    /// Finish a track's open segment: last chunk, hash, chain link, metadata.
    fn close_segment(&mut self, side: Side, partial: bool) -> Result<(), RecError> {
        let Some(track) = self.active.as_mut().and_then(|a| a.track(side)) else {
            return Ok(());
        };
        let Some(mut open) = track.open.take() else {
            return Ok(());
        };
        let id = track.session.id.clone();
        write_pending(&self.store, &id, track.key.as_ref(), &mut open)?;
        let sha: segment::Hash = open.hasher.finalize().into();
        let chain = store::link(&track.session.chain_head, &id, open.seq, &sha, open.bytes);
        let meta = SegmentMeta {
            seq: open.seq,
            bytes: open.bytes,
            chunks: open.chunk,
            started_at: open.started_at,
            duration_ms: open.started.elapsed().as_millis() as u64,
            sha256: segment::hex(&sha),
            chain: segment::hex(&chain),
            partial,
            confirmed_at: None,
            quarantined: None,
            pruned: false,
        };
        self.store.put_segment(&id, &meta)?;
        track.session.segments += 1;
        track.session.bytes += open.bytes;
        track.session.chain_head = meta.chain.clone();
        let (segments, bytes, head) = (
            track.session.segments,
            track.session.bytes,
            track.session.chain_head.clone(),
        );
        self.store.update_session(&id, |s| {
            s.segments = segments;
            s.bytes = bytes;
            s.chain_head = head.clone();
        })?;
        self.held += open.bytes;
        Ok(())
    }

    fn close_all(&mut self) -> Result<(), RecError> {
        self.close_segment(Side::Far, false)?;
        self.close_segment(Side::Room, false)
    }

    /// Close the far track first, then the room: the room's record is the
    /// last word on the session.
    fn stop(&mut self, stopped_by: Option<String>) -> Result<(), RecError> {
        self.close_all()?;
        self.witness(true);
        let Some(active) = self.active.take() else {
            return Ok(());
        };
        let gaps = active.room.session.gaps.clone();
        let ended = Utc::now();
        let tracks = active.far.iter().chain(std::iter::once(&active.room));
        let mut closed = None;
        for t in tracks {
            closed = Some(self.store.update_session(&t.session.id, |s| {
                s.closed = true;
                s.outcome = "ended".into();
                s.ended_at = Some(ended);
                s.stopped_by = stopped_by.clone();
                s.gaps = gaps.clone();
            })?);
        }
        self.store.flush()?;
        if let Some(s) = closed {
            tracing::info!(session = %s.id, segments = s.segments, bytes = s.bytes, far = ?s.far, "recording closed");
        }
        Ok(())
    }

    /// Send the chain head to the NOC through the outbox (kept until the
    /// broker has it) once `witness_interval` has passed, and when the
    /// recording closes. Nothing before the first segment closes: there is
    /// no head to witness yet.
    fn witness(&mut self, closing: bool) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if a.room.session.segments == 0
            || (!closing && a.witnessed.elapsed() < self.config.witness_interval)
        {
            return;
        }
        a.witnessed = Instant::now();
        let room = &a.room.session;
        self.outbox.emit(EventKind::ChainWitness {
            session: room.id.clone(),
            segments: room.segments,
            bytes: room.bytes,
            chain_head: room.chain_head.clone(),
            far_segments: a.far.as_ref().map(|f| f.session.segments),
            far_chain_head: a.far.as_ref().map(|f| f.session.chain_head.clone()),
            closing,
        });
    }

    fn quota(&self) -> (u64, u64, u64) {
        let (total, free) = fs_space(&self.state_dir).unwrap_or((u64::MAX, u64::MAX));
        let mut limit = u64::MAX;
        if self.config.quota_bytes > 0 {
            limit = limit.min(self.config.quota_bytes);
        }
        if self.config.quota_percent > 0 && total != u64::MAX {
            limit = limit.min(total / 100 * u64::from(self.config.quota_percent));
        }
        (limit, total, free)
    }

    fn check_quota(&mut self) {
        let (limit, total, free) = self.quota();
        self.journal = self.store.journal_bytes();
        if limit == u64::MAX {
            return;
        }
        // Make room early: prune confirmed segments above 90% down to 80%.
        if self.used() > limit / 10 * 9 {
            let need = self.used() - limit / 10 * 8;
            match self.store.prune_confirmed(need) {
                Ok(freed) if freed > 0 => {
                    self.held = self.held.saturating_sub(freed);
                    self.journal = self.store.journal_bytes();
                    tracing::info!("pruned {freed} bytes of archived segments for space");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("pruning failed: {e}"),
            }
        }
        let pct = self.used() as f64 * 100.0 / limit.max(1) as f64;
        // The filesystem's own floor: keep 1% (at least 64 MB) free.
        let floor = (total / 100).max(64 << 20);
        let level = if self.used() >= limit || free < floor {
            3
        } else if pct >= 95.0 {
            2
        } else if pct >= 80.0 {
            1
        } else {
            0
        };
        // Every level passed is announced, in order, even when the buffer
        // jumped over one between two checks.
        for l in self.alarm_level + 1..=level {
            let name = ["", "warning", "high", "critical"][l as usize];
            tracing::warn!("recording buffer at {pct:.1}% of its quota: {name} alarm");
            self.outbox.emit(EventKind::DiskAlarm {
                level: name.into(),
                used_percent: pct,
            });
        }
        self.alarm_level = level;
        if level == 3 && !self.halted {
            // Keep what is recorded; stop adding. The session goes on.
            let _ = self.close_all();
            let _ = self.flush();
            self.halted = true;
            if let Some(a) = self.active.as_mut() {
                a.room.session.gaps.push(format!(
                    "recording halted at {}: disk quota reached",
                    Utc::now()
                ));
            }
            tracing::error!(
                "recording halted: the quota is full of segments the archive has not confirmed"
            );
            let _ = self
                .events
                .send(MediaEvent::Degraded(Degradation::RecordingHalted));
        } else if level < 2 && self.halted {
            self.halted = false;
            if let Some(a) = self.active.as_mut() {
                let target = self.config.segment.as_millis() as u64;
                a.room.segmenter = Segmenter::new(target);
                if let Some(f) = a.far.as_mut() {
                    f.segmenter = Segmenter::audio(target);
                }
                a.room
                    .session
                    .gaps
                    .push(format!("recording resumed at {}", Utc::now()));
            }
            tracing::info!("recording resumed: space is available again");
            let _ = self
                .events
                .send(MediaEvent::Restored(Degradation::RecordingHalted));
        }
    }

    /// What the quota counts: the recordings' bytes on the box. They live
    /// in the journals (blocks allocated, so a pruned segment's punched
    /// hole no longer counts); `held`, the segments not pruned, counts too
    /// for chunks an earlier version kept in sled, which no journal holds.
    fn used(&self) -> u64 {
        self.held.max(self.journal)
    }

    fn publish(&mut self) {
        let (limit, _, _) = self.quota();
        let a = self.active.as_ref();
        self.stats.send_replace(RecorderStats {
            enabled: true,
            recording: a.is_some() && !self.halted,
            session: a.map(|a| a.room.session.id.clone()),
            segments: a.map_or(0, |a| a.room.session.segments),
            bytes: a.map_or(0, |a| a.room.session.bytes),
            halted: self.halted,
            quota_bytes: if limit == u64::MAX { 0 } else { limit },
            held_bytes: self.used(),
            used_percent: if limit == u64::MAX {
                0.0
            } else {
                self.used() as f64 * 100.0 / limit.max(1) as f64
            },
            dropped_buffers: self.dropped,
        });
    }
}

/// Total and free bytes of the filesystem holding `dir`.
fn fs_space(dir: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a
    // valid NUL-terminated string.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return None;
        }
        let f = s.f_frsize as u64;
        Some((s.f_blocks as u64 * f, s.f_bavail as u64 * f))
    }
}
