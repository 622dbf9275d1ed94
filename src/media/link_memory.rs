//! What the uplink learned about each hub's link, kept in the store so the
//! next session starts right: the bitrate the link carried and its RTT.
//! A session on a narrow 4G link then starts at what that link took last
//! time instead of the configured bitrate (which overran an 800 kbit/s
//! link for its first seconds, and the hub showed broken pictures), and
//! asks SRT for a latency that covers four of its round trips from the
//! first connect.
//!
//! Keyed by the hub's address (`HOST:PORT`): another hub is another link.

use serde::{Deserialize, Serialize};

/// What one link was last seen to do.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    /// A bitrate the link carried without congestion, kbit/s.
    pub kbps: u32,
    /// Its round trip with no queue (the least seen), ms.
    pub rtt_ms: f64,
    /// When, seconds since the epoch.
    pub at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkMemoryError {
    #[error("the store's tree of learned links cannot be opened: {0}")]
    Open(#[from] sled::Error),
}

/// The store's tree of learned links. Cheap to clone.
#[derive(Clone)]
pub struct LinkMemory {
    tree: sled::Tree,
}

impl LinkMemory {
    pub fn open(db: &sled::Db) -> Result<Self, LinkMemoryError> {
        Ok(Self {
            tree: db.open_tree(crate::core::trees::UPLINK_LINKS)?,
        })
    }

    /// What the link to `hub` was last seen to do; nothing when never seen
    /// or unreadable (a fresh start is always safe).
    pub fn get(&self, hub: &str) -> Option<Learned> {
        let v = self.tree.get(hub.as_bytes()).ok()??;
        serde_json::from_slice(&v).ok()
    }

    /// Remember `learned` for `hub`. Not flushed here: losing the last
    /// value to a power cut only means starting from the floor once.
    pub fn put(&self, hub: &str, learned: &Learned) {
        match serde_json::to_vec(learned) {
            Ok(v) => {
                if let Err(e) = self.tree.insert(hub.as_bytes(), v) {
                    tracing::debug!("cannot remember the link to {hub}: {e}");
                }
            }
            Err(e) => tracing::debug!("cannot encode what the link to {hub} did: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_remembered_by_its_hub() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let m = LinkMemory::open(&db).unwrap();
        assert_eq!(m.get("hub:9000"), None);
        let l = Learned {
            kbps: 640,
            rtt_ms: 104.0,
            at: 1,
        };
        m.put("hub:9000", &l);
        assert_eq!(m.get("hub:9000"), Some(l));
        assert_eq!(m.get("other:9000"), None);
    }
}
