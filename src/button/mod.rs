//! The room's one button: commune staff start and stop a session with it.
//!
//! Three parts, each replaceable in tests:
//!
//! - a [`LineSource`] reports the button's level: [`evdev::EvdevButton`] (a
//!   USB button that presents itself as a keyboard) or [`gpio::GpioButton`]
//!   (a push-button on a GPIO line). [`run_source`] opens it, reads it, and
//!   reopens it after it is lost (USB unplugged and plugged back);
//! - [`press::Presses`], the pure press rules (short, long, bounce, repeat);
//! - the actor ([`spawn`]), which owns both, feeds the session phase in,
//!   carries out the decisions through [`Sessions`] (the supervisor), and
//!   records every press as an event.
//!
//! The "hold 2 s to end" hint is published on a `watch` channel
//! ([`Spawned::hint`]) for the display and the tally light.

pub mod evdev;
pub mod gpio;
pub mod press;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};

use crate::config::{Button, ButtonInput, Language};
use crate::core::events::EventKind;
use crate::core::session::{Origin, Phase};
use crate::events::Outbox;
use crate::supervisor::SupervisorHandle;
use press::{Output, Presses, Timing};

/// How long to wait before looking for a lost button again.
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ButtonError {
    #[error("no input device named '{name}' (found: {found})")]
    NotFound { name: String, found: String },
    #[error("input device {path}: {source}")]
    Device {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("input device {path} ({name}) has no key {key}")]
    NoSuchKey {
        path: String,
        name: String,
        key: String,
    },
    #[error("GPIO {chip} line {line}: {source}")]
    Gpio {
        chip: String,
        line: u32,
        #[source]
        source: gpiocdev::Error,
    },
    #[error("the button source ended")]
    Closed,
}

/// One level change of the button, as the device reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub pressed: bool,
    pub at: Instant,
}

/// A button device. `open` (re)acquires it and reports its current level;
/// `next_edge` waits for the next level change. An error from either means
/// the device is gone: [`run_source`] waits and opens it again.
pub trait LineSource: Send + 'static {
    /// A short description for logs, e.g. `evdev /dev/diemcau/button KEY_ENTER`.
    fn describe(&self) -> String;
    /// Open the device; the level it has now (true: pressed).
    fn open(&mut self) -> BoxFuture<'_, Result<bool, ButtonError>>;
    /// The next level change. Repeats of the same level are allowed (the
    /// press rules drop them); key autorepeat should be filtered here.
    fn next_edge(&mut self) -> BoxFuture<'_, Result<Edge, ButtonError>>;
}

/// What the source runner tells the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// The device was opened; its current level.
    Opened {
        pressed: bool,
    },
    Edge(Edge),
    /// The device was lost; it will be looked for again.
    Lost(String),
}

