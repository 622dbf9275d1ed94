//! SDP (RFC 4566) offers and answers for the room's calls (RFC 3264), as
//! plain text in and typed results out, so every rule is unit-tested
//! without a network.
//!
//! The box chooses what it sends: its offers are written from its own
//! codec list, and an answer to a far end's offer keeps the first of the
//! far end's codecs the box can serve (the offerer's order is its
//! preference, RFC 3264 §6.1). The parser reads only what the media needs
//! (`c=`, `m=`, `b=AS`, `a=rtpmap`, `a=fmtp`, the direction, `a=crypto`)
//! and ignores the rest, as SDP requires of unknown attributes.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Payload types the box uses in its own offers.
pub const PT_PCMU: u8 = 0;
pub const PT_PCMA: u8 = 8;
pub const PT_G722: u8 = 9;
pub const PT_OPUS: u8 = 111;
pub const PT_H264: u8 = 96;
/// RFC 4733 events (a meeting PIN's digits) beside 8 kHz-clocked audio
/// (G.722's RTP clock is 8 kHz too) and beside Opus.
pub const PT_DTMF_8K: u8 = 101;
pub const PT_DTMF_48K: u8 = 100;

/// H.264 Constrained Baseline, level 3.1: what the box's encoder makes
/// (x264 with `profile=constrained-baseline`) and what every room system
/// decodes.
pub const H264_PROFILE_LEVEL: &str = "42e01f";

/// An audio or video codec the box can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    G722,
    Opus,
    Pcmu,
    Pcma,
    /// H.264 in packetization mode 1 (FU-A and STAP-A allowed). The
    /// payloader always fragments large NAL units, which mode 0 forbids, so
    /// the box sends only mode 1 (docs/SIP.md).
    H264,
}

impl Codec {
    /// The encoding name as SDP writes it.
    pub fn name(self) -> &'static str {
        match self {
            Codec::G722 => "G722",
            Codec::Opus => "opus",
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::H264 => "H264",
        }
    }

    /// The RTP clock rate (G.722's is 8000 for historical reasons, RFC 3551).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::G722 | Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus => 48000,
            Codec::H264 => 90000,
        }
    }

    pub fn is_video(self) -> bool {
        self == Codec::H264
    }
}

/// The box's audio codecs in its order of preference: G.722 first because
/// every MCU has it and it is wideband; Opus is better but not everywhere;
/// G.711 last, as the fallback every SIP device has.
pub const AUDIO_CODECS: &[(Codec, u8)] = &[
    (Codec::G722, PT_G722),
    (Codec::Opus, PT_OPUS),
    (Codec::Pcmu, PT_PCMU),
    (Codec::Pcma, PT_PCMA),
];

/// Media direction (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// What the answerer says to an offer in this direction.
    fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// One `m=` section as parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaDesc {
    pub kind: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<u8>,
    /// `a=rtpmap`: payload type, encoding name, clock rate, channels.
    pub rtpmap: Vec<(u8, String, u32, u8)>,
    pub fmtp: Vec<(u8, String)>,
    pub connection: Option<IpAddr>,
    pub bandwidth_kbps: Option<u32>,
    pub direction: Direction,
    pub crypto: Vec<String>,
    /// `a=rtcp` (RFC 3605): RTCP's port when it is not RTP's plus one
    /// (a far end behind a NAT that learnt its mapping).
    pub rtcp_port: Option<u16>,
}

impl MediaDesc {
    /// The encoding of payload type `pt`: its `rtpmap`, or the static
    /// assignment of RFC 3551 when there is none.
    fn encoding(&self, pt: u8) -> Option<(String, u32, u8)> {
        if let Some((_, name, rate, ch)) = self.rtpmap.iter().find(|m| m.0 == pt) {
            return Some((name.clone(), *rate, *ch));
        }
        match pt {
            PT_PCMU => Some(("PCMU".into(), 8000, 1)),
            PT_PCMA => Some(("PCMA".into(), 8000, 1)),
            PT_G722 => Some(("G722".into(), 8000, 1)),
            _ => None,
        }
    }

    fn fmtp_of(&self, pt: u8) -> &str {
        self.fmtp
            .iter()
            .find(|f| f.0 == pt)
            .map(|f| f.1.as_str())
            .unwrap_or("")
    }

    /// Every codec offered, as `NAME/RATE`, for error messages.
    pub fn codec_names(&self) -> Vec<String> {
        self.formats
            .iter()
            .map(|&pt| match self.encoding(pt) {
                Some((n, r, _)) => format!("{n}/{r}"),
                None => format!("pt {pt}"),
            })
            .collect()
    }
}

