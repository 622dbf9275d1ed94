//! Just enough MPEG-TS to cut the encoded stream at keyframes.
//!
//! `mpegtsmux` marks the first packet of a video keyframe's PES with the
//! adaptation field's random-access indicator, but (with `alignment=7`) puts
//! no flag on the buffer. [`Scanner`] finds that packet and remembers the
//! latest PAT and PMT, so that a piece of stream starting at a keyframe can
//! be prefixed with them and decoded on its own: by a hub that just
//! (re)connected, or by a player opening one recorded segment.

pub const PACKET: usize = 188;
const SYNC: u8 = 0x47;

#[derive(Debug, Default, Clone)]
pub struct Scanner {
    pat: Option<[u8; PACKET]>,
    pmt_pid: Option<u16>,
    pmt: Option<[u8; PACKET]>,
    /// A stream of sound alone (the far end's track): every audio frame
    /// decodes on its own, so any audio PES start is a place to cut.
    audio_only: bool,
}

fn pid(p: &[u8]) -> u16 {
    (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2])
}

fn payload_start(p: &[u8]) -> bool {
    p[1] & 0x40 != 0
}

/// The payload of a packet, after any adaptation field.
fn payload(p: &[u8]) -> &[u8] {
    let afc = (p[3] >> 4) & 3;
    let start = match afc {
        1 => 4,
        3 => 5 + usize::from(p[4]),
        _ => return &[],
    };
    p.get(start..).unwrap_or(&[])
}

fn random_access(p: &[u8]) -> bool {
    let afc = (p[3] >> 4) & 3;
    afc & 2 != 0 && p[4] > 0 && p[5] & 0x40 != 0
}

/// True if the payload begins a PES packet of a video stream (0xE0-0xEF).
fn video_pes_start(p: &[u8]) -> bool {
    let pl = payload(p);
    pl.len() >= 4 && pl[..3] == [0, 0, 1] && (0xE0..=0xEF).contains(&pl[3])
}

/// True if the payload begins a PES packet of an audio stream: MPEG audio
/// (0xC0-0xDF) or private stream 1 (0xBD), which carries Opus.
fn audio_pes_start(p: &[u8]) -> bool {
    let pl = payload(p);
    pl.len() >= 4 && pl[..3] == [0, 0, 1] && (pl[3] == 0xBD || (0xC0..=0xDF).contains(&pl[3]))
}

/// The presentation time (90 kHz) in a PES header at the start of `pl`.
fn pes_pts(pl: &[u8]) -> Option<u64> {
    if pl.len() < 14 || pl[..3] != [0, 0, 1] || pl[7] & 0x80 == 0 {
        return None;
    }
    let b = &pl[9..14];
    Some(
        (u64::from(b[0] >> 1) & 0x07) << 30
            | u64::from(b[1]) << 22
            | (u64::from(b[2]) >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4]) >> 1,
    )
}

/// The earliest presentation time among the PES headers in `data`: where
/// a demuxer starts the stream's timeline.
pub fn earliest_pts(data: &[u8]) -> Option<u64> {
    data.chunks_exact(PACKET)
        .filter(|p| p[0] == SYNC && payload_start(p) && pid(p) != 0)
        .filter_map(|p| pes_pts(payload(p)))
        .min()
}

impl Scanner {
    /// A scanner for a sound-only stream, which cuts at any audio frame.
    pub fn audio_only() -> Self {
        Self {
            audio_only: true,
            ..Self::default()
        }
    }

    /// Look at a buffer of whole packets. Returns the byte offset of the
    /// first packet that starts a video keyframe, if any, and updates the
    /// cached PAT and PMT.
    pub fn scan(&mut self, data: &[u8]) -> Option<usize> {
        let mut keyframe = None;
        for (i, p) in data.chunks_exact(PACKET).enumerate() {
            if p[0] != SYNC {
                continue;
            }
            let id = pid(p);
            if id == 0 && payload_start(p) {
                self.pat = Some(p.try_into().expect("chunk is one packet"));
                self.pmt_pid = parse_pat(payload(p));
            } else if Some(id) == self.pmt_pid && payload_start(p) {
                self.pmt = Some(p.try_into().expect("chunk is one packet"));
            } else if keyframe.is_none()
                && payload_start(p)
                && if self.audio_only {
                    audio_pes_start(p)
                } else {
                    random_access(p) && video_pes_start(p)
                }
            {
                keyframe = Some(i * PACKET);
            }
        }
        keyframe
    }

    /// The latest PAT and PMT packets, to put in front of a keyframe; empty
    /// until both have been seen.
    pub fn psi(&self) -> Vec<u8> {
        match (&self.pat, &self.pmt) {
            (Some(pat), Some(pmt)) => [pat.as_slice(), pmt.as_slice()].concat(),
            _ => Vec::new(),
        }
    }
}

