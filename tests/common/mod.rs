//! Shared helpers for the integration tests: run the real `diemcau` binary
//! on a private state directory and socket, talk to it through its CLI and
//! socket, and run real peers (an SRT listener from srt-tools, ffprobe).
#![allow(dead_code)]

pub mod mqtt;
pub mod nat;
pub mod relay;
pub mod sip;
pub mod tsa;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_diemcau");

/// A config for tests: synthetic sources, small picture, fake sinks.
pub fn test_config(extra: &str) -> String {
    format!(
        r#"[site]
id = "test-xa-01"
name = "Xã Thử Nghiệm"

[daemon]
language = "en"
start_timeout_s = 10
stop_timeout_s = 3

[video]
source = "synthetic"
width = 320
height = 240
framerate = 25
bitrate_kbps = 600
min_bitrate_kbps = 300
max_bitrate_kbps = 1000
keyframe_interval_s = 1

[audio]
source = "synthetic"
channels = 1

[display]
sink = "fake"

[speaker]
sink = "fake"
{extra}"#
    )
}

/// A daemon process on its own temporary state directory.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub child: Option<Child>,
    pub log: PathBuf,
    /// The network namespace the daemon runs in (behind a NAT), if any.
    pub netns: Option<PathBuf>,
    /// Where the daemon's systemd notifications arrive, when asked for
    /// ([`Daemon::start_notified`]).
    pub notify: Option<std::os::unix::net::UnixDatagram>,
    /// Looked in first for the programs the daemon runs
    /// ([`Daemon::start_with_programs`]).
    pub programs: Option<PathBuf>,
}

impl Daemon {
    /// Write `config_text` (with state_dir and socket set to the temp dir)
    /// and start the daemon; waits until it answers `status`.
    pub fn start(config_text: &str) -> Daemon {
        Self::start_in(config_text, None)
    }

    /// Like [`Daemon::start`], with `NOTIFY_SOCKET` set as systemd sets it
    /// for a `Type=notify` service, so the test reads what the daemon tells
    /// systemd ([`Daemon::notifications`]).
    pub fn start_notified(config_text: &str) -> Daemon {
        Self::start_with(config_text, None, true)
    }

    /// Like [`Daemon::start`], with `dir` first on the daemon's PATH: a
    /// stand-in for a program that cannot run here (each test says which,
    /// and why).
    pub fn start_with_programs(config_text: &str, dir: &Path) -> Daemon {
        let mut d = Self::prepare(config_text, None, false);
        d.programs = Some(dir.to_owned());
        d.spawn();
        d
    }

    /// Its state directory and config, inside `netns` when given, not yet
    /// started ([`Daemon::spawn`] starts it): for a test that puts
    /// something in the state first.
    pub fn prepare_in(config_text: &str, netns: Option<PathBuf>) -> Daemon {
        Self::prepare(config_text, netns, false)
    }

    /// Like [`Daemon::start`], inside network namespace `netns` when given.
    pub fn start_in(config_text: &str, netns: Option<PathBuf>) -> Daemon {
        Self::start_with(config_text, netns, false)
    }

    fn start_with(config_text: &str, netns: Option<PathBuf>, notified: bool) -> Daemon {
        let mut d = Self::prepare(config_text, netns, notified);
        d.spawn();
        d
    }