/// A session description as parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sdp {
    pub origin_version: u64,
    pub connection: Option<IpAddr>,
    pub bandwidth_kbps: Option<u32>,
    pub media: Vec<MediaDesc>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SdpError {
    #[error("the far end's SDP is malformed at line {line}: {why}")]
    Malformed { line: usize, why: String },
    #[error("the far end's SDP has no connection address for its {0} stream")]
    NoAddress(String),
    #[error("no codec in common: the far end offers audio {audio:?} and video {video:?}; this box sends G722/8000, opus/48000, PCMU/8000, PCMA/8000 and H264/90000 (packetization-mode 1)")]
    NoCommonCodec {
        audio: Vec<String>,
        video: Vec<String>,
    },
    #[error("the far end offers SRTP only with suites this box does not have ({0:?}); it has AES_CM_128_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_32")]
    SrtpSuite(Vec<String>),
    #[error("the far end's media is not encrypted, and [sip] srtp = \"required\" refuses unencrypted media (set srtp = \"optional\" to allow it)")]
    NotEncrypted,
}

fn malformed(line: usize, why: impl Into<String>) -> SdpError {
    SdpError::Malformed {
        line,
        why: why.into(),
    }
}

/// Parse an SDP body.
pub fn parse(text: &str) -> Result<Sdp, SdpError> {
    let mut sdp = Sdp::default();
    let mut saw_version = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let Some((kind, value)) = line.split_once('=') else {
            return Err(malformed(n, format!("'{line}' is not TYPE=VALUE")));
        };
        if kind.len() != 1 {
            return Err(malformed(n, format!("'{kind}' is not a one-letter type")));
        }
        let media = sdp.media.last_mut();
        match (kind, media) {
            ("v", _) => {
                if value != "0" {
                    return Err(malformed(n, format!("version {value}, expected 0")));
                }
                saw_version = true;
            }
            ("o", _) => {
                sdp.origin_version = value
                    .split_whitespace()
                    .nth(2)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
            ("c", m) => {
                let addr = parse_connection(value)
                    .ok_or_else(|| malformed(n, format!("'{value}' is not IN IP4|IP6 ADDRESS")))?;
                match m {
                    Some(m) => m.connection = Some(addr),
                    None => sdp.connection = Some(addr),
                }
            }
            ("b", m) => {
                if let Some(kbps) = value
                    .strip_prefix("AS:")
                    .and_then(|v| v.trim().parse().ok())
                {
                    match m {
                        Some(m) => m.bandwidth_kbps = Some(kbps),
                        None => sdp.bandwidth_kbps = Some(kbps),
                    }
                }
            }
            ("m", _) => {
                let mut parts = value.split_whitespace();
                let kind = parts.next().unwrap_or_default().to_owned();
                let port = parts
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| malformed(n, format!("'{value}' has no port")))?;
                let proto = parts
                    .next()
                    .ok_or_else(|| malformed(n, format!("'{value}' has no protocol")))?
                    .to_owned();
                // Non-RTP formats (e.g. BFCP's `*`) are not payload types.
                let formats = parts.filter_map(|f| f.parse().ok()).collect();
                sdp.media.push(MediaDesc {
                    kind,
                    port,
                    proto,
                    formats,
                    ..Default::default()
                });
            }
            ("a", Some(m)) => parse_attribute(m, value, n)?,
            ("a", None) => {
                // A session-level direction applies to every stream.
                if let Some(d) = direction(value) {
                    sdp.media.iter_mut().for_each(|m| m.direction = d);
                }
            }
            _ => {}
        }
    }
    if !saw_version {
        return Err(malformed(1, "no v=0 line: this is not SDP"));
    }
    for m in &mut sdp.media {
        if m.connection.is_none() {
            m.connection = sdp.connection;
        }
        if m.bandwidth_kbps.is_none() {
            m.bandwidth_kbps = sdp.bandwidth_kbps;
        }
    }
    Ok(sdp)
}

fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut p = value.split_whitespace();
    if p.next()? != "IN" {
        return None;
    }
    let _family = p.next()?;
    // Multicast forms carry a TTL after a slash.
    p.next()?.split('/').next()?.parse().ok()
}

fn direction(value: &str) -> Option<Direction> {
    Some(match value {
        "sendrecv" => Direction::SendRecv,
        "sendonly" => Direction::SendOnly,
        "recvonly" => Direction::RecvOnly,
        "inactive" => Direction::Inactive,
        _ => return None,
    })
}