/// The PMT PID of the first program in a PAT section payload.
fn parse_pat(pl: &[u8]) -> Option<u16> {
    let pointer = usize::from(*pl.first()?);
    let sec = pl.get(1 + pointer..)?;
    if sec.first() != Some(&0) || sec.len() < 8 {
        return None;
    }
    let len = (usize::from(sec[1] & 0x0f) << 8) | usize::from(sec[2]);
    // Entries run from byte 8 to the CRC (last 4 bytes of the section).
    let end = (3 + len).saturating_sub(4).min(sec.len());
    sec.get(8..end)?
        .chunks_exact(4)
        .find(|e| u16::from_be_bytes([e[0], e[1]]) != 0)
        .map(|e| (u16::from(e[2] & 0x1f) << 8) | u16::from(e[3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pid: u16, pusi: bool, rai: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0xffu8; PACKET];
        p[0] = SYNC;
        p[1] = ((pid >> 8) as u8 & 0x1f) | if pusi { 0x40 } else { 0 };
        p[2] = pid as u8;
        let mut at = 4;
        if rai {
            p[3] = 0x30;
            p[4] = 1;
            p[5] = 0x40;
            at = 6;
        } else {
            p[3] = 0x10;
        }
        p[at..at + payload.len()].copy_from_slice(payload);
        p
    }

    fn pat(pmt: u16) -> Vec<u8> {
        // pointer, table 0, len 13, tsid, ver, sec, last, prog 1 -> pmt, crc
        let sec = [
            0,
            0x00,
            0xb0,
            13,
            0,
            1,
            0xc1,
            0,
            0,
            0,
            1,
            0xe0 | (pmt >> 8) as u8,
            pmt as u8,
            1,
            2,
            3,
            4,
        ];
        packet(0, true, false, &sec)
    }

    #[test]
    fn finds_keyframe_and_psi() {
        let mut s = Scanner::default();
        let mut data = pat(0x20);
        data.extend(packet(0x20, true, false, &[0, 2, 0xb0]));
        data.extend(packet(0x41, true, false, &[0, 0, 1, 0xe0])); // delta frame
        data.extend(packet(0x42, true, true, &[0, 0, 1, 0xc0])); // audio RAI: not a keyframe
        data.extend(packet(0x41, true, true, &[0, 0, 1, 0xe0]));
        assert_eq!(s.scan(&data), Some(4 * PACKET));
        let psi = s.psi();
        assert_eq!(psi.len(), 2 * PACKET);
        assert_eq!(pid(&psi[..PACKET]), 0);
        assert_eq!(pid(&psi[PACKET..]), 0x20);
    }

    #[test]
    fn a_sound_only_stream_cuts_at_any_audio_frame() {
        let mut s = Scanner::audio_only();
        let mut data = pat(0x20);
        data.extend(packet(0x20, true, false, &[0, 2, 0xb0]));
        data.extend(packet(0x42, false, false, &[1, 2, 3])); // continuation
        data.extend(packet(0x42, true, false, &[0, 0, 1, 0xbd])); // Opus PES
        assert_eq!(s.scan(&data), Some(3 * PACKET));
        assert_eq!(s.psi().len(), 2 * PACKET);
        // The room's scanner does not cut there: no video keyframe.
        assert_eq!(Scanner::default().scan(&data), None);
    }

    #[test]
    fn reads_the_earliest_pts() {
        // PES header: start code, stream id, length, flags (PTS only),
        // header length 5, PTS = 0x1_2345_6789 coded in 5 bytes.
        let pts: u64 = 0x1_2345_6789;
        let coded = [
            0x21 | ((pts >> 29) & 0x0e) as u8,
            (pts >> 22) as u8,
            (((pts >> 14) & 0xfe) | 1) as u8,
            (pts >> 7) as u8,
            (((pts << 1) & 0xfe) | 1) as u8,
        ];
        let mut pes = vec![0, 0, 1, 0xbd, 0, 0, 0x80, 0x80, 5];
        pes.extend(coded);
        let mut data = pat(0x20);
        data.extend(packet(0x42, true, false, &pes));
        assert_eq!(earliest_pts(&data), Some(pts));
        assert_eq!(earliest_pts(&pat(0x20)), None);
    }

    #[test]
    fn garbage_is_harmless() {
        let mut s = Scanner::default();
        assert_eq!(s.scan(&[0u8; 1000]), None);
        assert_eq!(s.scan(&[0x47u8; 188 * 3]), None);
        assert!(s.psi().is_empty());
    }
}
