//! Where keys live: consistent hashing over the members of a configuration. Each member owns
//! `VIRTUAL_NODES` points on a ring; a key's replicas are the first `rf` distinct members found
//! clockwise from the key's hash, the first of them the primary. Adding or removing one member
//! moves only the keys whose replica set gains or loses that member.

use super::config::{Configuration, Member, MemberId, Source};

/// Points per member on the ring: enough to spread keys evenly over a few members.
pub const VIRTUAL_NODES: u64 = 128;

/// FNV-1a, 64 bits: a fixed hash, so that every process of every build agrees on placement.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short inputs; finish with a multiply-xorshift.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

/// The ring of one configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Placement {
    /// `(point, member)`, sorted by point.
    ring: Vec<(u64, MemberId)>,
    rf: usize,
}

impl Placement {
    /// The ring for `config` (which must be valid).
    pub fn new(config: &Configuration) -> Self {
        Self::of_members(&config.members, config.effective_rf())
    }

    /// The ring of a source configuration.
    pub fn of_source(source: &Source) -> Self {
        Self::of_members(&source.members, source.effective_rf())
    }

    /// The ring over `members` with `rf` copies per key (`1..=members.len()`).
    pub fn of_members(members: &[Member], rf: usize) -> Self {
        let mut ring: Vec<(u64, MemberId)> = members
            .iter()
            .flat_map(|member| {
                (0..VIRTUAL_NODES).map(move |point| {
                    let mut bytes = member.id.to_le_bytes().to_vec();
                    bytes.extend_from_slice(&point.to_le_bytes());
                    (stable_hash(&bytes), member.id)
                })
            })
            .collect();
        ring.sort_unstable();
        Placement { ring, rf }
    }

    /// The members holding `key`, primary first.
    pub fn replicas(&self, key: &str) -> Vec<MemberId> {
        let start = self.start_of(key);
        let mut replicas = Vec::with_capacity(self.rf);
        for offset in 0..self.ring.len() {
            let member = self.ring[(start + offset) % self.ring.len()].1;
            if !replicas.contains(&member) {
                replicas.push(member);
                if replicas.len() == self.rf {
                    break;
                }
            }
        }
        replicas
    }

    /// The primary of `key` (the first of [`Placement::replicas`], without listing the others).
    pub fn primary(&self, key: &str) -> MemberId {
        self.ring[self.start_of(key) % self.ring.len()].1
    }

    /// The ring index of `key`'s first point: the first member point at or after its hash.
    fn start_of(&self, key: &str) -> usize {
        let point = stable_hash(key.as_bytes());
        self.ring.partition_point(|(member_point, _)| *member_point < point)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Member;

    fn config(ids: &[u64], rf: usize) -> Configuration {
        let members =
            ids.iter().map(|id| Member { id: *id, addr: format!("127.0.0.1:{}", 11000 + id) }).collect();
        Configuration::initial(members, rf)
    }

    fn keys() -> Vec<String> {
        (0..10_000).map(|i| format!("key-{i}")).collect()
    }

    #[test]
    fn replicas_are_distinct_members_and_spread_evenly() {
        let placement = Placement::new(&config(&[1, 2, 3, 4], 3));
        let mut primaries = [0usize; 5];
        for key in keys() {
            let replicas = placement.replicas(&key);
            assert_eq!(replicas.len(), 3);
            let mut distinct = replicas.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "{key}: {replicas:?}");
            assert_eq!(placement.primary(&key), replicas[0], "{key}: the primary is the first replica");
            primaries[replicas[0] as usize] += 1;
        }
        for (member, count) in primaries.iter().enumerate().skip(1) {
            assert!((1_800..3_200).contains(count), "member {member} is primary of {count} keys");
        }
    }

    #[test]
    fn a_join_moves_only_keys_to_the_new_member() {
        let before = Placement::new(&config(&[1, 2, 3], 2));
        let after = Placement::new(&config(&[1, 2, 3, 4], 2));
        let mut moved = 0;
        for key in keys() {
            let (old, new) = (before.replicas(&key), after.replicas(&key));
            if old != new {
                moved += 1;
                assert!(new.contains(&4), "{key} moved {old:?} -> {new:?} without involving the new member");
                assert!(
                    new.iter().filter(|m| **m != 4).all(|m| old.contains(m)),
                    "{key}: {old:?} -> {new:?}"
                );
            }
        }
        // The new member takes about rf/n of the keys.
        assert!((3_000..7_000).contains(&moved), "{moved} of 10000 keys moved");
    }

    #[test]
    fn a_departure_moves_only_the_keys_it_held() {
        let before = Placement::new(&config(&[1, 2, 3, 4], 2));
        let after = Placement::new(&config(&[1, 2, 4], 2));
        for key in keys() {
            let (old, new) = (before.replicas(&key), after.replicas(&key));
            if !old.contains(&3) {
                assert_eq!(old, new, "{key} did not involve member 3 but moved");
            }
        }
    }

    #[test]
    fn validation_catches_bad_configurations() {
        assert!(config(&[1, 2], 2).validate().is_ok());
        assert!(config(&[1, 2], 0).validate().is_err());
        assert!(config(&[1, 1], 1).validate().is_err());
        assert!(config(&[], 1).validate().is_err());
        assert_eq!(config(&[1, 2, 3], 3).next(vec![Member { id: 1, addr: "a".into() }]).effective_rf(), 1);
    }
}
