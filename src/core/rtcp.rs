//! RTCP feedback the box acts on itself: TMMBR (RFC 5104 §4.2.1), a far
//! end's "temporary maximum media stream bit rate request". An MCU sends it
//! when its link to the room (or its own budget) cannot take what the room
//! sends; rtpbin hands the message's FCI to the call's media, and this
//! module reads it. The box answers with a TMMBN (§4.2.2), which this
//! module writes: the request it now honours, so that the MCU stops
//! repeating it. Pure: bytes in, bitrates out, and back.

/// RTCP packet type of transport-layer feedback (RFC 4585 §6.1).
pub const RTPFB: u32 = 205;
/// The feedback message type (FMT) of TMMBR within RTPFB.
pub const FMT_TMMBR: u32 = 3;
/// The feedback message type of TMMBN, the media sender's answer.
pub const FMT_TMMBN: u32 = 4;

/// One entry of a TMMBR: the most the far end wants from the media
/// sender `ssrc`, counting `overhead` bytes of headers per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tmmbr {
    pub ssrc: u32,
    pub bitrate_bps: u64,
    pub overhead: u16,
}

/// The entries of a TMMBR's FCI, 8 bytes each: the SSRC, then a 6-bit
/// exponent, a 17-bit mantissa (the bitrate is mantissa × 2^exponent) and
/// the 9-bit measured overhead. Trailing bytes short of an entry are left.
pub fn parse_tmmbr(fci: &[u8]) -> Vec<Tmmbr> {
    fci.chunks_exact(8)
        .map(|e| {
            let ssrc = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let w = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            let exp = w >> 26;
            let mantissa = u64::from((w >> 9) & 0x1_ffff);
            Tmmbr {
                ssrc,
                // An exponent up to 63 could shift bits out; nothing real
                // asks for more than u64 holds, so that is "no limit".
                bitrate_bps: if exp > mantissa.leading_zeros() {
                    u64::MAX
                } else {
                    mantissa << exp
                },
                overhead: (w & 0x1ff) as u16,
            }
        })
        .collect()
}

/// The 32-bit word after an entry's SSRC: exponent, mantissa, overhead.
/// The smallest exponent that fits the bitrate in the mantissa's 17 bits,
/// so a bitrate read from a request is written back exactly; "no limit"
/// (`u64::MAX`) is the largest the format holds.
fn mxtbr_word(bitrate_bps: u64, overhead: u16) -> u32 {
    let (exp, mantissa) = match (0..64u32).find(|e| bitrate_bps >> e < (1 << 17)) {
        Some(e) if bitrate_bps != u64::MAX => (e, (bitrate_bps >> e) as u32),
        _ => (63, 0x1_ffff),
    };
    (exp << 26) | (mantissa << 9) | u32::from(overhead & 0x1ff)
}

/// A whole TMMBN packet (RFC 5104 §4.2.2) from the media sender
/// `sender_ssrc`, ready to append to a compound RTCP packet. `bounding` is
/// the set of requests the sender honours, each with its requester's SSRC
/// in `ssrc` (the "owner"), echoed with the bitrate and overhead the
/// requester asked for; empty means none applies. The media source field
/// is 0, as the RFC asks.
pub fn tmmbn(sender_ssrc: u32, bounding: &[Tmmbr]) -> Vec<u8> {
    // Length in 32-bit words minus one: the header word, two SSRCs, and two
    // words per entry.
    let words = 2 + 2 * bounding.len();
    let mut p = Vec::with_capacity(4 * (words + 1));
    p.push(0x80 | FMT_TMMBN as u8);
    p.push(RTPFB as u8);
    p.extend((words as u16).to_be_bytes());
    p.extend(sender_ssrc.to_be_bytes());
    p.extend(0u32.to_be_bytes());
    for t in bounding {
        p.extend(t.ssrc.to_be_bytes());
        p.extend(mxtbr_word(t.bitrate_bps, t.overhead).to_be_bytes());
    }
    p
}

/// The bounding set the box answers with, from the latest request of each
/// far end (`latest`, the owner's SSRC in `ssrc`): the strictest one, the
/// one the encoder's ceiling follows. RFC 5104 §3.5.4.2 builds the set from
/// every tuple that limits at some packet rate; an MCU is one requester, so
/// its own request is the whole set.
pub fn bounding_set(latest: &[Tmmbr]) -> Vec<Tmmbr> {
    latest
        .iter()
        .min_by_key(|t| (t.bitrate_bps, t.overhead))
        .copied()
        .into_iter()
        .collect()
}

