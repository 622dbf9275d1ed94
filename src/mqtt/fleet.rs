//! The NOC's side, as a CLI: `diemcau fleet ...` sends a command to one box
//! or to the whole fleet (`all`) through the broker and prints the replies,
//! or lists every box's retained status. It speaks the same topic tree and
//! payloads as the boxes (see `docs/mqtt-api.asyncapi.yaml`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use serde_json::{json, Value};

/// How to reach the broker as the NOC.
#[derive(Debug, Clone)]
pub struct Noc {
    /// `mqtts://HOST:PORT` or `mqtt://HOST:PORT`.
    pub url: String,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub prefix: String,
    /// Who at the NOC sends commands, for the boxes' audit trails.
    pub by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("'{0}' is not an MQTT address; expected mqtts://HOST:PORT or mqtt://HOST:PORT")]
    Url(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("MQTT: {0}")]
    Mqtt(String),
}

fn options(noc: &Noc) -> Result<MqttOptions, FleetError> {
    let (tls, rest) = if let Some(r) = noc.url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = noc.url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(FleetError::Url(noc.url.clone()));
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h.to_owned(),
            p.parse().map_err(|_| FleetError::Url(noc.url.clone()))?,
        ),
        None => (rest.to_owned(), if tls { 8883 } else { 1883 }),
    };
    let mut id = [0u8; 4];
    // Without randomness the id is fixed; two NOC CLIs would then take
    // turns on the broker, nothing worse.
    let _ = getrandom::getrandom(&mut id);
    let mut o = MqttOptions::new(format!("noc-cli-{}", hex::encode(id)), host, port);
    o.set_keep_alive(Duration::from_secs(10));
    // A reply may carry a still (`snapshot`, up to 200 KB).
    o.set_max_packet_size(Some(512 * 1024));
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    o.set_network_options(net);
    if tls {
        let cert = match (&noc.cert, &noc.key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        };
        let cfg = crate::tls::client_config(noc.ca.as_deref(), cert)
            .map_err(|e| FleetError::Tls(e.to_string()))?;
        o.set_transport(Transport::Tls(TlsConfiguration::Rustls(cfg)));
    }
    Ok(o)
}

/// The next event from the broker, or `None` once `deadline` passes.
async fn next_event(
    el: &mut rumqttc::v5::EventLoop,
    deadline: tokio::time::Instant,
) -> Result<Option<Event>, FleetError> {
    match tokio::time::timeout_at(deadline, el.poll()).await {
        Err(_) => Ok(None),
        Ok(Err(e)) => Err(FleetError::Mqtt(e.to_string())),
        Ok(Ok(ev)) => Ok(Some(ev)),
    }
}

/// Send `name` with `args` to `target` (a site id, `all`, or `group/NAME`)
/// and collect
/// replies for `wait`. Returns the replies, by site, in arrival order.
pub async fn command(
    noc: &Noc,
    target: &str,
    name: &str,
    args: Value,
    wait: Duration,
) -> Result<BTreeMap<String, Vec<Value>>, FleetError> {
    let opts = options(noc)?;
    let reply_topic = format!("noc/{}/replies", opts.client_id());
    let (client, mut el) = AsyncClient::new(opts, 100);
    let mut id = [0u8; 6];
    let _ = getrandom::getrandom(&mut id);
    let cmd_id = format!("noc-{}", hex::encode(id));
    let expires = chrono::Utc::now() + chrono::Duration::seconds(wait.as_secs().max(5) as i64 + 30);
    let mut envelope = json!({"id": cmd_id, "expires_at": expires.to_rfc3339(), "args": args});
    // Only when there is a name: a box older than the audit trail refuses
    // an envelope field it does not know.
    if let Some(by) = &noc.by {
        envelope["by"] = json!(by);
    }
    let body = serde_json::to_vec(&envelope).expect("commands serialise");
    let topic = super::topics::Topics::command_for(&noc.prefix, target, name);
    let mut replies: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut sent = false;
    loop {
        let Some(ev) = next_event(&mut el, deadline).await? else {
            break;
        };
        match ev {
            Event::Incoming(Packet::ConnAck(_)) => {
                client
                    .subscribe(reply_topic.clone(), QoS::AtLeastOnce)
                    .await
                    .map_err(|e| FleetError::Mqtt(e.to_string()))?;
            }
            Event::Incoming(Packet::SubAck(_)) if !sent => {
                sent = true;
                let props = PublishProperties {
                    response_topic: Some(reply_topic.clone()),
                    correlation_data: Some(Bytes::from(cmd_id.clone())),
                    ..Default::default()
                };
                client
                    .publish_with_properties(
                        topic.clone(),
                        QoS::AtLeastOnce,
                        false,
                        body.clone(),
                        props,
                    )
                    .await
                    .map_err(|e| FleetError::Mqtt(e.to_string()))?;
            }
            Event::Incoming(Packet::Publish(p)) => {
                let Ok(v) = serde_json::from_slice::<Value>(&p.payload) else {
                    continue;
                };
                if v["id"] != cmd_id.as_str() {
                    continue;
                }
                let site = v["site"].as_str().unwrap_or("?").to_owned();
                let final_reply = !matches!(v["status"].as_str(), Some("accepted"));
                replies.entry(site).or_default().push(v);
                // One box answered for good: nothing more to wait for.
                if target != "all" && !target.starts_with("group/") && final_reply {
                    break;
                }
            }
            _ => {}
        }
    }
    let _ = client.disconnect().await;
    Ok(replies)
}

