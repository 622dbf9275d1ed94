//! The button and the tally light through the real binary: a fake LED class
//! directory, a virtual USB button through /dev/uinput, and a simulated GPIO
//! chip through the kernel's gpio-sim. Where the kernel has no uinput or
//! gpio-sim (containers), those tests print a SKIP line and pass; the press
//! rules are tested without hardware in the library (`cargo test --lib button`).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{test_config, Daemon, BIN};

fn wait_for(what: &str, d: &Daemon, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(
            t0.elapsed() < timeout,
            "timed out waiting for {what}:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn wait_phase(d: &Daemon, want: &str, timeout: Duration) -> Duration {
    let t0 = Instant::now();
    wait_for(&format!("phase {want}"), d, timeout, || d.phase() == want);
    t0.elapsed()
}

/// A directory shaped like `/sys/class/leds/NAME`.
fn fake_led(dir: &Path) -> PathBuf {
    let led = dir.join("leds").join("diemcau:tally");
    std::fs::create_dir_all(&led).unwrap();
    std::fs::write(led.join("brightness"), "0\n").unwrap();
    std::fs::write(led.join("max_brightness"), "1\n").unwrap();
    std::fs::write(led.join("trigger"), "[none] timer\n").unwrap();
    led
}

fn led_state(led: &Path) -> (String, String) {
    let r = |f: &str| {
        std::fs::read_to_string(led.join(f))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    (r("trigger"), r("brightness"))
}

#[test]
fn the_tally_light_follows_the_session_and_a_missing_button_is_harmless() {
    let leds = tempfile::tempdir().unwrap();
    let led = fake_led(leds.path());
    // The USB button is not plugged in: the daemon must run all the same.
    let d = Daemon::start(&test_config(&format!(
        "[button]\nkind = \"evdev\"\ndevice = \"/dev/input/by-id/no-such-button\"\n\n[led]\nkind = \"sysfs\"\nname = \"{}\"\n",
        led.display()
    )));
    let is = |t: &str, b: &str| led_state(&led) == (t.to_owned(), b.to_owned());
    wait_for("light off when idle", &d, Duration::from_secs(5), || {
        is("none", "0")
    });
    d.start_session();
    assert_eq!(d.phase(), "live");
    wait_for("light steady when live", &d, Duration::from_secs(5), || {
        is("none", "1")
    });
    let out = d.cli(&["stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("light off after stop", &d, Duration::from_secs(5), || {
        is("none", "0")
    });
    assert!(
        d.log_text().contains("button not available"),
        "the missing button is reported:\n{}",
        d.log_text()
    );
}

fn config_check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("config.toml");
    std::fs::write(&f, text).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["config", "check"])
        .arg(&f)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn button_and_led_mistakes_are_located() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"))
            .unwrap();
    let (ok, out) = config_check(&example);
    assert!(ok, "{out}");
    let lines: Vec<&str> = example.lines().collect();
    let line_after = |section: &str, prefix: &str| {
        let s = lines.iter().position(|l| *l == section).unwrap();
        s + lines[s..]
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap()
            + 1
    };
    let cases = [
        (
            "[button]",
            "kind = \"none\"",
            "kind = \"usb\"",
            "'kind' in [button]",
        ),
        (
            "[button]",
            "key = \"KEY_ENTER\"",
            "key = \"ENTER\"",
            "not a Linux key name",
        ),
        (
            "[button]",
            "long_press_ms = 2000",
            "long_press_ms = 100",
            "'long_press_ms' in [button]",
        ),
        (
            "[button]",
            "bias = \"pull-up\"",
            "bias = \"up\"",
            "'bias' in [button]",
        ),
        (
            "[led]",
            "kind = \"none\"",
            "kind = \"rgb\"",
            "'kind' in [led]",
        ),
        (
            "[led]",
            "line = 27",
            "lin = 27",
            "unknown key 'lin' in [led]",
        ),
    ];
    for (section, from, to, want) in cases {
        let line = line_after(section, from);
        // Replace the occurrence inside the section, not an earlier one.
        let mut l2: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        l2[line - 1] = to.to_owned();
        let mut text = l2.join("\n");
        text.push('\n');
        // Make the mistake matter: kind must select the device for key checks.
        if from.starts_with("key") || from.starts_with("bias") {
            let k = line_after("[button]", "kind = ");
            let mut l3: Vec<String> = text.lines().map(str::to_owned).collect();
            l3[k - 1] = if from.starts_with("key") {
                "kind = \"evdev\"".into()
            } else {
                "kind = \"gpio\"".into()
            };
            text = l3.join("\n") + "\n";
        }
        let (ok, out) = config_check(&text);
        assert!(!ok, "{to}: accepted");
        assert!(
            out.contains(&format!("config.toml:{line}:")),
            "{to}: want line {line}: {out}"
        );
        assert!(out.contains(want), "{to}: want {want:?}: {out}");
    }
}

