//! Where the journal is kept: a JSON file written atomically (temp file, fsync, rename) for
//! the CLI, or memory for tests (keeping every version written). Performs file I/O.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::journal::{Journal, JournalError};

/// Writing or reading the journal failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Writing the journal file failed.
    #[error("writing the roll journal {} failed: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the journal file failed.
    #[error("reading the roll journal {} failed: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The journal file is not a valid journal.
    #[error("the roll journal {} is not valid: {source}; move it away to start a new roll", path.display())]
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

    /// The default journal path for a cluster: `$XDG_STATE_HOME/kpilot/roll-<id>.json`, or
    /// `~/.local/state/kpilot/roll-<id>.json`.
    pub fn default_path(cluster_id: &str) -> PathBuf {
        state_path("roll", cluster_id)
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
