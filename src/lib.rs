//! diemcau: the software of a commune-level bridge room.
//!
//! See `docs/ARCHITECTURE.md` for the bird's-eye view. In short: [`daemon`]
//! wires the actors together; [`supervisor`] owns the [`session`] state
//! machine and the [`store`]; [`media`] owns the GStreamer pipelines; [`api`]
//! serves the local Unix socket the [`cli`] talks to.

pub mod api;
pub mod audio_devices;
pub mod button;
pub mod camera;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod display;
pub mod doctor;
pub mod events;
pub mod i18n;
pub mod led;
pub mod logging;
pub mod media;
pub mod mqtt;
pub mod provision;
pub mod recorder;
pub mod session;
pub mod store;
pub mod supervisor;
pub mod systemd;
pub mod upload;
