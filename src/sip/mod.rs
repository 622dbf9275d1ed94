//! The SIP room endpoint: the actor that registers with the province's SIP
//! server, dials the conference when a session starts, answers the MCU's
//! calls, and redials with backoff while the session goes on.
//!
//! Signalling is rsipstack (docs/SIP.md says why); media stays in
//! GStreamer: the actor tells the media engine what each call negotiated
//! (`MediaHandle::call`), and the engine's call task sends and receives the
//! RTP. The actor follows the supervisor's phase (a session starting means
//! dial; ending means hang up) and starts a session itself, through the
//! supervisor's handle, when it answers a call while idle. Losing the call
//! is a degradation like losing the SRT uplink: the session and its
//! recording go on.

pub mod policy;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, DialogStateSender, TransactionHandle};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::dialog::registration::{RefreshOutcome, Registration};
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, Param, StatusCode, StatusCodeKind, Transport, Uri};
use rsipstack::transaction::{Transaction, TransactionReceiver};
use rsipstack::transport::connection::KEEPALIVE_REQUEST;
use rsipstack::transport::stream::StreamConnection;
use rsipstack::transport::{
    udp::UdpConnection, SipAddr, SipConnection, TcpListenerConnection, TransportLayer,
};
use rsipstack::EndpointBuilder;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::sip::{Sip, SipTransport};
use crate::core::backoff::{Backoff, Jitter};
use crate::core::events::EventKind;
use crate::core::sdp::{self, Local, Negotiated};
use crate::core::session::{Degradation, Origin, Phase};
use crate::core::status::{CallState, CallStats, MediaEvent};
use crate::core::stun;
use crate::events::Outbox;
use crate::lifecycle::Stopping;
use crate::media::MediaHandle;
use crate::supervisor::SupervisorHandle;
use policy::Incoming;

#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error("cannot find the address of {host}: {why}")]
    Resolve { host: String, why: String },
    #[error("cannot open SIP port {port}/{transport}: {why}")]
    Bind {
        port: u16,
        transport: &'static str,
        why: String,
    },
    #[error("SIP: {0}")]
    Stack(String),
    #[error("not a SIP address: {0}")]
    Uri(String),
    #[error("the SIP server {server} is not trusted over TLS: {why} (check [sip] ca: the authority that signed the server's certificate)")]
    Untrusted { server: SocketAddr, why: String },
    #[error("cannot read the SIP server's certificate authority {path}: {why} (check [sip] ca)")]
    Ca {
        path: std::path::PathBuf,
        why: String,
    },
}

// The stack's errors are large; ours carry their text.
impl From<rsipstack::Error> for SipError {
    fn from(e: rsipstack::Error) -> Self {
        SipError::Stack(e.to_string())
    }
}

impl From<rsipstack::sip::Error> for SipError {
    fn from(e: rsipstack::sip::Error) -> Self {
        SipError::Uri(e.to_string())
    }
}

/// What the actor needs.
pub struct Deps {
    pub config: Sip,
    pub site_id: String,
    /// The most video the box sends (kbit/s), offered as `b=AS`.
    pub video_kbps: u32,
    pub media: MediaHandle,
    pub supervisor: SupervisorHandle,
    pub phase: watch::Receiver<Phase>,
    pub events: mpsc::UnboundedSender<MediaEvent>,
    /// The NOC's events: calls connected, ended, refused.
    pub outbox: Outbox,
    pub stats: watch::Sender<CallStats>,
    pub stopping: Stopping,
}

/// Start the actor. It retries its own setup (the network may come up
/// after the daemon), so only a bug stops it.
pub fn spawn(deps: Deps) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(deps))
}

/// What the actor's helpers tell it.
enum Ev {
    Dialed {
        call_id: String,
        result: Result<Option<Box<rsipstack::sip::Response>>, String>,
    },
    Dialog(Box<DialogState>),
    Invite(Box<Transaction>),
    Registered(Result<(), String>),
}

/// The call in hand.
struct Call {
    dialog: InviteDialog,
    call_id: String,
    state: CallState,
    remote: String,
    /// The answer to send when a ringing call is picked up.
    pending_answer: Option<(Negotiated, String)>,
    /// What the media runs with now (a re-INVITE may change it).
    negotiated: Option<Negotiated>,
}

/// The stack once it runs.
struct Stack {
    token: CancellationToken,
    dialogs: Arc<DialogLayer>,
    state_tx: DialogStateSender,
    local_ip: IpAddr,
    /// Where requests go first (the proxy or registrar), if anywhere.
    next_hop: Option<SocketAddr>,
    /// Sources trusted to have authenticated a caller: the next hop.
    trusted: Vec<IpAddr>,
    transport: Transport,
}

struct Agent {
    cfg: Sip,
    user: String,
    video_kbps: u32,
    media: MediaHandle,
    supervisor: SupervisorHandle,
    events: mpsc::UnboundedSender<MediaEvent>,
    outbox: Outbox,
    /// The last failure told to the NOC, so a redial loop on the same
    /// refusal is one event, not one a minute.
    last_reported: Option<String>,
    stats_tx: watch::Sender<CallStats>,
    stats: CallStats,
    call: Option<Call>,
    redial_at: Option<Instant>,
    /// The media ports as the NAT shows them (STUN), for this call.
    public: Option<sdp::PublicMedia>,
    /// The flow to the SIP server the last keep-alive went over, and
    /// whether a keep-alive found it gone since.
    flow: Option<String>,
    flow_lost: bool,
    /// The running registration: its cancel token, and whether it removes
    /// its binding when it stops.
    registration: Option<(CancellationToken, Arc<std::sync::atomic::AtomicBool>)>,
    backoff: Backoff,
    reported_down: bool,
    /// The supervisor's phase as last seen: a degradation counts only
    /// while live (the session machine keeps none before).
    phase: Phase,
    version: u64,
    /// This call's SRTP master key, fresh for every call.
    key: [u8; sdp::SRTP_KEY_LEN],
    ev_tx: mpsc::UnboundedSender<Ev>,
}

