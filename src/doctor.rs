//! `diemcau doctor`: the technician's self-test. Every part of the room and
//! every service the box depends on is checked and reported PASS, FAIL or
//! SKIP, with a hint that says what to do, in Vietnamese by default.
//!
//! The checks only look and try (open, connect, capture a few frames, write
//! one small object); they change nothing and never stop a live session:
//! what would disturb one is skipped while it runs.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::config::{self, Config, Language};

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

/// Words, in the technician's language.
struct W {
    vi: bool,
}

impl W {
    fn t<'a>(&self, vi: &'a str, en: &'a str) -> &'a str {
        if self.vi {
            vi
        } else {
            en
        }
    }
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

/// Run every check for the configuration at `path`.
/// `interactive`: a technician is at the box, so the checks may ask for a
/// button press.
pub fn run(path: &Path, lang: Language, interactive: bool) -> Report {
    let w = W {
        vi: lang == Language::Vi,
    };
    let mut checks = Vec::new();
    let cfg = match config::load(path) {
        Ok(c) => {
            checks.push(check(
                w.t("Cấu hình", "Configuration"),
                Verdict::Pass,
                format!("{} {}", path.display(), w.t("hợp lệ", "is valid")),
                "",
            ));
            c
        }
        Err(e) => {
            checks.push(check(
                w.t("Cấu hình", "Configuration"),
                Verdict::Fail,
                e.to_string(),
                w.t(
                    "Sửa dòng được chỉ ra trong site.toml/config.toml rồi chạy lại diemcau doctor",
                    "Fix the line named above, then run diemcau doctor again",
                ),
            ));
            return tally(String::new(), checks);
        }
    };
    if let Some(p) = crate::provision::read_status(path) {
        let when = chrono::DateTime::from_timestamp(p.at, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        let name = w.t("Tệp site.toml (ổ DIEMCAU)", "site.toml (DIEMCAU partition)");
        checks.push(if p.ok {
            check(name, Verdict::Pass, format!("{when}: {}", p.message(lang)), "")
        } else {
            check(
                name,
                Verdict::Fail,
                format!("{when}: {}", p.message(lang)),
                w.t(
                    "Cắm ổ của hộp vào máy tính, mở ổ DIEMCAU, sửa site.toml theo KET-QUA.txt, rồi khởi động lại hộp",
                    "Open the DIEMCAU partition on a laptop, fix site.toml as KET-QUA.txt says, and restart the box",
                ),
            )
        });
    }
    let status = daemon_status(&cfg);
    let live = status
        .as_ref()
        .is_some_and(|s| s.phase == crate::core::session::Phase::Live);
    checks.push(match &status {
        Some(s) => check(
            w.t("Phần mềm diemcau", "diemcau daemon"),
            Verdict::Pass,
            format!(
                "{} {} — {}",
                w.t("đang chạy, phiên bản", "running, version"),
                s.version,
                crate::core::words::phase(lang, s.phase)
            ),
            "",
        ),
        None => check(
            w.t("Phần mềm diemcau", "diemcau daemon"),
            Verdict::Fail,
            w.t("không chạy", "not running"),
            w.t(
                "Chạy: systemctl restart diemcau; xem lỗi: journalctl -u diemcau",
                "Run: systemctl restart diemcau; see why: journalctl -u diemcau",
            ),
        ),
    });
    checks.push(camera(&cfg, &w, live));
    checks.push(microphone(&cfg, &w, live));
    checks.push(speaker(&cfg, &w, live, status.is_some()));
    checks.push(display(&cfg, &w, status.as_ref(), interactive));
    checks.push(button_press(
        &cfg,
        &w,
        button(&cfg, &w),
        status.as_ref(),
        interactive,
    ));
    checks.push(led(&cfg, &w));
    checks.push(network(&w));
    checks.push(time_sync(&w));
    checks.push(broker(&cfg, &w));
    checks.push(hub(&cfg, &w, status.as_ref()));
    checks.push(archive(&cfg, &w));
    checks.push(disk(&w, status.as_ref()));
    let aside = crate::store::Store::set_aside(&cfg.daemon.state_dir);
    if !aside.is_empty() {
        checks.push(check(
            w.t("Dữ liệu sau mất điện", "Data after a power cut"),
            Verdict::Fail,
            format!(
                "{}: {}",
                w.t(
                    "kho dữ liệu không mở lại được nên đã cất riêng; bản ghi hình chưa lưu trữ đã được lấy lại từ nhật ký ghi hình, còn lịch sử phiên và sự kiện chưa gửi nằm trong thư mục cất riêng",
                    "the store could not be reopened and was set aside; recordings not yet archived were brought back from their journal, the session history and undelivered events stay in the set-aside folder"
                ),
                aside
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            w.t(
                "Báo tỉnh; chỉ xoá thư mục này khi tỉnh đồng ý",
                "Tell the province; delete the folder only when they agree",
            ),
        ));
    }
    tally(cfg.site.id.clone(), checks)
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

fn daemon_status(cfg: &Config) -> Option<crate::core::status::Status> {
    let reply = crate::client::request(
        &cfg.daemon.socket,
        &crate::core::command::Command::Status,
        Duration::from_secs(3),
    )
    .ok()?;
    serde_json::from_value(reply.result?).ok()
}

/// Run a short GStreamer pipeline to EOS; Err with the first error.
fn gst_run(desc: &str, timeout: Duration) -> Result<Vec<gstreamer::Message>, String> {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    gst::init().map_err(|e| e.to_string())?;
    let p = gst::parse::launch(desc)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_owned())?;
    p.set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let bus = p.bus().ok_or("no bus")?;
    let mut msgs = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    let result = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Some(m) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64)) else {
            break Err("timed out".to_owned());
        };
        match m.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(e.error().to_string()),
            _ => msgs.push(m),
        }
    };
    let _ = p.set_state(gst::State::Null);
    result.map(|()| msgs)
}

