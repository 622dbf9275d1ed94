//! Encryption at rest (docs/RECORDING-FORMAT.md, version 2).
//!
//! With recipients configured (`[recording] recipients`, X25519 public keys
//! in the age format: the province's archive key and an escrow key), each
//! recording gets its own random 32-byte key. That key is wrapped to every
//! recipient as a standard age file, kept in the recording's record and in
//! its signed manifest, and forgotten by the box when the recording closes:
//! a stolen box holds no key that opens what it recorded.
//!
//! Each chunk the recorder writes is sealed on its own, before it reaches
//! the disk, as one **frame**:
//!
//! ```text
//! u32be(seq) ‖ u32be(chunk) ‖ u32be(len) ‖ ChaCha20-Poly1305(key, nonce, plaintext, aad) ‖ tag(16)
//! nonce = u32be(seq) ‖ u32be(chunk) ‖ 0x00000000     aad = the 12-byte header
//! ```
//!
//! A chunk is what the recorder makes durable at one flush (at most
//! `chunk_kib`), so a power cut still loses at most the last flush, and a
//! torn tail still opens up to its last whole frame. `(seq, chunk)` never
//! repeats under one key (a recording's key dies with its recorder; a
//! recording interrupted by a crash is closed, never continued), so the
//! nonce never repeats. A segment's object is its frames in order, and its
//! hash, the chain and the signature are over those bytes: they verify
//! without any private key.

use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::Zeroize;

/// The `scheme` a manifest names for this sealing.
pub const SCHEME: &str = "diemcau-frames/1 chacha20poly1305 age-x25519";
/// Bytes before each frame's ciphertext.
pub const HEADER: usize = 12;
/// Bytes of the Poly1305 tag after it.
pub const TAG: usize = 16;
/// No chunk is larger (`chunk_kib` is at most a few MiB): a length above
/// it is damage, not a reason to allocate.
const MAX_FRAME: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0:?} is not an age X25519 recipient ({1}); a recipient is one line starting with age1, as `age-keygen -y IDENTITY_FILE` prints it")]
    Recipient(String, String),
    #[error("cannot wrap the recording's key to its recipients: {0}")]
    Wrap(String),
    #[error("the identity does not open this recording's key ({0}); it is encrypted to {1}")]
    Unwrap(String, String),
    #[error("cannot read the identity file {path}: {why} (an age identity file, AGE-SECRET-KEY-1…, as age-keygen writes it)")]
    Identity { path: String, why: String },
    #[error("sealed bytes at offset {at}: {why}")]
    Frame { at: u64, why: String },
    #[error("cannot write the opened bytes: {0}")]
    Io(#[from] std::io::Error),
}

/// Parse one recipient as the config and the manifest carry it.
pub fn recipient(text: &str) -> Result<age::x25519::Recipient, SealError> {
    age::x25519::Recipient::from_str(text.trim())
        .map_err(|e| SealError::Recipient(text.to_owned(), e.to_string()))
}

/// The identities (private keys) in an age identity file.
pub fn identities(path: &Path) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, SealError> {
    let err = |why: String| SealError::Identity {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let file = age::IdentityFile::from_buffer(&text[..]).map_err(|e| err(e.to_string()))?;
    let ids = file.into_identities().map_err(|e| err(e.to_string()))?;
    if ids.is_empty() {
        return Err(err("it holds no identity".into()));
    }
    Ok(ids)
}

/// Encrypt a whole small object (a still) to the recipients as an age file,
/// which `age -d -i IDENTITY` opens.
pub fn encrypt_to(recipients: &[String], plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let rs = recipients
        .iter()
        .map(|r| recipient(r))
        .collect::<Result<Vec<_>, _>>()?;
    let enc = age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| SealError::Wrap(e.to_string()))?;
    let mut out = Vec::with_capacity(plain.len() + 256);
    let mut w = enc.wrap_output(&mut out)?;
    w.write_all(plain)?;
    w.finish()?;
    Ok(out)
}

/// One recording's key. Wiped from memory when dropped.
pub struct SessionKey([u8; 32]);

impl Drop for SessionKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl SessionKey {
    /// A fresh random key, from the kernel's generator.
    pub fn generate() -> Result<SessionKey, SealError> {
        let mut k = [0u8; 32];
        getrandom::getrandom(&mut k).map_err(|e| SealError::Wrap(e.to_string()))?;
        Ok(SessionKey(k))
    }