async fn run(d: Deps) {
    let Deps {
        config,
        site_id,
        video_kbps,
        media,
        supervisor,
        mut phase,
        events,
        outbox,
        stats,
        mut stopping,
    } = d;
    let user = if config.user.is_empty() {
        site_id
    } else {
        config.user.clone()
    };
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let mut agent = Agent {
        backoff: Backoff::new(Duration::from_secs(1), config.redial_max)
            .with_jitter(Jitter::Spread(0.2)),
        cfg: config,
        user,
        video_kbps,
        media,
        supervisor,
        events,
        outbox,
        last_reported: None,
        stats_tx: stats,
        stats: CallStats {
            configured: true,
            ..Default::default()
        },
        call: None,
        redial_at: None,
        public: None,
        flow: None,
        flow_lost: false,
        registration: None,
        reported_down: false,
        // A session resumed after a crash may already be starting.
        phase: *phase.borrow(),
        version: 1,
        key: [0; sdp::SRTP_KEY_LEN],
        ev_tx,
    };
    agent.publish();
    // Setup: resolve, bind, register. Retried: at boot the network may not
    // be up yet, and a box must come up by itself when it is.
    let mut setup_backoff =
        Backoff::new(Duration::from_secs(1), Duration::from_secs(30)).with_jitter(Jitter::Full);
    let stack = loop {
        match agent.start_stack().await {
            Ok(s) => break s,
            Err(e) => {
                let delay = setup_backoff.next_delay(crate::util::random_unit());
                tracing::warn!("SIP cannot start: {e}; trying again in {delay:?}");
                agent.stats.last_error = Some(format!("SIP cannot start: {e}"));
                agent.publish();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopping.wait() => return,
                }
            }
        }
    };
    agent.stats.last_error = None;
    agent.publish();
    tracing::info!(
        local = %stack.local_ip,
        port = agent.cfg.local_port,
        transport = %stack.transport,
        "SIP room endpoint ready"
    );
    // CRLF keep-alives (RFC 5626 §4.4.1) on the flow to the next hop keep a
    // carrier NAT's binding open, so the MCU's calls reach the box over its
    // registration with no inbound port. The stack answers pings but does
    // not send them.
    let mut keepalive = tokio::time::interval(agent.cfg.keepalive);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let current = *phase.borrow();
        if policy::should_dial(current, agent.state(), agent.cfg.conference.is_some())
            && agent.redial_at.is_none()
        {
            agent.learn_public(&stack).await;
            agent.dial(&stack);
        }
        let redial = async {
            match agent.redial_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stopping.wait() => break,
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = *phase.borrow();
                agent.phase = now;
                agent.on_phase(now).await;
            }
            Some(ev) = ev_rx.recv() => {
                let now = *phase.borrow();
                agent.on_event(&stack, ev, now).await;
            }
            _ = redial => {
                agent.redial_at = None;
                if agent.state() == CallState::Redialing {
                    agent.set_state(CallState::Idle);
                }
            }
            _ = keepalive.tick() => {
                if stack.next_hop.is_some() && matches!(stack.transport, Transport::Tcp | Transport::Tls) {
                    let flow = stack.ping().await;
                    agent.on_flow(&stack, flow);
                }
            }
        }
    }
    // Shutdown: the session has already ended (the supervisor stops first),
    // so the call is normally gone; hang up whatever is left, then let the
    // registration lapse.
    agent.hang_up().await;
    stack.token.cancel();
}

impl Stack {
    /// A CRLF keep-alive on the flow to the next hop. Returns the flow it
    /// went over (its local address), so the actor sees when the stack had
    /// to open a new connection: the registrar then no longer knows the
    /// box's flow (RFC 5626 §4.4) and the box must register again.
    async fn ping(&self) -> Option<String> {
        let (Some(hop), Transport::Tcp | Transport::Tls) = (self.next_hop, self.transport) else {
            return None;
        };
        let target = SipAddr::new(self.transport, hop_hwp(hop));
        let inner = self.dialogs.endpoint.clone();
        let (conn, dest) = inner.transport_layer.lookup(&target, None).await.ok()?;
        let flow = conn.get_addr().to_string();
        {
            let r = match conn {
                SipConnection::Udp(u) => u.send_raw(KEEPALIVE_REQUEST, &dest).await,
                SipConnection::Tcp(t) => t.send_raw(KEEPALIVE_REQUEST).await,
                SipConnection::Tls(t) => t.send_raw(KEEPALIVE_REQUEST).await,
                _ => Ok(()),
            };
            if let Err(e) = r {
                tracing::debug!("SIP keep-alive not sent: {e}");
                return None;
            }
        }
        Some(flow)
    }
}

fn hop_hwp(a: SocketAddr) -> rsipstack::sip::HostWithPort {
    a.into()
}

