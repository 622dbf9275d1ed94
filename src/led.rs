//! The tally light: tells the room what the box is doing, without words.
//!
//! | state                                  | light        |
//! |----------------------------------------|--------------|
//! | idle                                   | off          |
//! | starting, stopping                     | slow blink   |
//! | live (recording)                       | steady       |
//! | fault; or live with a broken record    | fast blink   |
//! | a short press while live (the hint)    | quick flicker for a moment, then back |
//!
//! The pattern follows the session (the supervisor's phase and its
//! degradations), never the button: a light that changed on the press
//! alone would lie when the start then failed.
//!
//! "Call a technician" (fast blink) is for what staff cannot fix and what
//! puts the legal record at risk: a failed start, a lost camera or microphone,
//! halted recording. A down uplink or return feed is not: the box retries by
//! itself, keeps recording locally, and the display says so.
//!
//! Drivers: the Linux LED class (`/sys/class/leds/NAME`, blinking with the
//! kernel's `timer` trigger so the light blinks even if the daemon stalls)
//! or a GPIO output line (blinked by this actor).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::button::Hint;
use crate::config::{GpioLine, Led as LedConfig};
use crate::core::session::{Degradation, Phase};
use crate::supervisor::SupervisorHandle;

/// How often the actor asks the supervisor for degradations (the phase
/// itself arrives at once through its watch).
pub const STATUS_POLL: Duration = Duration::from_secs(1);
/// How long a hint flicker lasts.
pub const FLASH_FOR: Duration = Duration::from_millis(1200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Off,
    Steady,
    SlowBlink,
    FastBlink,
    /// The acknowledgement of a short press while live.
    Flash,
}

impl Pattern {
    /// On and off times of a blinking pattern.
    pub fn blink(self) -> Option<(Duration, Duration)> {
        let ms = Duration::from_millis;
        match self {
            Pattern::Off | Pattern::Steady => None,
            Pattern::SlowBlink => Some((ms(500), ms(500))),
            Pattern::FastBlink => Some((ms(100), ms(100))),
            Pattern::Flash => Some((ms(60), ms(60))),
        }
    }
}

/// Whether a degradation means "call a technician".
pub fn needs_technician(d: Degradation) -> bool {
    match d {
        Degradation::CameraLost | Degradation::MicrophoneLost | Degradation::RecordingHalted => {
            true
        }
        Degradation::UplinkDown | Degradation::ReturnFeedLost | Degradation::CallDown => false,
    }
}