fn parse_attribute(m: &mut MediaDesc, value: &str, n: usize) -> Result<(), SdpError> {
    if let Some(d) = direction(value) {
        m.direction = d;
    } else if let Some(rest) = value.strip_prefix("rtpmap:") {
        let (pt, enc) = rest
            .split_once(' ')
            .ok_or_else(|| malformed(n, format!("rtpmap '{rest}' has no encoding")))?;
        let pt: u8 = pt
            .parse()
            .map_err(|_| malformed(n, format!("rtpmap payload type '{pt}'")))?;
        let mut e = enc.trim().split('/');
        let name = e.next().unwrap_or_default().to_owned();
        let rate = e
            .next()
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| malformed(n, format!("rtpmap '{rest}' has no clock rate")))?;
        let channels = e.next().and_then(|c| c.parse().ok()).unwrap_or(1);
        m.rtpmap.push((pt, name, rate, channels));
    } else if let Some(rest) = value.strip_prefix("fmtp:") {
        if let Some((pt, params)) = rest.split_once(' ') {
            if let Ok(pt) = pt.parse() {
                m.fmtp.push((pt, params.trim().to_owned()));
            }
        }
    } else if let Some(rest) = value.strip_prefix("crypto:") {
        m.crypto.push(rest.to_owned());
    } else if let Some(rest) = value.strip_prefix("rtcp:") {
        m.rtcp_port = rest.split_whitespace().next().and_then(|p| p.parse().ok());
    }
    Ok(())
}

/// Whether media is encrypted: SRTP (RFC 3711) with its keys in the SDP
/// (SDES, RFC 4568), which every MCU of the last decade has. The keys
/// travel in the SIP signalling, so they are only as secret as the
/// signalling is (TLS to the SIP server protects them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// Plain RTP; an encrypted-only offer is refused.
    Off,
    /// Offer keys on plain RTP/AVP ("best effort"): encrypted when the far
    /// end takes them, plain otherwise.
    #[default]
    Optional,
    /// RTP/SAVP only: a far end without SRTP is refused.
    Required,
}

/// An SDES crypto suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    fn parse(s: &str) -> Option<Suite> {
        match s {
            "AES_CM_128_HMAC_SHA1_80" => Some(Suite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Suite::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    /// GStreamer's name for the RTP authentication (SRTCP keeps 80 bits
    /// with either suite, RFC 4568 §6.2).
    pub fn rtp_auth(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "hmac-sha1-80",
            Suite::AesCm128HmacSha1_32 => "hmac-sha1-32",
        }
    }
}

/// The length of an AES-CM-128 master key and salt.
pub const SRTP_KEY_LEN: usize = 30;

/// A stream's SRTP keys: the box's own for what it sends, the far end's
/// for what it receives.
#[derive(Clone, PartialEq)]
pub struct SrtpKeys {
    pub suite: Suite,
    pub send: Vec<u8>,
    pub recv: Vec<u8>,
}

// Keys never go into logs.
impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SrtpKeys({})", self.suite.name())
    }
}

/// One `a=crypto` line: tag, suite, key (undecodable or unknown: `None`).
fn crypto(line: &str) -> Option<(u32, Suite, Vec<u8>)> {
    use base64::Engine as _;
    let mut p = line.split_whitespace();
    let tag = p.next()?.parse().ok()?;
    let suite = Suite::parse(p.next()?)?;
    let key = p.next()?.strip_prefix("inline:")?.split('|').next()?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(key))
        .ok()?;
    (key.len() == SRTP_KEY_LEN).then_some((tag, suite, key))
}

fn crypto_line(out: &mut String, tag: u32, suite: Suite, key: &[u8]) {
    use base64::Engine as _;
    let _ = write!(
        out,
        "a=crypto:{tag} {} inline:{}\r\n",
        suite.name(),
        base64::engine::general_purpose::STANDARD.encode(key)
    );
}

/// One negotiated stream: where to send, where to listen, in what format.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub codec: Codec,
    pub pt: u8,
    pub remote: SocketAddr,
    /// Where the far end takes RTCP (its `a=rtcp`, else RTP's port + 1).
    pub remote_rtcp: u16,
    pub local_port: u16,
    pub direction: Direction,
    /// The far end's `b=AS`, the most it wants to receive.
    pub bandwidth_kbps: Option<u32>,
    /// `None`: plain RTP.
    pub srtp: Option<SrtpKeys>,
    /// The payload type of RFC 4733 events at this stream's clock rate, when
    /// both sides take them (audio only).
    pub dtmf_pt: Option<u8>,
}

/// What a call's media was agreed to be.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Negotiated {
    pub audio: Option<Stream>,
    pub video: Option<Stream>,
    /// The box placed the call (it dialled the conference): only then does
    /// a configured meeting PIN go out.
    pub outgoing: bool,
}

impl Negotiated {
    /// `G722/8000 + H264/90000`, and ` (SRTP)` when encrypted, for status
    /// and logs.
    pub fn describe(&self) -> String {
        let streams: Vec<&Stream> = [&self.audio, &self.video]
            .into_iter()
            .filter_map(|s| s.as_ref())
            .collect();
        let mut out = streams
            .iter()
            .map(|s| format!("{}/{}", s.codec.name(), s.codec.clock_rate()))
            .collect::<Vec<_>>()
            .join(" + ");
        if !streams.is_empty() && streams.iter().all(|s| s.srtp.is_some()) {
            out += " (SRTP)";
        }
        out
    }
}

