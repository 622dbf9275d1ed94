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

/// A packet's continuity counter.
fn cc(p: &[u8]) -> u8 {
    p[3] & 0x0f
}

/// The packet carries a payload (and so advances its PID's counter).
fn has_payload(p: &[u8]) -> bool {
    (p[3] >> 4) & 1 != 0
}

/// The packet's adaptation field carries a PCR.
fn has_pcr(p: &[u8]) -> bool {
    let afc = (p[3] >> 4) & 3;
    afc & 2 != 0 && p[4] >= 7 && p[5] & 0x10 != 0
}

/// Speech first: the uplink's TS thinned to what a collapsed link still
/// carries. While thin, the PAT, the PMT and the sound pass whole; of the
/// picture only a keyframe now and then (a still, at most one every
/// [`PictureGate::STILL_EVERY_MS`]), **paced** out at
/// [`PictureGate::STILL_KBPS`] between the sound's packets: a 720p
/// keyframe is tens of kilobytes, and sent at once it would fill a narrow
/// link's queue and cost the sound behind it. A dropped video packet that
/// carried the programme clock (mpegtsmux puts the PCR on the video PID)
/// leaves a packet with that PCR alone, so the hub's clock keeps running.
/// Going back waits for a keyframe, so the hub never decodes a picture
/// predicted from frames it did not get. Each video PID's continuity
/// counter is renumbered over what is sent, so the hub sees no gap in it.
///
/// A paced still reaches the hub up to a few seconds after its time: a
/// player shows it when it is whole, which is what a still is for.
///
/// Pure: the caller passes the time, and sets thin or not from the link.
#[derive(Debug, Default, Clone)]
pub struct PictureGate {
    thin: bool,
    /// Asked back to the whole picture; still thin until a keyframe.
    resuming: bool,
    /// PIDs seen starting a video PES, and the counter of each as sent.
    video: Vec<(u16, Option<u8>)>,
    /// What happens to the current video PES.
    keeping: Keep,
    /// The still's packets waiting for their turn, and the bytes they
    /// may use now.
    pending: std::collections::VecDeque<(usize, [u8; PACKET])>,
    tokens: u64,
    last_ms: Option<u64>,
    /// When the last still started.
    still_at_ms: Option<u64>,
    /// Stills sent while thin, and video bytes left out.
    pub stills: u64,
    pub dropped_bytes: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Keep {
    #[default]
    Send,
    Pace,
    Drop,
}

impl PictureGate {
    /// At most one still this often.
    pub const STILL_EVERY_MS: u64 = 5000;
    /// The pace of a still's packets, kbit/s: with the sound (Opus at 32
    /// to 64 kbit/s and the TS around it), under 150 kbit/s in all.
    pub const STILL_KBPS: u64 = 48;
    /// The most a still sends at once.
    const BURST: u64 = 8 * PACKET as u64;

    /// Thin the picture (`true`), or go back to the whole picture at the
    /// next keyframe (`false`).
    pub fn set_thin(&mut self, thin: bool) {
        if thin {
            self.thin = true;
            self.resuming = false;
        } else if self.thin {
            self.resuming = true;
        }
    }

    /// Whether the picture is being thinned (also while waiting for the
    /// keyframe to go back).
    pub fn thin(&self) -> bool {
        self.thin
    }

    fn video_slot(&self, pid: u16) -> Option<usize> {
        self.video.iter().position(|(p, _)| *p == pid)
    }

    /// A packet of a video PID out, with that PID's next counter; true if
    /// it went out changed.
    fn send(&mut self, slot: usize, p: &[u8], out: &mut Vec<u8>) -> bool {
        let last = self.video[slot].1;
        let next = if has_payload(p) {
            last.map_or(cc(p), |c| (c + 1) & 0x0f)
        } else {
            last.unwrap_or(cc(p))
        };
        self.video[slot].1 = Some(next);
        out.extend_from_slice(p);
        let at = out.len() - PACKET;
        out[at + 3] = (out[at + 3] & 0xf0) | next;
        next != cc(p)
    }

    /// The still's packets whose turn has come; true if any went out.
    fn release(&mut self, out: &mut Vec<u8>, all: bool) -> bool {
        let mut any = false;
        while all || self.tokens >= PACKET as u64 {
            let Some((slot, p)) = self.pending.pop_front() else {
                break;
            };
            self.tokens = self.tokens.saturating_sub(PACKET as u64);
            self.send(slot, &p, out);
            any = true;
        }
        any
    }

