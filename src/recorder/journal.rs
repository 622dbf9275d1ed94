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

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
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

/// What a journal file holds, last record of each kind winning.
#[derive(Debug, Default)]
pub struct Salvage {
    pub session: Option<RecSession>,
    pub segments: BTreeMap<u32, SegmentMeta>,
    /// (segment, chunk) → bytes.
    pub chunks: BTreeMap<(u32, u32), Vec<u8>>,
    /// Bytes after the last whole record (a torn write at the power cut).
    pub torn_bytes: u64,
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

    pub fn remove(&self, id: &str) -> Result<(), JournalError> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_at(&path)(e)),
        }
    }

    /// Read one session's journal up to its last whole record.
    pub fn read(&self, id: &str) -> Result<Salvage, JournalError> {
        let path = self.path(id);
        let buf = std::fs::read(&path).map_err(io_at(&path))?;
        Ok(parse(&buf))
    }
}

/// Decode records until the first that is short, oversized or fails its
/// CRC: everything after it is the torn tail.
fn parse(buf: &[u8]) -> Salvage {
    let mut out = Salvage::default();
    let mut at = 0usize;
    while let Some(head) = buf.get(at..at + 8) {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_RECORD {
            break;
        }
        let Some(p) = buf.get(at + 8..at + 8 + len as usize) else {
            break;
        };
        if crc32fast::hash(p) != crc {
            break;
        }
        // A record that passes its CRC but does not decode was written by a
        // different version: skip it, keep reading.
        match p[0] {
            SESSION => {
                if let Ok(s) = serde_json::from_slice(&p[1..]) {
                    out.session = Some(s);
                }
            }
            SEGMENT => {
                if let Ok(m) = serde_json::from_slice::<SegmentMeta>(&p[1..]) {
                    out.segments.insert(m.seq, m);
                }
            }
            CHUNK if p.len() >= 9 => {
                let seq = u32::from_be_bytes([p[1], p[2], p[3], p[4]]);
                let chunk = u32::from_be_bytes([p[5], p[6], p[7], p[8]]);
                out.chunks.insert((seq, chunk), p[9..].to_vec());
            }
            _ => {}
        }
        at += 8 + len as usize;
    }
    out.torn_bytes = (buf.len() - at) as u64;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn session(id: &str, closed: bool) -> RecSession {
        RecSession {
            id: id.into(),
            site: "xa".into(),
            started_at: Utc::now(),
            ended_at: None,
            time_synced: true,
            started_by: "button".into(),
            stopped_by: None,
            metadata: BTreeMap::new(),
            outcome: String::new(),
            segments: 0,
            bytes: 0,
            chain_head: String::new(),
            closed,
            gaps: Vec::new(),
            manifest_confirmed_at: None,
        }
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

    #[test]
    fn records_come_back_last_one_winning() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path().join("journal"));
        j.session(&session("s1", false)).unwrap();
        j.chunk("s1", 0, 0, b"abc").unwrap();
        j.chunk("s1", 0, 1, b"def").unwrap();
        j.segment("s1", &meta(0)).unwrap();
        j.chunk("s1", 1, 0, b"gh").unwrap();
        j.session(&session("s1", true)).unwrap();
        j.sync().unwrap();
        assert_eq!(j.ids().unwrap(), ["s1"]);
        let s = j.read("s1").unwrap();
        assert!(s.session.unwrap().closed, "the later session record wins");
        assert_eq!(s.segments.len(), 1);
        assert_eq!(s.chunks.len(), 3);
        assert_eq!(s.chunks[&(1, 0)], b"gh");
        assert_eq!(s.torn_bytes, 0);
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
                let s = parse(&b);
                assert_eq!(s.chunks.len(), 1, "cut {cut} fill {fill:?}");
                assert!(s.session.is_some());
                assert_eq!(s.torn_bytes, (b.len() - whole.len()) as u64);
            }
        }
        // A flipped bit in the middle stops the read there, never past it.
        let mut b = full.clone();
        b[whole.len() + 500] ^= 1;
        assert_eq!(parse(&b).chunks.len(), 1);
        assert_eq!(parse(&full).chunks.len(), 2);
    }

    #[test]
    fn no_directory_means_no_journals() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path().join("absent"));
        assert!(j.ids().unwrap().is_empty());
        j.sync().unwrap();
    }
}