/// Where the box's media listens and how it describes itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Local {
    pub address: IpAddr,
    pub audio_port: u16,
    pub video_port: u16,
    /// The video bitrate the box sends at most (kbit/s), as `b=AS`.
    pub video_kbps: u32,
    /// Session id and version for `o=`.
    pub session_id: u64,
    pub version: u64,
    pub srtp: SrtpPolicy,
    /// The box's SRTP master key and salt for this call (fresh per call).
    pub key: [u8; SRTP_KEY_LEN],
    /// Where the media ports are seen from outside a NAT (learnt by STUN);
    /// `None`: the local address and ports.
    pub public: Option<PublicMedia>,
}

/// The box's media ports as a NAT maps them: RTP and RTCP of audio and of
/// video. A NAT need not keep RTCP next to RTP, so `a=rtcp` says where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicMedia {
    pub ip: IpAddr,
    pub audio: (u16, u16),
    pub video: (u16, u16),
}

impl Local {
    fn advertised_ip(&self) -> IpAddr {
        self.public.map_or(self.address, |p| p.ip)
    }

    /// The (RTP, RTCP) ports to advertise for a stream.
    fn advertised(&self, video: bool) -> (u16, u16) {
        match (self.public, video) {
            (Some(p), false) => p.audio,
            (Some(p), true) => p.video,
            (None, false) => (self.audio_port, self.audio_port + 1),
            (None, true) => (self.video_port, self.video_port + 1),
        }
    }

    /// `a=rtcp` when RTCP is not where RFC 3550 would put it.
    fn rtcp_line(&self, out: &mut String, video: bool) {
        let (rtp, rtcp) = self.advertised(video);
        if rtcp != rtp.wrapping_add(1) {
            let _ = write!(out, "a=rtcp:{rtcp}\r\n");
        }
    }
}

fn header(out: &mut String, l: &Local) {
    let ip = l.advertised_ip();
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    // The writes below go to a String, which cannot fail.
    let _ = write!(
        out,
        "v=0\r\no=diemcau {} {} IN {fam} {ip}\r\ns=diemcau\r\nc=IN {fam} {ip}\r\nt=0 0\r\n",
        l.session_id, l.version
    );
}

fn codec_lines(out: &mut String, codec: Codec, pt: u8) {
    let _ = match codec {
        Codec::Opus => write!(
            out,
            "a=rtpmap:{pt} opus/48000/2\r\na=fmtp:{pt} useinbandfec=1;maxaveragebitrate=32000\r\n"
        ),
        Codec::H264 => write!(
            out,
            "a=rtpmap:{pt} H264/90000\r\na=fmtp:{pt} profile-level-id={H264_PROFILE_LEVEL};packetization-mode=1\r\na=rtcp-fb:{pt} nack pli\r\na=rtcp-fb:{pt} ccm fir\r\na=rtcp-fb:{pt} ccm tmmbr\r\n"
        ),
        c => write!(out, "a=rtpmap:{pt} {}/{}\r\n", c.name(), c.clock_rate()),
    };
}

fn dtmf_lines(out: &mut String, pt: u8, rate: u32) {
    let _ = write!(
        out,
        "a=rtpmap:{pt} telephone-event/{rate}\r\na=fmtp:{pt} 0-15\r\n"
    );
}

/// The far end's RFC 4733 payload type at `codec`'s clock rate, if any.
fn dtmf_of(m: &MediaDesc, codec: Codec) -> Option<u8> {
    m.formats.iter().copied().find(|&pt| {
        m.encoding(pt).is_some_and(|(name, rate, _)| {
            name.eq_ignore_ascii_case("telephone-event") && rate == codec.clock_rate()
        })
    })
}

/// The tag of the box's offered crypto line.
const OFFER_TAG: u32 = 1;

fn offer_proto(l: &Local) -> &'static str {
    if l.srtp == SrtpPolicy::Required {
        "RTP/SAVP"
    } else {
        "RTP/AVP"
    }
}

