//! `diemcau doctor`: the technician's self-test. Every part of the room and
//! every service the box depends on is checked and reported PASS, FAIL or
//! SKIP, with a hint that says what to do, in Vietnamese by default (the
//! words are `core::words::doctor`).
//!
//! The checks only look and try (open, connect, capture a few frames, write
//! one small object); they change nothing and never stop a live session:
//! what would disturb one is skipped while it runs.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::config::{self, Config, Language};
use crate::core::command::Command;
use crate::core::words::doctor::{self as say, Advice, Finding, Name, Prompt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to do about it (empty on PASS).
    pub hint: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub site: String,
    pub checks: Vec<Check>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

fn check(
    name: &str,
    verdict: Verdict,
    detail: impl Into<String>,
    hint: impl Into<String>,
) -> Check {
    Check {
        name: name.into(),
        verdict,
        detail: detail.into(),
        hint: if verdict == Verdict::Pass {
            String::new()
        } else {
            hint.into()
        },
    }
}

/// How the checks reach the daemon, which holds the screen, the speaker
/// and the button: through its socket when `diemcau doctor` runs at the
/// box, straight to its command layer when the daemon runs the self-test
/// itself (the NOC's `diagnostics`), so it never calls back into its own
/// socket.
pub trait DaemonLink {
    /// Carry out `cmd`; the result, or what went wrong in words.
    fn call(&self, cmd: Command, timeout: Duration) -> Result<serde_json::Value, String>;
}

/// The daemon's socket, as the CLI reaches it.
pub struct Socket(pub std::path::PathBuf);

impl DaemonLink for Socket {
    fn call(&self, cmd: Command, timeout: Duration) -> Result<serde_json::Value, String> {
        let reply = crate::client::request(&self.0, &cmd, timeout).map_err(|e| e.to_string())?;
        match (reply.ok, reply.result, reply.error) {
            (true, Some(v), _) => Ok(v),
            (_, _, Some(e)) => Err(e.message),
            _ => Err("the daemon sent an empty reply".into()),
        }
    }
}

/// Run every check for the configuration at `path`, reaching the daemon
/// through its socket. `interactive`: a technician is at the box, so the
/// checks may ask for a button press.
pub fn run(path: &Path, lang: Language, interactive: bool) -> Report {
    let socket = config::load(path)
        .map(|c| c.daemon.socket)
        .unwrap_or_default();
    run_with(path, lang, interactive, &Socket(socket))
}

/// [`run`], reaching the daemon through `link`.
pub fn run_with(path: &Path, lang: Language, interactive: bool, link: &dyn DaemonLink) -> Report {
    let mut checks = Vec::new();
    let cfg = match config::load(path) {
        Ok(c) => {
            checks.push(check(
                say::name(lang, Name::Config),
                Verdict::Pass,
                say::config_valid(lang, &path.display().to_string()),
                "",
            ));
            c
        }
        Err(e) => {
            checks.push(check(
                say::name(lang, Name::Config),
                Verdict::Fail,
                e.to_string(),
                say::advice(lang, Advice::FixConfig),
            ));
            return tally(String::new(), checks);
        }
    };
    if let Some(p) = crate::provision::read_status(path) {
        let when = chrono::DateTime::from_timestamp(p.at, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        let name = say::name(lang, Name::SiteFile);
        checks.push(if p.ok {
            check(
                name,
                Verdict::Pass,
                format!("{when}: {}", p.message(lang)),
                "",
            )
        } else {
            check(
                name,
                Verdict::Fail,
                format!("{when}: {}", p.message(lang)),
                say::advice(lang, Advice::FixSiteFile),
            )
        });
    }
    let status = daemon_status(link);
    let live = status
        .as_ref()
        .is_some_and(|s| s.phase == crate::core::session::Phase::Live);
    checks.push(match &status {
        Some(s) => check(
            say::name(lang, Name::Daemon),
            Verdict::Pass,
            say::daemon_running(lang, &s.version, crate::core::words::phase(lang, s.phase)),
            "",
        ),
        None => check(
            say::name(lang, Name::Daemon),
            Verdict::Fail,
            say::finding(lang, Finding::NotRunning),
            say::advice(lang, Advice::RestartDaemon),
        ),
    });
    checks.push(camera(&cfg, lang, live));
    checks.push(encoder(&cfg, lang, status.as_ref()));
    checks.push(microphone(&cfg, lang, status.as_ref()));
    checks.push(speaker(&cfg, lang, live, status.is_some(), link));
    checks.push(display(&cfg, lang, status.as_ref(), interactive, link));
    checks.push(button_press(
        link,
        lang,
        button(&cfg, lang),
        status.as_ref(),
        interactive,
    ));
    checks.push(led(&cfg, lang));
    checks.push(network(lang));
    checks.push(time_sync(lang));
    checks.push(broker(&cfg, lang));
    checks.push(hub(&cfg, lang, status.as_ref()));
    checks.push(conference(&cfg, lang, status.as_ref()));
    checks.push(archive(&cfg, lang));
    if let Some(url) = cfg.archive.as_ref().and_then(|a| a.timestamp_url.clone()) {
        checks.push(time_stamp(&cfg, &url, lang));
    }
    checks.push(disk(lang, status.as_ref()));
    checks.push(device_key(&cfg, lang));
    if !cfg.recording.recipients.is_empty() {
        checks.push(check(
            say::name(lang, Name::Sealing),
            Verdict::Pass,
            say::sealed_to(lang, &cfg.recording.recipients),
            "",
        ));
    }
    checks.push(state_format(&cfg, lang));
    let aside = crate::store::Store::set_aside(&cfg.daemon.state_dir);
    if !aside.is_empty() {
        let folders = aside
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        checks.push(check(
            say::name(lang, Name::SetAside),
            Verdict::Fail,
            say::store_set_aside(lang, &folders),
            say::advice(lang, Advice::StoreSetAside),
        ));
    }
    tally(cfg.site.id.clone(), checks)
}

/// The state directory's format against what this version reads: a box
/// rolled back to an older system refuses a newer state, and this line
/// says why the daemon does not start.
fn state_format(cfg: &Config, lang: Language) -> Check {
    let ours = crate::store::STATE_FORMAT;
    let found = crate::store::read_format(&cfg.daemon.state_dir);
    let (verdict, advice) = match &found {
        Ok(Some(f)) if *f > ours => (Verdict::Fail, say::advice(lang, Advice::NewerState)),
        Ok(_) => (Verdict::Pass, ""),
        Err(_) => (Verdict::Fail, say::advice(lang, Advice::NewerState)),
    };
    let found = match &found {
        Ok(f) => Ok(f.unwrap_or(ours)),
        Err(said) => Err(said.as_str()),
    };
    check(
        say::name(lang, Name::StateFormat),
        verdict,
        say::state_format(lang, found, ours),
        advice,
    )
}

fn tally(site: String, checks: Vec<Check>) -> Report {
    let count = |v| checks.iter().filter(|c| c.verdict == v).count();
    Report {
        site,
        passed: count(Verdict::Pass),
        failed: count(Verdict::Fail),
        skipped: count(Verdict::Skip),
        checks,
    }
}

fn daemon_status(link: &dyn DaemonLink) -> Option<crate::core::status::Status> {
    let v = link.call(Command::Status, Duration::from_secs(3)).ok()?;
    serde_json::from_value(v).ok()
}

/// Run a short GStreamer pipeline to EOS; Err with the first error.
fn gst_run(desc: &str, timeout: Duration) -> Result<Vec<gstreamer::Message>, String> {
    crate::media::runner::run_to_eos(desc, timeout)
}

fn camera(cfg: &Config, lang: Language, live: bool) -> Check {
    let name = say::name(lang, Name::Camera);
    let dev = match &cfg.video.source {
        config::VideoSource::V4l2(d) => d.clone(),
        other => {
            return check(
                name,
                Verdict::Skip,
                say::synthetic(lang, &format!("{other:?}")),
                say::advice(lang, Advice::CameraTestSource),
            );
        }
    };
    if !dev.exists() {
        return check(
            name,
            Verdict::Fail,
            say::not_found(lang, &dev.display().to_string()),
            say::advice(lang, Advice::ReplugCamera),
        );
    }
    let modes = crate::camera::probe_modes(&dev).unwrap_or_default();
    let chosen = crate::camera::choose_mode(
        &modes,
        cfg.video.width,
        cfg.video.height,
        cfg.video.framerate,
    );
    let mode = chosen.as_ref().map_or_else(
        || say::finding(lang, Finding::NoUsableFormat).to_owned(),
        |m| format!("{} {}x{}@{:.0}", m.fourcc, m.width, m.height, m.fps),
    );
    if live {
        return check(
            name,
            Verdict::Pass,
            say::camera_in_use(lang, &dev.display().to_string(), &mode),
            "",
        );
    }
    let caps = chosen
        .and_then(|m| m.gst_caps())
        .unwrap_or_else(|| "decodebin".into());
    let desc = format!(
        "v4l2src device=\"{}\" num-buffers=10 ! {caps} ! fakesink",
        dev.display().to_string().replace('"', "")
    );
    match gst_run(&desc, Duration::from_secs(8)) {
        Ok(_) => check(
            name,
            Verdict::Pass,
            say::camera_captured(lang, &dev.display().to_string(), &mode),
            "",
        ),
        Err(e) => check(
            name,
            Verdict::Fail,
            format!("{}: {e}", dev.display()),
            say::advice(lang, Advice::CameraNoPicture),
        ),
    }
}

/// The H.264 encoder: while live, the one the session runs; otherwise the
/// choice the next session will make, probes and all.
fn encoder(cfg: &Config, lang: Language, status: Option<&crate::core::status::Status>) -> Check {
    let name = say::name(lang, Name::Encoder);
    let (element, fallback) = match status.filter(|s| s.media.running) {
        Some(s) => (s.media.encoder.clone(), s.media.encoder_fallback.clone()),
        None => {
            let c = crate::media::choose_encoder(&cfg.video);
            (
                crate::media::pipeline::encoder_factory(c.encoder).to_owned(),
                c.fallback,
            )
        }
    };
    let hardware = element != crate::media::pipeline::encoder_factory(config::Encoder::X264);
    check(
        name,
        Verdict::Pass,
        say::encoder(lang, &element, hardware, fallback.as_deref()),
        "",
    )
}

fn microphone(cfg: &Config, lang: Language, status: Option<&crate::core::status::Status>) -> Check {
    let name = say::name(lang, Name::Microphone);
    let live = status.is_some_and(|s| s.phase == crate::core::session::Phase::Live);
    let dev = match &cfg.audio.source {
        config::AudioSource::Alsa(d) => d.clone(),
        config::AudioSource::Synthetic => {
            return check(
                name,
                Verdict::Skip,
                say::finding(lang, Finding::SyntheticSource),
                "",
            );
        }
    };
    let cards = crate::audio_devices::cards();
    if cards.is_empty() {
        return check(
            name,
            Verdict::Fail,
            say::finding(lang, Finding::NoSoundCard),
            say::advice(lang, Advice::PlugSoundCard),
        );
    }
    let names: Vec<String> = cards
        .iter()
        .map(|c| format!("{}:{}", c.index, c.name))
        .collect();
    if live {
        return check(
            name,
            Verdict::Pass,
            say::microphone_in_use(
                lang,
                &names.join(", "),
                status.is_some_and(|s| s.media.echo_canceller),
            ),
            "",
        );
    }
    eprintln!("{}", say::prompt(lang, Prompt::SpeakIntoMicrophone));
    let desc = format!(
        "alsasrc device=\"{}\" num-buffers=300 ! audioconvert ! level interval=500000000 post-messages=true ! fakesink",
        dev.replace('"', "")
    );
    match gst_run(&desc, Duration::from_secs(8)) {
        Ok(msgs) => {
            let peak = msgs
                .iter()
                .filter_map(|m| {
                    m.structure()
                        .filter(|s| s.name() == "level")
                        .and_then(|s| s.get::<gstreamer::glib::ValueArray>("peak").ok())
                })
                .filter_map(|a| a.first().and_then(|v| v.get::<f64>().ok()))
                .fold(-100.0f64, f64::max);
            if peak < -50.0 {
                check(
                    name,
                    Verdict::Fail,
                    say::microphone_too_quiet(lang, &dev, peak),
                    say::advice(lang, Advice::MicTooQuiet),
                )
            } else {
                check(
                    name,
                    Verdict::Pass,
                    say::microphone_level(lang, &dev, peak, &names.join(", ")),
                    "",
                )
            }
        }
        Err(e) => check(
            name,
            Verdict::Fail,
            format!("{dev}: {e}"),
            say::advice(lang, Advice::MicDevice),
        ),
    }
}

/// A 2-second test tone on the room's speaker.
fn speaker(
    cfg: &Config,
    lang: Language,
    live: bool,
    daemon_running: bool,
    link: &dyn DaemonLink,
) -> Check {
    let name = say::name(lang, Name::Speaker);
    let config::SpeakerSink::Alsa(dev) = &cfg.speaker else {
        return check(name, Verdict::Skip, format!("{:?}", cfg.speaker), "");
    };
    if live {
        return check(
            name,
            Verdict::Skip,
            say::finding(lang, Finding::LiveNoTone),
            "",
        );
    }
    eprintln!("{}", say::prompt(lang, Prompt::ListenToBeep));
    // The daemon holds the speaker, so when it runs it plays the beep
    // itself; otherwise the beep goes straight to the device.
    let played: Result<(), String> = if daemon_running {
        match link.call(Command::SpeakerTest { seconds: 2 }, Duration::from_secs(5)) {
            Ok(_) => {
                // Let it finish before the next check talks to the room.
                std::thread::sleep(Duration::from_millis(2500));
                Ok(())
            }
            Err(e) => Err(e),
        }
    } else {
        let desc = format!(
            "audiotestsrc freq=880 volume=0.3 samplesperbuffer=960 num-buffers=100 \
             ! audio/x-raw,rate=48000 ! audioconvert ! audioresample ! alsasink device=\"{}\"",
            dev.replace('"', "")
        );
        gst_run(&desc, Duration::from_secs(8))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    match played {
        Ok(()) => check(name, Verdict::Pass, say::beep_played(lang, dev), ""),
        Err(e) => check(
            name,
            Verdict::Fail,
            format!("{dev}: {e}"),
            say::advice(lang, Advice::SpeakerDevice),
        ),
    }
}

fn display(
    cfg: &Config,
    lang: Language,
    status: Option<&crate::core::status::Status>,
    interactive: bool,
    link: &dyn DaemonLink,
) -> Check {
    let name = say::name(lang, Name::Display);
    if !matches!(cfg.display.sink, config::DisplaySink::Kms { .. }) {
        return check(name, Verdict::Skip, format!("{:?}", cfg.display.sink), "");
    }
    let connected: Vec<(String, String)> = std::fs::read_dir("/sys/class/drm")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("status")).is_ok_and(|s| s.trim() == "connected")
        })
        .map(|e| {
            // The first mode listed is the screen's preferred one.
            let mode = std::fs::read_to_string(e.path().join("modes"))
                .ok()
                .and_then(|m| m.lines().next().map(str::to_owned))
                .unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), mode)
        })
        .collect();
    let want = format!("{}x{}", cfg.display.width, cfg.display.height);
    if let Some((c, mode)) = connected
        .iter()
        .find(|(_, m)| !m.is_empty() && *m != want)
        .filter(|_| !connected.iter().any(|(_, m)| *m == want))
    {
        return check(
            name,
            Verdict::Fail,
            say::display_mode(lang, c, mode, &want),
            say::set_display_size(
                lang,
                mode.split('x').next().unwrap_or(""),
                mode.split('x').nth(1).unwrap_or(""),
            ),
        );
    }
    let connected: Vec<String> = connected
        .into_iter()
        .map(|(c, m)| format!("{c} {m}"))
        .collect();
    if connected.is_empty() {
        check(
            name,
            Verdict::Fail,
            say::finding(lang, Finding::NoDisplay),
            say::advice(lang, Advice::HdmiCable),
        )
    } else {
        let shown = test_pattern(lang, status, interactive, link);
        check(
            name,
            Verdict::Pass,
            format!("{} — {shown}", connected.join(", ")),
            "",
        )
    }
}

