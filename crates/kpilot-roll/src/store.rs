//! Where a journal is kept: a JSON file written atomically (temp file, fsync, rename) for
//! the CLI, or memory for tests (keeping every version written). The roll's journal here;
//! `kpilot-reassign` keeps the rebalance journal with the same [`JsonFile`] and [`Memory`].
//! Performs file I/O.

use std::error::Error;
use std::fs;
use std::io::Write as _;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use crate::journal::{Journal, JournalError};

/// Writing or reading a journal failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Writing the journal file failed.
    #[error("writing the {kind} journal {} failed: {source}", path.display())]
    Write {
        /// What the journal records: `roll`, `rebalance`.
        kind: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the journal file failed.
    #[error("reading the {kind} journal {} failed: {source}", path.display())]
    Read {
        /// What the journal records.
        kind: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The journal file is not a valid journal.
    #[error("the {kind} journal {} is not valid: {source}; move it away to start a new {kind}", path.display())]
    Invalid {
        /// What the journal records.
        kind: &'static str,
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
}

/// A journal a [`JsonFile`] or [`Memory`] keeps: the roll's, the rebalance's.
pub trait Document: Clone {
    /// What it records, for file names and messages: `roll`, `rebalance`.
    const KIND: &'static str;
    /// Why a text is not such a journal.
    type Error: Error + Send + Sync + 'static;
    /// The journal as JSON.
    fn to_json(&self) -> String;
    /// Parses a journal written by [`Document::to_json`] (or an older version of it).
    fn from_json(text: &str) -> Result<Self, Self::Error>;
}

impl Document for Journal {
    const KIND: &'static str = "roll";
    type Error = JournalError;
    fn to_json(&self) -> String {
        Journal::to_json(self)
    }
    fn from_json(text: &str) -> Result<Self, JournalError> {
        Journal::from_json(text)
    }
}

/// A place to keep a journal: the roll's unless `J` says otherwise (`kpilot-reassign` keeps
/// its rebalance journal in a `JournalStore<kpilot_reassign::Journal>`).
pub trait JournalStore<J: Document = Journal> {
    /// The journal saved last, if any.
    fn load(&self) -> Result<Option<J>, StoreError>;
    /// Saves the journal durably.
    fn save(&mut self, journal: &J) -> Result<(), StoreError>;
}

/// The roll journal's file.
pub type FileStore = JsonFile<Journal>;

/// An in-memory roll journal store (for tests).
pub type MemoryStore = Memory<Journal>;

impl<J: Document> JournalStore<J> for JsonFile<J> {
    fn load(&self) -> Result<Option<J>, StoreError> {
        self.read()
    }
    fn save(&mut self, journal: &J) -> Result<(), StoreError> {
        self.write(journal)
    }
}

impl<J: Document> JournalStore<J> for Memory<J> {
    fn load(&self) -> Result<Option<J>, StoreError> {
        Ok(self.history.last().cloned())
    }
    fn save(&mut self, journal: &J) -> Result<(), StoreError> {
        self.history.push(journal.clone());
        Ok(())
    }
}

/// A journal kept in a JSON file, written atomically.
#[derive(Debug, Clone)]
pub struct JsonFile<J> {
    path: PathBuf,
    journal: PhantomData<fn() -> J>,
}

impl<J: Document> JsonFile<J> {
    /// A store at `path` (created with its directory on first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonFile {
            path: path.into(),
            journal: PhantomData,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The default journal path for a cluster: `$XDG_STATE_HOME/kpilot/<kind>-<id>.json`, or
    /// `~/.local/state/kpilot/<kind>-<id>.json` (see [`state_path`]).
    pub fn default_path(cluster_id: &str) -> PathBuf {
        state_path(J::KIND, cluster_id)
    }

    /// The journal in the file, `None` when there is no file.
    fn read(&self) -> Result<Option<J>, StoreError> {
        let text = read_if_exists(&self.path).map_err(|source| StoreError::Read {
            kind: J::KIND,
            path: self.path.clone(),
            source,
        })?;
        text.map(|text| J::from_json(&text))
            .transpose()
            .map_err(|source| StoreError::Invalid {
                kind: J::KIND,
                path: self.path.clone(),
                source: Box::new(source),
            })
    }

    /// Writes the journal durably (see [`write_atomically`]).
    fn write(&self, journal: &J) -> Result<(), StoreError> {
        write_atomically(&self.path, &journal.to_json()).map_err(|source| StoreError::Write {
            kind: J::KIND,
            path: self.path.clone(),
            source,
        })
    }
}

/// A journal kept in memory, every version saved (for tests).
#[derive(Debug, Clone)]
pub struct Memory<J> {
    /// Every journal saved, oldest first.
    pub history: Vec<J>,
}

impl<J> Default for Memory<J> {
    fn default() -> Self {
        Memory {
            history: Vec::new(),
        }
    }
}

/// `$XDG_STATE_HOME/kpilot/<kind>-<id>.json` (or under `~/.local/state`), with the cluster id
/// reduced to letters, digits, `-` and `_`: where a command keeps its journal for a cluster.
pub fn state_path(kind: &str, cluster_id: &str) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    let safe: String = cluster_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    base.join("kpilot").join(format!("{kind}-{safe}.json"))
}

/// Reads a file, `None` when it does not exist.
pub fn read_if_exists(path: &Path) -> std::io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `text` and a newline to `path` durably: its directory created, a temp file written
/// and synced, renamed over the file, the directory synced.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut file = fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_cluster::BrokerId;

    #[test]
    fn file_store_round_trips_atomically() {
        let dir = std::env::temp_dir().join(format!("kpilot-roll-store-{}", std::process::id()));
        let path = dir.join("sub/roll.json");
        let mut store = FileStore::new(&path);
        assert!(store.load().expect("load").is_none());
        let j = Journal::new(
            None,
            "m7g.large".parse().expect("t"),
            vec![],
            vec![(BrokerId(1), None)],
            5,
        );
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
        assert!(p.ends_with("kpilot/roll-abc_def.json"), "{}", p.display());
    }
}