/// Open `source`, forward its edges, reopen it after a loss. Logs the first
/// failure of each outage only, so an absent button does not flood the
/// journal. Ends when the receiver is gone.
pub async fn run_source(mut source: impl LineSource, tx: mpsc::Sender<SourceEvent>) {
    let what = source.describe();
    let mut reported = false;
    loop {
        match source.open().await {
            Ok(pressed) => {
                tracing::info!("button ready: {what}");
                reported = false;
                if tx.send(SourceEvent::Opened { pressed }).await.is_err() {
                    return;
                }
                let why = loop {
                    match source.next_edge().await {
                        Ok(edge) => {
                            if tx.send(SourceEvent::Edge(edge)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => break e,
                    }
                };
                tracing::warn!("button lost ({what}): {why}; looking for it again");
                if tx.send(SourceEvent::Lost(why.to_string())).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                if !reported {
                    tracing::warn!("button not available ({what}): {e}; retrying every second");
                    reported = true;
                } else {
                    tracing::debug!("button still not available: {e}");
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(REOPEN_INTERVAL).await;
    }
}

/// Starting and stopping sessions: the supervisor, or a fake in tests.
pub trait Sessions: Clone + Send + Sync + 'static {
    fn start(&self) -> BoxFuture<'static, Result<(), String>>;
    fn stop(&self) -> BoxFuture<'static, Result<(), String>>;
}

impl Sessions for SupervisorHandle {
    fn start(&self) -> BoxFuture<'static, Result<(), String>> {
        let h = self.clone();
        Box::pin(async move {
            h.start(Origin::Button, BTreeMap::new())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }

    fn stop(&self) -> BoxFuture<'static, Result<(), String>> {
        let h = self.clone();
        Box::pin(async move {
            h.stop(Origin::Button)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

/// The last "hold to end" hint: a short press while live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// When the press was recognised; the display shows the hint for a few
    /// seconds after it.
    pub at: Instant,
    /// Counts hints, so two equal-looking presses are two hints.
    pub seq: u64,
    /// The hold time that ends a session.
    pub hold: Duration,
}

impl Hint {
    /// How long the display should keep the hint up.
    pub const SHOW_FOR: Duration = Duration::from_secs(4);

    /// The words on the display.
    pub fn text(&self, lang: Language) -> String {
        crate::core::words::display::hold_to_end(lang, self.hold)
    }
}

/// The hints as the display takes them (its own words and end time), kept
/// up to date by a small task that ends when either side is gone.
pub fn display_hints(
    mut hints: watch::Receiver<Option<Hint>>,
    lang: Language,
) -> watch::Receiver<Option<crate::core::status::Hint>> {
    let convert = move |h: &Hint| crate::core::status::Hint {
        text: h.text(lang),
        until: h.at + Hint::SHOW_FOR,
    };
    let (tx, rx) = watch::channel(hints.borrow_and_update().as_ref().map(convert));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = hints.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let h = hints.borrow_and_update().as_ref().map(convert);
                    tx.send_replace(h);
                }
                () = tx.closed() => return,
            }
        }
    });
    rx
}

/// The running button actor.
pub struct Spawned {
    /// The last hint (None until the first). For the display and the LED.
    pub hint: watch::Receiver<Option<Hint>>,
    /// The technician's button test (`diemcau doctor`).
    pub test: TestHandle,
    pub task: tokio::task::JoinHandle<()>,
}

/// A technician's button test: while one runs, a press is counted and
/// reported instead of starting or ending a session, so "press the button
/// now" changes nothing in the room.
#[derive(Clone)]
pub struct TestHandle {
    until: std::sync::Arc<watch::Sender<Option<Instant>>>,
    presses: watch::Receiver<u64>,
}

impl TestHandle {
    fn new() -> (
        TestHandle,
        watch::Receiver<Option<Instant>>,
        watch::Sender<u64>,
    ) {
        let (until, until_rx) = watch::channel(None);
        let (presses_tx, presses) = watch::channel(0);
        (
            TestHandle {
                until: std::sync::Arc::new(until),
                presses,
            },
            until_rx,
            presses_tx,
        )
    }

    /// Wait up to `within` for one press; true when it came.
    pub async fn wait_press(&self, within: Duration) -> bool {
        let mut presses = self.presses.clone();
        presses.borrow_and_update();
        self.until.send_replace(Some(Instant::now() + within));
        let pressed = tokio::time::timeout(within, presses.changed())
            .await
            .is_ok_and(|r| r.is_ok());
        self.until.send_replace(None);
        pressed
    }
}

/// Start the button configured in `config` (nothing runs for `kind = "none"`,
/// but the hint channel exists all the same).
pub fn spawn(
    config: &Button,
    sessions: impl Sessions,
    phase: watch::Receiver<Phase>,
    outbox: Outbox,
) -> Spawned {
    match &config.input {
        ButtonInput::None => {
            let (hint_tx, hint) = watch::channel(None);
            // No press ever comes: the test's counter sender is dropped.
            let (test, _, _) = TestHandle::new();
            // Keep the sender alive so receivers never see a closed channel.
            let task = tokio::spawn(async move {
                hint_tx.closed().await;
            });
            Spawned { hint, test, task }
        }
        ButtonInput::Evdev {
            device,
            key,
            key_name,
        } => spawn_with(
            evdev::EvdevButton::new(device.clone(), *key, key_name.clone()),
            timing(config),
            sessions,
            phase,
            outbox,
        ),
        ButtonInput::Gpio(line) => spawn_with(
            gpio::GpioButton::new(line.clone(), config.debounce),
            timing(config),
            sessions,
            phase,
            outbox,
        ),
    }
}

fn timing(config: &Button) -> Timing {
    Timing {
        debounce: config.debounce,
        long_press: config.long_press,
        repeat_guard: config.repeat_guard,
    }
}

/// Start the actor on any source: the daemon's devices, or a fake in tests.
pub fn spawn_with(
    source: impl LineSource,
    timing: Timing,
    sessions: impl Sessions,
    phase: watch::Receiver<Phase>,
    outbox: Outbox,
) -> Spawned {
    let (tx, rx) = mpsc::channel(64);
    let (hint_tx, hint) = watch::channel(None);
    let (test, test_until, test_presses) = TestHandle::new();
    let actor = Actor {
        presses: Presses::new(timing, *phase.borrow(), Instant::now()),
        timing,
        sessions,
        outbox,
        hint_tx,
        hints: 0,
        test_until,
        test_presses,
    };
    let task = tokio::spawn(async move {
        let reader = tokio::spawn(run_source(source, tx));
        actor.run(rx, phase).await;
        reader.abort();
    });
    Spawned { hint, test, task }
}

struct Actor<S> {
    presses: Presses,
    timing: Timing,
    sessions: S,
    outbox: Outbox,
    hint_tx: watch::Sender<Option<Hint>>,
    hints: u64,
    test_until: watch::Receiver<Option<Instant>>,
    test_presses: watch::Sender<u64>,
}

impl<S: Sessions> Actor<S> {
    async fn run(mut self, mut rx: mpsc::Receiver<SourceEvent>, mut phase: watch::Receiver<Phase>) {
        // A finished start/stop request: resynchronise the phase, since a
        // request that failed without a transition leaves no watch change.
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
        loop {
            let deadline = self.presses.deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(SourceEvent::Opened { pressed }) => {
                        self.presses.sync(pressed, Instant::now());
                    }
                    Some(SourceEvent::Edge(e)) => {
                        let out = self.presses.level(e.pressed, e.at);
                        self.act(out, &done_tx);
                    }
                    Some(SourceEvent::Lost(_)) => self.presses.lost(Instant::now()),
                    None => return,
                },
                changed = phase.changed() => {
                    if changed.is_err() {
                        // The supervisor is gone: the daemon is shutting down.
                        return;
                    }
                    let p = *phase.borrow_and_update();
                    self.presses.set_phase(p);
                }
                Some(()) = done_rx.recv() => {
                    let p = *phase.borrow_and_update();
                    self.presses.set_phase(p);
                }
                () = sleep => {
                    let out = self.presses.poll(Instant::now());
                    self.act(out, &done_tx);
                }
            }
        }
    }

    fn act(&mut self, out: Vec<Output>, done: &mpsc::UnboundedSender<()>) {
        for o in out {
            match o {
                Output::Start | Output::Stop
                    if self.test_until.borrow().is_some_and(|t| Instant::now() < t) =>
                {
                    tracing::info!("button test: press received");
                    self.test_presses.send_modify(|n| *n += 1);
                    // The machine thinks a request went out: resynchronise.
                    let _ = done.send(());
                }
                Output::Start | Output::Stop => {
                    let start = o == Output::Start;
                    let req = if start {
                        self.sessions.start()
                    } else {
                        self.sessions.stop()
                    };
                    let done = done.clone();
                    // The request resolves only when the session is live or
                    // closed: run it aside so the button stays responsive.
                    tokio::spawn(async move {
                        if let Err(e) = req.await {
                            let what = if start { "start" } else { "stop" };
                            tracing::warn!("button {what}: {e}");
                        }
                        let _ = done.send(());
                    });
                }
                Output::Hint => {
                    self.hints += 1;
                    tracing::info!("short press while live: showing the hold-to-end hint");
                    self.hint_tx.send_replace(Some(Hint {
                        at: Instant::now(),
                        seq: self.hints,
                        hold: self.timing.long_press,
                    }));
                }
                Output::Pressed { press, effect } => {
                    tracing::info!(
                        press = press.as_str(),
                        effect = effect.as_str(),
                        "button pressed"
                    );
                    self.outbox.emit(EventKind::ButtonPressed {
                        press: press.as_str().into(),
                        effect: effect.as_str().into(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