/// Ask the daemon, which holds the screen, to show colour bars for a few
/// seconds. Says what happened, for the check's line.
fn test_pattern(
    lang: Language,
    status: Option<&crate::core::status::Status>,
    interactive: bool,
    link: &dyn DaemonLink,
) -> String {
    // The words say 8 s too (`Prompt::LookAtScreen`, `Finding::PatternShown`).
    const SECONDS: u64 = 8;
    match status.map(|s| s.phase) {
        None => return say::finding(lang, Finding::DaemonDownNoPattern).into(),
        Some(crate::core::session::Phase::Idle) => {}
        Some(_) => return say::finding(lang, Finding::LiveNoPattern).into(),
    }
    match link.call(
        Command::DisplayTest { seconds: SECONDS },
        Duration::from_secs(5),
    ) {
        Ok(_) => {
            if interactive {
                eprintln!("{}", say::prompt(lang, Prompt::LookAtScreen));
                std::thread::sleep(Duration::from_secs(SECONDS));
            }
            say::finding(lang, Finding::PatternShown).into()
        }
        Err(e) => say::no_pattern(lang, &e),
    }
}

/// "Press the button now": through the daemon, which holds the button and
/// counts the press without starting a session.
fn button_press(
    link: &dyn DaemonLink,
    lang: Language,
    present: Check,
    status: Option<&crate::core::status::Status>,
    interactive: bool,
) -> Check {
    let idle = status.is_some_and(|s| s.phase == crate::core::session::Phase::Idle);
    if present.verdict != Verdict::Pass || !interactive || !idle {
        return present;
    }
    // The words say 10 s too (`Prompt::PressButton`, `say::no_press`).
    eprintln!("{}", say::prompt(lang, Prompt::PressButton));
    let pressed = link
        .call(Command::ButtonTest { seconds: 10 }, Duration::from_secs(15))
        .is_ok_and(|v| v["pressed"] == true);
    if pressed {
        check(
            &present.name,
            Verdict::Pass,
            say::press_received(lang, &present.detail),
            "",
        )
    } else {
        check(
            &present.name,
            Verdict::Fail,
            say::no_press(lang, &present.detail),
            say::advice(lang, Advice::ButtonNoPress),
        )
    }
}

