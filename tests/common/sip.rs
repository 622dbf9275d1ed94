//! SIP peers for the tests, all from Debian and written by others: baresip
//! (a far end that answers, calls and records what it hears), Kamailio (a
//! registrar and proxy with digest authentication) and SIPp (scripted edge
//! cases). Each runs on its own loopback ports and directory.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_tcp_port, free_udp_port};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sip");

/// A port free for both UDP and TCP (SIP listens on both).
pub fn free_sip_port() -> u16 {
    loop {
        let p = free_udp_port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// An even port with the next three free (RTP and RTCP, audio and video).
pub fn free_rtp_base() -> u16 {
    loop {
        let p = free_udp_port() & !1;
        if p > 1024
            && p < 65500
            && (0..4).all(|i| std::net::UdpSocket::bind(("127.0.0.1", p + i)).is_ok())
        {
            return p;
        }
    }
}

/// The far end's sound: a 1 kHz tone (16 kHz mono, what baresip's aufile
/// reads), made with ffmpeg. Its picture is baresip's own `fakevideo`.
/// baresip ends a call when its `aufile` source ends: the tone lasts 15
/// minutes, longer than any test's call and its waits (a 120 s tone once
/// hung up the virtual room's call before its picture check was done).
pub fn far_end_media(dir: &Path) {
    let run = |args: &[&str]| {
        let ok = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y"])
            .args(args)
            .status()
            .expect("ffmpeg runs");
        assert!(ok.success(), "ffmpeg {args:?}");
    };
    let tone = dir.join("tone1k.wav");
    run(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:sample_rate=16000:duration=900",
        "-ac",
        "1",
        tone.to_str().unwrap(),
    ]);
}

/// baresip on loopback, headless: it plays a 1 kHz tone and records what it
/// receives to `rec/` (`dump-*-dec.wav`).
pub struct Baresip {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// Where it listens (SIP, RTP and its control port).
    addr: String,
    ctrl: u16,
    child: Child,
}

impl Baresip {
    /// `account` is one line of baresip's `accounts` file.
    pub fn start(account: &str) -> Baresip {
        Self::start_at(account, "127.0.0.1", None)
    }

    /// On address `addr`, inside network namespace `netns` when given (the
    /// far side of a NAT: see `common::nat`). Its control port is on `addr`
    /// too, so [`Baresip::command`] reaches it only where `addr` is
    /// reachable from the test (loopback, or `nat::FarNet`).
    pub fn start_at(account: &str, addr: &str, netns: Option<&Path>) -> Baresip {
        Self::start_with(account, addr, netns, false)
    }

    /// Like [`Baresip::start_at`], sending a smaller picture at 10 frames a
    /// second: for the virtual room, where the host's two cores also run
    /// the emulated box, and baresip's full-size encode and decode starved
    /// the guest.
    pub fn start_light(account: &str, addr: &str, netns: Option<&Path>) -> Baresip {
        Self::start_with(account, addr, netns, true)
    }

    fn start_with(account: &str, addr: &str, netns: Option<&Path>, light: bool) -> Baresip {
        let dir = tempfile::tempdir().unwrap();
        let (media, rec) = (dir.path().join("media"), dir.path().join("rec"));
        std::fs::create_dir_all(&media).unwrap();
        std::fs::create_dir_all(&rec).unwrap();
        far_end_media(&media);
        let port = free_sip_port();
        let ctrl = free_tcp_port();
        let rtp = free_rtp_base();
        let text = std::fs::read_to_string(format!("{FIXTURES}/baresip/config"))
            .unwrap()
            .replace("@MEDIA_DIR@", media.to_str().unwrap())
            .replace("@REC_DIR@", rec.to_str().unwrap())
            .replace("@SIP_PORT@", &port.to_string())
            .replace("@ADDR@", addr)
            .replace("@CTRL_PORT@", &ctrl.to_string())
            .replace("@RTP_PORTS@", &format!("{rtp}-{}", rtp + 40));
        let text = if light {
            text.replace("video_size\t\t320x240", "video_size\t\t160x120")
                .replace("video_fps\t\t25.00", "video_fps\t\t10.00")
        } else {
            text
        };
        let conf = dir.path().join("conf");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(conf.join("config"), text).unwrap();
        std::fs::write(conf.join("accounts"), format!("{account}\n")).unwrap();
        let log = std::fs::File::create(dir.path().join("baresip.log")).unwrap();
        let child = super::nat::command_in(netns, "baresip")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("baresip is installed (.ci/run installs baresip-core)");
        let b = Baresip {
            dir,
            port,
            addr: addr.to_owned(),
            ctrl,
            child,
        };
        let t0 = Instant::now();
        while !b.log().contains("baresip is ready") {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "baresip not ready:\n{}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    /// A command through baresip's ctrl_tcp (JSON in a netstring).
    pub fn command(&self, command: &str, params: &str) -> String {
        let mut c = std::net::TcpStream::connect((self.addr.as_str(), self.ctrl)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let m = serde_json::json!({"command": command, "params": params, "token": "t"}).to_string();
        c.write_all(format!("{}:{m},", m.len()).as_bytes()).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = c.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// What baresip decoded from the box, as 16-bit samples, from its
    /// newest recording.
    pub fn received_audio(&self) -> (Vec<i16>, u32) {
        let rec = self.dir.path().join("rec");
        let mut wavs: Vec<PathBuf> = std::fs::read_dir(&rec)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .collect();
        wavs.sort();
        let Some(path) = wavs.last() else {
            return (Vec::new(), 0);
        };
        wav_samples(&std::fs::read(path).unwrap())
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The samples and rate of a 16-bit PCM WAV file (the first channel).
pub fn wav_samples(bytes: &[u8]) -> (Vec<i16>, u32) {
    let (mut rate, mut channels, mut i) = (0u32, 1usize, 12usize);
    while i + 8 <= bytes.len() {
        let id = &bytes[i..i + 4];
        let len = u32::from_le_bytes(bytes[i + 4..i + 8].try_into().unwrap()) as usize;
        let body = &bytes[i + 8..(i + 8 + len).min(bytes.len())];
        if id == b"fmt " && body.len() >= 8 {
            channels = u16::from_le_bytes([body[2], body[3]]).max(1) as usize;
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
        }
        if id == b"data" {
            // A file still being written says 0 (or too much): read to its end.
            let body = if len == 0 || i + 8 + len > bytes.len() {
                &bytes[i + 8..]
            } else {
                body
            };
            let s = body
                .chunks_exact(2 * channels)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return (s, rate);
        }
        i += 8 + len + (len & 1);
    }
    (Vec::new(), rate)
}

/// The power of `freq` in `samples` relative to their total power
/// (Goertzel): near 1 for a pure tone at that frequency, near 0 without it.
pub fn tone_share(samples: &[i16], rate: u32, freq: f64) -> f64 {
    if samples.is_empty() || rate == 0 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let (mut s1, mut s2, mut total) = (0.0f64, 0.0f64, 0.0f64);
    for &x in samples {
        let x = f64::from(x);
        let s0 = x + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
        total += x * x;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    if total == 0.0 {
        0.0
    } else {
        2.0 * power / (samples.len() as f64 * total)
    }
}

/// Kamailio as the province's registrar and proxy, users in db_text:
/// `room1`/`room1pw` (the box), `8001`/`mcupw` (the MCU), domain
/// `mcu.example`.
pub struct Kamailio {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// Its TLS port (`start_tls`), else 0.
    pub tls_port: u16,
    /// Where it listens, and in which network namespace.
    addr: String,
    netns: Option<PathBuf>,
    child: Option<Child>,
}

impl Kamailio {
    pub fn start() -> Kamailio {
        Self::start_with(None, "127.0.0.1", None)
    }

    /// With a TLS listener too, whose certificate is `certs/server.crt`
    /// (signed by `certs/ca.crt`, see `common::mqtt::make_certs`).
    pub fn start_tls(certs: &Path) -> Kamailio {
        Self::start_with(Some(certs), "127.0.0.1", None)
    }

    /// On `addr` inside `netns` (`nat::FarNet`'s far side), which the test
    /// must reach to see it listen.
    pub fn start_at(addr: &str, netns: &Path) -> Kamailio {
        Self::start_with(None, addr, Some(netns))
    }

    fn start_with(certs: Option<&Path>, addr: &str, netns: Option<&Path>) -> Kamailio {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::create_dir_all(&db).unwrap();
        for f in ["version", "subscriber"] {
            std::fs::copy(format!("{FIXTURES}/kamailio/db/{f}"), db.join(f)).unwrap();
        }
        let port = free_sip_port();
        let tls_port = if certs.is_some() { free_sip_port() } else { 0 };
        let mut cfg = std::fs::read_to_string(format!("{FIXTURES}/kamailio/kamailio.cfg"))
            .unwrap()
            .replace("@DB_DIR@", db.to_str().unwrap())
            .replace("@PORT@", &port.to_string())
            .replace("@ADDR@", addr);
        if let Some(certs) = certs {
            let tls_cfg = dir.path().join("tls.cfg");
            std::fs::write(
                &tls_cfg,
                std::fs::read_to_string(format!("{FIXTURES}/kamailio/tls.cfg"))
                    .unwrap()
                    .replace("@CERTS@", certs.to_str().unwrap()),
            )
            .unwrap();
            cfg = cfg
                .replace(
                    "#@TLS_CORE@",
                    &format!("enable_tls=yes\nlisten=tls:{addr}:{tls_port}"),
                )
                .replace(
                    "#@TLS_MODULE@",
                    &format!(
                        "loadmodule \"tls.so\"\nmodparam(\"tls\", \"config\", \"{}\")",
                        tls_cfg.display()
                    ),
                );
        }
        std::fs::write(dir.path().join("kamailio.cfg"), cfg).unwrap();
        let mut k = Kamailio {
            dir,
            port,
            tls_port,
            addr: addr.to_owned(),
            netns: netns.map(Path::to_owned),
            child: None,
        };
        k.spawn();
        k
    }

    pub fn spawn(&mut self) {
        let run = self.dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("kamailio.log"))
            .unwrap();
        let child = super::nat::command_in(self.netns.as_deref(), "kamailio")
            .arg("-f")
            .arg(self.dir.path().join("kamailio.cfg"))
            .arg("-Y")
            .arg(&run)
            .args(["-DD", "-E"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("kamailio is installed (.ci/run installs it)");
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect((self.addr.as_str(), self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "kamailio not listening:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIPp running one scenario from `tests/sip/sipp/`, in the background.
pub struct Sipp {
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Sipp {
    /// `args` follow the scenario file: the remote host, `-i`, `-p`, ...
    pub fn start(scenario: &str, args: &[&str]) -> Sipp {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(format!("{FIXTURES}/sipp/{scenario}"))
            .args(args)
            .args(["-nostdin", "-trace_err", "-trace_msg"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp is installed (.ci/run installs sip-tester)");
        Sipp { child, dir }
    }

    /// Wait for SIPp to end; its exit code is 0 when every call went as
    /// the scenario says.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            if t0.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIPp's message trace, for failure messages.
    pub fn trace(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            out += &std::fs::read_to_string(e.path()).unwrap_or_default();
        }
        out
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// linphone as a second far end: Debian's `linphone-daemon` (liblinphone,
/// belle-sip, mediastreamer2: another SIP stack and media engine than
/// baresip's), headless, answering by itself, driven through its command
/// socket in /tmp. It has no sound card or camera here: it sends what its
/// in-call player plays ([`Linphone::play_clip`]); its H.264 is openh264's.
pub struct Linphone {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pipe: String,
    child: Child,
}

impl Linphone {
    pub fn start() -> Linphone {
        let dir = tempfile::tempdir().unwrap();
        // Without a writable data directory under $HOME it stops at start
        // ("basic_string: construction from null") before opening its port.
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".local/share/linphone")).unwrap();
        let port = free_sip_port();
        let rtp = free_rtp_base();
        let rc = dir.path().join("linphonerc");
        std::fs::write(
            &rc,
            format!(
                "[sip]\nsip_port={port}\nsip_tcp_port=-1\nsip_tls_port=-1\n\
                 [rtp]\naudio_rtp_port={rtp}\nvideo_rtp_port={}\n\
                 [video]\nenabled=1\nautomatically_accept=1\nautomatically_initiate=1\n",
                rtp + 2
            ),
        )
        .unwrap();
        let pipe = format!("diemcau-linphone-{}-{port}", std::process::id());
        let log = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let child = Command::new("linphone-daemon")
            .env("HOME", &home)
            .arg("--config")
            .arg(&rc)
            .args(["--pipe", &pipe, "--auto-answer", "-C", "-D", "--log"])
            .arg(dir.path().join("linphone.log"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("linphone-daemon is installed (.ci/run installs linphone-cli)");
        let lp = Linphone {
            dir,
            port,
            pipe,
            child,
        };
        let t0 = Instant::now();
        while !lp.command("port sip").contains(&format!("SIP: {port}")) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "linphone-daemon did not open its SIP port:\n{}",
                lp.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        lp
    }

    /// Play a test clip into the call (its `incall-player`): testsrc2 in
    /// H.264 and a 1 kHz tone in Opus, made with ffmpeg.
    pub fn play_clip(&self) {
        let clip = self.dir.path().join("clip.mkv");
        let ok = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=15:duration=60",
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=1000:sample_rate=48000:duration=60",
            ])
            .args(["-c:v", "libx264", "-profile:v", "baseline", "-g", "15"])
            .args(["-c:a", "libopus", "-ac", "1"])
            .arg(&clip)
            .status()
            .expect("ffmpeg runs");
        assert!(ok.success(), "ffmpeg made no clip");
        let r = self.command(&format!("incall-player-start {}", clip.display()));
        assert!(
            r.contains("Status: Ok"),
            "incall-player-start: {r}\n{}",
            self.log()
        );
    }

    /// One command on its socket, and its answer ("Status: Ok" and fields).
    pub fn command(&self, line: &str) -> String {
        let path = format!("/tmp/{}", self.pipe);
        let Ok(mut c) = std::os::unix::net::UnixStream::connect(&path) else {
            return String::new();
        };
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        if c.write_all(format!("{line}\n").as_bytes()).is_err() {
            return String::new();
        }
        let mut buf = vec![0u8; 16384];
        let n = c.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Whether linphone's whole log (not only its tail) has `text`.
    pub fn logged(&self, text: &str) -> bool {
        std::fs::read_to_string(self.dir.path().join("linphone.log"))
            .unwrap_or_default()
            .contains(text)
    }

    pub fn log(&self) -> String {
        let tail = |name: &str| {
            let t = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let mut at = t.len().saturating_sub(6000);
            while !t.is_char_boundary(at) {
                at += 1;
            }
            t[at..].to_owned()
        };
        format!("{}\n{}", tail("stdout.log"), tail("linphone.log"))
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(format!("/tmp/{}", self.pipe));
    }
}
