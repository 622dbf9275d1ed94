//! Just enough STUN (RFC 8489) to learn where a media port is seen from
//! outside a NAT: a Binding request, and the XOR-MAPPED-ADDRESS (or the
//! old MAPPED-ADDRESS) of its success response. Pure bytes in and out; the
//! SIP actor does the sending.
//!
//! A box behind 4G carrier NAT advertises its private address in its SDP
//! unless it knows better; a far end that does not latch onto where the
//! media really come from then sends into nowhere. With `[sip] stun` set,
//! the box asks from each of its media ports before each offer or answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The fixed cookie of every RFC 5389/8489 message.
pub const MAGIC: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    #[error("not a STUN message")]
    NotStun,
    #[error("an answer to another request")]
    OtherTransaction,
    #[error("the STUN server refused the request (error response)")]
    Refused,
    #[error("the STUN response carries no mapped address")]
    NoAddress,
}

/// A Binding request with transaction id `txid`.
pub fn binding_request(txid: [u8; 12]) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // Length 0: no attributes.
    m[4..8].copy_from_slice(&MAGIC.to_be_bytes());
    m[8..].copy_from_slice(&txid);
    m
}

/// The address the server saw the request come from.
pub fn mapped_address(msg: &[u8], txid: [u8; 12]) -> Result<SocketAddr, StunError> {
    if msg.len() < 20 || msg[0] & 0xc0 != 0 || msg[4..8] != MAGIC.to_be_bytes() {
        return Err(StunError::NotStun);
    }
    if msg[8..20] != txid {
        return Err(StunError::OtherTransaction);
    }
    match u16::from_be_bytes([msg[0], msg[1]]) {
        BINDING_SUCCESS => {}
        BINDING_ERROR => return Err(StunError::Refused),
        _ => return Err(StunError::NotStun),
    }
    let len = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
    let body = msg.get(20..20 + len).ok_or(StunError::NotStun)?;
    let (mut at, mut plain) = (0, None);
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let alen = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let Some(value) = body.get(at + 4..at + 4 + alen) else {
            break;
        };
        match kind {
            XOR_MAPPED_ADDRESS => {
                if let Some(a) = address(value, Some(txid)) {
                    return Ok(a);
                }
            }
            MAPPED_ADDRESS => plain = plain.or_else(|| address(value, None)),
            _ => {}
        }
        // Attributes are padded to four bytes.
        at += 4 + alen.div_ceil(4) * 4;
    }
    plain.ok_or(StunError::NoAddress)
}

/// A (XOR-)MAPPED-ADDRESS value: reserved, family, port, address.
fn address(v: &[u8], xor: Option<[u8; 12]>) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]);
    let cookie = MAGIC.to_be_bytes();
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&cookie);
    if let Some(t) = xor {
        key[4..].copy_from_slice(&t);
    }
    let x = |b: &[u8]| -> Vec<u8> {
        b.iter()
            .zip(key.iter())
            .map(|(b, k)| if xor.is_some() { b ^ k } else { *b })
            .collect()
    };
    let port = if xor.is_some() {
        port ^ (MAGIC >> 16) as u16
    } else {
        port
    };
    let ip = match v.get(1)? {
        1 => {
            let a = x(v.get(4..8)?);
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        }
        2 => {
            let a: [u8; 16] = x(v.get(4..20)?).try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(a))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TXID: [u8; 12] = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    /// RFC 5769 §2.2, the sample IPv4 response: XOR-MAPPED-ADDRESS
    /// 192.0.2.1:32853 (after a SOFTWARE attribute), then MESSAGE-INTEGRITY
    /// and FINGERPRINT, which the box does not need.
    const RFC5769_V4: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
        0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
        0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];

    #[test]
    fn reads_the_rfc_5769_sample_response() {
        assert_eq!(
            mapped_address(&RFC5769_V4, TXID),
            Ok("192.0.2.1:32853".parse().unwrap())
        );
    }

    #[test]
    fn a_request_is_a_bare_binding_with_the_cookie() {
        let r = binding_request(TXID);
        assert_eq!(&r[..4], &[0, 1, 0, 0]);
        assert_eq!(&r[4..8], &MAGIC.to_be_bytes());
        assert_eq!(&r[8..], &TXID);
    }

    #[test]
    fn wrong_or_broken_answers_are_errors_not_panics() {
        assert_eq!(mapped_address(&[], TXID), Err(StunError::NotStun));
        assert_eq!(
            mapped_address(&RFC5769_V4, [0; 12]),
            Err(StunError::OtherTransaction)
        );
        let mut err = RFC5769_V4;
        err[1] = 0x11;
        assert_eq!(mapped_address(&err, TXID), Err(StunError::Refused));
        // Cut short: the length says more than there is.
        assert_eq!(
            mapped_address(&RFC5769_V4[..40], TXID),
            Err(StunError::NotStun)
        );
        // A success with no address at all.
        let mut bare = binding_request(TXID);
        bare[0] = 0x01;
        assert_eq!(mapped_address(&bare, TXID), Err(StunError::NoAddress));
        for n in 0..RFC5769_V4.len() {
            let _ = mapped_address(&RFC5769_V4[..n], TXID);
        }
    }
}
