//! diemcau: the software of a commune-level bridge room.
//!
//! See `docs/ARCHITECTURE.md` for the bird's-eye view. In short: [`daemon`]
//! wires the actors together; [`supervisor`] owns the [`session`] state
//! machine and the [`store`]; [`media`] owns the GStreamer pipelines; [`api`]
//! serves the local Unix socket the [`cli`] talks to.

pub mod api;
pub mod audio_devices;
pub mod audit;
pub mod button;
pub mod camera;
pub mod cli;
pub mod client;
pub mod config;
pub mod control;
pub mod core;
pub mod daemon;
pub mod display;
pub mod doctor;
pub mod events;
pub mod led;
pub mod lifecycle;
pub mod logging;
pub mod media;
pub mod mqtt;
pub mod provision;
pub mod recorder;
pub mod schedule;
pub mod sip;
pub mod store;
pub mod supervisor;
pub mod systemd;
pub mod tls;
pub mod upload;
pub mod util;