/// The local address the kernel would send from towards `to`.
fn local_ip_towards(to: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(to).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, SipError> {
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| SipError::Resolve {
            host: host.to_owned(),
            why: e.to_string(),
        })?;
    addrs.next().ok_or_else(|| SipError::Resolve {
        host: host.to_owned(),
        why: "no address".into(),
    })
}

impl Agent {
    fn state(&self) -> CallState {
        self.call
            .as_ref()
            .map(|c| c.state)
            .unwrap_or(if self.redial_at.is_some() {
                CallState::Redialing
            } else {
                CallState::Idle
            })
    }

    fn set_state(&mut self, s: CallState) {
        if let Some(c) = self.call.as_mut() {
            c.state = s;
        }
        self.publish();
    }

    fn publish(&mut self) {
        self.stats.state = self.state();
        self.stats.remote = self.call.as_ref().map(|c| c.remote.clone());
        if self.call.is_none() {
            self.stats.codecs = None;
        }
        self.stats_tx.send_replace(self.stats.clone());
    }

    fn transport(&self) -> Transport {
        match self.cfg.transport {
            SipTransport::Udp => Transport::Udp,
            SipTransport::Tcp => Transport::Tcp,
            SipTransport::Tls => Transport::Tls,
        }
    }

    fn credential(&self) -> Option<Credential> {
        self.cfg
            .credentials
            .as_ref()
            .map(|(user, password)| Credential {
                username: user.clone(),
                password: password.clone(),
                realm: None,
                auth_username: None,
            })
    }