/// The box's offer: its audio codecs and, with `video`, H.264; SRTP keys
/// unless `srtp` is off.
pub fn offer(l: &Local, video: bool) -> String {
    let mut out = String::new();
    header(&mut out, l);
    let proto = offer_proto(l);
    let mut pts: Vec<String> = AUDIO_CODECS.iter().map(|c| c.1.to_string()).collect();
    pts.extend([PT_DTMF_8K.to_string(), PT_DTMF_48K.to_string()]);
    let _ = write!(
        out,
        "m=audio {} {proto} {}\r\n",
        l.advertised(false).0,
        pts.join(" ")
    );
    l.rtcp_line(&mut out, false);
    for &(c, pt) in AUDIO_CODECS {
        codec_lines(&mut out, c, pt);
    }
    dtmf_lines(&mut out, PT_DTMF_8K, 8000);
    dtmf_lines(&mut out, PT_DTMF_48K, 48000);
    if l.srtp != SrtpPolicy::Off {
        crypto_line(&mut out, OFFER_TAG, Suite::AesCm128HmacSha1_80, &l.key);
    }
    out.push_str("a=sendrecv\r\n");
    if video {
        let _ = write!(
            out,
            "m=video {} {proto} {PT_H264}\r\nb=AS:{}\r\n",
            l.advertised(true).0,
            l.video_kbps
        );
        l.rtcp_line(&mut out, true);
        codec_lines(&mut out, Codec::H264, PT_H264);
        if l.srtp != SrtpPolicy::Off {
            crypto_line(&mut out, OFFER_TAG, Suite::AesCm128HmacSha1_80, &l.key);
        }
        out.push_str("a=sendrecv\r\n");
    }
    out
}

/// What SRTP a far end's offer gets from the box: `Err` refuses the stream.
fn srtp_for_offer(m: &MediaDesc, l: &Local) -> Result<Option<(u32, SrtpKeys)>, SdpError> {
    let savp = is_savp(m);
    let offered = m.crypto.iter().find_map(|c| crypto(c));
    match (l.srtp, offered) {
        (SrtpPolicy::Off, _) if savp => Err(SdpError::NotEncrypted),
        (SrtpPolicy::Off, _) => Ok(None),
        (_, Some((tag, suite, recv))) => Ok(Some((
            tag,
            SrtpKeys {
                suite,
                send: l.key.to_vec(),
                recv,
            },
        ))),
        (_, None) if savp => Err(SdpError::SrtpSuite(m.crypto.clone())),
        (SrtpPolicy::Required, None) => Err(SdpError::NotEncrypted),
        (SrtpPolicy::Optional, None) => Ok(None),
    }
}

/// The first of `m`'s formats the box can serve, with its payload type.
fn choose(m: &MediaDesc) -> Option<(Codec, u8)> {
    m.formats.iter().find_map(|&pt| {
        let (name, rate, _) = m.encoding(pt)?;
        let codec = match (name.to_ascii_uppercase().as_str(), rate) {
            ("G722", 8000) => Codec::G722,
            ("OPUS", 48000) => Codec::Opus,
            ("PCMU", 8000) => Codec::Pcmu,
            ("PCMA", 8000) => Codec::Pcma,
            ("H264", 90000) if h264_mode_1(m.fmtp_of(pt)) => Codec::H264,
            _ => return None,
        };
        (codec.is_video() == (m.kind == "video")).then_some((codec, pt))
    })
}

/// Whether an H.264 format allows packetization mode 1 (absent means 0).
fn h264_mode_1(fmtp: &str) -> bool {
    fmtp.split(';').any(|p| {
        p.trim()
            .strip_prefix("packetization-mode=")
            .is_some_and(|v| v.trim() == "1")
    })
}

fn stream(m: &MediaDesc, codec: Codec, pt: u8, local_port: u16) -> Result<Stream, SdpError> {
    // The box's direction is the mirror of the far end's (RFC 3264 §6.1).
    let ip = m
        .connection
        .ok_or_else(|| SdpError::NoAddress(m.kind.clone()))?;
    Ok(Stream {
        codec,
        pt,
        remote: SocketAddr::new(ip, m.port),
        remote_rtcp: m.rtcp_port.unwrap_or(m.port.saturating_add(1)),
        local_port,
        direction: m.direction.answer(),
        bandwidth_kbps: m.bandwidth_kbps,
        srtp: None,
        dtmf_pt: if codec.is_video() {
            None
        } else {
            dtmf_of(m, codec)
        },
    })
}

fn is_savp(m: &MediaDesc) -> bool {
    m.proto.contains("SAVP")
}

