//! What the room does with an incoming call, and when it dials: plain
//! decisions, apart from the SIP stack, with the phase and the call's state
//! passed in.

use std::net::IpAddr;

use crate::config::sip::Answer;
use crate::core::net::Cidr;
use crate::core::session::Phase;
use crate::core::status::CallState;

/// What to do with a new INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// 403: the signalling did not come from a source the box trusts.
    Forbidden,
    /// 486: the room is in a call, or ending a session.
    Busy,
    /// Answer now; `start` when the answer also starts a session.
    Answer { start: bool },
    /// 180 and wait for the button.
    Ring,
}

/// Whether the INVITE came from a source the box trusts: the registrar or
/// proxy it registered with (which authenticated the caller), or an
/// address on the `allow` list. The From header is not looked at: anyone
/// can write it.
pub fn allowed(source: IpAddr, trusted: &[IpAddr], allow: &[Cidr]) -> bool {
    let source = match source {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(source),
        v4 => v4,
    };
    trusted.contains(&source) || allow.iter().any(|c| c.contains(source))
}

pub fn incoming(allowed: bool, phase: Phase, call: CallState, answer: Answer) -> Incoming {
    if !allowed {
        return Incoming::Forbidden;
    }
    match (call, phase) {
        (CallState::Connected | CallState::Dialing | CallState::Ringing, _) => Incoming::Busy,
        (_, Phase::Stopping) => Incoming::Busy,
        // The session runs and its call dropped: the MCU calling back is
        // the call the room wants.
        (_, Phase::Starting | Phase::Live) => Incoming::Answer { start: false },
        (_, Phase::Idle | Phase::Fault) => match answer {
            Answer::Auto => Incoming::Answer { start: true },
            Answer::Button => Incoming::Ring,
        },
    }
}

/// Whether the box should dial the conference now.
pub fn should_dial(phase: Phase, call: CallState, has_conference: bool) -> bool {
    has_conference && matches!(phase, Phase::Starting | Phase::Live) && call == CallState::Idle
}

#[cfg(test)]
mod tests {
    use super::*;
    use Phase::{Fault, Idle, Live, Starting, Stopping};

    #[test]
    fn from_header_is_never_the_test() {
        let allow: Vec<Cidr> = vec!["10.20.0.0/16".parse().unwrap()];
        let registrar: IpAddr = "203.0.113.7".parse().unwrap();
        assert!(allowed("10.20.3.4".parse().unwrap(), &[registrar], &allow));
        assert!(allowed(registrar, &[registrar], &allow));
        assert!(allowed(
            "::ffff:203.0.113.7".parse().unwrap(),
            &[registrar],
            &allow
        ));
        assert!(!allowed(
            "198.51.100.1".parse().unwrap(),
            &[registrar],
            &allow
        ));
        assert!(!allowed("10.21.0.1".parse().unwrap(), &[], &allow));
    }

    #[test]
    fn every_phase_and_call_state() {
        use CallState::{Connected, Dialing, Redialing, Ringing};
        for phase in [Idle, Starting, Live, Stopping, Fault] {
            for call in [CallState::Idle, Dialing, Ringing, Connected, Redialing] {
                for answer in [Answer::Auto, Answer::Button] {
                    assert_eq!(incoming(false, phase, call, answer), Incoming::Forbidden);
                    let d = incoming(true, phase, call, answer);
                    let expect = match (call, phase) {
                        (Dialing | Ringing | Connected, _) | (_, Stopping) => Incoming::Busy,
                        (_, Starting | Live) => Incoming::Answer { start: false },
                        _ if answer == Answer::Auto => Incoming::Answer { start: true },
                        _ => Incoming::Ring,
                    };
                    assert_eq!(d, expect, "{phase:?} {call:?} {answer:?}");
                }
            }
        }
    }

    #[test]
    fn dials_only_for_a_session_without_a_call() {
        assert!(should_dial(Starting, CallState::Idle, true));
        assert!(should_dial(Live, CallState::Idle, true));
        assert!(!should_dial(Live, CallState::Redialing, true));
        assert!(!should_dial(Live, CallState::Connected, true));
        assert!(!should_dial(Idle, CallState::Idle, true));
        assert!(!should_dial(Live, CallState::Idle, false));
    }
}
