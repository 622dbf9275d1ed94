//! The MQTT 5 control plane to the provincial NOC (rumqttc).
//!
//! One actor ([`client`]) owns the broker connection and everything that
//! goes over it:
//!
//! - `PREFIX/<site>/status` (retained): `online` on every connect, `offline`
//!   on a clean shutdown, `lost` as the last will;
//! - `PREFIX/<site>/state` (retained): republished on every change;
//! - `PREFIX/<site>/health`: flat numbers every `health_interval_s`;
//! - `PREFIX/<site>/event`: the [`crate::events::Outbox`], QoS 1, removed
//!   from sled only after the broker's PUBACK, in order;
//! - `PREFIX/<site>/cmd/<name>` and `PREFIX/all/cmd/<name>`: commands,
//!   answered on the MQTT 5 response topic and on `.../cmd/<name>/reply`.
//!
//! The pure parts live beside it: [`command`] (parsing and validation),
//! [`seen`] (idempotency), [`topics`], [`payload`] and
//! [`health`]; [`asyncapi`] generates `docs/mqtt-api.asyncapi.yaml` from the
//! payload types.
//!
//! Nothing here can block the media path: the supervisor is only asked for
//! its status, events are pushed to sled by their producers and read here,
//! and telemetry is dropped (oldest first: only the latest state is kept)
//! while the broker is unreachable.

pub mod asyncapi;
pub mod client;
pub mod command;
pub mod fleet;
pub mod health;
pub mod payload;
pub mod seen;
pub mod topics;

pub use client::{spawn, Deps, MqttHandle};

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("MQTT TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Seen(#[from] seen::SeenError),
    #[error("MQTT: the state store: {0}")]
    Sled(#[from] sled::Error),
}