/// The encoder's ceiling, kbit/s, for the strictest request in `entries`:
/// nine tenths of it, as for `b=AS` (the headers count in both), and never
/// below `floor_kbps` (a request for 0, "stop sending", keeps the room's
/// picture at its floor rather than freezing it). `None` without entries.
pub fn tmmbr_ceiling_kbps(entries: &[Tmmbr], floor_kbps: u32) -> Option<u32> {
    let bps = entries.iter().map(|t| t.bitrate_bps).min()?;
    let kbps = u32::try_from(bps / 1000 * 9 / 10).unwrap_or(u32::MAX);
    Some(kbps.max(floor_kbps))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An FCI entry as RFC 5104 §4.2.1.1 lays it out.
    fn entry(ssrc: u32, exp: u32, mantissa: u32, overhead: u32) -> [u8; 8] {
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&ssrc.to_be_bytes());
        e[4..].copy_from_slice(&((exp << 26) | (mantissa << 9) | overhead).to_be_bytes());
        e
    }

    #[test]
    fn tmmbr_entries_are_read_as_the_rfc_lays_them_out() {
        // 300 kbit/s = 75 000 × 2², 40 bytes of IP/UDP/RTP headers.
        let mut fci = entry(0x1234_5678, 2, 75_000, 40).to_vec();
        fci.extend(entry(0xdead_beef, 0, 131_071, 511));
        fci.extend([1, 2, 3]); // short of an entry: left
        assert_eq!(
            parse_tmmbr(&fci),
            vec![
                Tmmbr {
                    ssrc: 0x1234_5678,
                    bitrate_bps: 300_000,
                    overhead: 40
                },
                Tmmbr {
                    ssrc: 0xdead_beef,
                    bitrate_bps: 131_071,
                    overhead: 511
                },
            ]
        );
        assert_eq!(parse_tmmbr(&[]), vec![]);
        // The largest exponent does not overflow.
        assert_eq!(
            parse_tmmbr(&entry(1, 63, 131_071, 0))[0].bitrate_bps,
            u64::MAX
        );
    }

    #[test]
    fn a_tmmbn_echoes_the_honoured_request_as_the_rfc_lays_it_out() {
        let req = parse_tmmbr(&entry(0x5eed_0001, 2, 75_000, 40))[0];
        let owned = Tmmbr {
            ssrc: 0x5eed_0001,
            ..req
        };
        let p = tmmbn(0xabcd_0002, &[owned]);
        // V=2, FMT=4; PT=205; length 4 (five words); sender; media source 0.
        assert_eq!(&p[..4], &[0x84, 205, 0, 4]);
        assert_eq!(&p[4..8], &0xabcd_0002u32.to_be_bytes());
        assert_eq!(&p[8..12], &[0, 0, 0, 0]);
        // The entry comes back as the requester wrote it.
        assert_eq!(&p[12..], &entry(0x5eed_0001, 2, 75_000, 40));
        assert_eq!(parse_tmmbr(&p[12..]), vec![owned]);
        // No request honoured: the header alone, length 2.
        assert_eq!(tmmbn(7, &[]), vec![0x84, 205, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0]);
        // Every bitrate that fits is written back exactly; more than the
        // format holds is its largest value.
        let echo = |bps| {
            let t = Tmmbr {
                ssrc: 2,
                bitrate_bps: bps,
                overhead: 511,
            };
            parse_tmmbr(&tmmbn(1, &[t])[12..])[0]
        };
        for bps in [
            0,
            1,
            131_071,
            131_072,
            300_000,
            50_000_000 >> 9 << 9,
            u64::MAX,
        ] {
            assert_eq!(echo(bps).bitrate_bps, bps, "{bps}");
            assert_eq!(echo(bps).overhead, 511);
        }
        // One that does not fit is rounded down by less than a part in 2^16.
        let e = echo(1_999_999).bitrate_bps;
        assert!(e <= 1_999_999 && 1_999_999 - e < 1_999_999 >> 16, "{e}");
    }

    #[test]
    fn the_bounding_set_is_the_strictest_latest_request() {
        let t = |ssrc, bps| Tmmbr {
            ssrc,
            bitrate_bps: bps,
            overhead: 40,
        };
        assert_eq!(
            bounding_set(&[t(1, 900_000), t(2, 400_000)]),
            vec![t(2, 400_000)]
        );
        assert_eq!(bounding_set(&[]), vec![]);
    }

    #[test]
    fn the_strictest_request_sets_the_ceiling_above_the_floor() {
        let t = |bps| Tmmbr {
            ssrc: 1,
            bitrate_bps: bps,
            overhead: 0,
        };
        assert_eq!(
            tmmbr_ceiling_kbps(&[t(300_000), t(1_000_000)], 100),
            Some(270)
        );
        assert_eq!(tmmbr_ceiling_kbps(&[t(0)], 100), Some(100));
        assert_eq!(tmmbr_ceiling_kbps(&[], 100), None);
    }
}
