//! The configuration store: a linearizable compare-and-swap register holding the current
//! [`Configuration`]. In memory (embedded servers, simulator), in a local file (several
//! processes on one machine), in S3 with conditional writes (`cluster::s3`, feature `s3`).

use std::future::Future;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::config::Configuration;

/// A configuration with the store's version of it (a counter, or an S3 ETag).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// The configuration.
    pub config: Configuration,
    /// What a later [`ConfigStore::replace`] must name to replace it.
    pub version: String,
}

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Someone else created or replaced the configuration first: reload and decide again.
    #[error("the configuration changed concurrently")]
    Conflict,
    /// The store could not be reached or written.
    #[error("configuration store unavailable: {0}")]
    Unavailable(String),
    /// What the store holds is not a configuration.
    #[error("configuration store holds something unreadable: {0}")]
    Corrupt(String),
    /// The configuration offered is invalid.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A linearizable compare-and-swap register of configurations.
pub trait ConfigStore: Send + Sync {
    /// The current configuration, if any was ever created.
    fn load(&self) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// Creates the first configuration; `Conflict` if one exists.
    fn create(&self, config: &Configuration) -> impl Future<Output = Result<Versioned, StoreError>> + Send;

    /// Replaces the configuration at `version`; `Conflict` if it is no longer current.
    fn replace(
        &self,
        version: &str,
        config: &Configuration,
    ) -> impl Future<Output = Result<Versioned, StoreError>> + Send;
}

fn validated(config: &Configuration) -> Result<(), StoreError> {
    config.validate().map_err(StoreError::Invalid)
}

/// The next counter version after `current` (`None`: nothing stored yet).
fn compare_and_swap(
    current: Option<&Versioned>,
    expected: Option<&str>,
    config: &Configuration,
) -> Result<Versioned, StoreError> {
    validated(config)?;
    let counter = match (current, expected) {
        (None, None) => 0,
        (Some(current), Some(expected)) if current.version == expected => {
            current.version.parse::<u64>().map_err(|e| StoreError::Corrupt(e.to_string()))?
        }
        _ => return Err(StoreError::Conflict),
    };
    Ok(Versioned { config: config.clone(), version: (counter + 1).to_string() })
}

/// An in-process store: for embedded clusters and the simulator.
#[derive(Debug, Default)]
pub struct MemoryConfigStore {
    current: Mutex<Option<Versioned>>,
}

impl ConfigStore for MemoryConfigStore {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        Ok(self.current.lock().clone())
    }

    async fn create(&self, config: &Configuration) -> Result<Versioned, StoreError> {
        let mut current = self.current.lock();
        let next = compare_and_swap(current.as_ref(), None, config)?;
        *current = Some(next.clone());
        Ok(next)
    }

    async fn replace(&self, version: &str, config: &Configuration) -> Result<Versioned, StoreError> {
        let mut current = self.current.lock();
        let next = compare_and_swap(current.as_ref(), Some(version), config)?;
        *current = Some(next.clone());
        Ok(next)
    }
}

/// A store in a local file, shared by the processes of one machine: each operation holds an
/// exclusive lock on `PATH.lock`, and a write replaces the file atomically (write, then rename).
#[derive(Debug, Clone)]
pub struct FileConfigStore {
    path: std::path::PathBuf,
}

impl FileConfigStore {
    /// A store at `path` (created on the first `create`).
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn unavailable(&self, error: std::io::Error) -> StoreError {
        StoreError::Unavailable(format!("{}: {error}", self.path.display()))
    }

    /// Runs `f` on the current contents while holding the lock.
    fn locked<T>(
        &self,
        f: impl FnOnce(Option<Versioned>) -> Result<(T, Option<Versioned>), StoreError>,
    ) -> Result<T, StoreError> {
        let lock_path = self.path.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| self.unavailable(e))?;
        lock.lock().map_err(|e| self.unavailable(e))?;
        let current = match std::fs::read(&self.path) {
            Ok(bytes) => {
                Some(serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(self.unavailable(error)),
        };
        let (result, write) = f(current)?;
        if let Some(next) = write {
            self.replace_durably(&next).map_err(|e| self.unavailable(e))?;
        }
        Ok(result)
    }
}

impl FileConfigStore {
    /// Writes `next` to a temporary file, flushes it to disk, renames it over the store and
    /// flushes the directory, so that an acknowledged write survives a power loss.
    fn replace_durably(&self, next: &Versioned) -> std::io::Result<()> {
        use std::io::Write as _;
        let temporary = self.path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(next).expect("a configuration serializes");
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &self.path)?;
        let directory = self.path.parent().filter(|dir| !dir.as_os_str().is_empty());
        std::fs::File::open(directory.unwrap_or(std::path::Path::new(".")))?.sync_all()
    }
}

impl ConfigStore for FileConfigStore {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        self.locked(|current| Ok((current, None)))
    }

    async fn create(&self, config: &Configuration) -> Result<Versioned, StoreError> {
        self.locked(|current| {
            let next = compare_and_swap(current.as_ref(), None, config)?;
            Ok((next.clone(), Some(next)))
        })
    }

    async fn replace(&self, version: &str, config: &Configuration) -> Result<Versioned, StoreError> {
        self.locked(|current| {
            let next = compare_and_swap(current.as_ref(), Some(version), config)?;
            Ok((next.clone(), Some(next)))
        })
    }
}
