//! Where the rebalance journal is kept: a JSON file written atomically (temp file, fsync,
//! rename), or memory for tests. Performs file I/O.

use kpilot_roll::store::{read_if_exists, write_atomically};
use std::path::{Path, PathBuf};

use crate::journal::{Journal, JournalError};

/// Writing or reading the journal failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Writing the journal file failed.
    #[error("writing the rebalance journal {} failed: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the journal file failed.
    #[error("reading the rebalance journal {} failed: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid journal.
    #[error("the rebalance journal {} is not valid: {source}; move it away to start a new rebalance", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: JournalError,
    },
}

/// A place to keep the journal.
pub trait JournalStore {
    /// The journal saved last, if any.
    fn load(&self) -> Result<Option<Journal>, StoreError>;
    /// Saves the journal durably.
    fn save(&mut self, journal: &Journal) -> Result<(), StoreError>;
}

/// A journal file.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// A store at `path` (created with its directory on first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The default journal path for a cluster: `$XDG_STATE_HOME/kpilot/rebalance-<id>.json`,
    /// or `~/.local/state/kpilot/rebalance-<id>.json`.
    pub fn default_path(cluster_id: &str) -> PathBuf {
        kpilot_roll::store::state_path("rebalance", cluster_id)
    }
}

impl JournalStore for FileStore {
    fn load(&self) -> Result<Option<Journal>, StoreError> {
        let text = read_if_exists(&self.path).map_err(|source| StoreError::Read {
            path: self.path.clone(),
            source,
        })?;
        text.map(|text| Journal::from_json(&text))
            .transpose()
            .map_err(|source| StoreError::Invalid {
                path: self.path.clone(),
                source,
            })
    }

    fn save(&mut self, journal: &Journal) -> Result<(), StoreError> {
        write_atomically(&self.path, &journal.to_json()).map_err(|source| StoreError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// An in-memory store that keeps every version saved (for tests).
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    /// Every journal saved, oldest first.
    pub history: Vec<Journal>,
}

impl JournalStore for MemoryStore {
    fn load(&self) -> Result<Option<Journal>, StoreError> {
        Ok(self.history.last().cloned())
    }

    fn save(&mut self, journal: &Journal) -> Result<(), StoreError> {
        self.history.push(journal.clone());
        Ok(())
    }
}

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
