//! A push-button wired to a GPIO line, read through the GPIO character
//! device (`/dev/gpiochipN`) with the `gpiocdev` crate.
//!
//! The line is requested as an input with both edges detected, the
//! configured bias and active-low setting, and the kernel's debounce where
//! the chip supports it (the press rules debounce in software as well, so a
//! chip without it still works). Active-low is applied by the kernel, so an
//! edge's "rising" always means "pressed".

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use gpiocdev::line::{Bias, EdgeDetection, EdgeKind, Value};
use gpiocdev::tokio::AsyncRequest;
use gpiocdev::Request;

use super::{ButtonError, Edge, LineSource};
use crate::config::{GpioBias, GpioLine};

/// The name shown for the line's user in `gpioinfo`.
pub const CONSUMER: &str = "diemcau-button";

pub struct GpioButton {
    line: GpioLine,
    debounce: Duration,
    req: Option<AsyncRequest>,
}

impl GpioButton {
    pub fn new(line: GpioLine, debounce: Duration) -> Self {
        Self {
            line,
            debounce,
            req: None,
        }
    }

    fn err(&self, source: gpiocdev::Error) -> ButtonError {
        ButtonError::Gpio {
            chip: self.line.chip.display().to_string(),
            line: self.line.line,
            source,
        }
    }

    fn request(&self, with_debounce: bool) -> Result<Request, gpiocdev::Error> {
        let mut b = Request::builder();
        b.on_chip(&self.line.chip)
            .with_consumer(CONSUMER)
            .with_line(self.line.line)
            .as_input()
            .with_edge_detection(EdgeDetection::BothEdges)
            .with_bias(bias(self.line.bias));
        if self.line.active_low {
            b.as_active_low();
        }
        if with_debounce && !self.debounce.is_zero() {
            b.with_debounce_period(self.debounce);
        }
        b.request()
    }

    fn open_now(&mut self) -> Result<bool, ButtonError> {
        self.req = None;
        let req = match self.request(true) {
            Ok(r) => r,
            // Some chips (and older kernels) have no hardware or kernel
            // debounce for this line: software debounce is enough.
            Err(e) if !self.debounce.is_zero() => {
                tracing::debug!("GPIO debounce not available ({e}); debouncing in software");
                self.request(false).map_err(|e| self.err(e))?
            }
            Err(e) => return Err(self.err(e)),
        };
        let pressed = req.lone_value().map_err(|e| self.err(e))? == Value::Active;
        self.req = Some(AsyncRequest::new(req));
        Ok(pressed)
    }

    async fn next(&mut self) -> Result<Edge, ButtonError> {
        let Some(req) = self.req.as_ref() else {
            return Err(ButtonError::Closed);
        };
        let ev = req.read_edge_event().await;
        let ev = ev.map_err(|e| self.err(e))?;
        Ok(Edge {
            pressed: edge_pressed(ev.kind),
            // The event's kernel timestamp would be a few microseconds more
            // exact; Instant::now() keeps one clock for all sources.
            at: Instant::now(),
        })
    }
}

/// With active-low applied by the kernel, rising means pressed.
pub fn edge_pressed(kind: EdgeKind) -> bool {
    kind == EdgeKind::Rising
}

fn bias(b: GpioBias) -> Option<Bias> {
    match b {
        GpioBias::AsIs => None,
        GpioBias::PullUp => Some(Bias::PullUp),
        GpioBias::PullDown => Some(Bias::PullDown),
        GpioBias::Disabled => Some(Bias::Disabled),
    }
}

impl LineSource for GpioButton {
    fn describe(&self) -> String {
        format!(
            "GPIO button {} line {}{}",
            self.line.chip.display(),
            self.line.line,
            if self.line.active_low {
                " (active low)"
            } else {
                ""
            }
        )
    }

    fn open(&mut self) -> BoxFuture<'_, Result<bool, ButtonError>> {
        Box::pin(async move { self.open_now() })
    }

    fn next_edge(&mut self) -> BoxFuture<'_, Result<Edge, ButtonError>> {
        Box::pin(self.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rising_is_pressed_because_the_kernel_applies_active_low() {
        assert!(edge_pressed(EdgeKind::Rising));
        assert!(!edge_pressed(EdgeKind::Falling));
    }

    #[test]
    fn bias_maps_one_to_one() {
        assert_eq!(bias(GpioBias::AsIs), None);
        assert_eq!(bias(GpioBias::PullUp), Some(Bias::PullUp));
        assert_eq!(bias(GpioBias::PullDown), Some(Bias::PullDown));
        assert_eq!(bias(GpioBias::Disabled), Some(Bias::Disabled));
    }

    #[test]
    fn a_missing_chip_is_an_error_naming_chip_and_line() {
        let mut b = GpioButton::new(
            GpioLine {
                chip: "/dev/gpiochip-none".into(),
                line: 5,
                active_low: true,
                bias: GpioBias::PullUp,
            },
            Duration::from_millis(30),
        );
        let e = b.open_now().unwrap_err().to_string();
        assert!(e.contains("/dev/gpiochip-none line 5"), "{e}");
    }
}
