//! Discovery: servers find each other through a shared configuration store, as Crucial's servers
//! did through an S3 bucket. `file:PATH` and `s3://bucket/prefix` (feature `s3`) name the
//! store; members join and leave through it by compare-and-swap (see [`crate::core::node`]).

use std::str::FromStr;

use super::config::Configuration;
use super::store::FileConfigStore;
use super::store::{ConfigStore, StoreError, Versioned};

/// Where the configuration lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// A local file shared by the processes of one machine.
    File(std::path::PathBuf),
    /// An S3 object `s3://bucket/prefix/config.json`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix inside it.
        prefix: String,
    },
}

impl FromStr for Discovery {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err("file: needs a path, as in file:/var/lib/crucial/config.json".into());
            }
            return Ok(Discovery::File(path.into()));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("s3:// needs a bucket, as in s3://my-bucket/cluster-a".into());
            }
            return Ok(Discovery::S3 { bucket: bucket.into(), prefix: prefix.into() });
        }
        Err(format!("unknown discovery {text:?}: use file:PATH or s3://bucket/prefix"))
    }
}

impl std::fmt::Display for Discovery {
    /// As it is written on the command line (`file:PATH`, `s3://bucket/prefix`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Discovery::File(path) => write!(f, "file:{}", path.display()),
            Discovery::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Discovery::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// The store a [`Discovery`] names.
#[derive(Debug)]
pub enum DiscoveryStore {
    /// A file store.
    File(FileConfigStore),
    /// An S3 store.
    #[cfg(feature = "s3")]
    S3(super::s3::S3ConfigStore),
}

impl DiscoveryStore {
    /// Opens the store; `s3_endpoint` overrides the S3 endpoint (S3-compatible services).
    pub async fn open(discovery: &Discovery, s3_endpoint: Option<&str>) -> Result<Self, String> {
        let _ = s3_endpoint;
        match discovery {
            Discovery::File(path) => Ok(DiscoveryStore::File(FileConfigStore::new(path))),
            #[cfg(feature = "s3")]
            Discovery::S3 { bucket, prefix } => Ok(DiscoveryStore::S3(
                super::s3::S3ConfigStore::from_environment(bucket.clone(), prefix, s3_endpoint).await,
            )),
            #[allow(unreachable_patterns)]
            other => Err(format!("{other:?} is not available in this build (S3 needs the `s3` feature)")),
        }
    }
}

impl ConfigStore for DiscoveryStore {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        match self {
            DiscoveryStore::File(store) => store.load().await,
            #[cfg(feature = "s3")]
            DiscoveryStore::S3(store) => store.load().await,
        }
    }

    async fn create(&self, config: &Configuration) -> Result<Versioned, StoreError> {
        match self {
            DiscoveryStore::File(store) => store.create(config).await,
            #[cfg(feature = "s3")]
            DiscoveryStore::S3(store) => store.create(config).await,
        }
    }

    async fn replace(&self, version: &str, config: &Configuration) -> Result<Versioned, StoreError> {
        match self {
            DiscoveryStore::File(store) => store.replace(version, config).await,
            #[cfg(feature = "s3")]
            DiscoveryStore::S3(store) => store.replace(version, config).await,
        }
    }
}
