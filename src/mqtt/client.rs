//! The MQTT actor: owns the rumqttc event loop and client, the retained
//! topics, the event publisher and command execution.
//!
//! How PUBACKs are matched to outbox events: rumqttc reports
//! `Outgoing::Publish(pkid)` for every publish request, in the order the
//! requests were made, and `Incoming::PubAck(pkid)` when the broker
//! acknowledges. The actor is the only publisher, so it keeps a FIFO of
//! what each request was (an event's sequence number or something else)
//! and maps the packet id to the event when the outgoing report arrives.
//! The connection uses a clean start, so rumqttc never retransmits on its
//! own after a reconnect: on every connection loss the FIFO and the
//! in-flight map are dropped, and the events still in the outbox (all that
//! were not acknowledged) are published again, in order, on the next
//! connect. Delivery is therefore at least once; the event id is the
//! NOC's deduplication key.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::command::{self, CommandReply, Envelope, ReplyStatus};
use super::health::Sampler;
use super::payload::{Presence, StateMsg, StatusMsg};
use super::seen::Seen;
use super::topics::{Scope, Topics};
use super::MqttError;
use crate::config::{self, Config};
use crate::control::Control;
use crate::core::backoff::Backoff;
use crate::core::command::Command;
use crate::core::device_key::DeviceKeyId;
use crate::core::session::{Phase, GROUP_SESSION};
use crate::core::status::ErrorCode;
use crate::events::Outbox;
use crate::store::Store;
use crate::util::random_unit;

/// Events published but not yet acknowledged, at most.
const EVENT_WINDOW: usize = 16;
/// Capacity of rumqttc's request channel; the actor never awaits it.
const REQUEST_CAPACITY: usize = 256;
/// Largest packet the broker may send us; larger commands are dropped by
/// the broker (MQTT 5 maximum packet size), smaller but oversized ones get
/// a `rejected` reply from the parser.
const MAX_PACKET: u32 = 256 * 1024;

/// What the actor needs from the rest of the daemon.
pub struct Deps {
    pub config: Config,
    /// Carries out the commands; also where the state comes from.
    pub control: Control,
    pub phase: watch::Receiver<Phase>,
    pub outbox: Outbox,
    pub store: Store,
    /// The key the box signs recordings with, announced in the retained
    /// status for the NOC to compare with the enrolled one.
    pub device_key: DeviceKeyId,
    /// Where the NOC's schedules go.
    pub schedule: crate::schedule::ScheduleHandle,
}

enum Ctl {
    /// Publish `offline`, disconnect cleanly, stop.
    Shutdown { reply: oneshot::Sender<()> },
}

/// Handle to the MQTT actor.
#[derive(Clone)]
pub struct MqttHandle {
    tx: mpsc::Sender<Ctl>,
}

impl MqttHandle {
    /// Flush what can be flushed within `timeout`, publish `offline`,
    /// disconnect; resolves when done (or after the timeout).
    pub async fn shutdown(&self, timeout: Duration) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Ctl::Shutdown { reply }).await.is_ok() {
            let _ = tokio::time::timeout(timeout, rx).await;
        }
    }
}

/// Where a reply goes.
#[derive(Debug, Clone)]
struct ReplyTo {
    name: String,
    response_topic: Option<String>,
    correlation: Option<Bytes>,
}

/// A reply produced by a command task, to be published by the actor.
struct Done {
    to: ReplyTo,
    reply: CommandReply,
}

/// What a publish request was, for matching its packet id.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sent {
    Event(u64),
    Other,
}

