//! Thread identities, and what is derived from them: the DSO session, the RNG seed and the key
//! under which the thread's result is stored.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies one cloud thread: the program run (`job`) and the thread's index in it. Every
/// invocation of the thread (first run, retries, duplicates) carries the same id, so they share
/// one DSO session and replay each other's calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ThreadId {
    /// The program run; random per executor unless set (a fixed job replays a whole run).
    pub job: u64,
    /// The thread's number in the run, from 0 in spawn order.
    pub index: u64,
}

impl ThreadId {
    /// The thread's DSO session id: a hash of the id, the same for every invocation.
    pub fn session(&self) -> u64 {
        mix(mix(self.job) ^ self.index)
    }

    /// The seed of the thread's deterministic RNG ([`crate::Context::rng`]).
    pub fn seed(&self) -> u64 {
        mix(self.session() ^ 0x5eed)
    }

    /// The DSO key of the `Future` that holds the thread's result once it finished.
    pub fn result_key(&self) -> String {
        format!("crucial.thread.{:016x}.{}", self.job, self.index)
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.job, self.index)
    }
}

/// SplitMix64's finalizer: a stable, well-spread 64-bit mix.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_stable_and_distinct() {
        let a = ThreadId { job: 1, index: 0 };
        let b = ThreadId { job: 1, index: 1 };
        assert_eq!(a.session(), ThreadId { job: 1, index: 0 }.session());
        assert_ne!(a.session(), b.session());
        assert_ne!(a.session(), ThreadId { job: 2, index: 0 }.session());
        assert_eq!(b.result_key(), "crucial.thread.0000000000000001.1");
    }
}
