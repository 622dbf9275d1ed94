//! RFC 3161 time-stamp tokens, as far as the box and the verifier need
//! them: the request for a SHA-256 imprint, and, from the authority's
//! answer, its status, the imprint it vouches for and its time.
//!
//! The DER is written and read by hand: the request is one fixed shape,
//! and reading the answer needs only a walk down a handful of nested
//! TLVs. The token's CMS signature is not checked here: that needs the
//! authority's certificate chain, and `openssl ts -verify` (which both
//! verifiers call when given the authority's CA) does it completely.

use chrono::{DateTime, NaiveDateTime, Utc};

/// SHA-256, 2.16.840.1.101.3.4.2.1.
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
/// id-signedData, 1.2.840.113549.1.7.2.
const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
/// id-ct-TSTInfo, 1.2.840.113549.1.9.16.1.4.
const OID_TST_INFO: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x04,
];

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const GENERALIZED_TIME: u8 = 0x18;
const CONTEXT_0: u8 = 0xa0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TspError {
    #[error("the time-stamp answer is not DER the box can read ({0})")]
    Der(&'static str),
    #[error("the time-stamping authority refused (status {status})")]
    Refused { status: u64 },
    #[error("the time-stamp answer holds no token")]
    NoToken,
    #[error("the token is not a SHA-256 time stamp")]
    NotSha256,
    #[error("the token's time {0:?} is not a GeneralizedTime")]
    Time(String),
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// 0 granted, 1 granted with modifications.
    pub status: u64,
    /// The SHA-256 the authority vouches for.
    pub imprint: [u8; 32],
    pub gen_time: DateTime<Utc>,
    /// The request's nonce, echoed (big-endian bytes, as sent).
    pub nonce: Option<Vec<u8>>,
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A TimeStampReq for `imprint` (SHA-256), with a nonce and asking for the
/// authority's certificate in the token (so a verifier needs only its CA).
pub fn request(imprint: &[u8; 32], nonce: [u8; 8]) -> Vec<u8> {
    let alg = tlv(SEQUENCE, &[tlv(OID, OID_SHA256), tlv(NULL, &[])].concat());
    let message_imprint = tlv(SEQUENCE, &[alg, tlv(OCTET_STRING, imprint)].concat());
    // A positive INTEGER: a leading zero when the top bit is set.
    let mut n = nonce.to_vec();
    while n.len() > 1 && n[0] == 0 && n[1] < 0x80 {
        n.remove(0);
    }
    if n[0] >= 0x80 {
        n.insert(0, 0);
    }
    tlv(
        SEQUENCE,
        &[
            tlv(INTEGER, &[1]),
            message_imprint,
            tlv(INTEGER, &n),
            tlv(BOOLEAN, &[0xff]),
        ]
        .concat(),
    )
}

/// One TLV off the front of `input`: (tag, content, rest).
fn next(input: &[u8]) -> Result<(u8, &[u8], &[u8]), TspError> {
    let (&tag, rest) = input.split_first().ok_or(TspError::Der("truncated"))?;
    if tag & 0x1f == 0x1f {
        return Err(TspError::Der("a high tag number"));
    }
    let (&first, rest) = rest.split_first().ok_or(TspError::Der("truncated"))?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let k = (first & 0x7f) as usize;
        if k == 0 || k > 4 || rest.len() < k {
            return Err(TspError::Der("a length it cannot read"));
        }
        let len = rest[..k]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[k..])
    };
    if rest.len() < len {
        return Err(TspError::Der("truncated"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The next TLV, which must have `tag`: (content, rest).
fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), TspError> {
    let (t, content, rest) = next(input)?;
    if t != tag {
        return Err(TspError::Der(what));
    }
    Ok((content, rest))
}

/// A non-negative INTEGER of at most 8 bytes (a leading zero byte
/// allowed); anything else is refused, not truncated.
fn uint(content: &[u8]) -> Result<u64, TspError> {
    let body = match content {
        [0, rest @ ..] if !rest.is_empty() => rest,
        [first, ..] if *first >= 0x80 => return Err(TspError::Der("a negative INTEGER")),
        [] => return Err(TspError::Der("an empty INTEGER")),
        all => all,
    };
    if body.len() > 8 {
        return Err(TspError::Der("an INTEGER too large"));
    }
    Ok(body.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64))
}

/// Read a TimeStampResp (as the authority answers, and as `manifest.tsr`
/// keeps it).
pub fn parse_response(der: &[u8]) -> Result<Token, TspError> {
    let (resp, _) = expect(der, SEQUENCE, "TimeStampResp")?;
    let (status_info, rest) = expect(resp, SEQUENCE, "PKIStatusInfo")?;
    let (status, _) = expect(status_info, INTEGER, "PKIStatus")?;
    let status = uint(status)?;
    if status > 1 {
        return Err(TspError::Refused { status });
    }
    if rest.is_empty() {
        return Err(TspError::NoToken);
    }
    // TimeStampToken: ContentInfo { id-signedData, [0] SignedData }.
    let (content_info, _) = expect(rest, SEQUENCE, "ContentInfo")?;
    let (oid, rest) = expect(content_info, OID, "contentType")?;
    if oid != OID_SIGNED_DATA {
        return Err(TspError::Der("a token that is not SignedData"));
    }
    let (explicit, _) = expect(rest, CONTEXT_0, "content")?;
    let (signed_data, _) = expect(explicit, SEQUENCE, "SignedData")?;
    let (_, rest) = expect(signed_data, INTEGER, "SignedData version")?;
    let (_, rest) = expect(rest, SET, "digestAlgorithms")?;
    let (encap, _) = expect(rest, SEQUENCE, "encapContentInfo")?;
    let (oid, rest) = expect(encap, OID, "eContentType")?;
    if oid != OID_TST_INFO {
        return Err(TspError::Der("signed content that is not TSTInfo"));
    }
    let (explicit, _) = expect(rest, CONTEXT_0, "eContent")?;
    let (tst, _) = expect(explicit, OCTET_STRING, "eContent")?;
    let (tst, _) = expect(tst, SEQUENCE, "TSTInfo")?;
    let (_, rest) = expect(tst, INTEGER, "TSTInfo version")?;
    let (_, rest) = expect(rest, OID, "policy")?;
    let (mi, rest) = expect(rest, SEQUENCE, "messageImprint")?;
    let (alg, mi_rest) = expect(mi, SEQUENCE, "hashAlgorithm")?;
    let (alg_oid, _) = expect(alg, OID, "hashAlgorithm")?;
    if alg_oid != OID_SHA256 {
        return Err(TspError::NotSha256);
    }
    let (hash, _) = expect(mi_rest, OCTET_STRING, "hashedMessage")?;
    let imprint: [u8; 32] = hash.try_into().map_err(|_| TspError::NotSha256)?;
    let (_, rest) = expect(rest, INTEGER, "serialNumber")?;
    let (time, mut rest) = expect(rest, GENERALIZED_TIME, "genTime")?;
    let gen_time = generalized_time(time)?;
    // accuracy SEQUENCE, ordering BOOLEAN, nonce INTEGER, all optional.
    let mut nonce = None;
    while !rest.is_empty() {
        let (tag, content, r) = next(rest)?;
        if tag == INTEGER {
            nonce = Some(content.to_vec());
            break;
        }
        if tag != SEQUENCE && tag != BOOLEAN {
            break;
        }
        rest = r;
    }
    Ok(Token {
        status,
        imprint,
        gen_time,
        nonce,
    })
}

/// `YYYYMMDDHHMMSS[.f+]Z` (RFC 3161 asks for UTC and no trailing zeros).
fn generalized_time(content: &[u8]) -> Result<DateTime<Utc>, TspError> {
    let text = String::from_utf8_lossy(content).into_owned();
    let bad = || TspError::Time(text.clone());
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (whole, frac) = match body.split_once('.') {
        Some((w, f)) => (w, f),
        None => (body, ""),
    };
    let t = NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S").map_err(|_| bad())?;
    let mut nanos = 0u32;
    if !frac.is_empty() {
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        nanos = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    }
    Ok(t.and_utc() + chrono::Duration::nanoseconds(nanos.into()))
}

/// The nonce as an INTEGER's content compares with the one sent.
pub fn same_nonce(sent: [u8; 8], echoed: &[u8]) -> bool {
    let strip = |b: &[u8]| -> Vec<u8> { b.iter().copied().skip_while(|x| *x == 0).collect() };
    strip(&sent) == strip(echoed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TimeStampResp built field by field after RFC 3161, with zeros
    /// where the signer infos go (they are not read here). Real answers
    /// from `openssl ts -reply` are read in `tests/archive.rs`.
    fn response(imprint: &[u8; 32], time: &str, nonce: &[u8]) -> Vec<u8> {
        let alg = tlv(SEQUENCE, &[tlv(OID, OID_SHA256), tlv(NULL, &[])].concat());
        let tst = tlv(
            SEQUENCE,
            &[
                tlv(INTEGER, &[1]),
                tlv(OID, &[0x2a, 0x03, 0x04, 0x01]),
                tlv(
                    SEQUENCE,
                    &[alg.clone(), tlv(OCTET_STRING, imprint)].concat(),
                ),
                tlv(INTEGER, &[0x05]),
                tlv(GENERALIZED_TIME, time.as_bytes()),
                tlv(SEQUENCE, &tlv(INTEGER, &[1])),
                tlv(BOOLEAN, &[0xff]),
                tlv(INTEGER, nonce),
            ]
            .concat(),
        );
        let encap = tlv(
            SEQUENCE,
            &[
                tlv(OID, OID_TST_INFO),
                tlv(CONTEXT_0, &tlv(OCTET_STRING, &tst)),
            ]
            .concat(),
        );
        let signed = tlv(
            SEQUENCE,
            &[
                tlv(INTEGER, &[3]),
                tlv(SET, &alg),
                encap,
                tlv(SET, &[0u8; 300]),
            ]
            .concat(),
        );
        let info = tlv(
            SEQUENCE,
            &[tlv(OID, OID_SIGNED_DATA), tlv(CONTEXT_0, &signed)].concat(),
        );
        tlv(
            SEQUENCE,
            &[tlv(SEQUENCE, &tlv(INTEGER, &[0])), info].concat(),
        )
    }

    #[test]
    fn the_request_is_the_rfc_shape() {
        let r = request(&[7u8; 32], [0x80, 0, 0, 0, 0, 0, 0, 1]);
        // SEQUENCE { INTEGER 1, SEQUENCE { SEQUENCE { OID, NULL }, OCTET
        // STRING[32] }, INTEGER nonce (with a leading zero), BOOLEAN TRUE }.
        assert_eq!(r[0], SEQUENCE);
        assert_eq!(&r[2..5], &[INTEGER, 1, 1]);
        let (body, rest) = expect(&r, SEQUENCE, "req").unwrap();
        assert!(rest.is_empty());
        let (_, rest) = expect(body, INTEGER, "v").unwrap();
        let (_, rest) = expect(rest, SEQUENCE, "mi").unwrap();
        let (nonce, rest) = expect(rest, INTEGER, "nonce").unwrap();
        assert_eq!(nonce, &[0, 0x80, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(rest, &[BOOLEAN, 1, 0xff]);
        assert!(same_nonce([0x80, 0, 0, 0, 0, 0, 0, 1], nonce));
        assert!(!same_nonce([0x81, 0, 0, 0, 0, 0, 0, 1], nonce));
    }

    #[test]
    fn a_token_gives_its_imprint_time_and_nonce() {
        let t = parse_response(&response(&[9u8; 32], "20261130104521.25Z", &[1, 2, 3, 4])).unwrap();
        assert_eq!(t.imprint, [9u8; 32]);
        assert_eq!(t.gen_time.to_rfc3339(), "2026-11-30T10:45:21.250+00:00");
        assert_eq!(t.nonce.as_deref(), Some(&[1u8, 2, 3, 4][..]));
        assert_eq!(t.status, 0);
    }

    #[test]
    fn what_is_not_a_token_says_why() {
        let good = response(&[9u8; 32], "20261130104521Z", &[1]);
        for cut in [0, 1, 10, good.len() / 2, good.len() - 1] {
            assert!(parse_response(&good[..cut]).is_err(), "cut at {cut}");
        }
        // A status that only reads as 0 when its high bytes are dropped.
        let wide = tlv(
            SEQUENCE,
            &tlv(SEQUENCE, &tlv(INTEGER, &[1, 0, 0, 0, 0, 0, 0, 0, 0])),
        );
        assert!(parse_response(&wide).is_err());
        let refused = tlv(SEQUENCE, &tlv(SEQUENCE, &tlv(INTEGER, &[2])));
        assert_eq!(
            parse_response(&refused),
            Err(TspError::Refused { status: 2 })
        );
        let granted_empty = tlv(SEQUENCE, &tlv(SEQUENCE, &tlv(INTEGER, &[0])));
        assert_eq!(parse_response(&granted_empty), Err(TspError::NoToken));
        assert!(matches!(
            parse_response(&response(&[9u8; 32], "2026-11-30", &[1])),
            Err(TspError::Time(_))
        ));
        assert!(parse_response(b"<html>502 Bad Gateway</html>").is_err());
    }
}
