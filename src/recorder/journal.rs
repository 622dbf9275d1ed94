//! The recording journal: where a recording's bytes live on the box, once,
//! with everything needed to rebuild its index the day sled cannot reopen
//! its files.
//!
//! Why it exists: sled 0.34 can panic while recovering its log after a power
//! cut ("tried to serialize Uninitialized", sled issue #1387, seen in the
//! virtual bridge room about once in four cuts). The daemon then sets the
//! whole database aside and starts a fresh one ([`crate::store`]); the
//! recordings may not be stuck in files nothing can read. The recording is a
//! legal record, so it may not hang on one library's recovery code.
//!
//! What it is: one append-only file per session, `<state>/journal/<id>.wal`,
//! receiving every write the recorder makes (the session record, each chunk
//! of segment bytes, each segment's metadata), made durable with
//! `fdatasync` at each flush. Each record is framed as
//! `length (u32 LE) ‖ CRC-32 (u32 LE) ‖ payload`, so a torn tail after a
//! power cut is recognised and cut off at the last whole record, which is at
//! most one flush interval old. The file goes when the recording leaves the
//! box (retention, or an operator's delete).
//!
//! Why the bytes live here and not in sled too: sled kept 1.86 bytes on
//! disk per byte of recording in a record/upload/prune ring, and this file
//! a full copy more, so a box held 2.9 bytes per byte not yet archived and
//! wrote at 49 MB/s where a plain append writes 272 MB/s (`bench/store.sh`).
//! sled now holds the index: where each chunk's bytes are in this file
//! ([`crate::recorder::store`]).
//!
//! Pruning a confirmed segment for space zeroes its chunks' bytes in place
//! and gives their blocks back to the file system (a punched hole). A chunk
//! record whose bytes are all zeros fails its CRC and is read as pruned, not
//! as a torn tail, so the records after it still count.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::store::{RecSession, SegmentMeta};

const SESSION: u8 = 1;
const SEGMENT: u8 = 2;
const CHUNK: u8 = 3;
/// A chunk record's header before its bytes: type, seq, chunk.
const CHUNK_HEAD: u64 = 9;
/// The frame before a payload: length and CRC.
const FRAME_HEAD: u64 = 8;
/// Larger than any record the recorder writes (a chunk is 64 KiB by default,
/// at most a few MiB by config): a length above it is a torn header.
const MAX_RECORD: u32 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("recording journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The journal directory. Cheap to clone: it holds no open files (each write
/// opens its file in append mode), so the recorder thread and the uploader
/// share it.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    /// Journals appended to since the last sync: a box keeps its archived
    /// recordings for days, and a flush every second need not open them.
    /// Shared by the clones; held for an insert or a swap, never across I/O.
    dirty: Arc<Mutex<BTreeSet<String>>>,
}

/// One record of a journal, in the order written.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Boxed: a session's record is several times a segment's.
    Session(Box<RecSession>),
    Segment(SegmentMeta),
    Chunk {
        seq: u32,
        chunk: u32,
        /// Where the chunk's bytes start in the journal file.
        at: u64,
        bytes: Vec<u8>,
    },
}