fn button(cfg: &Config, lang: Language) -> Check {
    let name = say::name(lang, Name::Button);
    match &cfg.button.input {
        config::ButtonInput::None => check(
            name,
            Verdict::Skip,
            say::finding(lang, Finding::NotConfigured),
            "",
        ),
        config::ButtonInput::Evdev {
            device: config::EvdevDevice::Path(p),
            ..
        } => present(
            name,
            lang,
            p,
            p.display().to_string(),
            say::advice(lang, Advice::ReplugButton),
        ),
        config::ButtonInput::Evdev {
            device: config::EvdevDevice::Name(n),
            ..
        } => {
            let found = std::fs::read_to_string("/proc/bus/input/devices")
                .is_ok_and(|s| s.contains(n.as_str()));
            if found {
                check(name, Verdict::Pass, n.clone(), "")
            } else {
                check(
                    name,
                    Verdict::Fail,
                    say::no_input_device(lang, n),
                    say::advice(lang, Advice::ReplugButton),
                )
            }
        }
        config::ButtonInput::Gpio(g) => present(
            name,
            lang,
            &g.chip,
            format!("{} line {}", g.chip.display(), g.line),
            say::advice(lang, Advice::ButtonGpio),
        ),
    }
}

/// PASS with `detail` when `path` exists, else FAIL with `hint`.
fn present(name: &str, lang: Language, path: &Path, detail: String, hint: &str) -> Check {
    if path.exists() {
        check(name, Verdict::Pass, detail, "")
    } else {
        check(
            name,
            Verdict::Fail,
            say::not_found(lang, &path.display().to_string()),
            hint,
        )
    }
}

