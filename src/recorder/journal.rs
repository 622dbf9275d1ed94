//! The recording journal: a second, plain copy of every recording the
//! archive has not confirmed yet, for the day sled cannot reopen its files.
//!
//! Why it exists: sled 0.34 can panic while recovering its log after a power
//! cut ("tried to serialize Uninitialized", sled issue #1387, seen in the
//! virtual bridge room about once in four cuts). The daemon then sets the
//! whole database aside and starts a fresh one ([`crate::store`]); without a
//! second copy, every recording not yet archived would be stuck in files
//! nothing can read. The recording is a legal record, so it may not hang on
//! one library's recovery code.
//!
//! What it is: one append-only file per session, `<state>/journal/<id>.wal`,
//! receiving the same writes the recorder makes to sled (the session record,
//! each chunk of segment bytes, each segment's metadata), made durable with
//! `fdatasync` at the same flush as sled. Each record is framed as
//! `length (u32 LE) ‖ CRC-32 (u32 LE) ‖ payload`, so a torn tail after a
//! power cut is recognised and cut off at the last whole record, which is at
//! most one flush interval old. The file is deleted when the archive confirms
//! the session's manifest (or an operator deletes the recording).
//!
//! What it is not: the store. sled stays the buffer the recorder, uploader
//! and CLI work from; the journal is only read when sled is missing a
//! session it holds ([`crate::recorder::store::RecStore::reconcile_journals`]).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::store::{RecSession, SegmentMeta};

const SESSION: u8 = 1;
const SEGMENT: u8 = 2;
const CHUNK: u8 = 3;
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
/// share it without a lock.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

/// One record of a journal, in the order written.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Session(RecSession),
    Segment(SegmentMeta),
    Chunk {
        seq: u32,
        chunk: u32,
        bytes: Vec<u8>,
    },
}

impl Journal {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
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
        self.append(&s.id, &p)
    }

    pub fn segment(&self, id: &str, m: &SegmentMeta) -> Result<(), JournalError> {
        let mut p = vec![SEGMENT];
        p.extend(serde_json::to_vec(m).expect("segments serialise"));
        self.append(id, &p)
    }

    pub fn chunk(&self, id: &str, seq: u32, chunk: u32, bytes: &[u8]) -> Result<(), JournalError> {
        let mut p = Vec::with_capacity(9 + bytes.len());
        p.push(CHUNK);
        p.extend(seq.to_be_bytes());
        p.extend(chunk.to_be_bytes());
        p.extend_from_slice(bytes);
        self.append(id, &p)
    }

    fn append(&self, id: &str, payload: &[u8]) -> Result<(), JournalError> {
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
        if created {
            // The new name must survive a power cut as well as its bytes.
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_at(&self.dir))?;
        }
        Ok(())
    }

    /// Make every journal's appended records durable (called at each flush).
    pub fn sync(&self) -> Result<(), JournalError> {
        for id in self.ids()? {
            let path = self.path(&id);
            match File::open(&path) {
                // fsync works on the file, whichever descriptor wrote it.
                Ok(f) => f.sync_data().map_err(io_at(&path))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
        }
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

    /// Bytes on disk in all journals (they count against the recording
    /// quota like the store's copy).
    pub fn bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    pub fn remove(&self, id: &str) -> Result<(), JournalError> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
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

/// Decode records until the first that is short, oversized or fails its
/// CRC: everything from there on is the torn tail.
fn replay_from<E>(
    mut r: impl Read,
    mut visit: impl FnMut(Record) -> Result<(), E>,
) -> Result<u64, ReplayError<E>> {
    let mut payload = Vec::new();
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
        if n < payload.len() || crc32fast::hash(&payload) != crc {
            return torn(&mut r, 8 + n);
        }
        // A record that passes its CRC but does not decode was written by a
        // different version: skipped, the reading goes on.
        let p = &payload;
        let rec = match p[0] {
            SESSION => serde_json::from_slice(&p[1..]).ok().map(Record::Session),
            SEGMENT => serde_json::from_slice(&p[1..]).ok().map(Record::Segment),
            CHUNK if p.len() >= 9 => Some(Record::Chunk {
                seq: u32::from_be_bytes([p[1], p[2], p[3], p[4]]),
                chunk: u32::from_be_bytes([p[5], p[6], p[7], p[8]]),
                bytes: p[9..].to_vec(),
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
        j.chunk("s1", 1, 0, b"gh").unwrap();
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
        assert_eq!(got[0], Record::Session(first));
        assert_eq!(
            got[4],
            Record::Chunk {
                seq: 1,
                chunk: 0,
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