    async fn start_stack(&mut self) -> Result<Stack, SipError> {
        // A new stack has new flows: nothing to compare with yet.
        self.flow = None;
        self.flow_lost = false;
        // The next hop: the proxy, else the registrar, else the conference.
        let hop = self.cfg.next_hop();
        let next_hop = match &hop {
            Some((h, p)) => Some(resolve(h, *p).await?),
            None => None,
        };
        // The address the box is reached at: the one facing the SIP server,
        // or, for a box the MCU calls directly, the one facing the allowed
        // callers.
        let facing = next_hop.or_else(|| {
            self.cfg
                .allow
                .first()
                .map(|c| SocketAddr::new(c.addr, 5060))
        });
        let local_ip = facing
            .and_then(local_ip_towards)
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let token = CancellationToken::new();
        // A setup that fails half-way lets go of what it bound, so the
        // retry can bind the port again.
        let guard = token.clone().drop_guard();
        let tl = TransportLayer::new(token.child_token());
        let bind = SocketAddr::new(local_ip, self.cfg.local_port);
        let bind_err = |transport: &'static str, e: rsipstack::Error| SipError::Bind {
            port: self.cfg.local_port,
            transport,
            why: e.to_string(),
        };
        let udp = UdpConnection::create_connection(bind, None, Some(token.child_token()))
            .await
            .map_err(|e| bind_err("udp", e))?;
        tl.add_transport(udp.into());
        let tcp = TcpListenerConnection::new(bind, None)
            .await
            .map_err(|e| bind_err("tcp", e))?;
        tl.add_transport(tcp.into());
        if self.cfg.transport == SipTransport::Tls {
            // The SIP server's certificate must chain to `[sip] ca` (or the
            // system's authorities) and name the host the box was told to
            // use: a proxy given by address is checked against that address.
            let ca_path = self
                .cfg
                .ca
                .clone()
                .unwrap_or_else(|| crate::config::sip::SYSTEM_CA.into());
            let pem = std::fs::read(&ca_path).map_err(|e| SipError::Ca {
                path: ca_path.clone(),
                why: e.to_string(),
            })?;
            let sni = hop
                .as_ref()
                .map(|(h, _)| h.clone())
                .filter(|h| h.parse::<IpAddr>().is_err());
            // The stack reports a refused certificate only as a timeout,
            // 32 s later; check it first, with the same authority and name,
            // and say what is wrong (the setup retries with backoff).
            if let Some(addr) = next_hop {
                let name = sni.clone().unwrap_or_else(|| addr.ip().to_string());
                let ca = ca_path.clone();
                let check = tokio::task::spawn_blocking(move || {
                    let config =
                        crate::tls::client_config(Some(&ca), None).map_err(|e| e.to_string())?;
                    crate::tls::server_trusted(config, &name, addr, Duration::from_secs(5))
                })
                .await
                .map_err(|e| SipError::Stack(e.to_string()))?;
                if let Err(why) = check {
                    return Err(SipError::Untrusted { server: addr, why });
                }
            }
            tl.set_tls_config(rsipstack::transport::tls::TlsConfig {
                ca_certs: Some(pem),
                sni_hostname: sni,
                ..Default::default()
            });
        }
        // Pings and their answers keep the flow busy; the stack's own idle
        // limit is only a backstop for a flow that died silently.
        tl.set_stream_idle_timeout(self.cfg.keepalive * 4 + Duration::from_secs(60));
        let endpoint = EndpointBuilder::new()
            .with_transport_layer(tl)
            .with_cancel_token(token.clone())
            .with_user_agent(&format!("diemcau/{}", env!("CARGO_PKG_VERSION")))
            .build();
        let incoming = endpoint.incoming_transactions()?;
        let inner = endpoint.inner.clone();
        tokio::spawn(async move { endpoint.serve().await });
        let dialogs = Arc::new(DialogLayer::new(inner.clone()));
        let (state_tx, mut state_rx) = dialogs.new_dialog_state_channel();
        let ev = self.ev_tx.clone();
        tokio::spawn(async move {
            while let Some(st) = state_rx.recv().await {
                if ev.send(Ev::Dialog(Box::new(st))).is_err() {
                    break;
                }
            }
        });
        tokio::spawn(serve_incoming(
            dialogs.clone(),
            incoming,
            self.ev_tx.clone(),
            token.child_token(),
        ));
        let stack = Stack {
            token,
            dialogs,
            state_tx,
            local_ip,
            next_hop,
            trusted: next_hop.map(|a| a.ip()).into_iter().collect(),
            transport: self.transport(),
        };
        if let Some(registrar) = self.cfg.registrar.clone() {
            self.start_registration(&stack, &registrar.text)?;
        }
        guard.disarm();
        Ok(stack)
    }

    fn contact(&self, stack: &Stack) -> Result<Uri, SipError> {
        let t = self.cfg.transport.name();
        let text = format!(
            "sip:{}@{}:{};transport={t}",
            self.user,
            host_for_uri(stack.local_ip),
            self.cfg.local_port
        );
        Ok(Uri::try_from(text.as_str())?)
    }

    /// The keep-alive went over `flow`. A different flow than before means
    /// the old connection died (the SIP server restarted, the NAT dropped
    /// it): register again at once over the new one, rather than stay
    /// unreachable until the next refresh (three quarters of the expiry).
    fn on_flow(&mut self, stack: &Stack, flow: Option<String>) {
        let Some(flow) = flow else {
            // Not sent: the connection is gone; the next one is new.
            self.flow_lost = true;
            return;
        };
        let before = self.flow.replace(flow.clone());
        let replaced = before.is_some() && before.as_deref() != Some(flow.as_str());
        if !(replaced || std::mem::take(&mut self.flow_lost)) {
            return;
        }
        self.flow_lost = false;
        let Some(registrar) = self.cfg.registrar.clone() else {
            return;
        };
        tracing::warn!(
            old = ?before, new = %flow,
            "the connection to the SIP server was replaced; registering again"
        );
        if let Some((token, unregister)) = self.registration.take() {
            unregister.store(false, std::sync::atomic::Ordering::Relaxed);
            token.cancel();
        }
        if let Err(e) = self.start_registration(stack, &registrar.text) {
            tracing::warn!("SIP registration: {e}");
            self.stats.registration_error = Some(e.to_string());
            self.stats.registered = false;
            self.publish();
        }
    }

    fn start_registration(&mut self, stack: &Stack, registrar: &str) -> Result<(), SipError> {
        let mut reg = Registration::new(stack.dialogs.endpoint.clone(), self.credential());
        reg.outbound_proxy = stack.next_hop;
        let uri_text = match self.cfg.transport {
            SipTransport::Tcp | SipTransport::Tls if !registrar.contains("transport=") => {
                format!("{registrar};transport={}", self.cfg.transport.name())
            }
            _ => registrar.to_owned(),
        };
        let registrar_uri = Uri::try_from(uri_text.as_str())?;
        // RFC 5626: one instance id per box, stable across restarts, so the
        // registrar replaces the old binding instead of adding one.
        reg.contact = Some(rsipstack::sip::typed::Contact {
            display_name: None,
            uri: self.contact(stack)?,
            params: vec![
                Param::Other(
                    "+sip.instance".into(),
                    Some(format!("\"<urn:uuid:{}>\"", instance_uuid(&self.user)).into()),
                ),
                Param::Other("reg-id".into(), Some("1".into())),
            ],
        });
        let ev = self.ev_tx.clone();
        let token = stack.token.child_token();
        // Replaced (the flow changed): the new registration takes over the
        // binding, so the old one must not remove it on its way out.
        let unregister_on_stop = Arc::new(std::sync::atomic::AtomicBool::new(true));
        self.registration = Some((token.clone(), unregister_on_stop.clone()));
        let expires = self.cfg.register_expires.as_secs() as u32;
        let unregister = Uri::try_from(uri_text.as_str())?;
        tokio::spawn(async move {
            reg.keep_alive(registrar_uri, expires, token, |o| {
                let r = match o {
                    RefreshOutcome::Registered(_) => Ok(()),
                    RefreshOutcome::Rejected(r) => Err(format!(
                        "the registrar refused the registration: {}{}",
                        r.status_code,
                        match r.status_code.code() {
                            401 | 403 | 407 => " (check [sip] user and password in site.toml)",
                            _ => "",
                        }
                    )),
                    RefreshOutcome::Failed(e) => {
                        let e = e.to_string();
                        Err(if e.contains("certificate") {
                            format!("the SIP server's TLS certificate is not trusted: {e} (check [sip] ca: the authority that signed the server's certificate)")
                        } else {
                            format!("the registrar does not answer: {e}")
                        })
                    }
                };
                let _ = ev.send(Ev::Registered(r));
            })
            .await;
            // Cancelled: leave the registrar with no stale binding.
            if unregister_on_stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), reg.register(unregister, Some(0)))
                        .await;
            }
        });
        Ok(())
    }

    /// A fresh SRTP key for the next call. Without the OS's randomness no
    /// key is safe, and the call is not made.
    fn new_key(&mut self) -> Result<(), String> {
        getrandom::getrandom(&mut self.key)
            .map_err(|e| format!("no randomness for an SRTP key: {e}"))
    }

    fn local(&self, stack: &Stack) -> Local {
        Local {
            address: stack.local_ip,
            audio_port: self.cfg.rtp_port,
            video_port: self.cfg.rtp_port + 2,
            video_kbps: self.video_kbps,
            session_id: u64::from(self.cfg.rtp_port),
            version: self.version,
            srtp: self.cfg.srtp,
            key: self.key,
            public: self.public,
        }
    }

    /// With `[sip] stun`, ask from each of the four media ports where the
    /// NAT shows it, just before an offer or answer: a carrier NAT forgets
    /// an idle mapping within a minute or two, and the call's media then
    /// keep it open from the same ports. On any failure the box advertises
    /// its own address (a far end that latches still works) and says why.
    async fn learn_public(&mut self, stack: &Stack) {
        self.public = None;
        let Some(server) = self.cfg.stun.clone() else {
            return;
        };
        let r = stun_media(stack.local_ip, self.cfg.rtp_port, &server.host, server.port).await;
        match r {
            Ok(p) => {
                tracing::info!(
                    "media seen from outside as {}: audio {}/{}, video {}/{} (STUN {}:{})",
                    p.ip,
                    p.audio.0,
                    p.audio.1,
                    p.video.0,
                    p.video.1,
                    server.host,
                    server.port
                );
                self.stats.media_address = Some(format!("{}:{} (STUN)", p.ip, p.audio.0));
                self.public = Some(p);
            }
            Err(e) => {
                tracing::warn!(
                    "STUN {}:{}: {e}; advertising the box's own address",
                    server.host,
                    server.port
                );
                self.stats.media_address = None;
                self.stats.last_error = Some(format!(
                    "STUN server {}:{} did not answer ({e}): the far end must follow where the media come from",
                    server.host, server.port
                ));
            }
        }
    }

    fn dial(&mut self, stack: &Stack) {
        let Some(conference) = self.cfg.conference.clone() else {
            return;
        };
        self.version += 1;
        if let Err(e) = self.new_key() {
            self.failed(e);
            return;
        }
        let offer = sdp::offer(&self.local(stack), self.cfg.video);
        let result = (|| -> Result<InviteOption, SipError> {
            let domain = self
                .cfg
                .registrar
                .as_ref()
                .map(|r| r.host.clone())
                .unwrap_or_else(|| host_for_uri(stack.local_ip));
            Ok(InviteOption {
                caller: Uri::try_from(format!("sip:{}@{domain}", self.user).as_str())?,
                callee: Uri::try_from(conference.text.as_str())?,
                contact: self.contact(stack)?,
                destination: stack
                    .next_hop
                    .map(|a| SipAddr::new(stack.transport, hop_hwp(a))),
                content_type: Some("application/sdp".into()),
                offer: Some(offer.into_bytes()),
                credential: self.credential(),
                ..Default::default()
            })
        })();
        let opt = match result {
            Ok(o) => o,
            Err(e) => {
                self.failed(format!("cannot dial {}: {e}", conference.text));
                return;
            }
        };
        match stack.dialogs.do_invite_async(opt, stack.state_tx.clone()) {
            Ok((dialog, handle)) => {
                let call_id = dialog.id().call_id.clone();
                tracing::info!(conference = %conference.text, "dialling the conference");
                self.call = Some(Call {
                    dialog,
                    call_id: call_id.clone(),
                    state: CallState::Dialing,
                    remote: conference.text.clone(),
                    pending_answer: None,
                    negotiated: None,
                });
                self.publish();
                let ev = self.ev_tx.clone();
                tokio::spawn(async move {
                    let result = match handle.await {
                        Ok(Ok((_, resp))) => Ok(resp.map(Box::new)),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = ev.send(Ev::Dialed { call_id, result });
                });
            }
            Err(e) => self.failed(format!("cannot dial {}: {e}", conference.text)),
        }
    }

    /// A call attempt failed or the call ended while the session goes on:
    /// say why, mark the link down once, and redial after the backoff.
    fn failed(&mut self, why: String) {
        tracing::warn!("conference call: {why}");
        let was_up = self.state() == CallState::Connected;
        if was_up || self.last_reported.as_deref() != Some(why.as_str()) {
            self.last_reported = Some(why.clone());
            self.outbox.emit(EventKind::CallEnded {
                remote: self
                    .call
                    .as_ref()
                    .map(|c| c.remote.clone())
                    .unwrap_or_default(),
                reason: why.clone(),
            });
        }
        self.call = None;
        self.media.call(None);
        self.stats.last_error = Some(why);
        self.report_down();
        let delay = self.backoff.next_delay(crate::util::random_unit());
        self.redial_at = Some(Instant::now() + delay);
        self.publish();
    }

    /// Tell the supervisor the call is down, once, while live.
    fn report_down(&mut self) {
        if !self.reported_down && self.phase == Phase::Live {
            self.reported_down = true;
            let _ = self
                .events
                .send(MediaEvent::Degraded(Degradation::CallDown));
        }
    }

    fn connected(&mut self, n: Negotiated, direction: &str) {
        tracing::info!(codecs = %n.describe(), "in the conference call");
        self.last_reported = None;
        self.outbox.emit(EventKind::CallConnected {
            remote: self
                .call
                .as_ref()
                .map(|c| c.remote.clone())
                .unwrap_or_default(),
            direction: direction.into(),
            codecs: n.describe(),
        });
        self.stats.codecs = Some(n.describe());
        self.stats.calls += 1;
        self.stats.last_error = None;
        if let Some(c) = self.call.as_mut() {
            c.negotiated = Some(n.clone());
        }
        self.media.call(Some(n));
        self.backoff.reset();
        self.redial_at = None;
        if self.reported_down {
            self.reported_down = false;
            let _ = self
                .events
                .send(MediaEvent::Restored(Degradation::CallDown));
        }
        self.set_state(CallState::Connected);
    }

    async fn on_phase(&mut self, phase: Phase) {
        match phase {
            Phase::Idle | Phase::Stopping | Phase::Fault => {
                self.hang_up().await;
                self.redial_at = None;
                self.reported_down = false;
                self.backoff.reset();
                self.publish();
            }
            Phase::Starting | Phase::Live => {
                // Live without the call (it failed while starting): say so.
                if phase == Phase::Live
                    && !matches!(self.state(), CallState::Connected | CallState::Ringing)
                    && self.stats.last_error.is_some()
                {
                    self.report_down();
                }
                // A ringing call is picked up by the button's press.
                if let Some(c) = self.call.as_mut() {
                    if c.state == CallState::Ringing {
                        if let Some((n, body)) = c.pending_answer.take() {
                            match accept(&c.dialog, body) {
                                Ok(()) => self.connected(n, "incoming"),
                                Err(e) => self.failed(format!("cannot answer: {e}")),
                            }
                        }
                    }
                }
            }
        }
    }

    async fn hang_up(&mut self) {
        let Some(c) = self.call.take() else {
            return;
        };
        tracing::info!(remote = %c.remote, "hanging up the conference call");
        self.media.call(None);
        if c.state == CallState::Connected {
            self.outbox.emit(EventKind::CallEnded {
                remote: c.remote.clone(),
                reason: "hung up: the session ended".into(),
            });
        }
        let r = match c.state {
            CallState::Ringing => c.dialog.reject(Some(StatusCode::Decline), None),
            CallState::Dialing => c.dialog.cancel().await,
            _ => c.dialog.hangup().await,
        };
        if let Err(e) = r {
            tracing::debug!("hang-up: {e}");
        }
        self.publish();
    }

    async fn on_event(&mut self, stack: &Stack, ev: Ev, phase: Phase) {
        match ev {
            Ev::Registered(r) => {
                match &r {
                    Ok(()) if !self.stats.registered => {
                        tracing::info!("registered with the SIP server")
                    }
                    Err(e) => tracing::warn!("SIP registration: {e}"),
                    _ => {}
                }
                self.stats.registered = r.is_ok();
                self.stats.registration_error = r.err();
                self.publish();
            }
            Ev::Dialed { call_id, result } => {
                if self.call.as_ref().map(|c| c.call_id.as_str()) != Some(call_id.as_str()) {
                    return; // a call already given up
                }
                match result {
                    Ok(Some(resp)) if resp.status_code.kind() == StatusCodeKind::Successful => {
                        let body = String::from_utf8_lossy(resp.body()).to_string();
                        match sdp::parse(&body).and_then(|a| sdp::accept(&a, &self.local(stack))) {
                            Ok(n) => {
                                if phase == Phase::Live || phase == Phase::Starting {
                                    self.connected(n, "outgoing");
                                } else {
                                    self.hang_up().await;
                                }
                            }
                            Err(e) => {
                                if let Some(c) = self.call.as_ref() {
                                    let _ = c.dialog.bye().await;
                                }
                                self.failed(e.to_string());
                            }
                        }
                    }
                    Ok(Some(resp)) => {
                        let why = match resp.status_code.code() {
                            488 | 606 => format!(
                                "{}: the conference accepts none of the codecs this box offers (G722, opus, PCMU, PCMA; H264 packetization-mode 1){}",
                                resp.status_code,
                                if self.cfg.srtp == sdp::SrtpPolicy::Required {
                                    ", or it has no SRTP, which [sip] srtp = \"required\" insists on"
                                } else {
                                    ""
                                }
                            ),
                            401 | 403 | 407 => format!(
                                "{}: the SIP server refused the call (check [sip] user and password)",
                                resp.status_code
                            ),
                            _ => format!("{} from {}", resp.status_code, self.call.as_ref().map(|c| c.remote.as_str()).unwrap_or("")),
                        };
                        self.failed(why);
                    }
                    Ok(None) => self.failed("no answer to the call".into()),
                    Err(e) => self.failed(format!("the call could not be placed: {e}")),
                }
            }
            Ev::Dialog(st) => self.on_dialog(stack, *st, phase),
            Ev::Invite(tx) => self.on_invite(stack, *tx, phase).await,
        }
    }

    /// A re-INVITE or UPDATE in the call's dialog (an MCU changing the
    /// bitrate with a new `b=AS`, moving its media, putting the room on
    /// hold): answered at once from the same policy as a new call, with the
    /// call's key, and the media follow. An offer the box cannot take is
    /// refused (488) and the call goes on as it was. Without an answer the
    /// stack would send 501 after 32 s and the MCU would drop the room.
    fn on_update(
        &mut self,
        stack: &Stack,
        req: &rsipstack::sip::Request,
        handle: TransactionHandle,
    ) {
        let Some(call) = self.call.as_mut() else {
            tokio::spawn(async move {
                let _ = handle.reply(StatusCode::CallTransactionDoesNotExist).await;
            });
            return;
        };
        let body = String::from_utf8_lossy(req.body()).to_string();
        if body.trim().is_empty() {
            // No offer (a session refresh): nothing changes.
            tokio::spawn(async move {
                let _ = handle.reply(StatusCode::OK).await;
            });
            return;
        }
        let outgoing = call.negotiated.as_ref().is_some_and(|n| n.outgoing);
        self.version += 1;
        let local = self.local(stack);
        match sdp::parse(&body).and_then(|o| sdp::answer(&o, &local)) {
            Ok((mut n, answer)) => {
                n.outgoing = outgoing;
                tracing::info!(codecs = %n.describe(), video_kbps = ?n.video.as_ref().and_then(|v| v.bandwidth_kbps), "the far end changed the call's media ({})", req.method);
                if let Some(c) = self.call.as_mut() {
                    c.negotiated = Some(n.clone());
                }
                self.stats.codecs = Some(n.describe());
                self.media.call(Some(n));
                self.publish();
                tokio::spawn(async move {
                    let _ = handle
                        .respond(
                            StatusCode::OK,
                            Some(vec![Header::ContentType("application/sdp".into())]),
                            Some(answer.into_bytes()),
                        )
                        .await;
                });
            }
            Err(e) => {
                tracing::warn!("refused the far end's new offer ({}): {e}", req.method);
                tokio::spawn(async move {
                    let _ = handle.reply(StatusCode::NotAcceptableHere).await;
                });
            }
        }
    }

    fn on_dialog(&mut self, stack: &Stack, st: DialogState, phase: Phase) {
        if let DialogState::Updated(id, req, handle) = st {
            let ours = self.call.as_ref().is_some_and(|c| c.call_id == id.call_id);
            if ours {
                self.on_update(stack, &req, handle);
            } else {
                tokio::spawn(async move {
                    let _ = handle.reply(StatusCode::CallTransactionDoesNotExist).await;
                });
            }
            return;
        }
        if let DialogState::Terminated(id, reason) = st {
            stack.dialogs.remove_dialog(&id);
            let ours = self
                .call
                .as_ref()
                .is_some_and(|c| c.call_id == id.call_id && c.state != CallState::Dialing);
            if ours {
                let live = matches!(phase, Phase::Starting | Phase::Live);
                let why = format!("the call ended ({reason:?})");
                if live {
                    self.failed(why);
                } else {
                    self.call = None;
                    self.media.call(None);
                    self.publish();
                }
            }
        }
    }

    fn refused(&mut self, from: &str, source: Option<SocketAddr>, reason: &str) {
        self.stats.refused += 1;
        self.publish();
        self.outbox.emit(EventKind::CallRefused {
            from: from.to_owned(),
            source: source.map(|s| s.to_string()).unwrap_or_default(),
            reason: reason.to_owned(),
        });
    }

    async fn on_invite(&mut self, stack: &Stack, mut tx: Transaction, phase: Phase) {
        let source = tx
            .original
            .via_header()
            .ok()
            .and_then(|v| SipConnection::parse_target_from_via(v).ok())
            .and_then(|(_, hp)| SocketAddr::try_from(hp).ok());
        let from = tx
            .original
            .from_header()
            .ok()
            .and_then(|f| f.uri().ok())
            .map(|u| u.to_string())
            .unwrap_or_default();
        let allowed =
            source.is_some_and(|s| policy::allowed(s.ip(), &stack.trusted, &self.cfg.allow));
        let decision = policy::incoming(allowed, phase, self.state(), self.cfg.answer);
        async fn refuse(tx: &mut Transaction, code: StatusCode) {
            if let Err(e) = tx.reply(code).await {
                tracing::debug!("reply: {e}");
            }
        }
        let offer = String::from_utf8_lossy(tx.original.body()).to_string();
        match decision {
            Incoming::Forbidden => {
                tracing::warn!(
                    from = %from,
                    source = ?source,
                    "refused a call from a source not on [sip] allow nor the registrar"
                );
                self.refused(&from, source, "forbidden");
                refuse(&mut tx, StatusCode::Forbidden).await;
            }
            Incoming::Busy => {
                tracing::info!(from = %from, "refused a call: the room is busy");
                self.refused(&from, source, "busy");
                refuse(&mut tx, StatusCode::BusyHere).await;
            }
            Incoming::Answer { .. } | Incoming::Ring => {
                if let Err(e) = self.new_key() {
                    tracing::error!("cannot take the call: {e}");
                    refuse(&mut tx, StatusCode::ServerInternalError).await;
                    return;
                }
                self.learn_public(stack).await;
                let local = self.local(stack);
                let (n, body) = match sdp::parse(&offer).and_then(|o| sdp::answer(&o, &local)) {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(from = %from, "refused a call: {e}");
                        self.stats.last_error = Some(e.to_string());
                        self.refused(&from, source, &format!("not acceptable: {e}"));
                        refuse(&mut tx, StatusCode::NotAcceptableHere).await;
                        return;
                    }
                };
                let dialog = match stack.dialogs.get_or_create_server_invite(
                    &tx,
                    stack.state_tx.clone(),
                    None,
                    self.contact(stack).ok(),
                ) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!("cannot take the call: {e}");
                        refuse(&mut tx, StatusCode::ServerInternalError).await;
                        return;
                    }
                };
                let call_id = dialog.id().call_id.clone();
                let mut d2 = dialog.clone();
                tokio::spawn(async move {
                    if let Err(e) = d2.handle(&mut tx).await {
                        tracing::debug!("incoming call transaction: {e}");
                    }
                });
                self.redial_at = None;
                tracing::info!(from = %from, source = ?source, "incoming conference call");
                self.call = Some(Call {
                    dialog: dialog.clone(),
                    call_id,
                    state: CallState::Ringing,
                    remote: from.clone(),
                    pending_answer: None,
                    negotiated: None,
                });
                match decision {
                    Incoming::Ring => {
                        let _ = dialog.ringing(None, None);
                        if let Some(c) = self.call.as_mut() {
                            c.pending_answer = Some((n, body));
                        }
                        self.publish();
                    }
                    _ => {
                        if let Err(e) = accept(&dialog, body) {
                            self.failed(format!("cannot answer: {e}"));
                            return;
                        }
                        self.connected(n, "incoming");
                        if decision == (Incoming::Answer { start: true }) {
                            let sup = self.supervisor.clone();
                            tokio::spawn(async move {
                                if let Err(e) =
                                    sup.start(Origin::Call(from), Default::default()).await
                                {
                                    tracing::warn!(
                                        "the answered call did not start a session: {e}"
                                    );
                                }
                            });
                        }
                    }
                }
            }
        }
    }
}