/// Start the actor; `Ok(None)` when MQTT is not configured.
pub fn spawn(deps: Deps) -> Result<Option<(MqttHandle, tokio::task::JoinHandle<()>)>, MqttError> {
    let Some(cfg) = deps.config.mqtt.clone() else {
        return Ok(None);
    };
    let tls = if cfg.brokers.iter().any(|b| b.tls) {
        Some(crate::tls::client_config(
            cfg.ca.as_deref(),
            cfg.client_cert
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path())),
        )?)
    } else {
        None
    };
    let seen = Seen::open(deps.store.db(), cfg.command_max_ttl)?;
    let history = deps.store.db().open_tree(crate::core::trees::HISTORY)?;
    let boot_id = {
        let mut b = [0u8; 8];
        // Without entropy the boot id is only less unique; the time part of
        // `status.at` still tells restarts apart.
        let _ = getrandom::getrandom(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    };
    let config_version = crate::config::version(&deps.config.path);
    let topics = Topics::new(&cfg.topic_prefix, &deps.config.site.id);
    let mut actor = Actor {
        site: deps.config.site.id.clone(),
        state_dir: deps.config.daemon.state_dir.clone(),
        config_path: deps.config.path.clone(),
        boot_id,
        device_key: deps.device_key,
        config_version,
        topics,
        tls,
        backoff: Backoff::new(cfg.reconnect_min, cfg.reconnect_max),
        cfg,
        control: deps.control,
        phase: deps.phase,
        outbox: deps.outbox,
        history,
        seen,
        broker: 0,
        connected: false,
        connects: 0,
        fifo: VecDeque::new(),
        inflight: HashMap::new(),
        sent: BTreeSet::new(),
        last_state: None,
        state_seq: 0,
        sampler: Sampler::default(),
        done_tx: mpsc::unbounded_channel().0,
        groups: deps.config.schedule.groups.clone(),
        schedule: deps.schedule,
    };
    let (client, eventloop) = AsyncClient::new(actor.options(), REQUEST_CAPACITY);
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(async move { actor.run(client, eventloop, rx).await });
    Ok(Some((MqttHandle { tx }, task)))
}

struct Actor {
    cfg: config::Mqtt,
    site: String,
    state_dir: PathBuf,
    config_path: PathBuf,
    boot_id: String,
    device_key: DeviceKeyId,
    config_version: String,
    topics: Topics,
    tls: Option<Arc<rustls::ClientConfig>>,
    backoff: Backoff,
    control: Control,
    phase: watch::Receiver<Phase>,
    outbox: Outbox,
    history: sled::Tree,
    seen: Seen,
    /// Index into `cfg.brokers` of the broker being used.
    broker: usize,
    connected: bool,
    connects: u64,
    /// One entry per publish request since the last connect, in order.
    fifo: VecDeque<Sent>,
    /// Packet id → event sequence number, for events awaiting PUBACK.
    inflight: HashMap<u16, u64>,
    /// Events published on this connection and not yet acknowledged.
    sent: BTreeSet<u64>,
    last_state: Option<StateMsg>,
    state_seq: u64,
    sampler: Sampler,
    done_tx: mpsc::UnboundedSender<Done>,
    /// The box's groups, whose schedules it reads.
    groups: Vec<String>,
    schedule: crate::schedule::ScheduleHandle,
}

/// Publishes in flight at most, unacknowledged, per connection.
const OUTGOING_INFLIGHT: u16 = 64;