/// Every box's retained `status`, as the broker holds them.
pub async fn statuses(noc: &Noc, wait: Duration) -> Result<BTreeMap<String, Value>, FleetError> {
    let opts = options(noc)?;
    let (client, mut el) = AsyncClient::new(opts, 100);
    let filter = format!("{}/+/status", noc.prefix.trim_matches('/'));
    let mut out = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let Some(ev) = next_event(&mut el, deadline).await? else {
            break;
        };
        match ev {
            Event::Incoming(Packet::ConnAck(_)) => {
                client
                    .subscribe(filter.clone(), QoS::AtLeastOnce)
                    .await
                    .map_err(|e| FleetError::Mqtt(e.to_string()))?;
            }
            Event::Incoming(Packet::Publish(p)) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                let site = topic.split('/').rev().nth(1).unwrap_or("?").to_owned();
                let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                out.insert(site, v);
            }
            _ => {}
        }
    }
    let _ = client.disconnect().await;
    Ok(out)
}

/// Publish `payload` retained at `topic` (QoS 1) and wait for the broker's
/// acknowledgement: a document every box reads when it connects. An empty
/// payload removes what was retained.
pub async fn publish_retained(noc: &Noc, topic: &str, payload: Vec<u8>) -> Result<(), FleetError> {
    let opts = options(noc)?;
    let (client, mut el) = AsyncClient::new(opts, 10);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let Some(ev) = next_event(&mut el, deadline).await? else {
            return Err(FleetError::Mqtt(
                "no acknowledgement from the broker in 10 s".into(),
            ));
        };
        match ev {
            Event::Incoming(Packet::ConnAck(_)) => {
                client
                    .publish(topic.to_owned(), QoS::AtLeastOnce, true, payload.clone())
                    .await
                    .map_err(|e| FleetError::Mqtt(e.to_string()))?;
            }
            Event::Incoming(Packet::PubAck(_)) => break,
            _ => {}
        }
    }
    let _ = client.disconnect().await;
    Ok(())
}

/// What the broker retains at `topic`, if anything, within `wait`.
pub async fn retained(
    noc: &Noc,
    topic: &str,
    wait: Duration,
) -> Result<Option<Vec<u8>>, FleetError> {
    let opts = options(noc)?;
    let (client, mut el) = AsyncClient::new(opts, 10);
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = None;
    loop {
        let Some(ev) = next_event(&mut el, deadline).await? else {
            break;
        };
        match ev {
            Event::Incoming(Packet::ConnAck(_)) => {
                client
                    .subscribe(topic.to_owned(), QoS::AtLeastOnce)
                    .await
                    .map_err(|e| FleetError::Mqtt(e.to_string()))?;
            }
            Event::Incoming(Packet::Publish(p)) if p.retain => {
                out = Some(p.payload.to_vec());
                break;
            }
            _ => {}
        }
    }
    let _ = client.disconnect().await;
    Ok(out)
}