fn camera(cfg: &Config, w: &W, live: bool) -> Check {
    let name = w.t("Camera", "Camera");
    let dev = match &cfg.video.source {
        config::VideoSource::V4l2(d) => d.clone(),
        other => {
            return check(
                name,
                Verdict::Skip,
                format!("{} ({other:?})", w.t("nguồn giả lập", "synthetic source")),
                w.t(
                    "Cấu hình dùng nguồn thử; đặt [video] source = \"v4l2\" khi có camera",
                    "The configuration uses a test source",
                ),
            );
        }
    };
    if !dev.exists() {
        return check(
            name,
            Verdict::Fail,
            format!("{} {}", w.t("không thấy", "not found:"), dev.display()),
            w.t(
                "Cắm lại cáp USB của camera (hoặc đổi cổng), đợi 5 giây rồi chạy lại",
                "Re-plug the camera's USB cable (or try another port), wait 5 s, run again",
            ),
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
        || {
            w.t("không có định dạng phù hợp", "no usable format")
                .to_owned()
        },
        |m| format!("{} {}x{}@{:.0}", m.fourcc, m.width, m.height, m.fps),
    );
    if live {
        return check(
            name,
            Verdict::Pass,
            format!(
                "{} {}; {mode} ({})",
                w.t("có", "present"),
                dev.display(),
                w.t("đang dùng trong phiên", "in use by the session")
            ),
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
        Ok(_) => check(name, Verdict::Pass, format!("{}; {mode}; {}", dev.display(), w.t("chụp thử 10 khung hình được", "test capture of 10 frames ok")), ""),
        Err(e) => check(name, Verdict::Fail, format!("{}: {e}", dev.display()), w.t("Camera có nhưng không cho hình: rút ra cắm lại; nếu vẫn lỗi, thử camera khác", "The camera is there but gives no picture: re-plug it; if it persists, try another camera")),
    }
}

fn microphone(cfg: &Config, w: &W, live: bool) -> Check {
    let name = w.t("Micrô", "Microphone");
    let dev = match &cfg.audio.source {
        config::AudioSource::Alsa(d) => d.clone(),
        config::AudioSource::Synthetic => {
            return check(
                name,
                Verdict::Skip,
                w.t("nguồn giả lập", "synthetic source"),
                "",
            );
        }
    };
    let cards = crate::audio_devices::cards();
    if cards.is_empty() {
        return check(
            name,
            Verdict::Fail,
            w.t("không có card âm thanh nào", "no sound card"),
            w.t(
                "Cắm micrô/loa hội nghị USB rồi chạy lại",
                "Plug in the USB microphone or speakerphone, run again",
            ),
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
            format!(
                "{} ({})",
                names.join(", "),
                w.t("đang dùng trong phiên", "in use by the session")
            ),
            "",
        );
    }
    eprintln!(
        "{}",
        w.t(
            ">>> Hãy nói vào micrô trong 3 giây…",
            ">>> Speak into the microphone for 3 seconds…"
        )
    );
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
                check(name, Verdict::Fail, format!("{dev}: {} {peak:.0} dBFS", w.t("quá nhỏ, đỉnh", "too quiet, peak")), w.t("Kiểm tra micrô có bị tắt tiếng (mute) không, và âm lượng thu (gain_percent)", "Check the microphone is not muted, and the capture gain (gain_percent)"))
            } else {
                check(
                    name,
                    Verdict::Pass,
                    format!(
                        "{dev}: {} {peak:.0} dBFS; {}",
                        w.t("mức đỉnh", "peak level"),
                        names.join(", ")
                    ),
                    "",
                )
            }
        }
        Err(e) => check(
            name,
            Verdict::Fail,
            format!("{dev}: {e}"),
            w.t(
                "Thiết bị ALSA sai hoặc đang bận; xem [audio] device, hoặc cắm lại micrô",
                "Wrong or busy ALSA device; check [audio] device, or re-plug the microphone",
            ),
        ),
    }
}

