//! The core: plain types and names that more than one part of the daemon
//! uses, and the words people read (`words`, the one place they are
//! spelled out). Nothing here does I/O or knows tokio, GStreamer or sled,
//! and nothing here imports anything of ours outside `core`; every actor
//! and adapter may import it. A type two actors share lives here, never
//! inside one of them (see `docs/ARCHITECTURE.md`, "Layers").

pub mod audit;
pub mod backoff;
pub mod command;
pub mod device_key;
pub mod events;
pub mod logs;
pub mod net;
pub mod rtcp;
pub mod schedule;
pub mod sdp;
pub mod secrets;
pub mod session;
pub mod status;
pub mod stun;
pub mod trees;
pub mod ts;
pub mod tsp;
pub mod witness;
pub mod words;
