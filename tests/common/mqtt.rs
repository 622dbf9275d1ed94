//! A real Mosquitto broker with TLS and client certificates made by the
//! `openssl` command line tool, and the NOC's side: a rumqttc MQTT 5 client
//! that records what it receives and sends commands. Shared by the MQTT tests
//! and the virtual bridge room.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use serde_json::{json, Value};

use super::free_tcp_port;

/// The arguments that make a P-256 key without a passphrase, for every
/// certificate the tests make.
pub const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for localhost, and client certificates for
/// the box and the NOC.
pub fn make_certs(dir: &Path, site: &str) {
    let mut a = vec!["req", "-x509"];
    a.extend(EC_KEY);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=diemcau test CA",
    ]);
    openssl(dir, &a);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:10.0.2.2\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn, ext) in [
        ("server", "localhost", "server.ext"),
        ("box", site, "client.ext"),
        ("noc", "noc", "client.ext"),
    ] {
        signed_cert(dir, name, cn, ext);
    }
}

/// Another client certificate from the CA in `dir` (after [`make_certs`]):
/// `NAME.crt` and `NAME.key` with common name `cn`.
pub fn client_cert(dir: &Path, name: &str, cn: &str) {
    signed_cert(dir, name, cn, "client.ext");
}

fn signed_cert(dir: &Path, name: &str, cn: &str, ext: &str) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let crt = format!("{name}.crt");
    let subj = format!("/CN={cn}");
    let mut a = vec!["req"];
    a.extend(EC_KEY);
    a.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
    openssl(dir, &a);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            ext,
        ],
    );
}

/// Mosquitto started as root drops to the `mosquitto` user, which cannot
/// read our temporary files; tell it to stay who we are.
pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A Mosquitto broker on its own port, config and persistence directory.
pub struct Broker {
    pub dir: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
}

impl Broker {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    pub fn new(dir: &Path) -> Broker {
        let port = free_tcp_port();
        let conf = format!(
            "listener {port} 127.0.0.1\n\
             cafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n\
             require_certificate true\nuse_identity_as_username true\nallow_anonymous true\nset_tcp_nodelay true\n\
             persistence true\npersistence_location {d}/\nautosave_interval 1\n\
             log_dest file {d}/mosquitto.log\nlog_type all\nuser {user}\n",
            d = dir.display(),
            user = current_user(),
        );
        std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
        let mut b = Broker {
            dir: dir.to_owned(),
            port,
            child: None,
        };
        b.start();
        b
    }

    /// The province's reference configuration (`noc/mosquitto/`), as
    /// shipped, with this test's paths and port put in.
    pub fn reference(dir: &Path) -> Broker {
        let port = free_tcp_port();
        let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/noc/mosquitto");
        let d = dir.display().to_string();
        let conf = std::fs::read_to_string(format!("{repo}/diemcau.conf"))
            .unwrap()
            .replace("listener 8883", &format!("listener {port} 127.0.0.1"))
            .replace("/etc/mosquitto/diemcau/", &format!("{d}/"))
            // What Debian's own mosquitto.conf adds around the file.
            + &format!(
                "persistence true\npersistence_location {d}/\n\
                 log_dest file {d}/mosquitto.log\nlog_type all\nuser {}\n",
                current_user()
            );
        std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
        std::fs::copy(format!("{repo}/diemcau.acl"), dir.join("diemcau.acl")).unwrap();
        let mut b = Broker {
            dir: dir.to_owned(),
            port,
            child: None,
        };
        b.start();
        b
    }

    pub fn start(&mut self) {
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto");
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Value,
    pub retain: bool,
    pub correlation: Option<Bytes>,
}

/// The NOC: a rumqttc MQTT 5 client with its own runtime, recording every
/// message it receives.
pub struct Noc {
    pub rt: tokio::runtime::Runtime,
    pub client: AsyncClient,
    pub msgs: Arc<Mutex<Vec<Msg>>>,
    pub reply_topic: String,
}

impl Noc {
    /// `persistent`: a broker session that outlives disconnections, so
    /// nothing published while the NOC reconnects is missed.
    pub fn connect(certs: &Path, port: u16, id: &str, persistent: bool, filters: &[String]) -> Noc {
        Self::connect_as(certs, "noc", port, id, persistent, filters)
    }

