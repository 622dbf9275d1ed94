//! RTCP feedback the box acts on itself: TMMBR (RFC 5104 §4.2.1), a far
//! end's "temporary maximum media stream bit rate request". An MCU sends it
//! when its link to the room (or its own budget) cannot take what the room
//! sends; rtpbin hands the message's FCI to the call's media, and this
//! module reads it. Pure: bytes in, bitrates out.

/// RTCP packet type of transport-layer feedback (RFC 4585 §6.1).
pub const RTPFB: u32 = 205;
/// The feedback message type (FMT) of TMMBR within RTPFB.
pub const FMT_TMMBR: u32 = 3;

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