fn accept(dialog: &InviteDialog, body: String) -> Result<(), SipError> {
    // The stack does not add the Content-Type itself.
    Ok(dialog.accept(
        Some(vec![Header::ContentType("application/sdp".into())]),
        Some(body.into_bytes()),
    )?)
}

/// Ask `server` from each media port (audio RTP and RTCP, video RTP and
/// RTCP, from `base`) where it sees it. All four at once, two tries of
/// 400 ms each: a call is not held up for long by a STUN server that is
/// gone. The sockets close before the call's pipeline binds the same ports.
async fn stun_media(
    local: IpAddr,
    base: u16,
    host: &str,
    port: u16,
) -> Result<sdp::PublicMedia, String> {
    let server = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| format!("{host} has no address of the box's family"))?;
    let ask = |p: u16| async move {
        let sock = tokio::net::UdpSocket::bind((local, p))
            .await
            .map_err(|e| format!("cannot open media port {p}/udp: {e}"))?;
        let mut txid = [0u8; 12];
        getrandom::getrandom(&mut txid).map_err(|e| format!("no randomness: {e}"))?;
        let req = stun::binding_request(txid);
        let mut buf = [0u8; 576];
        for _ in 0..2 {
            sock.send_to(&req, server)
                .await
                .map_err(|e| format!("cannot send from port {p}: {e}"))?;
            let deadline = tokio::time::Instant::now() + Duration::from_millis(400);
            while let Ok(Ok((n, from))) =
                tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await
            {
                if from != server {
                    continue;
                }
                match stun::mapped_address(&buf[..n], txid) {
                    Ok(a) => return Ok(a),
                    Err(stun::StunError::OtherTransaction | stun::StunError::NotStun) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        Err(format!("no answer to port {p}'s request"))
    };
    let (a, ac, v, vc) = tokio::join!(ask(base), ask(base + 1), ask(base + 2), ask(base + 3));
    let (a, ac, v, vc) = (a?, ac?, v?, vc?);
    Ok(sdp::PublicMedia {
        ip: a.ip(),
        audio: (a.port(), ac.port()),
        video: (v.port(), vc.port()),
    })
}

fn host_for_uri(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    }
}

/// A UUID (RFC 4122 form) derived from the SIP user: stable for the box.
fn instance_uuid(user: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(user.as_bytes());
    let x = hex::encode(&h[..16]);
    format!(
        "{}-{}-4{}-8{}-{}",
        &x[0..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}

/// The stack's incoming requests: in-dialog ones go to their dialog,
/// OPTIONS is answered (the MCU's and doctor's liveness check), new INVITEs
/// go to the actor, anything else is refused. Malformed messages never
/// reach here: the transport drops them.
async fn serve_incoming(
    dialogs: Arc<DialogLayer>,
    mut incoming: TransactionReceiver,
    ev: mpsc::UnboundedSender<Ev>,
    token: CancellationToken,
) {
    loop {
        let mut tx = tokio::select! {
            _ = token.cancelled() => return,
            t = incoming.recv() => match t {
                Some(t) => t,
                None => return,
            },
        };
        let in_dialog = tx
            .original
            .to_header()
            .ok()
            .and_then(|t| t.tag().ok().flatten())
            .is_some();
        if in_dialog {
            match dialogs.match_dialog(&tx) {
                Some(mut d) => {
                    tokio::spawn(async move {
                        if let Err(e) = d.handle(&mut tx).await {
                            tracing::debug!("in-dialog request: {e}");
                        }
                    });
                }
                None => {
                    let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
                }
            }
            continue;
        }
        match tx.original.method {
            Method::Invite => {
                if ev.send(Ev::Invite(Box::new(tx))).is_err() {
                    return;
                }
            }
            Method::Options => {
                let _ = tx.reply(StatusCode::OK).await;
            }
            Method::Ack => {}
            _ => {
                let _ = tx.reply(StatusCode::MethodNotAllowed).await;
            }
        }
    }
}