/// Answer a far end's offer (an incoming call). Streams the box cannot serve
/// are refused with port 0, as RFC 3264 §6 requires; with no audio and no
/// video in common the call is refused (488) with the codecs named.
pub fn answer(offer: &Sdp, l: &Local) -> Result<(Negotiated, String), SdpError> {
    let mut neg = Negotiated::default();
    let mut body = String::new();
    let mut srtp_refusal = None;
    header(&mut body, l);
    for m in &offer.media {
        let chosen = if m.port == 0 {
            None
        } else {
            match m.kind.as_str() {
                "audio" if neg.audio.is_none() => choose(m),
                "video" if neg.video.is_none() => choose(m),
                _ => None,
            }
        };
        let chosen = match chosen.map(|c| (c, srtp_for_offer(m, l))) {
            Some((c, Ok(srtp))) => Some((c, srtp)),
            Some((_, Err(e))) => {
                srtp_refusal = Some(e);
                None
            }
            None => None,
        };
        let fmts = m
            .formats
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        match chosen {
            Some(((codec, pt), srtp)) => {
                let port = if codec.is_video() {
                    l.video_port
                } else {
                    l.audio_port
                };
                let mut s = stream(m, codec, pt, port)?;
                let events = s.dtmf_pt.map(|d| format!(" {d}")).unwrap_or_default();
                let _ = write!(
                    body,
                    "m={} {} {} {pt}{events}\r\n",
                    m.kind,
                    l.advertised(codec.is_video()).0,
                    m.proto
                );
                l.rtcp_line(&mut body, codec.is_video());
                if codec.is_video() {
                    let _ = write!(body, "b=AS:{}\r\n", l.video_kbps);
                }
                codec_lines(&mut body, codec, pt);
                if let Some(d) = s.dtmf_pt {
                    dtmf_lines(&mut body, d, codec.clock_rate());
                }
                if let Some((tag, keys)) = srtp {
                    crypto_line(&mut body, tag, keys.suite, &keys.send);
                    s.srtp = Some(keys);
                }
                let _ = write!(body, "a={}\r\n", s.direction.attr());
                if codec.is_video() {
                    neg.video = Some(s);
                } else {
                    neg.audio = Some(s);
                }
            }
            None => {
                let _ = write!(body, "m={} 0 {} {fmts}\r\n", m.kind, m.proto);
            }
        }
    }
    if neg.audio.is_none() && neg.video.is_none() {
        return Err(srtp_refusal.unwrap_or_else(|| no_common(offer)));
    }
    Ok((neg, body))
}

fn no_common(sdp: &Sdp) -> SdpError {
    let names = |kind: &str| {
        sdp.media
            .iter()
            .filter(|m| m.kind == kind)
            .flat_map(|m| m.codec_names())
            .collect()
    };
    SdpError::NoCommonCodec {
        audio: names("audio"),
        video: names("video"),
    }
}