impl Journal {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            dirty: Arc::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.wal"))
    }

    pub fn session(&self, s: &RecSession) -> Result<(), JournalError> {
        let mut p = vec![SESSION];
        p.extend(serde_json::to_vec(s).expect("sessions serialise"));
        self.append(&s.id, &p).map(drop)
    }

    pub fn segment(&self, id: &str, m: &SegmentMeta) -> Result<(), JournalError> {
        let mut p = vec![SEGMENT];
        p.extend(serde_json::to_vec(m).expect("segments serialise"));
        self.append(id, &p).map(drop)
    }

    /// Append a chunk; returns where its bytes start in the file.
    pub fn chunk(&self, id: &str, seq: u32, chunk: u32, bytes: &[u8]) -> Result<u64, JournalError> {
        let mut p = Vec::with_capacity(CHUNK_HEAD as usize + bytes.len());
        p.push(CHUNK);
        p.extend(seq.to_be_bytes());
        p.extend(chunk.to_be_bytes());
        p.extend_from_slice(bytes);
        Ok(self.append(id, &p)? + FRAME_HEAD + CHUNK_HEAD)
    }

    /// Append one framed record; returns where the frame starts. The file
    /// is opened in append mode for each record, so the position after the
    /// write is the end of this record even when the uploader appended a
    /// session record from its own thread meanwhile.
    fn append(&self, id: &str, payload: &[u8]) -> Result<u64, JournalError> {
        let path = self.path(id);
        let mut frame = Vec::with_capacity(8 + payload.len());
        // A payload is always far below 4 GiB (chunks are bounded by config).
        frame.extend((payload.len() as u32).to_le_bytes());
        frame.extend(crc32fast::hash(payload).to_le_bytes());
        frame.extend_from_slice(payload);
        let created = !path.exists();
        if created {
            std::fs::create_dir_all(&self.dir).map_err(io_at(&self.dir))?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_at(&path))?;
        f.write_all(&frame).map_err(io_at(&path))?;
        let end = f.stream_position().map_err(io_at(&path))?;
        self.dirty
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned());
        if created {
            // The new name must survive a power cut as well as its bytes.
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_at(&self.dir))?;
        }
        Ok(end - frame.len() as u64)
    }

    /// Make the records appended since the last sync durable (called at
    /// each flush). A journal that fails stays marked for the next sync.
    pub fn sync(&self) -> Result<(), JournalError> {
        let ids = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(PoisonError::into_inner));
        for (i, id) in ids.iter().enumerate() {
            let path = self.path(id);
            let synced = match File::open(&path) {
                // fsync works on the file, whichever descriptor wrote it.
                Ok(f) => f.sync_data(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = synced {
                self.dirty
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(ids.iter().skip(i).cloned());
                return Err(io_at(&path)(e));
            }
        }
        Ok(())
    }

    /// `len` bytes of session `id`'s journal from `at`.
    pub fn read_at(&self, id: &str, at: u64, len: usize) -> Result<Vec<u8>, JournalError> {
        let path = self.path(id);
        let f = File::open(&path).map_err(io_at(&path))?;
        let mut buf = vec![0; len];
        f.read_exact_at(&mut buf, at).map_err(io_at(&path))?;
        Ok(buf)
    }

    /// The byte ranges `(at, len)` of session `id`'s journal, appended to
    /// `out` in order: one open file for a segment's chunks.
    pub fn read_into(
        &self,
        id: &str,
        places: &[(u64, u64)],
        out: &mut Vec<u8>,
    ) -> Result<(), JournalError> {
        let path = self.path(id);
        let f = File::open(&path).map_err(io_at(&path))?;
        out.reserve(places.iter().map(|p| p.1 as usize).sum());
        for &(at, len) in places {
            let start = out.len();
            out.resize(start + len as usize, 0);
            f.read_exact_at(&mut out[start..], at)
                .map_err(io_at(&path))?;
        }
        Ok(())
    }

    /// The length of session `id`'s journal (0 when there is none).
    pub fn len(&self, id: &str) -> u64 {
        std::fs::metadata(self.path(id)).map_or(0, |m| m.len())
    }

    /// Overwrite `len` bytes at `at` (for tests that simulate bit rot).
    pub fn damage(&self, id: &str, at: u64) -> Result<(), JournalError> {
        let path = self.path(id);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_at(&path))?;
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).map_err(io_at(&path))?;
        f.write_all_at(&[b[0] ^ 0xff], at).map_err(io_at(&path))?;
        f.sync_data().map_err(io_at(&path))
    }

    /// Zero the byte ranges `(at, len)` of session `id`'s journal and give
    /// their whole blocks back to the file system (pruning confirmed
    /// segments for space). A file system that cannot punch holes gets the
    /// zeros written, which frees nothing but reads the same.
    pub fn zero(&self, id: &str, ranges: &[(u64, u64)]) -> Result<(), JournalError> {
        let path = self.path(id);
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_at(&path))?;
        use std::os::fd::AsRawFd;
        for &(at, len) in ranges {
            // SAFETY: fallocate on a descriptor this function owns, with a
            // range inside the file; KEEP_SIZE leaves the length alone.
            let rc = unsafe {
                libc::fallocate(
                    f.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    at as libc::off_t,
                    len as libc::off_t,
                )
            };
            if rc != 0 {
                let zeros = vec![0u8; len as usize];
                f.write_all_at(&zeros, at).map_err(io_at(&path))?;
            }
        }
        f.sync_data().map_err(io_at(&path))
    }

    /// Rewrite session `id`'s journal with its session and segment records
    /// alone, once every chunk of it has been pruned: a punched chunk keeps
    /// the partial blocks at its two ends and its header, about 12% of a
    /// 64 KiB chunk, and `bench/store.sh`'s ring grew by that every round
    /// (1.10 to 1.34 bytes on disk per byte held over 25 sessions). The new
    /// file replaces the old by rename, so a power cut leaves one or the
    /// other, whole.
    pub fn compact(&self, id: &str) -> Result<(), JournalError> {
        let path = self.path(id);
        let tmp = self.dir.join(format!("{id}.wal.compact"));
        let mut out = io::BufWriter::new(File::create(&tmp).map_err(io_at(&tmp))?);
        let mut frame = |payload: &[u8]| -> io::Result<()> {
            out.write_all(&(payload.len() as u32).to_le_bytes())?;
            out.write_all(&crc32fast::hash(payload).to_le_bytes())?;
            out.write_all(payload)
        };
        self.replay(id, |r| -> Result<(), JournalError> {
            let payload = match r {
                Record::Chunk { .. } => return Ok(()),
                Record::Session(s) => {
                    let mut p = vec![SESSION];
                    p.extend(serde_json::to_vec(&s).expect("sessions serialise"));
                    p
                }
                Record::Segment(m) => {
                    let mut p = vec![SEGMENT];
                    p.extend(serde_json::to_vec(&m).expect("segments serialise"));
                    p
                }
            };
            frame(&payload).map_err(io_at(&tmp))
        })?;
        let f = out.into_inner().map_err(|e| io_at(&tmp)(e.into_error()))?;
        f.sync_all().map_err(io_at(&tmp))?;
        // Deleted meanwhile (retention runs on another thread): not back.
        if !path.exists() {
            let _ = std::fs::remove_file(&tmp);
            return Ok(());
        }
        std::fs::rename(&tmp, &path).map_err(io_at(&path))?;
        crate::util::sync_dir(&self.dir);
        Ok(())
    }

    /// Sessions that have a journal.
    pub fn ids(&self) -> Result<Vec<String>, JournalError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&self.dir)(e)),
        };
        let mut ids: Vec<String> = rd
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".wal"))
                    .map(str::to_owned)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Bytes on disk in all journals: the blocks allocated, so a pruned
    /// (punched) range no longer counts against the recording quota.
    pub fn bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| (m.blocks() * 512).min(m.len().next_multiple_of(4096)))
            .sum()
    }

    pub fn remove(&self, id: &str) -> Result<(), JournalError> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                crate::util::sync_dir(&self.dir);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_at(&path)(e)),
        }
    }

    /// Hand each whole record of one session's journal to `visit`, in
    /// order, streaming (a journal can be gigabytes: it is never held in
    /// memory). Returns the bytes of the torn tail after the last whole
    /// record, which are ignored.
    pub fn replay<E: From<JournalError>>(
        &self,
        id: &str,
        visit: impl FnMut(Record) -> Result<(), E>,
    ) -> Result<u64, E> {
        let path = self.path(id);
        let f = File::open(&path).map_err(io_at(&path))?;
        replay_from(BufReader::with_capacity(1 << 20, f), visit)
            .map_err(|e| e.map_io(|source| JournalError::Io { path, source }.into()))
    }
}