/// A virtual USB keyboard-button through /dev/uinput.
#[test]
fn usb_button_through_uinput_end_to_end() {
    use evdev::uinput::VirtualDevice;
    use evdev::{AttributeSet, EventType, InputEvent, KeyCode};

    let name = format!("diemcau test button {}", std::process::id());
    let mut keys = AttributeSet::<KeyCode>::new();
    keys.insert(KeyCode::KEY_F13);
    let dev = VirtualDevice::builder()
        .and_then(|b| b.name(&name).with_keys(&keys))
        .and_then(|b| b.build());
    let mut dev = match dev {
        Ok(d) => d,
        Err(e) => {
            println!("SKIP usb_button_through_uinput_end_to_end: no /dev/uinput here ({e})");
            return;
        }
    };
    let mut key = |v: i32| {
        dev.emit(&[InputEvent::new(
            EventType::KEY.0,
            KeyCode::KEY_F13.code(),
            v,
        )])
        .expect("uinput emit");
    };
    let d = Daemon::start(&test_config(&format!(
        "[button]\nkind = \"evdev\"\ndevice = \"{name}\"\nkey = \"KEY_F13\"\nlong_press_ms = 1000\n"
    )));
    wait_for("button found", &d, Duration::from_secs(10), || {
        d.log_text().contains("button ready")
    });
    // The technician's test ("press the button now", as `diemcau doctor`
    // asks): the press is reported and starts nothing.
    std::thread::scope(|s| {
        let asked = s.spawn(|| d.request(r#"{"cmd":"button_test","seconds":10}"#));
        std::thread::sleep(Duration::from_millis(500));
        key(1);
        std::thread::sleep(Duration::from_millis(120));
        key(0);
        let reply = asked.join().unwrap().expect("a reply");
        assert_eq!(reply["result"]["pressed"], true, "{reply}");
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.phase(), "idle", "a test press must not start a session");
    std::thread::sleep(Duration::from_millis(1200)); // past the repeat guard
                                                     // Short press: live, well within the 2 s the brief allows.
    let t0 = Instant::now();
    key(1);
    std::thread::sleep(Duration::from_millis(120));
    key(0);
    wait_phase(&d, "live", Duration::from_secs(10));
    println!("press to live: {:?}", t0.elapsed());
    std::thread::sleep(Duration::from_millis(1200)); // past the repeat guard
                                                     // A short press while live does not stop.
    key(1);
    std::thread::sleep(Duration::from_millis(150));
    key(0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.phase(), "live", "a short press must not end the session");
    // A long press does, while still held.
    key(1);
    wait_phase(&d, "idle", Duration::from_secs(10));
    key(0);
}

/// The GPIO path through the kernel's gpio-sim (configfs).
#[test]
fn gpio_button_through_gpio_sim_end_to_end() {
    let root = Path::new("/sys/kernel/config/gpio-sim");
    if !root.is_dir() {
        println!(
            "SKIP gpio_button_through_gpio_sim_end_to_end: no gpio-sim (configfs) in this kernel"
        );
        return;
    }
    let sim = match GpioSim::new(root) {
        Ok(s) => s,
        Err(e) => {
            println!(
                "SKIP gpio_button_through_gpio_sim_end_to_end: cannot create a gpio-sim chip ({e})"
            );
            return;
        }
    };
    // Nobody pressing: the pull-up holds the active-low line high.
    sim.pull(3, true);
    let d = Daemon::start(&test_config(&format!(
        "[button]\nkind = \"gpio\"\nchip = \"{}\"\nline = 3\nactive_low = true\nbias = \"as-is\"\nlong_press_ms = 1000\n",
        sim.chip
    )));
    wait_for("button found", &d, Duration::from_secs(10), || {
        d.log_text().contains("button ready")
    });
    sim.pull(3, false);
    std::thread::sleep(Duration::from_millis(120));
    sim.pull(3, true);
    wait_phase(&d, "live", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1200));
    sim.pull(3, false);
    wait_phase(&d, "idle", Duration::from_secs(10));
    sim.pull(3, true);
}

/// One simulated chip with 8 lines, removed on drop.
struct GpioSim {
    dir: PathBuf,
    chip: String,
    lines: PathBuf,
}

impl GpioSim {
    fn new(root: &Path) -> std::io::Result<Self> {
        let dir = root.join(format!("diemcau-test-{}", std::process::id()));
        let bank = dir.join("bank0");
        std::fs::create_dir(&dir)?;
        std::fs::create_dir(&bank)?;
        std::fs::write(bank.join("num_lines"), "8")?;
        std::fs::write(dir.join("live"), "1")?;
        let chip = std::fs::read_to_string(bank.join("chip_name"))?
            .trim()
            .to_owned();
        let dev = std::fs::read_to_string(dir.join("dev_name"))?
            .trim()
            .to_owned();
        let lines = Path::new("/sys/devices/platform").join(dev).join(&chip);
        Ok(Self { dir, chip, lines })
    }

    /// Pull line `n` up (true) or down.
    fn pull(&self, n: u32, up: bool) {
        std::fs::write(
            self.lines.join(format!("sim_gpio{n}")).join("pull"),
            if up { "pull-up" } else { "pull-down" },
        )
        .expect("gpio-sim pull");
    }
}

impl Drop for GpioSim {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("live"), "0");
        let _ = std::fs::remove_dir(self.dir.join("bank0"));
        let _ = std::fs::remove_dir(&self.dir);
    }
}