/// A 2-second test tone on the room's speaker.
fn speaker(cfg: &Config, w: &W, live: bool, daemon_running: bool) -> Check {
    let name = w.t("Loa", "Speaker");
    let config::SpeakerSink::Alsa(dev) = &cfg.speaker else {
        return check(name, Verdict::Skip, format!("{:?}", cfg.speaker), "");
    };
    if live {
        return check(
            name,
            Verdict::Skip,
            w.t(
                "đang trong phiên: không phát tiếng thử",
                "a session is live: no test tone",
            ),
            "",
        );
    }
    eprintln!(
        "{}",
        w.t(
            "Loa: phát tiếng bíp 2 giây — hãy nghe…",
            "Speaker: a 2-second beep — listen…"
        )
    );
    // The daemon holds the speaker, so when it runs it plays the beep
    // itself; otherwise the beep goes straight to the device.
    let played: Result<(), String> = if daemon_running {
        match crate::client::request(
            &cfg.daemon.socket,
            &crate::core::command::Command::SpeakerTest { seconds: 2 },
            Duration::from_secs(5),
        ) {
            Ok(r) if r.ok => {
                // Let it finish before the next check talks to the room.
                std::thread::sleep(Duration::from_millis(2500));
                Ok(())
            }
            Ok(r) => Err(r.error.map(|e| e.message).unwrap_or_default()),
            Err(e) => Err(e.to_string()),
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
        Ok(()) => check(
            name,
            Verdict::Pass,
            format!(
                "{dev}: {}",
                w.t(
                    "đã phát tiếng bíp; không nghe thấy thì kiểm tra dây loa và âm lượng",
                    "beep played; if nobody heard it, check the speaker cable and volume"
                )
            ),
            "",
        ),
        Err(e) => check(
            name,
            Verdict::Fail,
            format!("{dev}: {e}"),
            w.t(
                "Kiểm tra loa đã cắm và [speaker] device trong site.toml",
                "Check that the speaker is plugged in and [speaker] device in site.toml",
            ),
        ),
    }
}

fn display(
    cfg: &Config,
    w: &W,
    status: Option<&crate::core::status::Status>,
    interactive: bool,
) -> Check {
    let name = w.t("Màn hình", "Display");
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
            format!("{c}: {mode}; {} {want}", w.t("cấu hình là", "configured")),
            format!(
                "{} [display] width = {}, height = {}",
                w.t("Đặt trong site.toml:", "Set in site.toml:"),
                mode.split('x').next().unwrap_or(""),
                mode.split('x').nth(1).unwrap_or("")
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
            w.t("không có màn hình nào được kết nối", "no display connected"),
            w.t(
                "Kiểm tra cáp HDMI và bật màn hình/TV",
                "Check the HDMI cable and that the screen is on",
            ),
        )
    } else {
        let shown = test_pattern(cfg, w, status, interactive);
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
    cfg: &Config,
    w: &W,
    status: Option<&crate::core::status::Status>,
    interactive: bool,
) -> String {
    const SECONDS: u64 = 8;
    match status.map(|s| s.phase) {
        None => {
            return w
                .t(
                    "phần mềm không chạy: không hiện mẫu thử",
                    "the daemon is not running: no test pattern",
                )
                .into()
        }
        Some(crate::core::session::Phase::Idle) => {}
        Some(_) => {
            return w
                .t(
                    "đang trong phiên: không hiện mẫu thử",
                    "a session is running: no test pattern",
                )
                .into()
        }
    }
    let reply = crate::client::request(
        &cfg.daemon.socket,
        &crate::core::command::Command::DisplayTest { seconds: SECONDS },
        Duration::from_secs(5),
    );
    match reply {
        Ok(r) if r.ok => {
            if interactive {
                eprintln!(
                    "{}",
                    w.t(
                        "Màn hình: đang hiện các sọc màu 8 giây — hãy nhìn màn hình…",
                        "Display: colour bars for 8 s — look at the screen…"
                    )
                );
                std::thread::sleep(Duration::from_secs(SECONDS));
            }
            w.t(
                "đã hiện mẫu thử (sọc màu) 8 giây; không thấy thì kiểm tra cáp HDMI và nguồn vào của TV",
                "test pattern (colour bars) shown for 8 s; if nobody saw it, check the HDMI cable and the TV's input",
            )
            .into()
        }
        Ok(r) => format!(
            "{}: {}",
            w.t("không hiện được mẫu thử", "no test pattern"),
            r.error.map(|e| e.message).unwrap_or_default()
        ),
        Err(e) => format!("{}: {e}", w.t("không hiện được mẫu thử", "no test pattern")),
    }
}

/// "Press the button now": through the daemon, which holds the button and
/// counts the press without starting a session.
fn button_press(
    cfg: &Config,
    w: &W,
    present: Check,
    status: Option<&crate::core::status::Status>,
    interactive: bool,
) -> Check {
    let idle = status.is_some_and(|s| s.phase == crate::core::session::Phase::Idle);
    if present.verdict != Verdict::Pass || !interactive || !idle {
        return present;
    }
    eprintln!(
        "{}",
        w.t(
            "Nút bấm: hãy NHẤN NÚT ngay bây giờ (trong 10 giây; không bắt đầu phiên)…",
            "Button: PRESS THE BUTTON now (within 10 s; no session starts)…"
        )
    );
    let reply = crate::client::request(
        &cfg.daemon.socket,
        &crate::core::command::Command::ButtonTest { seconds: 10 },
        Duration::from_secs(15),
    );
    let pressed = reply
        .ok()
        .and_then(|r| r.result)
        .is_some_and(|v| v["pressed"] == true);
    if pressed {
        check(
            &present.name,
            Verdict::Pass,
            format!(
                "{} — {}",
                present.detail,
                w.t("đã nhận lần nhấn", "press received")
            ),
            "",
        )
    } else {
        check(
            &present.name,
            Verdict::Fail,
            format!(
                "{} — {}",
                present.detail,
                w.t("không nhận được lần nhấn nào trong 10 giây", "no press within 10 s")
            ),
            w.t(
                "Kiểm tra dây nút bấm (hoặc cắm lại nút USB); phím nút gửi phải đúng [button] key",
                "Check the button's wiring (or re-plug the USB button); the key it sends must be [button] key",
            ),
        )
    }
}

fn button(cfg: &Config, w: &W) -> Check {
    let name = w.t("Nút bấm", "Button");
    match &cfg.button.input {
        config::ButtonInput::None => check(
            name,
            Verdict::Skip,
            w.t("không cấu hình", "not configured"),
            "",
        ),
        config::ButtonInput::Evdev {
            device: config::EvdevDevice::Path(p),
            ..
        } => present(
            name,
            w,
            p,
            p.display().to_string(),
            w.t("Cắm lại nút bấm USB", "Re-plug the USB button"),
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
                    format!(
                        "{} '{n}'",
                        w.t("không thấy thiết bị", "no input device named")
                    ),
                    w.t("Cắm lại nút bấm USB", "Re-plug the USB button"),
                )
            }
        }
        config::ButtonInput::Gpio(g) => present(
            name,
            w,
            &g.chip,
            format!("{} line {}", g.chip.display(), g.line),
            w.t(
                "Kiểm tra chip GPIO trong cấu hình (xem hw/WIRING.md)",
                "Check the GPIO chip in the configuration (see hw/WIRING.md)",
            ),
        ),
    }
}

