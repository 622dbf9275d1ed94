//! The `[sip]` section: the box as a room endpoint of the province's video
//! conference (see `src/sip/` and docs/SIP.md).

use std::time::Duration;

use super::{problem, raw::RawSip, Problem};
use crate::core::net::Cidr;
use crate::core::sdp::SrtpPolicy;

/// Which paths carry the room to the province.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The SRT uplink only (`[uplink]`); no SIP.
    Srt,
    /// The conference call only.
    Sip,
    /// Both: the call, and the SRT uplink beside it.
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipTransport {
    Udp,
    Tcp,
    /// TCP with TLS: the SIP server's certificate checked against `[sip]
    /// ca` (or the system's authorities), the signalling and the SRTP keys
    /// in it private.
    Tls,
}

impl SipTransport {
    pub fn name(self) -> &'static str {
        match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
            SipTransport::Tls => "tls",
        }
    }

    /// The port a server listens on when none is written.
    pub fn default_port(self) -> u16 {
        match self {
            SipTransport::Tls => 5061,
            _ => 5060,
        }
    }
}

/// The authorities a TLS SIP server's certificate is checked against when
/// `[sip] ca` is empty: Debian's bundle.
pub const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What an allowed incoming call does while the room is idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Answer at once and start the session (MCUs that dial every room).
    Auto,
    /// Ring on the screen; the session starts when someone presses the button.
    Button,
}

/// A SIP address, checked: `sip:[user@]host[:port][;params]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub text: String,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SipUri {
    pub fn parse(s: &str) -> Result<SipUri, String> {
        let bad = |why: &str| {
            format!(
                "'{s}' is not a SIP address ({why}); expected e.g. \"sip:8001@mcu.tinh.example\""
            )
        };
        let rest = s
            .strip_prefix("sip:")
            .ok_or_else(|| bad("it must start with sip:"))?;
        let addr = rest.split([';', '?']).next().unwrap_or_default();
        let (user, hostport) = match addr.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, addr),
        };
        if user.as_deref() == Some("") {
            return Err(bad("the user before @ is empty"));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("the port is not 1 to 65535"))?;
                (h, Some(port))
            }
            _ => (hostport, None),
        };
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
        if !host_ok {
            return Err(bad(
                "the host is empty or has characters a host cannot have",
            ));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains spaces"));
        }
        Ok(SipUri {
            text: s.to_owned(),
            user,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }
}

/// `HOST:PORT` where requests go first (the province's SIP server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    fn parse(s: &str) -> Result<HostPort, String> {
        let bad = || format!("'{s}' is not HOST:PORT, e.g. \"mcu.tinh.example:5060\"");
        let (h, p) = s.rsplit_once(':').ok_or_else(bad)?;
        let port = p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?;
        if h.is_empty() || h.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(HostPort {
            host: h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port,
        })
    }
}

/// The validated `[sip]` section; in the config only when mode is not `srt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sip {
    pub mode: Mode,
    /// Dialled when a session starts; `None`: the box only takes calls.
    pub conference: Option<SipUri>,
    /// Where the box registers, so that the MCU can call it; `None`: no
    /// registration (calls come straight to `local_port`).
    pub registrar: Option<SipUri>,
    /// Where requests go first; `None`: the registrar's (or the
    /// conference's) host.
    pub proxy: Option<HostPort>,
    pub transport: SipTransport,
    /// The box's SIP user (`room1`); the site id when empty.
    pub user: String,
    /// Digest credentials; `None` when no password is set.
    pub credentials: Option<(String, String)>,
    pub local_port: u16,
    /// Audio RTP on this port (RTCP on +1), video on +2 (RTCP +3).
    pub rtp_port: u16,
    pub answer: Answer,
    /// Signalling sources that may call in directly, beside the registrar.
    pub allow: Vec<Cidr>,
    pub register_expires: Duration,
    /// CRLF keep-alive interval on the registration flow (RFC 5626).
    pub keepalive: Duration,
    pub redial_max: Duration,
    /// Offer and send video (off: an audio-only room).
    pub video: bool,
    pub srtp: SrtpPolicy,
    /// A meeting PIN sent as RFC 4733 events once the conference answers
    /// (digits 0-9, `*`, `#`, A-D), after `pin_delay`: MCUs play their
    /// "enter the PIN" prompt first.
    pub pin: Option<String>,
    pub pin_delay: Duration,
    /// A STUN server (RFC 8489) to learn where the media ports are seen
    /// from outside a NAT, asked before each offer or answer.
    pub stun: Option<HostPort>,
    /// The authority for a TLS SIP server's certificate (`None`: the
    /// system's, [`SYSTEM_CA`]).
    pub ca: Option<std::path::PathBuf>,
}

