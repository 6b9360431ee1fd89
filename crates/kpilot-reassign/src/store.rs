//! Where the rebalance journal is kept: a JSON file written atomically (temp file, fsync,
//! rename), or memory for tests, with `kpilot-roll`'s [`JsonFile`] and [`Memory`]. Performs
//! file I/O.

pub use kpilot_roll::store::StoreError;
use kpilot_roll::store::{Document, JsonFile, Memory};

use crate::journal::{Journal, JournalError};

impl Document for Journal {
    const KIND: &'static str = "rebalance";
    type Error = JournalError;
    fn to_json(&self) -> String {
        Journal::to_json(self)
    }
    fn from_json(text: &str) -> Result<Self, JournalError> {
        Journal::from_json(text)
    }
}

/// A place to keep the rebalance journal.
pub use kpilot_roll::store::JournalStore;

/// The rebalance journal's file (default: `$XDG_STATE_HOME/kpilot/rebalance-<id>.json`).
pub type FileStore = JsonFile<Journal>;

/// An in-memory rebalance journal store (for tests).
pub type MemoryStore = Memory<Journal>;

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_rebalance::BrokerChange;
    use std::fs;

    #[test]
    fn file_store_round_trips_atomically() {
        let dir =
            std::env::temp_dir().join(format!("kpilot-reassign-store-{}", std::process::id()));
        let path = dir.join("sub/rebalance.json");
        let mut store = FileStore::new(&path);
        assert!(store.load().expect("load").is_none());
        let j = Journal::new(None, BrokerChange::Rebalance, None, vec![]);
        store.save(&j).expect("save");
        assert_eq!(store.load().expect("load"), Some(j));
        assert!(!path.with_extension("json.tmp").exists());
        fs::write(&path, "not json").expect("write");
        assert!(matches!(store.load(), Err(StoreError::Invalid { .. })));
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn default_path_is_per_cluster() {
        let p = FileStore::default_path("abc/def");
        assert!(
            p.ends_with("kpilot/rebalance-abc_def.json"),
            "{}",
            p.display()
        );
    }
}
