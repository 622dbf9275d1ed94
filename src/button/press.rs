//! Press semantics as a pure state machine: raw button levels and the
//! session phase in, decisions out, time passed in. No I/O, no clock.
//!
//! The rules, for a clerk who has one button and no keyboard:
//!
//! - A level counts only once it has been steady for `debounce` (contact
//!   bounce on cheap buttons lasts a few milliseconds; a bounce never makes
//!   a second press).
//! - A press while the box is idle (or after a failed start) starts a session
//!   at once, at the moment the press is recognised, so "press to live" does
//!   not wait for the finger to lift.
//! - While live, only a press held for `long_press` ends the session, and it
//!   ends when the hold reaches that time, not at release, so the light
//!   changes under the clerk's finger. A shorter press only shows a hint.
//!   A brush against the button can never end a citizen's session.
//! - While starting or stopping, presses are ignored.
//! - Repeats are ignored: the kernel's key autorepeat (filtered by the source),
//!   a level reported twice, and a new press within `repeat_guard` of a press
//!   that started or stopped a session (a nervous double press must not stop
//!   the session it just started or start a new one after a stop).
//!
//! Every press ends as exactly one [`Output::Pressed`] (short or long, and
//! what it did) once its length is known: at release for a short press, at
//! `long_press` for a long one.

use std::time::{Duration, Instant};

use crate::core::session::Phase;

/// Timing of the press rules (validated by the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub debounce: Duration,
    pub long_press: Duration,
    pub repeat_guard: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(30),
            long_press: Duration::from_secs(2),
            repeat_guard: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PressKind {
    Short,
    Long,
}

impl PressKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PressKind::Short => "short",
            PressKind::Long => "long",
        }
    }
}

/// What a press did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Start,
    Stop,
    Hint,
    Ignored,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Start => "start",
            Effect::Stop => "stop",
            Effect::Hint => "hint",
            Effect::Ignored => "ignored",
        }
    }
}

/// What the caller must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Ask the supervisor to start a session.
    Start,
    /// Ask the supervisor to stop the live session.
    Stop,
    /// Show "hold to end" and flash the light.
    Hint,
    /// A press is over (or reached the long threshold): record it as an event.
    Pressed { press: PressKind, effect: Effect },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Press {
    down_at: Instant,
    /// Decided when the press was recognised (start, or ignored as a repeat
    /// or while busy); otherwise decided by its length.
    decided: Option<Effect>,
    /// Its `Pressed` output was given (a long press reached the threshold).
    reported: bool,
}

/// The press state machine. One per button.
#[derive(Debug, Clone)]
pub struct Presses {
    timing: Timing,
    /// The level as last reported by the source, and since when.
    raw: bool,
    raw_since: Instant,
    /// The debounced level.
    level: bool,
    press: Option<Press>,
    /// Presses recognised before this instant are repeats.
    guard_until: Option<Instant>,
    /// The session phase as the button sees it: the supervisor's, or what a
    /// request just sent will make it before the supervisor says so.
    phase: Phase,
}

impl Presses {
    pub fn new(timing: Timing, phase: Phase, now: Instant) -> Self {
        Self {
            timing,
            raw: false,
            raw_since: now,
            level: false,
            press: None,
            guard_until: None,
            phase,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether a press is being held (debounced).
    pub fn is_down(&self) -> bool {
        self.level
    }

    /// The session phase changed (or a request finished: resynchronise).
    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    /// The source (re)opened and reports the current level without an edge.
    /// A button already held at that moment (stuck, or something leaning on
    /// it) is not a press: it must be released first.
    pub fn sync(&mut self, pressed: bool, now: Instant) {
        self.raw = pressed;
        self.raw_since = now;
        self.level = pressed;
        self.press = pressed.then_some(Press {
            down_at: now,
            decided: Some(Effect::Ignored),
            reported: true,
        });
    }

    /// The source was lost (USB unplugged): forget any press in progress
    /// without acting on it.
    pub fn lost(&mut self, now: Instant) {
        self.raw = false;
        self.raw_since = now;
        self.level = false;
        self.press = None;
    }

    /// The source reports a level at `at`. Repeats of the same level are
    /// ignored; a change restarts the debounce time.
    pub fn level(&mut self, pressed: bool, at: Instant) -> Vec<Output> {
        if pressed != self.raw {
            self.raw = pressed;
            self.raw_since = at;
        }
        self.poll(at)
    }

    /// When [`poll`](Self::poll) must next be called, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        let settle = (self.raw != self.level).then(|| self.raw_since + self.timing.debounce);
        // While a release is settling, the release decides (see `poll`).
        let long = self
            .press
            .filter(|p| !p.reported && self.raw)
            .map(|p| p.down_at + self.timing.long_press);
        match (settle, long) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: settle a debounced level, detect a long press.
    pub fn poll(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(p) = self.press.filter(|p| !p.reported) {
            let long_at = p.down_at + self.timing.long_press;
            // A finger that lifted before the threshold makes a short press
            // once the release settles, even if that is after the threshold;
            // if the "release" was a bounce, the level is down again and the
            // press is long.
            let lifted_before = !self.raw && self.raw_since < long_at;
            if now >= long_at && !lifted_before {
                self.classify(PressKind::Long, long_at, &mut out);
            }
        }
        if self.raw != self.level && now >= self.raw_since + self.timing.debounce {
            self.level = self.raw;
            if self.level {
                self.down(self.raw_since, &mut out);
            } else {
                self.up(&mut out);
            }
        }
        out
    }

    fn down(&mut self, at: Instant, out: &mut Vec<Output>) {
        let repeat = self.guard_until.is_some_and(|g| at < g);
        let decided = if repeat {
            Some(Effect::Ignored)
        } else {
            match self.phase {
                Phase::Idle | Phase::Fault => {
                    out.push(Output::Start);
                    self.acted(Phase::Starting, at);
                    Some(Effect::Start)
                }
                Phase::Starting | Phase::Stopping => Some(Effect::Ignored),
                // Decided by the press's length.
                Phase::Live => None,
            }
        };
        self.press = Some(Press {
            down_at: at,
            decided,
            reported: false,
        });
    }

    fn up(&mut self, out: &mut Vec<Output>) {
        if self.press.is_some_and(|p| !p.reported) {
            self.classify(PressKind::Short, self.raw_since, out);
        }
        self.press = None;
    }

    fn classify(&mut self, kind: PressKind, at: Instant, out: &mut Vec<Output>) {
        let Some(mut p) = self.press else { return };
        let effect = match p.decided {
            Some(e) => e,
            None => match (self.phase, kind) {
                (Phase::Live, PressKind::Long) => {
                    out.push(Output::Stop);
                    self.acted(Phase::Stopping, at);
                    Effect::Stop
                }
                (Phase::Live, PressKind::Short) => {
                    out.push(Output::Hint);
                    Effect::Hint
                }
                // The session changed under the finger (stopped from the CLI
                // or the NOC): the press no longer means anything.
                _ => Effect::Ignored,
            },
        };
        p.reported = true;
        self.press = Some(p);
        out.push(Output::Pressed {
            press: kind,
            effect,
        });
    }

    fn acted(&mut self, assumed: Phase, at: Instant) {
        self.phase = assumed;
        self.guard_until = Some(at + self.timing.repeat_guard);
    }
}

#[cfg(test)]
mod tests;