    /// Connected with the client certificate `cert` (`cert.crt`, `cert.key`
    /// in `certs`): the NOC's, or a box's to try what a box may do.
    pub fn connect_as(
        certs: &Path,
        cert: &str,
        port: u16,
        id: &str,
        persistent: bool,
        filters: &[String],
    ) -> Noc {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let tls = diemcau::tls::client_config(
            Some(&certs.join("ca.crt")),
            Some((
                &certs.join(format!("{cert}.crt")),
                &certs.join(format!("{cert}.key")),
            )),
        )
        .unwrap();
        let mut o = MqttOptions::new(id, "localhost", port);
        o.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls)));
        o.set_keep_alive(Duration::from_secs(5));
        // Replies may carry a still (`snapshot`, up to 200 KB).
        o.set_max_packet_size(Some(512 * 1024));
        o.set_clean_start(!persistent);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        o.set_network_options(net);
        if persistent {
            o.set_session_expiry_interval(Some(600));
        }
        let (client, mut el) = AsyncClient::new(o, 1000);
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let reply_topic = format!("noc/{id}/replies");
        let m = msgs.clone();
        let c = client.clone();
        let mut subs: Vec<String> = filters.to_vec();
        subs.push(reply_topic.clone());
        rt.spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &subs {
                            let _ = c.subscribe(f.clone(), QoS::AtLeastOnce).await;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let payload = serde_json::from_slice(&p.payload).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&p.payload).into())
                        });
                        m.lock().unwrap().push(Msg {
                            topic: String::from_utf8_lossy(&p.topic).into(),
                            payload,
                            retain: p.retain,
                            correlation: p.properties.and_then(|pr| pr.correlation_data),
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let noc = Noc {
            rt,
            client,
            msgs,
            reply_topic,
        };
        std::thread::sleep(Duration::from_millis(300));
        noc
    }

    pub fn msgs(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }

    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Msg) -> bool) -> Msg {
        self.try_wait_for(timeout, pred)
            .unwrap_or_else(|| panic!("NOC did not see {what}; got:\n{:#?}", self.msgs()))
    }

    pub fn try_wait_for(&self, timeout: Duration, pred: impl Fn(&Msg) -> bool) -> Option<Msg> {
        let t0 = Instant::now();
        loop {
            if let Some(m) = self.msgs().into_iter().find(&pred) {
                return Some(m);
            }
            if t0.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Send a command with an MQTT 5 response topic and correlation data.
    pub fn send(&self, site: &str, name: &str, payload: Value, correlation: &str) {
        let topic = format!("diemcau/v1/{site}/cmd/{name}");
        let props = PublishProperties {
            response_topic: Some(self.reply_topic.clone()),
            correlation_data: Some(Bytes::copy_from_slice(correlation.as_bytes())),
            ..Default::default()
        };
        let c = self.client.clone();
        let body = serde_json::to_vec(&payload).unwrap();
        self.rt
            .block_on(c.publish_with_properties(topic, QoS::AtLeastOnce, false, body, props))
            .unwrap();
    }

    /// Publish `payload` at `topic` (QoS 1), as whoever this client is.
    pub fn publish(&self, topic: &str, payload: Value) {
        let c = self.client.clone();
        let body = serde_json::to_vec(&payload).unwrap();
        self.rt
            .block_on(c.publish(topic, QoS::AtLeastOnce, false, body))
            .unwrap();
    }

    /// Publish `payload` retained at `topic` (QoS 1): a document the box
    /// reads whenever it connects, such as its schedule.
    pub fn publish_retained(&self, topic: &str, payload: &[u8]) {
        let c = self.client.clone();
        self.rt
            .block_on(c.publish(topic, QoS::AtLeastOnce, true, payload.to_vec()))
            .unwrap();
    }

    /// Replies on the response topic for command `id`, in arrival order.
    pub fn replies(&self, id: &str) -> Vec<Value> {
        self.msgs()
            .into_iter()
            .filter(|m| m.topic == self.reply_topic && m.payload["id"] == id)
            .map(|m| m.payload)
            .collect()
    }

    pub fn wait_reply(&self, id: &str, status: &str, timeout: Duration) -> Value {
        let reply_topic = self.reply_topic.clone();
        self.wait_for(&format!("reply {status} to {id}"), timeout, |m| {
            m.topic == reply_topic && m.payload["id"] == id && m.payload["status"] == status
        })
        .payload
    }
}

pub fn cmd(id: &str, args: Value) -> Value {
    let exp = chrono::Utc::now() + chrono::Duration::seconds(60);
    json!({"id": id, "expires_at": exp.to_rfc3339(), "args": args})
}
