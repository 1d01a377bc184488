//! What a client routes calls by: the newest configuration it has seen (from a redirect or the
//! store) and where that configuration places each key. The async client, the simulator's
//! clients and the model's clients all follow redirects through this one type.

use super::config::{Configuration, MemberId};
use super::placement::Placement;

/// A configuration and its placement (derived from it, so compared and hashed by the
/// configuration alone).
#[derive(Clone, Debug)]
pub struct Routing {
    config: Configuration,
    placement: Placement,
}

impl Routing {
    /// Routing by `config`.
    pub fn new(config: Configuration) -> Self {
        let placement = Placement::new(&config);
        Self { config, placement }
    }

    /// Adopts `config` if it is further along than the one held; whether it did.
    pub fn learn(&mut self, config: Configuration) -> bool {
        if !config.supersedes(&self.config) {
            return false;
        }
        *self = Routing::new(config);
        true
    }

    /// The configuration routed by.
    pub fn config(&self) -> &Configuration {
        &self.config
    }

    /// The member that serves `key`.
    pub fn primary(&self, key: &str) -> MemberId {
        self.placement.primary(key)
    }

    /// Where the member that serves `key` listens.
    pub fn primary_addr(&self, key: &str) -> Option<&str> {
        self.config.addr_of(self.primary(key))
    }
}

impl PartialEq for Routing {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

impl Eq for Routing {}

impl std::hash::Hash for Routing {
    fn hash<H: std::hash::Hasher>(&self, hasher: &mut H) {
        self.config.hash(hasher);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Member;

    #[test]
    fn only_a_configuration_further_along_is_adopted() {
        let members = |ids: &[u64]| ids.iter().map(|id| Member { id: *id, addr: format!("m{id}") }).collect();
        let first = Configuration::initial(members(&[1, 2]), 1);
        let mut routing = Routing::new(first.clone());
        let next = first.next(members(&[2, 3]));
        assert!(routing.learn(next.clone()));
        assert!(!routing.learn(first), "an older configuration is ignored");
        assert_eq!(routing.config(), &next);
        let primary = routing.primary("key");
        assert!(next.is_member(primary));
        assert_eq!(routing.primary_addr("key"), Some(format!("m{primary}").as_str()));
    }
}