    fn prepare(config_text: &str, netns: Option<PathBuf>, notified: bool) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("api.sock");
        let state = dir.path().join("state");
        let text = config_text.replacen(
            "[daemon]\n",
            &format!(
                "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n",
                state.display(),
                socket.display()
            ),
            1,
        );
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).unwrap();
        let notify = notified.then(|| {
            let sock = std::os::unix::net::UnixDatagram::bind(dir.path().join("notify.sock"))
                .expect("a notification socket");
            sock.set_nonblocking(true).unwrap();
            sock
        });
        Daemon {
            log: dir.path().join("daemon.log"),
            dir,
            config,
            socket,
            child: None,
            netns,
            notify,
            programs: None,
        }
    }

    /// (Re)start the process on the same state directory.
    pub fn spawn(&mut self) {
        self.spawn_within(Duration::from_secs(10));
    }

    /// [`Daemon::spawn`], allowing `ready` for it to answer: a start that
    /// checks a large backlog against its hashes first.
    pub fn spawn_within(&mut self, ready: Duration) -> Duration {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = nat::command_in(self.netns.as_deref(), BIN);
        if self.notify.is_some() {
            command.env("NOTIFY_SOCKET", self.dir.path().join("notify.sock"));
        }
        if let Some(p) = &self.programs {
            let path = std::env::var("PATH").unwrap_or_default();
            command.env("PATH", format!("{}:{path}", p.display()));
        }
        let child = command
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn diemcau");
        self.child = Some(child);
        self.wait_ready(ready)
    }

    /// The systemd notifications received since the last call, one
    /// message each (`READY=1`, `STATUS=...`, ...).
    pub fn notifications(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(sock) = &self.notify else {
            return out;
        };
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    pub fn wait_ready(&mut self, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        loop {
            if self
                .request(r#"{"cmd":"status"}"#)
                .is_some_and(|r| r["ok"] == true)
            {
                return t0.elapsed();
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited early with {st}:\n{}", self.log_text());
            }
            assert!(
                t0.elapsed() < timeout,
                "daemon not ready:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send one raw line; the parsed reply, or None if the socket is not there.
    pub fn request(&self, line: &str) -> Option<Value> {
        let mut s = UnixStream::connect(&self.socket).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(line.as_bytes()).ok()?;
        s.write_all(b"\n").ok()?;
        let mut reply = String::new();
        BufReader::new(&s).read_line(&mut reply).ok()?;
        serde_json::from_str(&reply).ok()
    }

    /// Run the CLI against this daemon.
    /// In the daemon's network namespace, as a technician at the box would.
    pub fn cli(&self, args: &[&str]) -> Output {
        nat::command_in(self.netns.as_deref(), BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("run diemcau cli")
    }

    pub fn status(&self) -> Value {
        let out = self.cli(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }

    pub fn phase(&self) -> String {
        self.status()["phase"].as_str().unwrap().to_owned()
    }

    pub fn start_session(&self) -> Value {
        let out = self.cli(&["start", "--meta", "case=TEST-1"]);
        assert!(
            out.status.success(),
            "start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        self.status()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        self.child.take().unwrap().wait().unwrap();
    }

    /// SIGTERM and wait; returns the exit status and how long it took.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let t0 = Instant::now();
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return (st, t0.elapsed());
            }
            if t0.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                panic!("daemon did not exit on SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- daemon log ---\n{}", self.log_text());
        }
    }
}

/// A free UDP port on loopback (SRT runs over UDP).
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An SRT listener from srt-tools (written by the SRT project, not us)
/// standing in for the provincial hub: writes what it receives to a file.
pub struct SrtReceiver {
    /// Where it listens (127.0.0.1 unless set).
    pub host: String,
    pub port: u16,
    pub out: PathBuf,
    /// AES passphrase the box must use (none: unencrypted).
    pub passphrase: Option<String>,
    child: Option<Child>,
}

impl SrtReceiver {
    pub fn new(port: u16, out: &Path) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port,
            out: out.to_owned(),
            passphrase: None,
            child: None,
        }
    }

    /// Start listening, appending to the output file; it accepts the box
    /// again after a disconnect.
    pub fn start(&mut self) {
        self.spawn(true);
    }

    /// Start listening for one connection only: the receiver exits by itself
    /// when the box disconnects, writing out everything it buffered (a
    /// killed srt-live-transmit loses its unflushed output).
    pub fn start_once(&mut self) {
        self.spawn(false);
    }

    /// Wait for a `start_once` receiver to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let t0 = Instant::now();
        while let Some(c) = self.child.as_mut() {
            if c.try_wait().ok().flatten().is_some() {
                self.child = None;
                return true;
            }
            if t0.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    fn spawn(&mut self, again: bool) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.out)
            .unwrap();
        let child = Command::new("srt-live-transmit")
            .args(["-q", if again { "-a:yes" } else { "-a:no" }])
            .arg(format!(
                "srt://{}:{}?mode=listener{}",
                self.host,
                self.port,
                self.passphrase
                    .as_ref()
                    .map(|p| format!("&passphrase={p}"))
                    .unwrap_or_default()
            ))
            .arg("file://con")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("srt-live-transmit");
        self.child = Some(child);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn bytes(&self) -> u64 {
        std::fs::metadata(&self.out).map(|m| m.len()).unwrap_or(0)
    }

    /// Wait until the output grows; returns how long that took.
    pub fn wait_growth(&self, timeout: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        let start = self.bytes();
        while t0.elapsed() < timeout {
            if self.bytes() > start + 10_000 {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for SrtReceiver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// ffprobe's view of a file: codec names and the container duration.
pub fn probe(file: &Path) -> (Vec<String>, f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("ffprobe");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let codecs = v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["codec_name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let dur = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (codecs, dur)
}

/// Decode the whole file with ffmpeg; the decoder's error lines.
pub fn decode_errors(file: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// Garage, the S3-compatible object store (installed from crates.io by
/// tests/quickstart.sh), as the central archive: a real server process.
pub struct Garage {
    pub dir: tempfile::TempDir,
    /// Where its S3 port listens.
    pub host: String,
    pub s3_port: u16,
    pub key_id: String,
    pub secret: String,
    pub bucket: String,
    child: Option<Child>,
}

/// The garage binary: $DIEMCAU_GARAGE, or `garage` on the PATH.
pub fn garage_bin() -> Option<String> {
    if let Ok(p) = std::env::var("DIEMCAU_GARAGE") {
        return Some(p);
    }
    have("garage").then(|| "garage".to_owned())
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Garage {
    /// Prepare (config, ports, credentials) without starting the server.
    pub fn new() -> Garage {
        Self::new_at("127.0.0.1")
    }

    /// A store whose S3 port listens on `host` (an address of this
    /// machine's: a veth's, for a box in a network namespace).
    pub fn new_at(host: &str) -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let s3_port = free_tcp_port();
        let rpc_port = free_tcp_port();
        let admin_port = free_tcp_port();
        let config = format!(
            r#"metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "c3ea8cb80333d04e208d136698b1a01ae370d463f0d435ab2177510b3478bf44"
[s3_api]
s3_region = "garage"
api_bind_addr = "{host}:{s3_port}"
root_domain = ".s3.garage"
[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
admin_token = "0123456789abcdef0123456789abcdef"
"#,
            d = dir.path().display()
        );
        std::fs::write(dir.path().join("garage.toml"), config).unwrap();
        Garage {
            dir,
            host: host.to_owned(),
            s3_port,
            key_id: "GK0123456789abcdef01234567".into(),
            secret: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".into(),
            bucket: "recordings".into(),
            child: None,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(garage_bin().expect("garage is installed"));
        c.arg("-c").arg(self.dir.path().join("garage.toml"));
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("garage cli");
        assert!(
            out.status.success(),
            "garage {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Start the server; the first time, also lay out the node and create
    /// the bucket and key.
    pub fn start(&mut self) {
        let first = !self.dir.path().join("meta").exists();
        let log = std::fs::File::create(self.dir.path().join("garage.log")).unwrap();
        self.child = Some(
            self.cmd()
                .arg("server")
                .env("RUST_LOG", "warn")
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start garage"),
        );
        let t0 = Instant::now();
        while !self
            .cmd()
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "garage did not come up"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        if first {
            let id = self.run(&["node", "id", "-q"]);
            let id = id.trim().split('@').next().unwrap().to_owned();
            self.run(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
            self.run(&["layout", "apply", "--version", "1"]);
            self.run(&[
                "key",
                "import",
                "--yes",
                "-n",
                "diemcau",
                &self.key_id.clone(),
                &self.secret.clone(),
            ]);
            self.run(&["bucket", "create", &self.bucket.clone()]);
            self.run(&[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                &self.bucket.clone(),
                "--key",
                &self.key_id.clone(),
            ]);
        }
        // The S3 port answers once the layout is in force.
        let t0 = Instant::now();
        while std::net::TcpStream::connect((self.host.as_str(), self.s3_port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "garage S3 port closed"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The `[archive]` section pointing at this store.
    pub fn archive_toml(&self) -> String {
        format!(
            "\n[archive]\nendpoint = \"http://{}:{}\"\nregion = \"garage\"\nbucket = \"{}\"\nprefix = \"archive\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\npath_style = true\nidle_max_kbps = 0\n",
            self.host, self.s3_port, self.bucket, self.key_id, self.secret
        )
    }

    fn bucket(&self) -> rusty_s3::Bucket {
        rusty_s3::Bucket::new(
            format!("http://{}:{}", self.host, self.s3_port)
                .parse()
                .unwrap(),
            rusty_s3::UrlStyle::Path,
            self.bucket.clone(),
            "garage",
        )
        .unwrap()
    }

    /// Every object key in the bucket, sorted.
    pub fn list(&self) -> Vec<String> {
        use rusty_s3::S3Action;
        let creds = rusty_s3::Credentials::new(self.key_id.clone(), self.secret.clone());
        let bucket = self.bucket();
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = bucket.list_objects_v2(Some(&creds));
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(Duration::from_secs(60));
            let body = ureq::get(url.as_str())
                .call()
                .unwrap()
                .into_string()
                .unwrap();
            let parsed = rusty_s3::actions::ListObjectsV2::parse_response(&body).unwrap();
            // ListObjectsV2 asks for URL-encoded keys (encoding-type=url).
            keys.extend(parsed.contents.iter().map(|o| percent_decode(&o.key)));
            match parsed.next_continuation_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        keys.sort();
        keys
    }

    pub fn get(&self, key: &str) -> Vec<u8> {
        use rusty_s3::S3Action;
        let creds = rusty_s3::Credentials::new(self.key_id.clone(), self.secret.clone());
        let bucket = self.bucket();
        let url = bucket
            .get_object(Some(&creds), key)
            .sign(Duration::from_secs(60));
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut ureq::get(url.as_str()).call().unwrap().into_reader(),
            &mut out,
        )
        .unwrap();
        out
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The hub's program feed, from ffmpeg (not written here) as an SRT listener:
/// a test picture and a tone in MPEG-TS, H.264 + Opus.
pub fn hub_program(port: u16) -> Child {
    Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "25",
        ])
        .args(["-c:a", "libopus", "-b:a", "64k", "-t", "60", "-f", "mpegts"])
        .arg(format!(
            "srt://127.0.0.1:{port}?mode=listener&pkt_size=1316"
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg")
}

/// A test config whose return feed pulls [`hub_program`] on `port`, with
/// the fake display at the program's size, and `extra` sections.
pub fn return_config(port: u16, extra: &str) -> String {
    test_config(&format!(
        "{extra}\n[return_feed]\nenabled = true\nurl = \"srt://127.0.0.1:{port}\"\nlatency_ms = 120\n"
    ))
    .replace(
        "[display]\nsink = \"fake\"",
        "[display]\nsink = \"fake\"\nwidth = 640\nheight = 360",
    )
}

/// An age key pair made by `age-keygen` itself: (identity file, recipient).
pub fn age_key(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let file = dir.join(format!("{name}.key"));
    let out = std::process::Command::new("age-keygen")
        .arg("-o")
        .arg(&file)
        .output()
        .expect("age-keygen runs (.ci/run installs age)");
    assert!(out.status.success(), "{out:?}");
    let public = std::process::Command::new("age-keygen")
        .arg("-y")
        .arg(&file)
        .output()
        .unwrap();
    (
        file,
        String::from_utf8(public.stdout).unwrap().trim().to_owned(),
    )
}

/// The reference verifier (`tools/verify-recording.py`, written from
/// docs/RECORDING-FORMAT.md alone) on an archive copy: its exit code and
/// its report.
pub fn reference_verify(dir: &Path, more: &[&str]) -> (Option<i32>, Value) {
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tools/verify-recording.py"
        ))
        .arg(dir)
        .arg("--json")
        .args(more)
        .output()
        .expect("python3 runs (.ci/run installs it and python3-cryptography)");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify-recording.py: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}