/// PASS with `detail` when `path` exists, else FAIL with `hint`.
fn present(name: &str, w: &W, path: &Path, detail: String, hint: &str) -> Check {
    if path.exists() {
        check(name, Verdict::Pass, detail, "")
    } else {
        check(
            name,
            Verdict::Fail,
            format!("{} {}", w.t("không thấy", "not found:"), path.display()),
            hint,
        )
    }
}

fn led(cfg: &Config, w: &W) -> Check {
    let name = w.t("Đèn báo", "Tally light");
    match &cfg.led {
        config::Led::None => check(
            name,
            Verdict::Skip,
            w.t("không cấu hình", "not configured"),
            "",
        ),
        config::Led::Sysfs(p) => present(
            name,
            w,
            &p.join("brightness"),
            p.display().to_string(),
            w.t(
                "Tên đèn trong /sys/class/leds không đúng",
                "Wrong LED name under /sys/class/leds",
            ),
        ),
        config::Led::Gpio(g) => present(
            name,
            w,
            &g.chip,
            format!("{} line {}", g.chip.display(), g.line),
            w.t("Kiểm tra chip GPIO của đèn", "Check the LED's GPIO chip"),
        ),
    }
}

fn network(w: &W) -> Check {
    let name = w.t("Mạng", "Network");
    let route = std::fs::read_to_string("/proc/net/route").is_ok_and(|s| {
        s.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
    });
    if route {
        check(
            name,
            Verdict::Pass,
            w.t("có đường ra mạng (default route)", "default route present"),
            "",
        )
    } else {
        check(
            name,
            Verdict::Fail,
            w.t("không có đường ra mạng", "no default route"),
            w.t(
                "Kiểm tra cáp mạng / modem, và cấu hình địa chỉ IP",
                "Check the network cable or modem, and the IP settings",
            ),
        )
    }
}