impl Actor {
    fn options(&self) -> MqttOptions {
        let b = &self.cfg.brokers[self.broker % self.cfg.brokers.len()];
        let mut o = MqttOptions::new(self.site.clone(), b.host.clone(), b.port);
        o.set_keep_alive(self.cfg.keep_alive);
        // Clean start: the outbox, not the broker session, is the memory of
        // what was delivered (see the module doc).
        o.set_clean_start(true);
        o.set_connection_timeout(5);
        o.set_max_packet_size(Some(MAX_PACKET));
        // rumqttc keeps a table of unacknowledged publishes with a slot for
        // every packet id up to this limit, all written at connect: with no
        // limit that is 65 536 slots, 14 MB resident (heaptrack, whole-room
        // bench), a sixth of the box's memory budget. The broker's Receive
        // Maximum lowers it further (mosquitto's default: 20).
        o.set_outgoing_inflight_upper_limit(OUTGOING_INFLIGHT);
        // Small messages (replies, events) go out at once: with Nagle and
        // delayed ACKs each reply waited ~40 ms more (measured p50 91 ms).
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        o.set_network_options(net);
        o.set_last_will(LastWill::new(
            self.topics.status(),
            self.status_json(Presence::Lost),
            QoS::AtLeastOnce,
            true,
            None,
        ));
        if let Some((u, p)) = &self.cfg.credentials {
            o.set_credentials(u.clone(), p.clone());
        }
        if b.tls {
            if let Some(tls) = &self.tls {
                o.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls.clone())));
            }
        }
        o
    }

    fn status_json(&self, status: Presence) -> Vec<u8> {
        let msg = StatusMsg {
            status,
            site: self.site.clone(),
            boot_id: self.boot_id.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            api_version: crate::core::command::API_VERSION,
            sessions: self.history.len() as u64,
            device_key: Some(self.device_key.clone()),
            at: Utc::now(),
        };
        serde_json::to_vec(&msg).expect("status always serialises")
    }

    async fn run(
        &mut self,
        client: AsyncClient,
        mut eventloop: EventLoop,
        mut ctl: mpsc::Receiver<Ctl>,
    ) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        self.done_tx = done_tx;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_health = Instant::now() + self.cfg.health_interval;
        let mut next_prune = Instant::now();
        // While set, the connection is down and the next attempt waits.
        let mut retry_at: Option<Instant> = None;
        tracing::info!(broker = %self.cfg.brokers[0], site = %self.site, "MQTT control plane starting");
        loop {
            tokio::select! {
                ev = eventloop.poll(), if retry_at.is_none() => match ev {
                    Ok(ev) => self.on_event(&client, ev),
                    Err(e) => {
                        let was = self.connected;
                        self.on_disconnect();
                        let delay = self.backoff.next_delay(random_unit());
                        if self.cfg.brokers.len() > 1 {
                            self.broker = (self.broker + 1) % self.cfg.brokers.len();
                            eventloop.options = self.options();
                        }
                        if was {
                            tracing::warn!("MQTT connection lost: {e}; reconnecting in {delay:?}");
                        } else {
                            tracing::debug!("MQTT connect failed: {e}; retrying in {delay:?}");
                        }
                        retry_at = Some(Instant::now() + delay);
                    }
                },
                _ = async { tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)).await }, if retry_at.is_some() => {
                    retry_at = None;
                }
                _ = self.outbox.wait() => self.pump_events(&client),
                Some(done) = done_rx.recv() => {
                    self.finish(&done.reply);
                    self.publish_reply(&client, &done.to, &done.reply);
                }
                r = self.phase.changed() => {
                    if r.is_ok() {
                        self.refresh_state(&client).await;
                    }
                }
                _ = tick.tick() => {
                    self.refresh_state(&client).await;
                    self.pump_events(&client);
                    let now = Instant::now();
                    if now >= next_health {
                        next_health = now + self.cfg.health_interval;
                        self.publish_health(&client).await;
                    }
                    if now >= next_prune {
                        next_prune = now + Duration::from_secs(3600);
                        if let Err(e) = self.seen.prune(Utc::now()) {
                            tracing::warn!("cannot prune seen command ids: {e}");
                        }
                    }
                }
                Some(Ctl::Shutdown { reply }) = ctl.recv() => {
                    self.shutdown(&client, &mut eventloop).await;
                    let _ = reply.send(());
                    return;
                }
            }
        }
    }

    fn on_disconnect(&mut self) {
        self.connected = false;
        self.fifo.clear();
        self.inflight.clear();
        self.sent.clear();
    }

    fn on_event(&mut self, client: &AsyncClient, ev: Event) {
        match ev {
            Event::Incoming(Packet::ConnAck(_)) => self.on_connect(client),
            // Reports buffered from a lost connection precede the ConnAck;
            // they are meaningless now (see the module doc).
            _ if !self.connected => {}
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Sent::Event(seq)) = self.fifo.pop_front() {
                    self.inflight.insert(pkid, seq);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(seq) = self.inflight.remove(&ack.pkid) {
                    self.sent.remove(&seq);
                    match ack.reason {
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => {
                            if let Err(e) = self.outbox.ack(seq) {
                                tracing::error!("cannot remove acknowledged event {seq}: {e}");
                            }
                        }
                        // Kept in the outbox: published again on the next connect.
                        other => tracing::warn!("broker refused event {seq}: {other:?}"),
                    }
                    self.pump_events(client);
                }
            }
            Event::Incoming(Packet::Publish(p)) => self.on_command(client, p),
            Event::Incoming(Packet::Disconnect(d)) => {
                tracing::warn!("broker disconnects: {:?}", d.reason_code);
            }
            _ => {}
        }
    }

    fn on_connect(&mut self, client: &AsyncClient) {
        self.on_disconnect();
        self.connected = true;
        self.connects += 1;
        self.backoff.reset();
        tracing::info!(
            broker = %self.cfg.brokers[self.broker % self.cfg.brokers.len()],
            "MQTT connected"
        );
        for f in self
            .topics
            .command_filters(&self.groups)
            .into_iter()
            .chain(self.topics.schedule_filters(&self.groups))
        {
            if let Err(e) = client.try_subscribe(f.clone(), QoS::AtLeastOnce) {
                tracing::error!("cannot subscribe to {f}: {e}");
            }
        }
        self.republish_presence(client);
        self.pump_events(client);
        self.answer_pending_config(client);
    }

    /// The retained `online` status and the retained state (on every
    /// connect, and on `rebirth`).
    fn republish_presence(&mut self, client: &AsyncClient) {
        self.publish(
            client,
            &self.topics.status(),
            true,
            self.status_json(Presence::Online),
            None,
        );
        self.republish_state(client);
    }

    /// After a restart for `config.set`: say how it went.
    fn answer_pending_config(&mut self, client: &AsyncClient) {
        let Some(p) = crate::config::apply::take_pending(&self.config_path) else {
            return;
        };
        let to = ReplyTo {
            name: p.name.clone(),
            response_topic: p.response_topic.clone(),
            correlation: p
                .correlation
                .as_deref()
                .and_then(|h| hex::decode(h).ok())
                .map(Bytes::from),
        };
        let r = match &p.failed {
            None => self.reply(
                Some(p.id.clone()),
                &p.name,
                ReplyStatus::Done,
                None,
                Some(json!({"config_version": self.config_version})),
            ),
            Some(why) => self.reply(
                Some(p.id.clone()),
                &p.name,
                ReplyStatus::Failed,
                Some(format!(
                    "could not be applied, the previous configuration is back: {why}"
                )),
                None,
            ),
        };
        self.finish(&r);
        self.publish_reply(client, &to, &r);
    }

    /// Queue a QoS 1 publish; never waits. Returns whether it was queued.
    fn publish(
        &mut self,
        client: &AsyncClient,
        topic: &str,
        retain: bool,
        payload: Vec<u8>,
        props: Option<PublishProperties>,
    ) -> bool {
        self.publish_as(
            client,
            topic,
            QoS::AtLeastOnce,
            retain,
            payload,
            props,
            Sent::Other,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn publish_as(
        &mut self,
        client: &AsyncClient,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
        props: Option<PublishProperties>,
        what: Sent,
    ) -> bool {
        if !self.connected {
            return false;
        }
        let r = match props {
            Some(p) => client.try_publish_with_properties(topic, qos, retain, payload, p),
            None => client.try_publish(topic, qos, retain, payload),
        };
        match r {
            Ok(()) => {
                self.fifo.push_back(what);
                true
            }
            Err(e) => {
                tracing::warn!("MQTT publish to {topic} dropped: {e}");
                false
            }
        }
    }

    /// Publish outbox events in order, keeping at most EVENT_WINDOW unacknowledged.
    fn pump_events(&mut self, client: &AsyncClient) {
        if !self.connected || self.sent.len() >= EVENT_WINDOW {
            return;
        }
        let pending = match self.outbox.pending(self.sent.len() + EVENT_WINDOW) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("cannot read the event outbox: {e}");
                return;
            }
        };
        let topic = self.topics.event();
        for ev in pending {
            if self.sent.len() >= EVENT_WINDOW {
                break;
            }
            if self.sent.contains(&ev.seq) {
                continue;
            }
            let payload = serde_json::to_vec(&ev).expect("events always serialise");
            if !self.publish_as(
                client,
                &topic,
                QoS::AtLeastOnce,
                false,
                payload,
                None,
                Sent::Event(ev.seq),
            ) {
                break;
            }
            self.sent.insert(ev.seq);
        }
    }

    async fn current_state(&self) -> Option<StateMsg> {
        match tokio::time::timeout(Duration::from_secs(2), self.control.status()).await {
            Ok(Ok(s)) => Some(StateMsg::from_status(
                &s,
                &self.boot_id,
                &self.config_version,
            )),
            _ => None,
        }
    }

    /// Publish `state` if it differs from the last one published.
    async fn refresh_state(&mut self, client: &AsyncClient) {
        let Some(new) = self.current_state().await else {
            return;
        };
        if self
            .last_state
            .as_ref()
            .is_some_and(|old| old.same_as(&new))
        {
            return;
        }
        self.state_seq += 1;
        self.last_state = Some(StateMsg {
            seq: self.state_seq,
            at: Utc::now(),
            ..new
        });
        self.republish_state(client);
    }

    fn republish_state(&mut self, client: &AsyncClient) {
        if let Some(s) = &self.last_state {
            let payload = serde_json::to_vec(s).expect("state always serialises");
            let topic = self.topics.state();
            self.publish(client, &topic, true, payload, None);
        }
    }

    async fn publish_health(&mut self, client: &AsyncClient) {
        if !self.connected {
            return; // telemetry is not queued: the next sample is fresher
        }
        let Ok(Ok(status)) =
            tokio::time::timeout(Duration::from_secs(2), self.control.status()).await
        else {
            return;
        };
        let h = self.sampler.sample(
            &status,
            &self.state_dir,
            self.outbox.len() as u64,
            self.connects,
        );
        let payload = serde_json::to_vec(&h).expect("health always serialises");
        let topic = self.topics.health();
        self.publish_as(
            client,
            &topic,
            QoS::AtMostOnce,
            false,
            payload,
            None,
            Sent::Other,
        );
    }

    fn reply(
        &self,
        id: Option<String>,
        name: &str,
        status: ReplyStatus,
        error: Option<String>,
        result: Option<Value>,
    ) -> CommandReply {
        CommandReply {
            id,
            site: self.site.clone(),
            command: name.to_owned(),
            status,
            error,
            result,
            at: Utc::now(),
        }
    }

    fn publish_reply(&mut self, client: &AsyncClient, to: &ReplyTo, reply: &CommandReply) {
        tracing::info!(id = ?reply.id, command = %reply.command, status = ?reply.status, error = ?reply.error, "command reply");
        let payload = serde_json::to_vec(reply).expect("replies always serialise");
        if let Some(rt) = &to.response_topic {
            let props = PublishProperties {
                correlation_data: to.correlation.clone(),
                content_type: Some("application/json".into()),
                ..Default::default()
            };
            self.publish(client, rt, false, payload.clone(), Some(props));
        }
        // Topic levels must not carry wildcards; a name that does gets no
        // `.../reply` (it was rejected anyway).
        if !to.name.is_empty() && !to.name.contains(['+', '#']) {
            let topic = self.topics.reply(&to.name);
            self.publish(client, &topic, false, payload, None);
        }
    }

    fn finish(&self, reply: &CommandReply) {
        if let (Some(id), true) = (&reply.id, reply.status.is_final()) {
            if let Err(e) = self.seen.finish(id, reply.status) {
                tracing::warn!("cannot record the outcome of command {id}: {e}");
            }
        }
    }

    fn on_command(&mut self, client: &AsyncClient, p: Publish) {
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        // Schedules are retained documents, not commands: no reply, and the
        // scheduler ignores a copy it already holds.
        if let Some(source) = self.topics.parse_schedule(&topic, &self.groups) {
            let taken = self.schedule.document(crate::schedule::Document {
                source: source.clone(),
                payload: p.payload.to_vec(),
            });
            if !taken {
                tracing::warn!("the {source} schedule arrived while the scheduler was busy; the next connect brings it again");
            }
            return;
        }
        let props = p.properties.unwrap_or_default();
        let mut to = ReplyTo {
            name: String::new(),
            response_topic: props
                .response_topic
                .filter(|t| !t.is_empty() && !t.contains(['+', '#'])),
            correlation: props.correlation_data,
        };
        let (scope, name) = match self.topics.parse_command(&topic, &self.groups) {
            Ok(sn) => sn,
            Err(e) => {
                tracing::warn!("ignored message: {e}");
                if to.response_topic.is_some() {
                    let r = self.reply(None, "", ReplyStatus::Rejected, Some(e.to_string()), None);
                    self.publish_reply(client, &to, &r);
                }
                return;
            }
        };
        to.name = name.clone();
        if p.retain {
            // A retained command would be replayed on every reconnect.
            tracing::warn!("ignored retained command on {topic}: commands must not be retained");
            return;
        }
        let now = Utc::now();
        let mut env = match command::parse(&name, &p.payload, now, self.cfg.command_max_ttl) {
            Ok(env) => env,
            Err(rej) => {
                let r = self.reply(rej.id, &name, rej.status, Some(rej.reason), None);
                self.publish_reply(client, &to, &r);
                return;
            }
        };
        match self.seen.mark(&env.id, &name, now) {
            Ok(None) => {}
            Ok(Some(prev)) => {
                let r = self.reply(
                    Some(env.id),
                    &name,
                    ReplyStatus::Duplicate,
                    Some("this command id was seen before; not executed again".into()),
                    Some(json!({"first_seen": prev.at, "first_status": prev.status})),
                );
                self.publish_reply(client, &to, &r);
                return;
            }
            Err(e) => {
                // Without a durable record the command could run twice.
                let r = self.reply(
                    Some(env.id),
                    &name,
                    ReplyStatus::Failed,
                    Some(e.to_string()),
                    None,
                );
                self.publish_reply(client, &to, &r);
                return;
            }
        }
        // A session started for a group: every member's session carries the
        // one group session id (the group and the command's id), so the hub
        // and the archive can line the communes' recordings up.
        if let (Scope::Group(g), Command::SessionStart { metadata }) = (&scope, &mut env.command) {
            metadata.insert(GROUP_SESSION.into(), format!("{g}/{}", env.id));
        }
        self.execute(client, env, to);
    }

    /// Carry out a validated command through the command layer. `rebirth`
    /// and the MQTT part of `diagnostics` are this connection's own;
    /// `config.set` carries where the restarted daemon sends its answer.
    fn execute(&mut self, client: &AsyncClient, env: Envelope, to: ReplyTo) {
        let id = env.id.clone();
        let name = env.name.clone();
        let acknowledged =
            crate::core::command::spec(env.command.name()).is_some_and(|s| s.acknowledged);
        let reply_now = |me: &mut Self, status, error: Option<String>, result: Option<Value>| {
            let r = me.reply(Some(id.clone()), &name, status, error, result);
            me.finish(&r);
            me.publish_reply(client, &to, &r);
        };
        match env.command {
            Command::Rebirth => {
                self.republish_presence(client);
                reply_now(
                    self,
                    ReplyStatus::Done,
                    None,
                    Some(json!({"boot_id": self.boot_id})),
                );
            }
            Command::ConfigSet { toml } => {
                let pending = crate::config::apply::Pending {
                    id: id.clone(),
                    name: name.clone(),
                    response_topic: to.response_topic.clone(),
                    correlation: to.correlation.as_ref().map(hex::encode),
                    failed: None,
                };
                // The final answer (`done`, or `failed` after a rollback)
                // comes from the restarted daemon (`answer_pending_config`);
                // a refusal is final here.
                let control = self.control.clone();
                self.spawn_reply(to.clone(), id.clone(), name.clone(), async move {
                    let ctx = crate::control::Ctx::mqtt(&env.id, env.by.clone());
                    match control.config_set(toml, pending, &ctx).await {
                        Ok(v) => (ReplyStatus::Accepted, None, Some(v)),
                        Err(e) => (reply_status(&e), Some(e.message), None),
                    }
                });
            }
            command => {
                // This connection's part of `diagnostics`; only then, since
                // counting sled trees walks them.
                let mqtt = matches!(command, Command::Diagnostics { .. }).then(|| {
                    json!({
                        "boot_id": self.boot_id,
                        "broker": self.cfg.brokers[self.broker % self.cfg.brokers.len()].to_string(),
                        "connects": self.connects,
                        "event_backlog": self.outbox.len(),
                        "seen_command_ids": self.seen.len(),
                        "config_version": self.config_version,
                    })
                });
                let control = self.control.clone();
                let ctx = crate::control::Ctx::mqtt(&env.id, env.by.clone());
                let alias = env.alias;
                // `accepted` only once the quick checks passed, so that a
                // refusal (reboot not allowed, a session running) is one
                // `rejected` reply, as it always was.
                let tx = self.done_tx.clone();
                let ack = self.reply(Some(id.clone()), &name, ReplyStatus::Accepted, None, None);
                let ack_to = to.clone();
                self.spawn_reply(to.clone(), id.clone(), name.clone(), async move {
                    if let Err(e) = control.precheck(&command, &ctx).await {
                        control.refused(&command, &ctx, &e).await;
                        return (reply_status(&e), Some(e.message), None);
                    }
                    if acknowledged {
                        let reply = CommandReply {
                            at: Utc::now(),
                            ..ack
                        };
                        let _ = tx.send(Done { to: ack_to, reply });
                    }
                    match control.execute_prechecked(command, &ctx).await {
                        Ok(mut v) => {
                            if let Some(m) = mqtt {
                                v["mqtt"] = m;
                            }
                            if let Some(a) = alias {
                                v = crate::core::command::shape_alias(a, v);
                            }
                            (ReplyStatus::Done, None, Some(v))
                        }
                        Err(e) => (reply_status(&e), Some(e.message), None),
                    }
                });
            }
        }
    }

    /// Run `work` off the actor and publish its outcome as the final reply.
    fn spawn_reply<F>(&self, to: ReplyTo, id: String, name: String, work: F)
    where
        F: std::future::Future<Output = (ReplyStatus, Option<String>, Option<Value>)>
            + Send
            + 'static,
    {
        let tx = self.done_tx.clone();
        let site = self.site.clone();
        let seen = self.seen.clone();
        tokio::spawn(async move {
            // The id is durable before the command runs, so a replay after
            // a crash is a duplicate, never a second run.
            let synced = tokio::task::spawn_blocking(move || seen.sync()).await;
            let (status, error, result) = match synced {
                Ok(Ok(())) => work.await,
                Ok(Err(e)) => (
                    ReplyStatus::Failed,
                    Some(format!("not executed: {e}")),
                    None,
                ),
                Err(e) => (
                    ReplyStatus::Failed,
                    Some(format!("not executed: {e}")),
                    None,
                ),
            };
            let reply = CommandReply {
                id: Some(id),
                site,
                command: name,
                status,
                error,
                result,
                at: Utc::now(),
            };
            let _ = tx.send(Done { to, reply });
        });
    }

    async fn shutdown(&mut self, client: &AsyncClient, eventloop: &mut EventLoop) {
        if !self.connected {
            return;
        }
        // Give the events of the session that just ended a moment to go out.
        let deadline = Instant::now() + Duration::from_millis(1500);
        self.pump_events(client);
        while !self.sent.is_empty() && Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Ok(Ok(ev)) => self.on_event(client, ev),
                _ => break,
            }
        }
        let topic = self.topics.status();
        self.publish(
            client,
            &topic,
            true,
            self.status_json(Presence::Offline),
            None,
        );
        let _ = client.try_disconnect();
        // Drive the event loop until the DISCONNECT is written.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => break,
                Ok(Ok(_)) => {}
                _ => break,
            }
        }
        tracing::info!("MQTT: published offline and disconnected");
    }
}

/// A refusal is `rejected` (nothing was changed), anything else `failed`.
fn reply_status(e: &crate::core::command::CommandError) -> ReplyStatus {
    match e.code {
        ErrorCode::Rejected | ErrorCode::BadRequest => ReplyStatus::Rejected,
        ErrorCode::Failed | ErrorCode::Unavailable => ReplyStatus::Failed,
    }
}