/// The light for a session state. Pure.
pub fn pattern(phase: Phase, degraded: &[Degradation], flashing: bool) -> Pattern {
    match phase {
        Phase::Idle => Pattern::Off,
        Phase::Starting | Phase::Stopping => Pattern::SlowBlink,
        Phase::Fault => Pattern::FastBlink,
        Phase::Live if degraded.iter().any(|d| needs_technician(*d)) => Pattern::FastBlink,
        Phase::Live if flashing => Pattern::Flash,
        Phase::Live => Pattern::Steady,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedError {
    #[error("LED {path}: cannot write {file}: {source}")]
    Sysfs {
        path: PathBuf,
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("LED on GPIO {chip} line {line}: {source}")]
    Gpio {
        chip: String,
        line: u32,
        #[source]
        source: gpiocdev::Error,
    },
}

/// A light that can be switched, and perhaps blink by itself.
pub trait LedDriver: Send + 'static {
    fn set(&mut self, on: bool) -> Result<(), LedError>;
    /// Blink in hardware; `Ok(false)` when the device cannot and the caller
    /// must toggle it.
    fn blink(&mut self, on: Duration, off: Duration) -> Result<bool, LedError>;
}

/// A Linux LED class device.
pub struct SysfsLed {
    dir: PathBuf,
}

impl SysfsLed {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn write(&self, file: &'static str, value: &str) -> Result<(), LedError> {
        std::fs::write(self.dir.join(file), value).map_err(|source| LedError::Sysfs {
            path: self.dir.clone(),
            file,
            source,
        })
    }

    /// The brightness that means "on": the LED's maximum (1 when unknown).
    fn max_brightness(&self) -> String {
        read_trimmed(&self.dir.join("max_brightness"))
            .filter(|v| v.parse::<u32>().is_ok_and(|n| n > 0))
            .unwrap_or_else(|| "1".into())
    }
}

fn read_trimmed(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

impl LedDriver for SysfsLed {
    fn set(&mut self, on: bool) -> Result<(), LedError> {
        // Any trigger (a blinking timer, or one set by the board) must go
        // first, or it would override the brightness.
        self.write("trigger", "none")?;
        let level = if on {
            self.max_brightness()
        } else {
            "0".into()
        };
        self.write("brightness", &level)
    }

    fn blink(&mut self, on: Duration, off: Duration) -> Result<bool, LedError> {
        if self.write("trigger", "timer").is_err() {
            // The kernel has no ledtrig-timer: blink in software.
            return Ok(false);
        }
        // The timer trigger blinks at the brightness set before; make it full.
        self.write("brightness", &self.max_brightness())?;
        let timed = self
            .write("delay_on", &on.as_millis().to_string())
            .and_then(|()| self.write("delay_off", &off.as_millis().to_string()));
        if let Err(e) = timed {
            // The kernel creates delay_on/delay_off when the trigger is set,
            // owned by root: without a udev rule for them (hw/), blink in
            // software rather than at the timer's default rate.
            tracing::debug!("{e}; blinking in software");
            return Ok(false);
        }
        Ok(true)
    }
}

/// A GPIO output line.
pub struct GpioLed {
    line: GpioLine,
    req: gpiocdev::Request,
}

/// The name shown for the line's user in `gpioinfo`.
pub const CONSUMER: &str = "diemcau-tally";

impl GpioLed {
    pub fn open(line: GpioLine) -> Result<Self, LedError> {
        let mut b = gpiocdev::Request::builder();
        b.on_chip(&line.chip)
            .with_consumer(CONSUMER)
            .with_line(line.line)
            .as_output(gpiocdev::line::Value::Inactive);
        if line.active_low {
            b.as_active_low();
        }
        let req = b.request().map_err(|source| LedError::Gpio {
            chip: line.chip.display().to_string(),
            line: line.line,
            source,
        })?;
        Ok(Self { line, req })
    }
}

impl LedDriver for GpioLed {
    fn set(&mut self, on: bool) -> Result<(), LedError> {
        let v = if on {
            gpiocdev::line::Value::Active
        } else {
            gpiocdev::line::Value::Inactive
        };
        self.req.set_lone_value(v).map_err(|source| LedError::Gpio {
            chip: self.line.chip.display().to_string(),
            line: self.line.line,
            source,
        })
    }

    fn blink(&mut self, _on: Duration, _off: Duration) -> Result<bool, LedError> {
        Ok(false)
    }
}

/// Where the actor learns degradations: the supervisor, or a fake.
pub trait StatusSource: Send + 'static {
    fn degraded(&self) -> futures::future::BoxFuture<'static, Vec<Degradation>>;
}

impl StatusSource for SupervisorHandle {
    fn degraded(&self) -> futures::future::BoxFuture<'static, Vec<Degradation>> {
        let h = self.clone();
        Box::pin(async move {
            h.status()
                .await
                .map(|s| s.degraded.into_iter().collect())
                .unwrap_or_default()
        })
    }
}

/// The running LED actor.
pub struct Spawned {
    stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Spawned {
    /// Switch the light off and end the actor (daemon shutdown).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.task).await;
    }
}

/// Start the light configured in `config`; for `kind = "none"` an actor that
/// does nothing.
pub fn spawn(
    config: &LedConfig,
    status: impl StatusSource,
    phase: watch::Receiver<Phase>,
    hint: watch::Receiver<Option<Hint>>,
) -> Spawned {
    match config {
        LedConfig::None => {
            let (stop, rx) = oneshot::channel();
            let task = tokio::spawn(async move {
                let _ = rx.await;
            });
            Spawned {
                stop: Some(stop),
                task,
            }
        }
        LedConfig::Sysfs(dir) => spawn_with(SysfsLed::new(dir), status, phase, hint),
        LedConfig::Gpio(line) => {
            let line = line.clone();
            // The line may be busy or the chip absent at boot: keep trying,
            // the session must not depend on the light.
            let open = move || GpioLed::open(line.clone());
            spawn_with(Reopening::new(open), status, phase, hint)
        }
    }
}

/// A driver that is opened lazily and reopened after an error.
struct Reopening<D, F> {
    open: F,
    driver: Option<D>,
}