fn time_sync(w: &W) -> Check {
    let name = w.t("Đồng bộ giờ", "Time sync");
    if crate::recorder::time_synced() {
        check(
            name,
            Verdict::Pass,
            w.t("đồng hồ đã đồng bộ (NTP)", "clock synchronised (NTP)"),
            "",
        )
    } else {
        check(
            name,
            Verdict::Fail,
            w.t("đồng hồ chưa đồng bộ", "clock not synchronised"),
            w.t(
                "Giờ ghi trong biên bản có thể sai: kiểm tra mạng và dịch vụ systemd-timesyncd",
                "Recording times may be wrong: check the network and systemd-timesyncd",
            ),
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

fn broker(cfg: &Config, w: &W) -> Check {
    let name = w.t("Máy chủ MQTT (NOC)", "MQTT broker (NOC)");
    let Some(m) = &cfg.mqtt else {
        return check(
            name,
            Verdict::Skip,
            w.t("không cấu hình", "not configured"),
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
                    format!("{} {}", w.t("thiếu tệp", "missing file"), f.display()),
                    w.t(
                        "Chép chứng chỉ của thiết bị vào phân vùng cấu hình",
                        "Copy the device certificate onto the provisioning partition",
                    ),
                );
            }
        }
    }
    match tcp(&b.host, b.port) {
        Ok(()) if b.tls => {
            let client = m
                .client_cert
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path()));
            let result = crate::tls::client_config(m.ca.as_deref(), client)
                .map_err(|e| e.to_string())
                .and_then(|c| crate::tls::handshake(c, &b.host, b.port, Duration::from_secs(5)));
            match result {
                Ok(tls) => check(
                    name,
                    Verdict::Pass,
                    format!(
                        "{}:{} — {} ({tls}){}",
                        b.host,
                        b.port,
                        w.t("chứng chỉ máy chủ hợp lệ", "broker certificate verified"),
                        if client.is_some() {
                            w.t(", hộp được chấp nhận bằng chứng chỉ riêng", ", this box accepted by its certificate")
                        } else {
                            ""
                        }
                    ),
                    "",
                ),
                Err(e) => check(
                    name,
                    Verdict::Fail,
                    format!("{}:{} TLS: {e}", b.host, b.port),
                    w.t(
                        "Chứng chỉ không khớp: chép đúng ca.pem, box.pem, box.key của tỉnh vào thư mục certs trên ổ DIEMCAU, kiểm tra giờ hệ thống",
                        "Certificates do not match: copy the province's ca.pem, box.pem and box.key into certs on the DIEMCAU partition; check the clock",
                    ),
                ),
            }
        }
        Ok(()) => check(
            name,
            Verdict::Pass,
            format!("{}:{} {}", b.host, b.port, w.t("kết nối được", "reachable")),
            "",
        ),
        Err(e) => check(
            name,
            Verdict::Fail,
            e,
            w.t(
                "Không tới được máy chủ NOC: kiểm tra mạng, tường lửa, địa chỉ trong [mqtt] url",
                "Broker unreachable: check the network, firewall, and [mqtt] url",
            ),
        ),
    }
}