/// Read the far end's answer to the box's [`offer`] (an outgoing call).
pub fn accept(answer: &Sdp, l: &Local) -> Result<Negotiated, SdpError> {
    let mut neg = Negotiated::default();
    let mut srtp_refusal = None;
    for m in &answer.media {
        if m.port == 0 {
            continue;
        }
        // The far end answers the box's crypto line with its own key.
        let theirs = m
            .crypto
            .iter()
            .filter_map(|c| crypto(c))
            .find(|(tag, suite, _)| *tag == OFFER_TAG && *suite == Suite::AesCm128HmacSha1_80);
        let srtp = match (l.srtp, theirs) {
            (SrtpPolicy::Off, _) => None,
            (_, Some((_, suite, recv))) => Some(SrtpKeys {
                suite,
                send: l.key.to_vec(),
                recv,
            }),
            (SrtpPolicy::Required, None) => {
                srtp_refusal = Some(SdpError::NotEncrypted);
                continue;
            }
            (SrtpPolicy::Optional, None) if is_savp(m) => {
                srtp_refusal = Some(SdpError::SrtpSuite(m.crypto.clone()));
                continue;
            }
            (SrtpPolicy::Optional, None) => None,
        };
        let port = match (m.kind.as_str(), choose(m)) {
            ("audio", Some(_)) if neg.audio.is_none() => l.audio_port,
            ("video", Some(_)) if neg.video.is_none() => l.video_port,
            _ => continue,
        };
        let Some((c, pt)) = choose(m) else { continue };
        let mut s = stream(m, c, pt, port)?;
        s.srtp = srtp;
        if c.is_video() {
            neg.video = Some(s);
        } else {
            neg.audio = Some(s);
        }
    }
    if neg.audio.is_none() && neg.video.is_none() {
        return Err(srtp_refusal.unwrap_or_else(|| no_common(answer)));
    }
    neg.outgoing = true;
    // `stream` turned the far end's direction into the box's own.
    Ok(neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Local {
        Local {
            address: "192.0.2.10".parse().unwrap(),
            audio_port: 40000,
            video_port: 40002,
            video_kbps: 1500,
            session_id: 7,
            version: 1,
            srtp: SrtpPolicy::Off,
            key: [7; SRTP_KEY_LEN],
            public: None,
        }
    }

    #[test]
    fn behind_a_nat_the_mapped_address_and_ports_are_advertised() {
        let l = Local {
            public: Some(PublicMedia {
                ip: "203.0.113.7".parse().unwrap(),
                audio: (61000, 61001),
                video: (61010, 52000),
            }),
            ..local()
        };
        let o = offer(&l, true);
        assert!(o.contains("c=IN IP4 203.0.113.7\r\n"), "{o}");
        assert!(o.contains("m=audio 61000 "), "{o}");
        assert!(o.contains("m=video 61010 "), "{o}");
        // RTCP where RFC 3550 puts it needs no line; elsewhere it does.
        assert!(!o.contains("a=rtcp:61001"), "{o}");
        assert!(o.contains("a=rtcp:52000\r\n"), "{o}");
        // The box still listens on its own ports, and reads a far end's
        // `a=rtcp` the same way.
        let p = parse(&o).unwrap();
        assert_eq!(p.media[1].rtcp_port, Some(52000));
        let (n, body) = answer(&p, &l).unwrap();
        assert!(body.contains("m=video 61010 "), "{body}");
        let v = n.video.unwrap();
        assert_eq!((v.local_port, v.remote_rtcp), (40002, 52000));
        assert_eq!(n.audio.unwrap().remote_rtcp, 61001);
    }

    /// What baresip 1.0 offers (captured on the wire), trimmed.
    const BARESIP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 20000 RTP/AVP 9 0 8 96 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n\
m=video 20002 RTP/AVP 100 101\r\nb=AS:1000\r\na=rtpmap:100 H264/90000\r\na=fmtp:100 packetization-mode=0\r\na=rtpmap:101 H264/90000\r\na=fmtp:101 packetization-mode=1\r\na=sendrecv\r\n";

    #[test]
    fn answers_baresip_with_g722_and_h264_mode_1() {
        let offer = parse(BARESIP).unwrap();
        let (neg, body) = answer(&offer, &local()).unwrap();
        let a = neg.audio.unwrap();
        assert_eq!((a.codec, a.pt), (Codec::G722, 9));
        assert_eq!(a.remote, "127.0.0.1:20000".parse().unwrap());
        let v = neg.video.unwrap();
        // Mode 0 is offered first, but the box sends only mode 1.
        assert_eq!(
            (v.codec, v.pt, v.bandwidth_kbps),
            (Codec::H264, 101, Some(1000))
        );
        // Keypad events at G.722's 8 kHz RTP clock go along.
        assert_eq!(a.dtmf_pt, Some(101));
        assert!(body.contains("m=audio 40000 RTP/AVP 9 101\r\n"), "{body}");
        assert!(
            body.contains("a=rtpmap:101 telephone-event/8000\r\n"),
            "{body}"
        );
        assert!(body.contains("m=video 40002 RTP/AVP 101\r\n"), "{body}");
        assert!(body.contains("packetization-mode=1"), "{body}");
        assert!(!neg.outgoing);
        // Our own answer parses back to the same choices.
        let back = accept(&parse(&body).unwrap(), &local()).unwrap();
        let a = back.audio.unwrap();
        assert_eq!((a.codec, a.dtmf_pt), (Codec::G722, Some(101)));
        assert!(back.outgoing);
    }

    #[test]
    fn keypad_events_only_at_the_codecs_clock() {
        let o = offer(&local(), false);
        assert!(o.contains("a=rtpmap:101 telephone-event/8000\r\n"), "{o}");
        assert!(o.contains("a=rtpmap:100 telephone-event/48000\r\n"), "{o}");
        // A far end that answers Opus with 8 kHz events only: none sent.
        let ans = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 20000 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
        let n = accept(&parse(ans).unwrap(), &local()).unwrap();
        assert_eq!(n.audio.unwrap().dtmf_pt, None);
    }

    #[test]
    fn refuses_a_stream_it_cannot_serve_with_port_zero() {
        let text = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 0\r\nm=video 5002 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\nm=application 5004 UDP/BFCP *\r\n";
        let (neg, body) = answer(&parse(text).unwrap(), &local()).unwrap();
        assert_eq!(neg.audio.unwrap().codec, Codec::Pcmu);
        assert!(neg.video.is_none());
        assert!(body.contains("m=video 0 RTP/AVP 31\r\n"), "{body}");
        assert!(body.contains("m=application 0 UDP/BFCP \r\n"), "{body}");
    }

    #[test]
    fn no_common_codec_names_what_was_offered() {
        let text =
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 18 3\r\na=rtpmap:18 G729/8000\r\n";
        let e = answer(&parse(text).unwrap(), &local()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("G729/8000") && msg.contains("pt 3"), "{msg}");
        assert!(msg.contains("G722/8000"), "{msg}");
    }

    const KEY_B64: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkw";

    #[test]
    fn srtp_offers_by_policy() {
        let savp = format!("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/SAVP 9\r\na=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B64}|2^31\r\n");
        // Off: an encrypted-only offer is refused, saying why.
        let e = answer(&parse(&savp).unwrap(), &local()).unwrap_err();
        assert_eq!(e, SdpError::NotEncrypted);
        // Optional or required: taken, with the far end's tag and suite.
        for policy in [SrtpPolicy::Optional, SrtpPolicy::Required] {
            let l = Local {
                srtp: policy,
                ..local()
            };
            let (n, body) = answer(&parse(&savp).unwrap(), &l).unwrap();
            let keys = n.audio.as_ref().unwrap().srtp.clone().unwrap();
            assert_eq!(keys.suite, Suite::AesCm128HmacSha1_32);
            assert_eq!(keys.recv, b"123456789012345678901234567890");
            assert_eq!(keys.send, vec![7; SRTP_KEY_LEN]);
            assert!(body.contains("m=audio 40000 RTP/SAVP 9\r\n"), "{body}");
            assert!(
                body.contains("a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:BwcH"),
                "{body}"
            );
            assert!(n.describe().ends_with("(SRTP)"), "{}", n.describe());
            // Keys stay out of debug output.
            assert!(!format!("{n:?}").contains("49, 50"), "{n:?}");
        }
        // A plain offer: fine unless SRTP is required.
        let plain = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 9\r\n";
        let l = Local {
            srtp: SrtpPolicy::Optional,
            ..local()
        };
        assert!(answer(&parse(plain).unwrap(), &l)
            .unwrap()
            .0
            .audio
            .unwrap()
            .srtp
            .is_none());
        let l = Local {
            srtp: SrtpPolicy::Required,
            ..local()
        };
        assert_eq!(
            answer(&parse(plain).unwrap(), &l).unwrap_err(),
            SdpError::NotEncrypted
        );
        // Unknown suites only: named.
        let odd = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/SAVP 9\r\na=crypto:1 AEAD_AES_256_GCM inline:x\r\n";
        let l = Local {
            srtp: SrtpPolicy::Optional,
            ..local()
        };
        let e = answer(&parse(odd).unwrap(), &l).unwrap_err();
        assert!(e.to_string().contains("AEAD_AES_256_GCM"), "{e}");
    }

    #[test]
    fn srtp_offer_and_the_far_ends_answer() {
        let l = Local {
            srtp: SrtpPolicy::Required,
            ..local()
        };
        let o = offer(&l, true);
        assert!(
            o.contains("m=audio 40000 RTP/SAVP 9 111 0 8 101 100\r\n"),
            "{o}"
        );
        assert_eq!(
            o.matches("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:")
                .count(),
            2,
            "{o}"
        );
        let reply = format!("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/SAVP 9\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}\r\n");
        let n = accept(&parse(&reply).unwrap(), &l).unwrap();
        assert_eq!(
            n.audio.unwrap().srtp.unwrap().recv,
            b"123456789012345678901234567890"
        );
        // A plain answer to a required offer is a clear error.
        let plain = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 9\r\n";
        assert_eq!(
            accept(&parse(plain).unwrap(), &l).unwrap_err(),
            SdpError::NotEncrypted
        );
        // Optional: plain RTP/AVP with keys offered; a plain answer is fine.
        let l = Local {
            srtp: SrtpPolicy::Optional,
            ..local()
        };
        assert!(offer(&l, false).contains("m=audio 40000 RTP/AVP"));
        assert!(accept(&parse(plain).unwrap(), &l)
            .unwrap()
            .audio
            .unwrap()
            .srtp
            .is_none());
    }

    #[test]
    fn offer_lists_every_codec_and_parses_back() {
        let o = offer(&local(), true);
        let p = parse(&o).unwrap();
        assert_eq!(p.media.len(), 2);
        assert_eq!(p.media[0].formats, vec![9, 111, 0, 8, 101, 100]);
        assert_eq!(p.media[1].bandwidth_kbps, Some(1500));
        assert_eq!(p.media[1].connection, Some("192.0.2.10".parse().unwrap()));
        let audio_only = offer(&local(), false);
        assert!(!audio_only.contains("m=video"));
    }

    #[test]
    fn accept_reads_directions_from_our_side() {
        let text = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 9\r\na=recvonly\r\n";
        let n = accept(&parse(text).unwrap(), &local()).unwrap();
        // The far end only receives: the box only sends.
        assert_eq!(n.audio.unwrap().direction, Direction::SendOnly);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for text in [
            "",
            "hello",
            "v=1\r\n",
            "v=0\r\nm=audio\r\n",
            "v=0\r\nc=IN IP4 nowhere\r\n",
            "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x y\r\n",
            "v=0\r\nm=audio 1 RTP/AVP 0\r\n",
        ] {
            let r = parse(text).and_then(|s| answer(&s, &local()));
            assert!(r.is_err(), "{text:?} gave {r:?}");
        }
    }

    #[test]
    fn media_level_connection_wins() {
        let text = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 9\r\nc=IN IP4 10.0.0.2\r\n";
        let n = accept(&parse(text).unwrap(), &local()).unwrap();
        assert_eq!(n.audio.unwrap().remote, "10.0.0.2:5000".parse().unwrap());
    }
}