fn led(cfg: &Config, lang: Language) -> Check {
    let name = say::name(lang, Name::Led);
    match &cfg.led {
        config::Led::None => check(
            name,
            Verdict::Skip,
            say::finding(lang, Finding::NotConfigured),
            "",
        ),
        config::Led::Sysfs(p) => present(
            name,
            lang,
            &p.join("brightness"),
            p.display().to_string(),
            say::advice(lang, Advice::LedName),
        ),
        config::Led::Gpio(g) => present(
            name,
            lang,
            &g.chip,
            format!("{} line {}", g.chip.display(), g.line),
            say::advice(lang, Advice::LedGpio),
        ),
    }
}

fn network(lang: Language) -> Check {
    let name = say::name(lang, Name::Network);
    let route = std::fs::read_to_string("/proc/net/route").is_ok_and(|s| {
        s.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
    });
    if route {
        check(
            name,
            Verdict::Pass,
            say::finding(lang, Finding::DefaultRoute),
            "",
        )
    } else {
        check(
            name,
            Verdict::Fail,
            say::finding(lang, Finding::NoDefaultRoute),
            say::advice(lang, Advice::NetworkCable),
        )
    }
}

fn time_sync(lang: Language) -> Check {
    let name = say::name(lang, Name::TimeSync);
    if crate::recorder::time_synced() {
        check(
            name,
            Verdict::Pass,
            say::finding(lang, Finding::ClockSynced),
            "",
        )
    } else {
        check(
            name,
            Verdict::Fail,
            say::finding(lang, Finding::ClockNotSynced),
            say::advice(lang, Advice::TimeSync),
        )
    }
}

