//! Shared helpers for the integration tests: run the real `diemcau` binary
//! on a private state directory and socket, talk to it through its CLI and
//! socket, and run real peers (an SRT listener from srt-tools, ffprobe).
#![allow(dead_code)]

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
}

impl Daemon {
    /// Write `config_text` (with state_dir and socket set to the temp dir)
    /// and start the daemon; waits until it answers `status`.
    pub fn start(config_text: &str) -> Daemon {
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
        let mut d = Daemon {
            log: dir.path().join("daemon.log"),
            dir,
            config,
            socket,
            child: None,
        };
        d.spawn();
        d
    }

    /// (Re)start the process on the same state directory.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn diemcau");
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(10));
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
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
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
    pub port: u16,
    pub out: PathBuf,
    child: Option<Child>,
}

impl SrtReceiver {
    pub fn new(port: u16, out: &Path) -> Self {
        Self {
            port,
            out: out.to_owned(),
            child: None,
        }
    }

    /// Start listening, appending to the output file.
    pub fn start(&mut self) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.out)
            .unwrap();
        let child = Command::new("srt-live-transmit")
            .args(["-q"])
            .arg(format!("srt://127.0.0.1:{}?mode=listener", self.port))
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