    /// The key wrapped to every recipient: an age file (binary).
    pub fn wrap(&self, recipients: &[String]) -> Result<Vec<u8>, SealError> {
        encrypt_to(recipients, &self.0)
    }

    /// The key, from its age file and an identity of one of its recipients.
    pub fn unwrap(
        wrapped: &[u8],
        ids: &[Box<dyn age::Identity + Send + Sync>],
        recipients: &[String],
    ) -> Result<SessionKey, SealError> {
        let fail = |e: String| SealError::Unwrap(e, recipients.join(", "));
        let dec = age::Decryptor::new_buffered(wrapped).map_err(|e| fail(e.to_string()))?;
        let mut r = dec
            .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .map_err(|e| fail(e.to_string()))?;
        let mut k = Vec::with_capacity(32);
        std::io::Read::read_to_end(&mut r, &mut k).map_err(|e| fail(e.to_string()))?;
        let key = <[u8; 32]>::try_from(&k[..])
            .map(SessionKey)
            .map_err(|_| fail(format!("the wrapped key is {} bytes, not 32", k.len())));
        k.zeroize();
        key
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.0))
    }

    /// One chunk as its frame.
    pub fn seal(&self, seq: u32, chunk: u32, plain: &[u8]) -> Vec<u8> {
        let header = header(seq, chunk, plain.len() as u32);
        let ct = self
            .cipher()
            .encrypt(
                &nonce(&header),
                Payload {
                    msg: plain,
                    aad: &header,
                },
            )
            // ChaCha20-Poly1305 fails only past 256 GiB in one message;
            // a chunk is at most a few MiB.
            .expect("a chunk is far below the AEAD's limit");
        let mut out = Vec::with_capacity(HEADER + ct.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&ct);
        out
    }

    /// Open a whole run of frames (a segment, or several in order).
    pub fn open_all(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::with_capacity(sealed.len());
        let mut u = Unsealer::new(self, &mut out);
        u.write_all(sealed).map_err(unwrap_frame)?;
        u.finish()?;
        Ok(out)
    }
}

fn header(seq: u32, chunk: u32, len: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&seq.to_be_bytes());
    h[4..8].copy_from_slice(&chunk.to_be_bytes());
    h[8..].copy_from_slice(&len.to_be_bytes());
    h
}

fn nonce(header: &[u8; HEADER]) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&header[..8]);
    *Nonce::from_slice(&n)
}

/// Frames in, plaintext out: a writer for exports of any length.
pub struct Unsealer<'k, W: Write> {
    key: &'k SessionKey,
    out: W,
    buf: Vec<u8>,
    /// Offset of `buf[0]` in the sealed stream.
    at: u64,
    last: Option<(u32, u32)>,
}

impl<'k, W: Write> Unsealer<'k, W> {
    pub fn new(key: &'k SessionKey, out: W) -> Self {
        Unsealer {
            key,
            out,
            buf: Vec::new(),
            at: 0,
            last: None,
        }
    }

    /// Open every whole frame in the buffer.
    fn drain(&mut self) -> Result<(), SealError> {
        let mut used = 0;
        while self.buf.len() - used >= HEADER {
            let mut h = [0u8; HEADER];
            h.copy_from_slice(&self.buf[used..used + HEADER]);
            let seq = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
            let chunk = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            let len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
            let at = self.at + used as u64;
            if len > MAX_FRAME {
                return Err(SealError::Frame {
                    at,
                    why: format!("a frame of {len} bytes: not a sealed recording, or damaged"),
                });
            }
            if self.last.is_some_and(|l| l >= (seq, chunk)) {
                return Err(SealError::Frame {
                    at,
                    why: format!("frame {seq}/{chunk} is out of order"),
                });
            }
            let end = used + HEADER + len + TAG;
            if self.buf.len() < end {
                break;
            }
            let plain = self
                .key
                .cipher()
                .decrypt(
                    &nonce(&h),
                    Payload {
                        msg: &self.buf[used + HEADER..end],
                        aad: &h,
                    },
                )
                .map_err(|_| SealError::Frame {
                    at,
                    why: format!(
                        "frame {seq}/{chunk} does not open: another recording's key, or damaged bytes"
                    ),
                })?;
            self.out.write_all(&plain)?;
            self.last = Some((seq, chunk));
            used = end;
        }
        self.buf.drain(..used);
        self.at += used as u64;
        Ok(())
    }