fn tcp(host: &str, port: u16) -> Result<(), String> {
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("DNS {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("DNS {host}: no address"))?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map(|_| ())
        .map_err(|e| format!("{addr}: {e}"))
}

fn broker(cfg: &Config, lang: Language) -> Check {
    let name = say::name(lang, Name::Broker);
    let Some(m) = &cfg.mqtt else {
        return check(
            name,
            Verdict::Skip,
            say::finding(lang, Finding::NotConfigured),
            "",
        );
    };
    let b = &m.brokers[0];
    if let Some((cert, key)) = &m.client_cert {
        for f in [cert, key] {
            if !f.exists() {
                return check(
                    name,
                    Verdict::Fail,
                    say::missing_file(lang, &f.display().to_string()),
                    say::advice(lang, Advice::CopyDeviceCert),
                );
            }
        }
    }
    let at = format!("{}:{}", b.host, b.port);
    match tcp(&b.host, b.port) {
        Ok(()) if b.tls => {
            let client = m
                .client_cert
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path()));
            let result = crate::tls::client_config(m.ca.as_deref(), client)
                .map_err(|e| format!("MQTT TLS: {e}"))
                .and_then(|c| crate::tls::handshake(c, &b.host, b.port, Duration::from_secs(5)));
            match result {
                Ok(tls) => check(
                    name,
                    Verdict::Pass,
                    say::broker_verified(lang, &at, &tls, client.is_some()),
                    "",
                ),
                Err(e) => check(
                    name,
                    Verdict::Fail,
                    format!("{at} TLS: {e}"),
                    say::advice(lang, Advice::BrokerCertificates),
                ),
            }
        }
        Ok(()) => check(name, Verdict::Pass, say::reachable(lang, &at), ""),
        Err(e) => check(
            name,
            Verdict::Fail,
            e,
            say::advice(lang, Advice::BrokerUnreachable),
        ),
    }
}

