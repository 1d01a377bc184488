//! Discovery: servers find each other through a shared configuration store, as Crucial's servers
//! did through an S3 bucket. A starting server joins (adds itself to the configuration by
//! compare-and-swap, in a new epoch); a stopping one leaves. `file:PATH` and
//! `s3://bucket/prefix` (feature `s3`) name the store.

use std::str::FromStr;
use std::time::Duration;

use super::config::{Configuration, Member, MemberId};
use super::store::FileConfigStore;
use super::store::{ConfigStore, StoreError, Versioned};

/// Compare-and-swap attempts before a join or leave gives up (each conflict means another
/// member changed the configuration first, so the next attempt sees its change).
pub const MEMBERSHIP_ATTEMPTS_MAX: usize = 64;

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

/// Adds `member` to the configuration (creating it with `rf` if there is none), in a new epoch;
/// a member already listed under its id gets its address updated.
pub async fn join(store: &impl ConfigStore, member: Member, rf: usize) -> Result<Versioned, StoreError> {
    let joined = change_membership(store, |current| match current {
        // The first member: one copy is all a single member can hold.
        None => Some(Configuration::initial(vec![member.clone()], rf.max(1))),
        Some(config) if config.members.contains(&member) => None,
        Some(config) => {
            let mut members: Vec<Member> =
                config.members.iter().filter(|m| m.id != member.id).cloned().collect();
            members.push(member.clone());
            let mut next = config.next(members);
            next.rf = rf.max(1);
            Some(next)
        }
    })
    .await?;
    joined.ok_or_else(|| StoreError::Corrupt("the configuration vanished while joining".into()))
}

/// Removes member `id`, in a new epoch; the last member stays listed (a configuration always
/// has one), and a member not listed changes nothing. `None` if there is no configuration.
pub async fn leave(store: &impl ConfigStore, id: MemberId) -> Result<Option<Versioned>, StoreError> {
    change_membership(store, |current| {
        let config = current?;
        let members: Vec<Member> = config.members.iter().filter(|m| m.id != id).cloned().collect();
        (members.len() != config.members.len() && !members.is_empty()).then(|| config.next(members))
    })
    .await
}

/// Applies `change` (which returns `None` for "nothing to do": the current configuration is
/// the answer) by compare-and-swap, retrying on conflicts with a short, growing pause.
async fn change_membership(
    store: &impl ConfigStore,
    change: impl Fn(Option<&Configuration>) -> Option<Configuration>,
) -> Result<Option<Versioned>, StoreError> {
    for attempt in 0..MEMBERSHIP_ATTEMPTS_MAX {
        let current = store.load().await?;
        let Some(next) = change(current.as_ref().map(|v| &v.config)) else {
            return Ok(current);
        };
        let written = match &current {
            None => store.create(&next).await,
            Some(current) => store.replace(&current.version, &next).await,
        };
        match written {
            Err(StoreError::Conflict) => {
                tokio::time::sleep(Duration::from_millis(5 * (attempt as u64 + 1))).await
            }
            other => return other.map(Some),
        }
    }
    Err(StoreError::Conflict)
}