    /// What of `data` (whole packets) goes to the hub now; `None` when all
    /// of it, unchanged.
    pub fn filter(&mut self, data: &[u8], now_ms: u64) -> Option<Vec<u8>> {
        let since = now_ms.saturating_sub(self.last_ms.unwrap_or(now_ms));
        self.last_ms = Some(now_ms);
        self.tokens = (self.tokens + since * Self::STILL_KBPS / 8).min(Self::BURST);
        let mut out = Vec::with_capacity(data.len());
        let mut changed = self.release(&mut out, false);
        for p in data.chunks_exact(PACKET) {
            if p[0] != SYNC {
                out.extend_from_slice(p);
                continue;
            }
            let id = pid(p);
            if payload_start(p) && video_pes_start(p) && self.video_slot(id).is_none() {
                self.video.push((id, None));
            }
            let Some(slot) = self.video_slot(id) else {
                out.extend_from_slice(p);
                changed |= self.release(&mut out, false);
                continue;
            };
            if payload_start(p) {
                let key = random_access(p);
                if self.thin && self.resuming && key {
                    // The still still going out goes first, whole.
                    changed |= self.release(&mut out, true);
                    self.thin = false;
                    self.resuming = false;
                }
                let due = self.pending.is_empty()
                    && self
                        .still_at_ms
                        .is_none_or(|at| now_ms >= at + Self::STILL_EVERY_MS);
                self.keeping = if !self.thin {
                    Keep::Send
                } else if key && due {
                    self.still_at_ms = Some(now_ms);
                    self.stills += 1;
                    Keep::Pace
                } else {
                    Keep::Drop
                };
            }
            match self.keeping {
                Keep::Send => changed |= self.send(slot, p, &mut out),
                Keep::Pace => {
                    let mut q = [0u8; PACKET];
                    q.copy_from_slice(p);
                    self.pending.push_back((slot, q));
                    changed = true;
                    changed |= self.release(&mut out, false);
                }
                Keep::Drop => {
                    // Left out: its clock stays, if it had one.
                    self.dropped_bytes += PACKET as u64;
                    changed = true;
                    if has_pcr(p) {
                        let mut q = [0xffu8; PACKET];
                        q[..3].copy_from_slice(&p[..3]);
                        // No payload start, no payload: an adaptation
                        // field alone, which keeps the counter.
                        q[1] &= !0x40;
                        q[3] = 0x20;
                        q[4] = 183;
                        q[5] = 0x10;
                        q[6..12].copy_from_slice(&p[6..12]);
                        self.send(slot, &q, &mut out);
                    }
                }
            }
        }
        changed.then_some(out)
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

    /// A video packet with a counter, optionally a PCR and random access.
    fn video(pusi: bool, key: bool, counter: u8, pcr: bool) -> Vec<u8> {
        let mut p = vec![0xffu8; PACKET];
        p[0] = SYNC;
        p[1] = 0x01 | if pusi { 0x40 } else { 0 };
        p[2] = 0x00; // PID 0x100
        p[3] = 0x30 | counter;
        p[4] = 7;
        p[5] = (if key { 0x40 } else { 0 }) | (if pcr { 0x10 } else { 0 });
        p[6..12].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        if pusi {
            p[12..16].copy_from_slice(&[0, 0, 1, 0xe0]);
        }
        p
    }

    fn audio(counter: u8) -> Vec<u8> {
        let mut p = packet(0x101, true, false, &[0, 0, 1, 0xbd]);
        p[3] |= counter;
        p
    }

    /// One second of 10 frames: a keyframe first, two packets a frame,
    /// a PCR on every frame's first packet, sound between.
    fn second(counter: &mut u8, audio_cc: &mut u8) -> Vec<u8> {
        let mut d = Vec::new();
        for f in 0..10 {
            for k in 0..2 {
                d.extend(video(k == 0, f == 0 && k == 0, *counter, k == 0));
                *counter = (*counter + 1) & 0x0f;
            }
            d.extend(audio(*audio_cc));
            *audio_cc = (*audio_cc + 1) & 0x0f;
        }
        d
    }

    fn count(d: &[u8], f: impl Fn(&[u8]) -> bool) -> usize {
        d.chunks_exact(PACKET).filter(|p| f(p)).count()
    }

    #[test]
    fn the_whole_picture_passes_untouched() {
        let mut g = PictureGate::default();
        let (mut c, mut a) = (0, 0);
        for s in 0..3 {
            assert_eq!(g.filter(&second(&mut c, &mut a), s * 1000), None);
        }
    }

    #[test]
    fn thin_keeps_the_sound_a_still_now_and_then_and_the_clock() {
        let mut g = PictureGate::default();
        let (mut c, mut a) = (0, 0);
        let mut sent = Vec::new();
        let first = second(&mut c, &mut a);
        sent.extend(g.filter(&first, 0).unwrap_or(first));
        g.set_thin(true);
        for s in 1..=12u64 {
            let d = second(&mut c, &mut a);
            sent.extend(g.filter(&d, s * 1000).unwrap_or(d));
        }
        // Every sound packet of the 13 s; the picture: all of the first
        // second, then one still (its keyframe's two packets... here one
        // packet, the frame's first) at 1 s, 6 s and 11 s.
        assert_eq!(count(&sent, |p| pid(p) == 0x101), 130);
        let video_payload = count(&sent, |p| pid(p) == 0x100 && has_payload(p));
        assert_eq!(video_payload, 20 + 3 * 2, "stills are whole frames");
        assert_eq!(g.stills, 3);
        // The clock: one PCR a frame, kept or not.
        assert_eq!(count(&sent, |p| pid(p) == 0x100 && has_pcr(p)), 130);
        // The video counter runs without a gap over what is sent, and a
        // clock-only packet repeats the last one.
        let mut last: Option<u8> = None;
        for p in sent.chunks_exact(PACKET).filter(|p| pid(p) == 0x100) {
            if let Some(l) = last {
                let want = if has_payload(p) { (l + 1) & 0x0f } else { l };
                assert_eq!(cc(p), want);
            }
            last = Some(cc(p));
        }
    }

    #[test]
    fn a_large_still_is_paced_between_the_sound() {
        let mut g = PictureGate::default();
        g.set_thin(true);
        let mut d = video(true, true, 0, true);
        for k in 1..40u8 {
            d.extend(video(false, false, k & 0x0f, false));
        }
        let first = g.filter(&d, 0).unwrap();
        let mut sent = count(&first, |p| pid(p) == 0x100 && has_payload(p));
        assert_eq!(sent, 0, "nothing earned yet");
        let mut t = 0;
        while sent < 40 {
            t += 100;
            let o = g.filter(&audio(0), t).unwrap();
            // The sound is never held back behind the still.
            assert_eq!(count(&o, |p| pid(p) == 0x101), 1);
            sent += count(&o, |p| pid(p) == 0x100 && has_payload(p));
            assert!(t < 5000, "the still never finished: {sent} packets");
        }
        // 40 packets at 48 kbit/s: about 1.25 s.
        assert!((1200..=1400).contains(&t), "{t} ms");
    }

    #[test]
    fn back_to_the_whole_picture_only_at_a_keyframe() {
        let mut g = PictureGate::default();
        let (mut c, mut a) = (0, 0);
        g.set_thin(true);
        let d = second(&mut c, &mut a);
        g.filter(&d, 0);
        // The still taken at 0 goes out at its pace.
        let paced = g.filter(&[], 500).unwrap();
        assert_eq!(count(&paced, |p| pid(p) == 0x100 && has_payload(p)), 2);
        // The next second's keyframe is not a still yet (5 s apart): out.
        let d = second(&mut c, &mut a);
        let head = g.filter(&d[..15 * PACKET], 1000).unwrap();
        assert_eq!(count(&head, |p| pid(p) == 0x100 && has_payload(p)), 0);
        // Asked back halfway through that second: its remaining delta
        // frames stay out; the next keyframe brings the picture back.
        g.set_thin(false);
        assert!(g.thin());
        let rest = g.filter(&d[15 * PACKET..], 1500).unwrap();
        assert_eq!(count(&rest, |p| pid(p) == 0x100 && has_payload(p)), 0);
        let d = second(&mut c, &mut a);
        let next = g.filter(&d, 2000).unwrap_or(d);
        assert!(!g.thin());
        assert_eq!(count(&next, |p| pid(p) == 0x100 && has_payload(p)), 20);
    }

    #[test]
    fn garbage_is_harmless() {
        let mut g = PictureGate::default();
        g.set_thin(true);
        assert!(g.filter(&[0u8; 1000], 0).is_none());
        assert!(g.filter(&[0x47u8; 188 * 3], 0).is_none());
        let mut s = Scanner::default();
        assert_eq!(s.scan(&[0u8; 1000]), None);
        assert_eq!(s.scan(&[0x47u8; 188 * 3]), None);
        assert!(s.psi().is_empty());
    }
}
