//! Pure pieces of the recording: cutting the TS byte stream into segments at
//! keyframes, and the per-session hash chain.
//!
//! A segment starts with the latest PAT and PMT followed by a keyframe, so
//! each one plays on its own; concatenated in order they are the session's
//! whole recording. The chain commits every segment to the one before it:
//! `chain[i] = SHA-256(chain[i-1] ‖ seq ‖ sha256[i] ‖ bytes)`, starting from
//! `SHA-256("diemcau-recording-v1" ‖ session id)`. Changing, removing or
//! reordering any segment changes every later link and the head.

use sha2::{Digest, Sha256};

use crate::core::ts::Scanner;

/// What the segmenter asks the recorder to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Close the current segment (if any) and open the next; its first
    /// bytes (PAT, PMT) are given.
    Open(Vec<u8>),
    /// Append to the open segment.
    Data(Vec<u8>),
}

/// Cuts the stream at the first keyframe after `target_ms` of segment time.
#[derive(Debug)]
pub struct Segmenter {
    scanner: Scanner,
    target_ms: u64,
    opened_at_ms: Option<u64>,
    /// Bytes seen before the first keyframe (not playable, not recorded).
    pub skipped: u64,
}

impl Segmenter {
    pub fn new(target_ms: u64) -> Self {
        Self {
            scanner: Scanner::default(),
            target_ms,
            opened_at_ms: None,
            skipped: 0,
        }
    }

    /// For a sound-only stream (the far end's track): cuts at audio frames.
    pub fn audio(target_ms: u64) -> Self {
        Self {
            scanner: Scanner::audio_only(),
            ..Self::new(target_ms)
        }
    }

    /// Feed one buffer of whole TS packets that arrived at `now_ms`.
    pub fn push(&mut self, data: &[u8], now_ms: u64) -> Vec<Piece> {
        let key = self.scanner.scan(data);
        let mut out = Vec::with_capacity(3);
        match (self.opened_at_ms, key) {
            (None, None) => self.skipped += data.len() as u64,
            (None, Some(at)) => {
                self.skipped += at as u64;
                self.opened_at_ms = Some(now_ms);
                out.push(Piece::Open(self.scanner.psi()));
                out.push(Piece::Data(data[at..].to_vec()));
            }
            (Some(t0), Some(at)) if now_ms.saturating_sub(t0) >= self.target_ms => {
                if at > 0 {
                    out.push(Piece::Data(data[..at].to_vec()));
                }
                self.opened_at_ms = Some(now_ms);
                out.push(Piece::Open(self.scanner.psi()));
                out.push(Piece::Data(data[at..].to_vec()));
            }
            (Some(_), _) => out.push(Piece::Data(data.to_vec())),
        }
        out
    }
}

pub type Hash = [u8; 32];

pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// The chain's starting value for a session.
pub fn chain_start(session: &str) -> Hash {
    let mut h = Sha256::new();
    h.update(b"diemcau-recording-v1");
    h.update(session.as_bytes());
    h.finalize().into()
}

/// The next link of the chain.
pub fn chain_next(prev: &Hash, seq: u64, segment_sha256: &Hash, bytes: u64) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(segment_sha256);
    h.update(bytes.to_be_bytes());
    h.finalize().into()
}

pub fn hex(h: &Hash) -> String {
    ::hex::encode(h)
}

pub fn unhex(s: &str) -> Option<Hash> {
    ::hex::decode(s).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ts::PACKET;

    fn packet(pid: u16, pusi: bool, rai: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0xffu8; PACKET];
        p[0] = 0x47;
        p[1] = ((pid >> 8) as u8 & 0x1f) | if pusi { 0x40 } else { 0 };
        p[2] = pid as u8;
        let at = if rai {
            p[3] = 0x30;
            p[4] = 1;
            p[5] = 0x40;
            6
        } else {
            p[3] = 0x10;
            4
        };
        p[at..at + payload.len()].copy_from_slice(payload);
        p
    }

    fn key() -> Vec<u8> {
        packet(0x41, true, true, &[0, 0, 1, 0xe0])
    }

    fn delta() -> Vec<u8> {
        packet(0x41, true, false, &[0, 0, 1, 0xe0])
    }

    #[test]
    fn opens_at_first_keyframe_and_cuts_after_target() {
        let mut s = Segmenter::new(2000);
        assert!(s.push(&delta(), 0).is_empty());
        assert_eq!(s.skipped, PACKET as u64);
        let mut buf = delta();
        buf.extend(key());
        let p = s.push(&buf, 10);
        assert!(matches!(p[0], Piece::Open(_)));
        assert_eq!(p[1], Piece::Data(key()));
        // A keyframe before the target does not cut.
        assert_eq!(s.push(&key(), 1000), vec![Piece::Data(key())]);
        // After the target, the bytes before the keyframe close the segment.
        let mut buf = delta();
        buf.extend(key());
        let p = s.push(&buf, 2010);
        assert_eq!(p[0], Piece::Data(delta()));
        assert!(matches!(p[1], Piece::Open(_)));
        assert_eq!(p[2], Piece::Data(key()));
    }

    #[test]
    fn no_byte_after_the_first_keyframe_is_lost() {
        let mut s = Segmenter::new(100);
        let mut input = Vec::new();
        let mut recorded = Vec::new();
        for i in 0..50u64 {
            let buf = if i % 7 == 3 {
                [delta(), key()].concat()
            } else {
                [delta(), delta()].concat()
            };
            input.push(buf.clone());
            for p in s.push(&buf, i * 40) {
                if let Piece::Data(d) = p {
                    recorded.extend(d);
                }
            }
        }
        let all: Vec<u8> = input.concat();
        let first_key = all.len() - recorded.len();
        assert_eq!(&all[first_key..], &recorded[..]);
    }

    #[test]
    fn chain_detects_any_change() {
        let s0 = chain_start("s");
        let a = chain_next(&s0, 0, &sha256(b"a"), 1);
        let b = chain_next(&a, 1, &sha256(b"b"), 1);
        let b2 = chain_next(&a, 1, &sha256(b"c"), 1);
        assert_ne!(b, b2);
        let swapped = chain_next(&chain_next(&s0, 0, &sha256(b"b"), 1), 1, &sha256(b"a"), 1);
        assert_ne!(b, swapped);
        assert_ne!(chain_start("s"), chain_start("t"));
        assert_eq!(unhex(&hex(&b)), Some(b));
    }
}