    /// The end of the sealed bytes: a torn frame left over is an error
    /// that says how much came out before it.
    pub fn finish(mut self) -> Result<W, SealError> {
        self.drain()?;
        if !self.buf.is_empty() {
            return Err(SealError::Frame {
                at: self.at,
                why: format!(
                    "{} bytes of a torn frame at the end; everything before it was opened",
                    self.buf.len()
                ),
            });
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Unsealer<'_, W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.drain().map_err(std::io::Error::other)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A frame error carried through `io::Write`, back to its own type.
fn unwrap_frame(e: std::io::Error) -> SealError {
    match e.get_ref().and_then(|i| i.downcast_ref::<SealError>()) {
        Some(SealError::Frame { at, why }) => SealError::Frame {
            at: *at,
            why: why.clone(),
        },
        _ => SealError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn identity() -> (String, String) {
        let id = age::x25519::Identity::generate();
        (
            id.to_string().expose_secret().to_owned(),
            id.to_public().to_string(),
        )
    }

    fn ids(secret: &str) -> Vec<Box<dyn age::Identity + Send + Sync>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("id.txt");
        std::fs::write(&p, format!("# test\n{secret}\n")).unwrap();
        identities(&p).unwrap()
    }

    #[test]
    fn each_recipient_opens_the_key_and_a_stranger_does_not() {
        let (a_secret, a) = identity();
        let (b_secret, b) = identity();
        let (c_secret, _) = identity();
        let key = SessionKey::generate().unwrap();
        let recipients = vec![a, b];
        let wrapped = key.wrap(&recipients).unwrap();
        let sealed = key.seal(0, 0, b"a citizen's complaint");
        for secret in [&a_secret, &b_secret] {
            let k = SessionKey::unwrap(&wrapped, &ids(secret), &recipients).unwrap();
            assert_eq!(k.open_all(&sealed).unwrap(), b"a citizen's complaint");
        }
        let e = SessionKey::unwrap(&wrapped, &ids(&c_secret), &recipients)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("does not open") && e.contains("age1"), "{e}");
    }

    #[test]
    fn frames_open_in_order_and_a_torn_tail_opens_up_to_its_last_frame() {
        let key = SessionKey::generate().unwrap();
        let mut sealed = Vec::new();
        for (seq, chunk) in [(0, 0), (0, 1), (1, 0)] {
            sealed.extend(key.seal(seq, chunk, &[seq as u8 * 10 + chunk as u8; 1000]));
        }
        let whole = key.open_all(&sealed).unwrap();
        assert_eq!(whole.len(), 3000);
        assert_eq!(whole[1000], 1);
        assert_eq!(whole[2000], 10);
        // Written in pieces of any size, as an export streams.
        let mut out = Vec::new();
        let mut u = Unsealer::new(&key, &mut out);
        for piece in sealed.chunks(7) {
            u.write_all(piece).unwrap();
        }
        u.finish().unwrap();
        assert_eq!(out, whole);
        // A torn tail: what came before it is out, and the error says so.
        let mut out = Vec::new();
        let mut u = Unsealer::new(&key, &mut out);
        u.write_all(&sealed[..sealed.len() - 5]).unwrap();
        let e = u.finish().err().unwrap().to_string();
        assert!(e.contains("torn frame"), "{e}");
        assert_eq!(out, whole[..2000]);
    }

    #[test]
    fn a_changed_byte_a_swapped_frame_or_another_key_does_not_open() {
        let key = SessionKey::generate().unwrap();
        let a = key.seal(0, 0, b"first");
        let b = key.seal(0, 1, b"second");
        let mut flipped = a.clone();
        flipped[HEADER + 1] ^= 1;
        assert!(key.open_all(&flipped).is_err());
        // A header edited to another place: the nonce and the aad change.
        let mut moved = b.clone();
        moved[7] = 5;
        assert!(key.open_all(&moved).is_err());
        let swapped = [b.clone(), a.clone()].concat();
        let e = key.open_all(&swapped).err().unwrap().to_string();
        assert!(e.contains("out of order"), "{e}");
        let other = SessionKey::generate().unwrap();
        assert!(other.open_all(&a).is_err());
        // Garbage is refused without a huge allocation.
        let e = key.open_all(&[0xff; 40]).err().unwrap().to_string();
        assert!(e.contains("not a sealed recording"), "{e}");
    }

    #[test]
    fn a_wrong_recipient_is_a_clear_error() {
        let e = recipient("age1nope").err().unwrap().to_string();
        assert!(e.contains("age-keygen -y"), "{e}");
    }
}