/// The reader's failures: the file's own, or the visitor's.
enum ReplayError<E> {
    Io(io::Error),
    Visit(E),
}

impl<E> ReplayError<E> {
    fn map_io(self, f: impl FnOnce(io::Error) -> E) -> E {
        match self {
            ReplayError::Io(e) => f(e),
            ReplayError::Visit(e) => e,
        }
    }
}

/// Read exactly `buf.len()` bytes, or as many as there are (a torn tail).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A chunk record whose bytes were zeroed when its segment was pruned.
fn pruned(payload: &[u8]) -> bool {
    payload.len() > CHUNK_HEAD as usize
        && payload[0] == CHUNK
        && payload[CHUNK_HEAD as usize..].iter().all(|b| *b == 0)
}

/// Decode records until the first that is short, oversized or fails its
/// CRC (a pruned chunk aside): everything from there on is the torn tail.
fn replay_from<E>(
    mut r: impl Read,
    mut visit: impl FnMut(Record) -> Result<(), E>,
) -> Result<u64, ReplayError<E>> {
    let mut payload = Vec::new();
    let mut pos = 0u64;
    loop {
        let mut head = [0u8; 8];
        let got = read_full(&mut r, &mut head).map_err(ReplayError::Io)?;
        if got == 0 {
            return Ok(0);
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let torn = |r: &mut dyn Read, seen: usize| -> Result<u64, ReplayError<E>> {
            let rest = io::copy(r, &mut io::sink()).map_err(ReplayError::Io)?;
            Ok(seen as u64 + rest)
        };
        if got < 8 || len == 0 || len > MAX_RECORD {
            return torn(&mut r, got);
        }
        payload.resize(len as usize, 0);
        let n = read_full(&mut r, &mut payload).map_err(ReplayError::Io)?;
        let at = pos + FRAME_HEAD;
        pos = at + u64::from(len);
        if n < payload.len() {
            return torn(&mut r, 8 + n);
        }
        if crc32fast::hash(&payload) != crc {
            if pruned(&payload) {
                continue;
            }
            return torn(&mut r, 8 + n);
        }
        // A record that passes its CRC but does not decode was written by a
        // different version: skipped, the reading goes on.
        let p = &payload;
        let rec = match p[0] {
            SESSION => serde_json::from_slice(&p[1..])
                .ok()
                .map(|s| Record::Session(Box::new(s))),
            SEGMENT => serde_json::from_slice(&p[1..]).ok().map(Record::Segment),
            CHUNK if p.len() >= CHUNK_HEAD as usize => Some(Record::Chunk {
                seq: u32::from_be_bytes([p[1], p[2], p[3], p[4]]),
                chunk: u32::from_be_bytes([p[5], p[6], p[7], p[8]]),
                at: at + CHUNK_HEAD,
                bytes: p[CHUNK_HEAD as usize..].to_vec(),
            }),
            _ => None,
        };
        if let Some(rec) = rec {
            visit(rec).map_err(ReplayError::Visit)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn session(id: &str, closed: bool) -> RecSession {
        crate::recorder::store::test_session(id, closed)
    }

    fn meta(seq: u32) -> SegmentMeta {
        SegmentMeta {
            seq,
            bytes: 6,
            chunks: 2,
            started_at: Utc::now(),
            duration_ms: 2000,
            sha256: "ab".into(),
            chain: "cd".into(),
            partial: false,
            confirmed_at: None,
            quarantined: None,
            pruned: false,
        }
    }

    /// Every record, and the torn tail's length.
    fn all(b: &[u8]) -> (Vec<Record>, u64) {
        let mut v = Vec::new();
        let torn = replay_from(b, |r| {
            v.push(r);
            Ok::<(), ()>(())
        })
        .unwrap_or_else(|_| panic!("reading from memory cannot fail"));
        (v, torn)
    }

    #[test]
    fn records_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path().join("journal"));
        let first = session("s1", false);
        j.session(&first).unwrap();
        j.chunk("s1", 0, 0, b"abc").unwrap();
        j.chunk("s1", 0, 1, b"def").unwrap();
        j.segment("s1", &meta(0)).unwrap();
        let at = j.chunk("s1", 1, 0, b"gh").unwrap();
        assert_eq!(j.read_at("s1", at, 2).unwrap(), b"gh");
        j.session(&session("s1", true)).unwrap();
        j.sync().unwrap();
        assert_eq!(j.ids().unwrap(), ["s1"]);
        let mut got = Vec::new();
        let torn = j
            .replay("s1", |r| {
                got.push(r);
                Ok::<(), JournalError>(())
            })
            .unwrap();
        assert_eq!(torn, 0);
        assert_eq!(got.len(), 6);
        assert_eq!(got[0], Record::Session(Box::new(first)));
        assert_eq!(
            got[4],
            Record::Chunk {
                seq: 1,
                chunk: 0,
                at,
                bytes: b"gh".to_vec()
            }
        );
        assert!(matches!(&got[5], Record::Session(s) if s.closed));
        j.remove("s1").unwrap();
        assert!(j.ids().unwrap().is_empty());
        j.remove("s1").unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        j.session(&session("s", false)).unwrap();
        j.chunk("s", 0, 0, &[7u8; 1000]).unwrap();
        let whole = std::fs::read(j.path("s")).unwrap();
        j.chunk("s", 0, 1, &[8u8; 1000]).unwrap();
        let full = std::fs::read(j.path("s")).unwrap();
        // Every cut inside the last record, and garbage or zeros where it was
        // (what a power cut leaves), gives back exactly the first two records.
        for cut in [
            whole.len() + 1,
            whole.len() + 7,
            whole.len() + 8,
            full.len() - 1,
        ] {
            for fill in [None, Some(0u8), Some(0xa5)] {
                let mut b = full[..cut].to_vec();
                if let Some(x) = fill {
                    b.resize(full.len(), x);
                }
                let (recs, torn) = all(&b);
                assert_eq!(recs.len(), 2, "cut {cut} fill {fill:?}");
                assert_eq!(torn, (b.len() - whole.len()) as u64);
            }
        }
        // A flipped bit in the middle stops the read there, never past it.
        let mut b = full.clone();
        b[whole.len() + 500] ^= 1;
        assert_eq!(all(&b).0.len(), 2);
        assert_eq!(all(&full), (all(&full).0, 0));
        assert_eq!(all(&full).0.len(), 3);
    }

    #[test]
    fn no_directory_means_no_journals() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path().join("absent"));
        assert!(j.ids().unwrap().is_empty());
        j.sync().unwrap();
    }
}