impl<D: LedDriver, F: FnMut() -> Result<D, LedError> + Send + 'static> Reopening<D, F> {
    fn new(open: F) -> Self {
        Self { open, driver: None }
    }

    fn with<T>(&mut self, f: impl FnOnce(&mut D) -> Result<T, LedError>) -> Result<T, LedError> {
        let d = match self.driver.as_mut() {
            Some(d) => d,
            None => self.driver.insert((self.open)()?),
        };
        let r = f(d);
        if r.is_err() {
            // Reopen on the next write: the line may have been taken or reset.
            self.driver = None;
        }
        r
    }
}

impl<D: LedDriver, F: FnMut() -> Result<D, LedError> + Send + 'static> LedDriver
    for Reopening<D, F>
{
    fn set(&mut self, on: bool) -> Result<(), LedError> {
        self.with(|d| d.set(on))
    }
    fn blink(&mut self, on: Duration, off: Duration) -> Result<bool, LedError> {
        self.with(|d| d.blink(on, off))
    }
}

/// Start the actor on any driver: the daemon's, or a fake in tests.
pub fn spawn_with(
    driver: impl LedDriver,
    status: impl StatusSource,
    phase: watch::Receiver<Phase>,
    hint: watch::Receiver<Option<Hint>>,
) -> Spawned {
    let (stop, stop_rx) = oneshot::channel();
    let task = tokio::spawn(run(driver, status, phase, hint, stop_rx));
    Spawned {
        stop: Some(stop),
        task,
    }
}

async fn run(
    mut driver: impl LedDriver,
    status: impl StatusSource,
    mut phase: watch::Receiver<Phase>,
    mut hint: watch::Receiver<Option<Hint>>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut degraded: Vec<Degradation> = Vec::new();
    let mut flash_until: Option<tokio::time::Instant> = None;
    // What the light shows now; None forces the first write.
    let mut shown: Option<Pattern> = None;
    // Software blinking: the level now, and when to toggle.
    let mut soft: Option<(bool, tokio::time::Instant)> = None;
    let mut failing = false;
    let mut poll = tokio::time::interval(STATUS_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut phase_open = true;
    let mut hint_open = true;
    loop {
        let now = tokio::time::Instant::now();
        let flashing = flash_until.is_some_and(|t| now < t);
        let want = pattern(*phase.borrow(), &degraded, flashing);
        if shown != Some(want) {
            match show(&mut driver, want) {
                Ok(hw) => {
                    shown = Some(want);
                    soft = match (hw, want.blink()) {
                        (false, Some((on, _))) => Some((true, now + on)),
                        _ => None,
                    };
                    if failing {
                        tracing::info!("tally light works again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!("tally light: {e}; retrying");
                        failing = true;
                    }
                }
            }
        }
        let toggle_at = soft.map(|(_, t)| t);
        let flash_end = flash_until.filter(|t| *t > now);
        tokio::select! {
            _ = &mut stop => {
                let _ = driver.set(false);
                return;
            }
            r = phase.changed(), if phase_open => phase_open = r.is_ok(),
            r = hint.changed(), if hint_open => {
                hint_open = r.is_ok();
                if hint_open && hint.borrow_and_update().is_some() {
                    flash_until = Some(tokio::time::Instant::now() + FLASH_FOR);
                }
            }
            _ = poll.tick() => {
                degraded = status.degraded().await;
                if failing {
                    shown = None; // retry the write
                }
            }
            () = sleep_opt(toggle_at) => {
                if let (Some((level, _)), Some((on, off))) = (soft, shown.and_then(Pattern::blink)) {
                    let next = !level;
                    if driver.set(next).is_err() {
                        shown = None;
                    }
                    let hold = if next { on } else { off };
                    soft = Some((next, tokio::time::Instant::now() + hold));
                }
            }
            () = sleep_opt(flash_end) => flash_until = None,
        }
    }
}

async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Put `p` on the light; true when the driver blinks by itself.
fn show(driver: &mut impl LedDriver, p: Pattern) -> Result<bool, LedError> {
    match (p, p.blink()) {
        (Pattern::Off, _) => driver.set(false).map(|()| true),
        (_, None) => driver.set(true).map(|()| true),
        (_, Some((on, off))) => {
            if driver.blink(on, off)? {
                Ok(true)
            } else {
                driver.set(true).map(|()| false)
            }
        }
    }
}

#[cfg(test)]
mod tests;