fn hub(cfg: &Config, w: &W, status: Option<&crate::core::status::Status>) -> Check {
    let name = w.t("Điểm cầu tỉnh (SRT)", "Provincial hub (SRT)");
    let Some(p) = &cfg.uplink.peer else {
        return check(
            name,
            Verdict::Skip,
            w.t("không cấu hình", "not configured"),
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
                format!(
                    "{at}: {} {:.0} ms",
                    w.t("đang truyền, RTT", "streaming, RTT"),
                    up.rtt_ms
                ),
                "",
            )
        } else {
            check(
                name,
                Verdict::Fail,
                format!(
                    "{at}: {}",
                    w.t(
                        "phiên đang chạy nhưng chưa kết nối được",
                        "a session is running but the link is down"
                    )
                ),
                w.t(
                    "Kiểm tra mạng và báo điểm cầu tỉnh",
                    "Check the network and call the provincial hub",
                ),
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
            w.t(
                "Tên máy điểm cầu tỉnh không phân giải được: kiểm tra DNS và [uplink] url",
                "The hub's name does not resolve: check DNS and [uplink] url",
            ),
        );
    }
    match crate::media::uplink::handshake(p, Duration::from_secs(6)) {
        Ok(rtt) => check(
            name,
            Verdict::Pass,
            format!("{at}: {} {rtt:.0} ms", w.t("bắt tay SRT thành công, RTT", "SRT handshake OK, RTT")),
            "",
        ),
        Err(e) => check(
            name,
            Verdict::Fail,
            format!("{at}: {e}"),
            w.t(
                "Không kết nối được điểm cầu tỉnh: kiểm tra mạng, địa chỉ và mật khẩu (passphrase) trong [uplink]",
                "The hub does not answer: check the network, and the address and passphrase in [uplink]",
            ),
        ),
    }
}

fn archive(cfg: &Config, w: &W) -> Check {
    let name = w.t("Kho lưu trữ (S3)", "Archive (S3)");
    let Some(a) = &cfg.archive else {
        return check(
            name,
            Verdict::Skip,
            w.t("không cấu hình", "not configured"),
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
                w.t("Sửa [archive] endpoint", "Fix [archive] endpoint"),
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
        Ok(()) => check(name, Verdict::Pass, format!("{} {key}", w.t("ghi thử được", "test write ok:")), ""),
        Err(e) => check(name, Verdict::Fail, e.to_string(), w.t("Kho lưu trữ không ghi được: kiểm tra mạng, khóa truy cập và tên bucket trong [archive]", "Cannot write to the archive: check the network, the access key and the bucket in [archive]")),
    }
}

fn disk(w: &W, status: Option<&crate::core::status::Status>) -> Check {
    let name = w.t("Bộ nhớ ghi hình", "Recording storage");
    let Some(s) = status else {
        return check(
            name,
            Verdict::Skip,
            w.t("phần mềm không chạy", "daemon not running"),
            "",
        );
    };
    let r = &s.media.recording;
    let up = &s.upload;
    let detail = format!(
        "{:.0}% {}; {} {} ({} MB)",
        r.used_percent,
        w.t("hạn mức", "of quota"),
        up.backlog_segments,
        w.t("đoạn chưa lên kho", "segments not yet archived"),
        up.backlog_bytes / 1_000_000
    );
    if r.halted || r.used_percent >= 95.0 {
        check(
            name,
            Verdict::Fail,
            detail,
            w.t(
                "Bộ nhớ gần đầy vì chưa gửi được lên kho: kiểm tra kết nối kho lưu trữ",
                "Nearly full of unarchived recordings: check the archive connection",
            ),
        )
    } else {
        check(name, Verdict::Pass, detail, "")
    }
}

/// The report as people read it.
pub fn render(r: &Report, lang: Language) -> String {
    use std::fmt::Write;
    let vi = lang == Language::Vi;
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
    let _ = writeln!(
        out,
        "{}: {} {}, {} {}, {} {}",
        if vi { "Kết quả" } else { "Result" },
        r.passed,
        if vi { "đạt" } else { "passed" },
        r.failed,
        if vi { "lỗi" } else { "failed" },
        r.skipped,
        if vi { "bỏ qua" } else { "skipped" },
    );
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