fn hub(cfg: &Config, lang: Language, status: Option<&crate::core::status::Status>) -> Check {
    let name = say::name(lang, Name::Hub);
    let Some(p) = &cfg.uplink.peer else {
        return check(
            name,
            Verdict::Skip,
            say::finding(lang, Finding::NotConfigured),
            "",
        );
    };
    let at = format!("{}:{}", p.host, p.port);
    if let Some(s) = status.filter(|s| s.phase != crate::core::session::Phase::Idle) {
        // The session's own link says more than a test connection would,
        // and a second caller must not disturb the hub.
        let up = &s.media.uplink;
        return if up.connected {
            check(
                name,
                Verdict::Pass,
                say::hub_streaming(lang, &at, up.rtt_ms),
                "",
            )
        } else {
            check(
                name,
                Verdict::Fail,
                say::hub_session_down(lang, &at),
                say::advice(lang, Advice::HubLinkDown),
            )
        };
    }
    if (p.host.as_str(), p.port)
        .to_socket_addrs()
        .map(|mut a| a.next())
        .ok()
        .flatten()
        .is_none()
    {
        return check(
            name,
            Verdict::Fail,
            format!("{}: DNS", p.host),
            say::advice(lang, Advice::HubDns),
        );
    }
    match crate::media::uplink::handshake(p, Duration::from_secs(6)) {
        Ok(rtt) => check(name, Verdict::Pass, say::hub_handshake(lang, &at, rtt), ""),
        Err(e) => check(
            name,
            Verdict::Fail,
            format!("{at}: {e}"),
            say::advice(lang, Advice::HubUnanswered),
        ),
    }
}

/// The SIP room endpoint: the daemon's registration and call, and an
/// OPTIONS ping to the SIP server (the MCU or the registrar), which shows
/// the server is reachable on the configured transport.
fn conference(cfg: &Config, lang: Language, status: Option<&crate::core::status::Status>) -> Check {
    use crate::core::status::CallState;
    let name = say::name(lang, Name::Conference);
    let Some(sip) = &cfg.sip else {
        return check(
            name,
            Verdict::Skip,
            say::finding(lang, Finding::NotConfigured),
            "",
        );
    };
    let (host, port) = match sip.next_hop() {
        Some(hop) => hop,
        None => {
            return check(
                name,
                Verdict::Skip,
                say::finding(lang, Finding::NotConfigured),
                "",
            )
        }
    };
    let at = format!("{host}:{port}/{}", sip.transport.name());
    let ping = sip_options(
        &host,
        port,
        sip.transport,
        sip.ca.as_deref(),
        Duration::from_secs(3),
    );
    let mut ping_text = match &ping {
        Ok((answer, ms)) => say::sip_options(lang, &at, answer, *ms),
        Err(e) => format!("{at}: {e}"),
    };
    // Where the NAT shows the box, on every line this check can give.
    let stun_text = sip.stun.as_ref().map(|server| {
        let seen = stun_probe(&server.host, server.port, Duration::from_secs(1));
        format!(
            "; {}",
            say::stun(lang, &format!("{}:{}", server.host, server.port), seen)
        )
    });
    ping_text += stun_text.as_deref().unwrap_or_default();
    if let Some(s) = status {
        let c = &s.call;
        if sip.registrar.is_some() && !c.registered {
            // The registrar's refusal, else why the endpoint cannot start.
            let why = c
                .registration_error
                .clone()
                .or_else(|| c.last_error.clone())
                .unwrap_or_default();
            let advice = if why.contains("certificate") || ping_text.contains("certificate") {
                Advice::SipCertificate
            } else {
                Advice::SipRegister
            };
            return check(
                name,
                Verdict::Fail,
                format!("{why}; {ping_text}"),
                say::advice(lang, advice),
            );
        }
        let registered = sip.registrar.as_ref().map(|_| c.registered);
        if c.state == CallState::Connected {
            let call = say::sip_in_call(
                lang,
                c.remote.as_deref().unwrap_or_default(),
                c.codecs.as_deref().unwrap_or_default(),
                c.media.rtt_ms,
            );
            let call = call + stun_text.as_deref().unwrap_or_default();
            return check(
                name,
                Verdict::Pass,
                say::sip_state(lang, registered, &call),
                "",
            );
        }
        if s.phase == crate::core::session::Phase::Live && sip.conference.is_some() {
            let why = c.last_error.clone().unwrap_or_default();
            return check(
                name,
                Verdict::Fail,
                format!("{why}; {ping_text}"),
                say::advice(lang, Advice::SipCallDown),
            );
        }
        if ping.is_ok() {
            return check(
                name,
                Verdict::Pass,
                say::sip_state(lang, registered, &ping_text),
                "",
            );
        }
    }
    match ping {
        Ok(_) => check(name, Verdict::Pass, ping_text, ""),
        Err(_) => check(
            name,
            Verdict::Fail,
            ping_text,
            say::advice(lang, Advice::SipUnanswered),
        ),
    }
}