impl Sip {
    /// Where the box's SIP requests go first: the proxy, else the
    /// registrar, else the conference (5060, or 5061 over TLS, when none is written).
    /// `None` for a box that only takes calls from `allow`.
    pub fn next_hop(&self) -> Option<(String, u16)> {
        match (&self.proxy, &self.registrar, &self.conference) {
            (Some(p), _, _) => Some((p.host.clone(), p.port)),
            (None, Some(r), _) => Some((
                r.host.clone(),
                r.port.unwrap_or(self.transport.default_port()),
            )),
            (None, None, Some(c)) => Some((
                c.host.clone(),
                c.port.unwrap_or(self.transport.default_port()),
            )),
            _ => None,
        }
    }
}

pub(super) fn validate(
    config_path: &std::path::Path,
    raw: RawSip,
    uplink_set: bool,
    return_feed_set: bool,
) -> Result<Option<Sip>, Problem> {
    let p = |key: &'static str, m: String| problem("sip", key, m);
    let mode = match raw.mode.as_str() {
        "srt" => Mode::Srt,
        "sip" => Mode::Sip,
        "both" => Mode::Both,
        other => {
            return Err(p(
                "mode",
                format!("'{other}' is not a mode; expected \"srt\", \"sip\" or \"both\""),
            ))
        }
    };
    if mode == Mode::Srt {
        if !raw.conference.is_empty() || !raw.registrar.is_empty() {
            return Err(p(
                "mode",
                "a conference or registrar is set but mode is \"srt\"; set mode = \"sip\" (the call only) or \"both\" (the call and the SRT uplink)".into(),
            ));
        }
        return Ok(None);
    }
    if return_feed_set {
        return Err(p(
            "mode",
            "with a conference call the MCU's picture is the room's return feed; set [return_feed] enabled = false".into(),
        ));
    }
    if mode == Mode::Sip && uplink_set {
        return Err(p(
            "mode",
            "mode \"sip\" sends no SRT, but [uplink] url is set; use mode = \"both\" for the call and the SRT uplink, or remove the url".into(),
        ));
    }
    if mode == Mode::Both && !uplink_set {
        return Err(p(
            "mode",
            "mode \"both\" needs the SRT uplink's [uplink] url; use mode = \"sip\" for the call only".into(),
        ));
    }
    let uri = |key: &'static str, v: &str| -> Result<Option<SipUri>, Problem> {
        if v.is_empty() {
            Ok(None)
        } else {
            SipUri::parse(v).map(Some).map_err(|m| p(key, m))
        }
    };
    let conference = uri("conference", &raw.conference)?;
    let registrar = uri("registrar", &raw.registrar)?;
    if conference.is_none() && registrar.is_none() && raw.allow.is_empty() {
        return Err(p(
            "conference",
            "missing; expected the conference to dial, e.g. conference = \"sip:8001@mcu.tinh.example\", a registrar so the MCU can call the box, or the MCU's address in allow".into(),
        ));
    }
    let proxy = if raw.proxy.is_empty() {
        None
    } else {
        Some(HostPort::parse(&raw.proxy).map_err(|m| p("proxy", m))?)
    };
    let transport = match raw.transport.as_str() {
        "udp" => SipTransport::Udp,
        "tcp" => SipTransport::Tcp,
        "tls" => SipTransport::Tls,
        other => {
            return Err(p(
                "transport",
                format!("'{other}' is not a transport; expected \"udp\", \"tcp\" or \"tls\""),
            ))
        }
    };
    let user_ok = |u: &str| {
        u.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()+".contains(c))
    };
    if !user_ok(&raw.user) {
        return Err(p(
            "user",
            format!(
                "'{}' has characters a SIP user cannot have; expected letters, digits, - _ .",
                raw.user
            ),
        ));
    }
    if registrar.is_some() && raw.password.is_empty() {
        return Err(p(
            "password",
            "a registrar is set but the password is empty; the province's SIP server gives each room a password (put it in site.toml)".into(),
        ));
    }
    let credentials = (!raw.password.is_empty()).then(|| {
        let who = if raw.auth_user.is_empty() {
            raw.user.clone()
        } else {
            raw.auth_user.clone()
        };
        (who, raw.password.clone())
    });
    if raw.local_port == 0 {
        return Err(p(
            "local_port",
            "0 is not a port; expected 1 to 65535, usually 5060".into(),
        ));
    }
    if raw.rtp_port < 1024 || raw.rtp_port % 2 != 0 || raw.rtp_port > 65530 {
        return Err(p(
            "rtp_port",
            format!(
                "{} is not an even port from 1024 to 65530 (audio uses it and the next, video the two after)",
                raw.rtp_port
            ),
        ));
    }
    let answer = match raw.answer.as_str() {
        "auto" => Answer::Auto,
        "button" => Answer::Button,
        other => {
            return Err(p(
                "answer",
                format!("'{other}' is not an answer mode; expected \"auto\" or \"button\""),
            ))
        }
    };
    let allow = raw
        .allow
        .iter()
        .map(|a| a.parse::<Cidr>().map_err(|m| p("allow", m)))
        .collect::<Result<Vec<_>, _>>()?;
    if !(60..=3600).contains(&raw.register_expires_s) {
        return Err(p(
            "register_expires_s",
            format!(
                "{} is out of range; expected 60 to 3600 seconds",
                raw.register_expires_s
            ),
        ));
    }
    if !(5..=120).contains(&raw.keepalive_s) {
        return Err(p(
            "keepalive_s",
            format!(
                "{} is out of range; expected 5 to 120 seconds (carrier NAT forgets a binding after about 30)",
                raw.keepalive_s
            ),
        ));
    }
    if !(1.0..=300.0).contains(&raw.redial_max_s) {
        return Err(p(
            "redial_max_s",
            format!(
                "{} is out of range; expected 1 to 300 seconds",
                raw.redial_max_s
            ),
        ));
    }
    let srtp = match raw.srtp.as_str() {
        "off" => SrtpPolicy::Off,
        "optional" => SrtpPolicy::Optional,
        "required" => SrtpPolicy::Required,
        other => {
            return Err(p(
                "srtp",
                format!(
                "'{other}' is not an SRTP setting; expected \"off\", \"optional\" or \"required\""
            ),
            ))
        }
    };
    let pin = raw.pin.trim().to_ascii_uppercase();
    if let Some(c) = pin.chars().find(|c| !"0123456789*#ABCD".contains(*c)) {
        return Err(p(
            "pin",
            format!("'{c}' cannot be sent as a keypad tone; a PIN is digits 0-9, *, # and A-D, e.g. \"123456#\""),
        ));
    }
    if pin.len() > 32 {
        return Err(p("pin", "is longer than 32 keys".to_owned()));
    }
    if !pin.is_empty() && conference.is_none() {
        return Err(p(
            "pin",
            "is sent when the box dials the conference; set conference too (or remove pin)"
                .to_owned(),
        ));
    }
    if !(0.0..=60.0).contains(&raw.pin_delay_s) {
        return Err(p(
            "pin_delay_s",
            format!(
                "{} is out of range; expected 0 to 60 seconds",
                raw.pin_delay_s
            ),
        ));
    }
    // Relative to the configuration file, like [mqtt]'s certificates.
    let ca = match raw.ca.trim() {
        "" => None,
        c => {
            let path = config_path
                .parent()
                .unwrap_or(std::path::Path::new("/"))
                .join(c);
            if !path.is_file() {
                return Err(p(
                    "ca",
                    format!(
                        "{} does not exist or is not a file; expected the PEM certificate of the authority that signed the SIP server's",
                        path.display()
                    ),
                ));
            }
            Some(path)
        }
    };
    if ca.is_some() && transport != SipTransport::Tls {
        return Err(p(
            "ca",
            "is used with transport = \"tls\" only; set transport too (or remove ca)".into(),
        ));
    }
    let stun = match raw.stun.trim() {
        "" => None,
        s if !s.contains(':') => {
            Some(HostPort::parse(&format!("{s}:3478")).map_err(|m| p("stun", m))?)
        }
        s => Some(HostPort::parse(s).map_err(|m| p("stun", m))?),
    };
    Ok(Some(Sip {
        ca,
        stun,
        pin: (!pin.is_empty()).then_some(pin),
        pin_delay: Duration::from_secs_f64(raw.pin_delay_s),
        srtp,
        mode,
        conference,
        registrar,
        proxy,
        transport,
        user: raw.user,
        credentials,
        local_port: raw.local_port,
        rtp_port: raw.rtp_port,
        answer,
        allow,
        register_expires: Duration::from_secs(raw.register_expires_s.into()),
        keepalive: Duration::from_secs(raw.keepalive_s.into()),
        redial_max: Duration::from_secs_f64(raw.redial_max_s),
        video: raw.video,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const BASE: &str = "[site]\nid=\"x\"\nname=\"X\"\n";

    fn parse(sip: &str) -> Result<Config, String> {
        Config::parse(
            std::path::Path::new("c.toml"),
            &format!("{BASE}[sip]\n{sip}"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn sip_section_errors_name_line_and_key() {
        let e = parse("mode = \"sip\"\nconference = \"8001@mcu\"\n").unwrap_err();
        assert!(e.starts_with("c.toml:6:1:") && e.contains("sip:"), "{e}");
        let e = parse("mode = \"sip\"\n").unwrap_err();
        assert!(e.contains("'conference'") && e.contains("registrar"), "{e}");
        let e = parse("mode = \"srt\"\nconference = \"sip:1@h\"\n").unwrap_err();
        assert!(e.contains("'mode'") && e.contains("\"both\""), "{e}");
        let e = parse("mode = \"sip\"\nregistrar = \"sip:h\"\n").unwrap_err();
        assert!(e.contains("'password'") && e.contains("site.toml"), "{e}");
        let e = parse("mode = \"sip\"\nconference = \"sip:1@h\"\nallow = [\"10.0.0.0/40\"]\n")
            .unwrap_err();
        assert!(e.contains("'allow'") && e.contains("prefix"), "{e}");
        let e = parse("mode = \"both\"\nconference = \"sip:1@h\"\n").unwrap_err();
        assert!(e.contains("[uplink] url"), "{e}");
        let e = parse("mode = \"sip\"\nconference = \"sip:1@h\"\nrtp_port = 40001\n").unwrap_err();
        assert!(e.contains("even"), "{e}");
        let e = parse("mode = \"sip\"\nconfernce = \"sip:1@h\"\n").unwrap_err();
        assert!(e.contains("did you mean 'conference'"), "{e}");
        let c = parse("mode = \"sip\"\nconference = \"sip:8001@mcu.example\"\n").unwrap();
        let sip = c.sip.unwrap();
        assert_eq!(sip.conference.unwrap().user.as_deref(), Some("8001"));
        assert!(parse("").unwrap().sip.is_none());
    }

    #[test]
    fn a_meeting_pin_is_keypad_keys_for_a_dialled_conference() {
        let c = parse("mode = \"sip\"\nconference = \"sip:1@h\"\npin = \" 12ab# \"\n").unwrap();
        let sip = c.sip.unwrap();
        assert_eq!(sip.pin.as_deref(), Some("12AB#"));
        assert_eq!(sip.pin_delay, Duration::from_secs(3));
        let e = parse("mode = \"sip\"\nconference = \"sip:1@h\"\npin = \"12-34\"\n").unwrap_err();
        assert!(e.contains("'pin'") && e.contains("'-'"), "{e}");
        let e = parse("mode = \"sip\"\nallow = [\"10.0.0.1\"]\npin = \"1\"\n").unwrap_err();
        assert!(e.contains("'pin'") && e.contains("conference"), "{e}");
        let e = parse("mode = \"sip\"\nconference = \"sip:1@h\"\npin_delay_s = 99\n").unwrap_err();
        assert!(e.contains("'pin_delay_s'"), "{e}");
        assert!(parse("mode = \"sip\"\nconference = \"sip:1@h\"\n")
            .unwrap()
            .sip
            .unwrap()
            .pin
            .is_none());
    }

    #[test]
    fn a_stun_server_is_host_and_port_3478_by_default() {
        let stun = |v: &str| {
            parse(&format!(
                "mode = \"sip\"\nconference = \"sip:1@h\"\nstun = \"{v}\"\n"
            ))
            .map(|c| c.sip.unwrap().stun.map(|h| (h.host, h.port)))
        };
        assert_eq!(
            stun("stun.tinh.example"),
            Ok(Some(("stun.tinh.example".into(), 3478)))
        );
        assert_eq!(stun("10.0.0.1:3479"), Ok(Some(("10.0.0.1".into(), 3479))));
        assert_eq!(stun(""), Ok(None));
        let e = stun("h:0").unwrap_err();
        assert!(e.contains("'stun'"), "{e}");
    }

    #[test]
    fn tls_takes_port_5061_and_an_authority_beside_the_config() {
        let tls = "mode = \"sip\"\nregistrar = \"sip:mcu.example\"\npassword = \"x\"\ntransport = \"tls\"\n";
        let sip = parse(tls).unwrap().sip.unwrap();
        assert_eq!(sip.transport, SipTransport::Tls);
        assert_eq!(sip.next_hop(), Some(("mcu.example".into(), 5061)));
        assert_eq!(sip.ca, None);
        let e = parse(&format!("{tls}ca = \"nowhere.pem\"\n")).unwrap_err();
        assert!(e.contains("'ca'") && e.contains("nowhere.pem"), "{e}");
        // An authority that exists, but the transport is not TLS.
        let e =
            parse("mode = \"sip\"\nregistrar = \"sip:m\"\npassword = \"x\"\nca = \"Cargo.toml\"\n")
                .unwrap_err();
        assert!(e.contains("'ca'") && e.contains("\"tls\""), "{e}");
        let e =
            parse("mode = \"sip\"\nconference = \"sip:1@h\"\ntransport = \"sctp\"\n").unwrap_err();
        assert!(e.contains("\"tls\""), "{e}");
    }

    #[test]
    fn sip_uris() {
        let u = SipUri::parse("sip:8001@mcu.tinh.example:5070;transport=tcp").unwrap();
        assert_eq!(u.user.as_deref(), Some("8001"));
        assert_eq!((u.host.as_str(), u.port), ("mcu.tinh.example", Some(5070)));
        let h = SipUri::parse("sip:10.0.0.5").unwrap();
        assert_eq!((h.user, h.port), (None, None));
        for bad in [
            "8001@mcu",
            "sip:",
            "sip:@mcu",
            "sip:8001@",
            "sip:8001@mcu:0",
            "sip:8001@mcu:x",
            "sip:8001@mc u",
            "tel:+84",
        ] {
            assert!(SipUri::parse(bad).is_err(), "{bad}");
        }
    }
}