/// Ask a STUN server where this machine is seen from (from a port of its
/// own: the media ports may be in a call). Twice, `timeout` each.
fn stun_probe(host: &str, port: u16, timeout: Duration) -> Result<String, String> {
    use crate::core::stun;
    use std::net::ToSocketAddrs;
    let server = (host, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .find(|a| a.is_ipv4())
        .ok_or("no IPv4 address")?;
    let sock = std::net::UdpSocket::bind(("0.0.0.0", 0)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut txid = [0u8; 12];
    getrandom::getrandom(&mut txid).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 576];
    for _ in 0..2 {
        sock.send_to(&stun::binding_request(txid), server)
            .map_err(|e| e.to_string())?;
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from == server {
                return stun::mapped_address(&buf[..n], txid)
                    .map(|a| a.to_string())
                    .map_err(|e| e.to_string());
            }
        }
    }
    Err(format!("nothing within {} s", 2 * timeout.as_secs()))
}

/// Send one SIP OPTIONS to `host:port` and read the status line of the
/// answer. Any final answer counts (a server may say 404 or 405 to a
/// stranger's OPTIONS): it shows the server is there and speaks SIP.
fn sip_options(
    host: &str,
    port: u16,
    transport: crate::config::sip::SipTransport,
    ca: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<(String, f64), String> {
    use std::io::{Read, Write};
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("DNS {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("DNS {host}: no address"))?;
    let started = std::time::Instant::now();
    let tag = format!(
        "{:08x}",
        (crate::util::random_unit() * f64::from(u32::MAX)) as u32
    );
    let msg = |local: std::net::SocketAddr, proto: &str| {
        format!(
            "OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/{proto} {local};branch=z9hG4bK{tag};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:doctor@{ip}>;tag={tag}\r\nTo: <sip:{host}:{port}>\r\n\
             Call-ID: {tag}@diemcau-doctor\r\nCSeq: 1 OPTIONS\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n",
            ip = local.ip(),
        )
    };
    let mut buf = vec![0u8; 4096];
    let text = match transport {
        crate::config::sip::SipTransport::Udp => {
            let bind: std::net::SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let sock = std::net::UdpSocket::bind(bind).map_err(|e| e.to_string())?;
            sock.connect(addr).map_err(|e| format!("{addr}: {e}"))?;
            sock.set_read_timeout(Some(timeout))
                .map_err(|e| e.to_string())?;
            let local = sock.local_addr().map_err(|e| e.to_string())?;
            sock.send(msg(local, "UDP").as_bytes())
                .map_err(|e| format!("{addr}: {e}"))?;
            loop {
                let n = sock
                    .recv(&mut buf)
                    .map_err(|_| format!("{addr}: no answer within {timeout:?}"))?;
                let t = String::from_utf8_lossy(&buf[..n]).into_owned();
                // Skip provisional answers (100 Trying).
                if !t.starts_with("SIP/2.0 1") {
                    break t;
                }
            }
        }
        crate::config::sip::SipTransport::Tcp => {
            let mut s =
                TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
            s.set_read_timeout(Some(timeout))
                .map_err(|e| e.to_string())?;
            let local = s.local_addr().map_err(|e| e.to_string())?;
            s.write_all(msg(local, "TCP").as_bytes())
                .map_err(|e| format!("{addr}: {e}"))?;
            let n = s
                .read(&mut buf)
                .map_err(|_| format!("{addr}: no answer within {timeout:?}"))?;
            String::from_utf8_lossy(&buf[..n]).into_owned()
        }
        crate::config::sip::SipTransport::Tls => {
            // The handshake the daemon makes: the same authority, the same
            // name, so an untrusted certificate shows here first.
            let config = crate::tls::client_config(
                Some(ca.unwrap_or(Path::new(crate::config::sip::SYSTEM_CA))),
                None,
            )
            .map_err(|e| e.to_string())?;
            let mut tcp =
                TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
            tcp.set_read_timeout(Some(timeout))
                .map_err(|e| e.to_string())?;
            let local = tcp.local_addr().map_err(|e| e.to_string())?;
            let mut conn = crate::tls::client_handshake(&mut tcp, config, host)
                .map_err(|e| format!("{addr}: TLS: {e}"))?;
            let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
            tls.write_all(msg(local, "TLS").as_bytes())
                .map_err(|e| format!("{addr}: {e}"))?;
            let n = tls
                .read(&mut buf)
                .map_err(|_| format!("{addr}: no answer within {timeout:?}"))?;
            String::from_utf8_lossy(&buf[..n]).into_owned()
        }
    };
    let line = text.lines().next().unwrap_or_default();
    match line.strip_prefix("SIP/2.0 ") {
        Some(status) => Ok((
            status.trim().to_owned(),
            started.elapsed().as_secs_f64() * 1000.0,
        )),
        None => Err(format!("{addr}: not a SIP answer")),
    }
}

fn archive(cfg: &Config, lang: Language) -> Check {
    let name = say::name(lang, Name::Archive);
    let Some(a) = &cfg.archive else {
        return check(
            name,
            Verdict::Skip,
            say::finding(lang, Finding::NotConfigured),
            "",
        );
    };
    let client = match crate::upload::Client::new(a) {
        Ok(c) => c,
        Err(e) => {
            return check(
                name,
                Verdict::Fail,
                e.to_string(),
                say::advice(lang, Advice::ArchiveEndpoint),
            )
        }
    };
    let key = format!(
        "{}{}/doctor/{}.txt",
        if a.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", a.prefix.trim_matches('/'))
        },
        cfg.site.id,
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    match client.put(&key, b"diemcau doctor write test\n", "text/plain") {
        Ok(()) => check(name, Verdict::Pass, say::archive_written(lang, &key), ""),
        Err(e) => check(
            name,
            Verdict::Fail,
            e.to_string(),
            say::advice(lang, Advice::ArchiveWrite),
        ),
    }
}

/// The time-stamping authority, asked for a token over a test text, as
/// the uploader asks for one over each manifest.
fn time_stamp(cfg: &Config, url: &str, lang: Language) -> Check {
    let name = say::name(lang, Name::TimeStamp);
    let answer = cfg
        .archive
        .as_ref()
        .ok_or_else(|| "no archive".to_owned())
        .and_then(|a| crate::upload::Client::new(a).map_err(|e| e.to_string()))
        .and_then(|c| {
            c.time_stamp(url, b"diemcau doctor time-stamp test")
                .map_err(|e| e.to_string())
        })
        .and_then(|der| crate::core::tsp::parse_response(&der).map_err(|e| e.to_string()));
    match answer {
        Ok(t) => check(
            name,
            Verdict::Pass,
            say::time_stamped(lang, url, &t.gen_time.to_rfc3339()),
            "",
        ),
        Err(e) => check(
            name,
            Verdict::Fail,
            e,
            say::advice(lang, Advice::TimeStampAuthority),
        ),
    }
}

/// The key the box signs its recordings with, by its fingerprint: the
/// technician copies it into the installation report, which is how the
/// province learns which key is this box's (see `core::device_key`).
fn device_key(cfg: &Config, lang: Language) -> Check {
    let name = say::name(lang, Name::DeviceKey);
    match crate::recorder::keys::read_public(&cfg.daemon.state_dir) {
        Ok(k) => check(
            name,
            Verdict::Pass,
            say::device_key(lang, &k.fingerprint, &k.public_key),
            "",
        ),
        Err(e) => check(
            name,
            Verdict::Fail,
            e.to_string(),
            say::advice(lang, Advice::DeviceKeyMissing),
        ),
    }
}

fn disk(lang: Language, status: Option<&crate::core::status::Status>) -> Check {
    let name = say::name(lang, Name::Storage);
    let Some(s) = status else {
        return check(
            name,
            Verdict::Skip,
            say::finding(lang, Finding::DaemonNotRunning),
            "",
        );
    };
    let r = &s.media.recording;
    let up = &s.upload;
    let detail = say::storage(
        lang,
        r.used_percent,
        up.backlog_segments,
        up.backlog_bytes / 1_000_000,
    );
    if r.halted || r.used_percent >= 95.0 {
        check(
            name,
            Verdict::Fail,
            detail,
            say::advice(lang, Advice::StorageFull),
        )
    } else {
        check(name, Verdict::Pass, detail, "")
    }
}

/// The report as people read it.
pub fn render(r: &Report, lang: Language) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "diemcau doctor — {}", r.site);
    for c in &r.checks {
        let tag = match c.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        };
        let _ = writeln!(out, "[{tag}] {}: {}", c.name, c.detail);
        if !c.hint.is_empty() {
            let _ = writeln!(out, "       → {}", c.hint);
        }
    }
    let _ = writeln!(out, "{}", say::summary(lang, r.passed, r.failed, r.skipped));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_config_is_one_failed_check_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("site.toml");
        std::fs::write(
            &f,
            "[site]\nid = \"xa\"\nname = \"X\"\n[video]\nwidht = 3\n",
        )
        .unwrap();
        let r = run(&f, Language::Vi, false);
        assert_eq!(r.failed, 1);
        assert!(
            r.checks[0].detail.contains("site.toml:5:1"),
            "{:?}",
            r.checks[0]
        );
        assert!(render(&r, Language::Vi).contains("[FAIL] Cấu hình"));
    }
}
