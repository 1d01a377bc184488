//! The single-node model, checked exhaustively: linearizable with exactly-once calls over a
//! lossy, duplicating, reordering network with resends; the de-duplication canary is rejected.

use crucial_dso_core::node::Canary;
use crucial_models::single_node::SingleNodeConfig;
use stateright::{Checker, Model};

fn config(canary: Canary) -> SingleNodeConfig {
    SingleNodeConfig { clients: 2, ops_per_client: 1, resends_max: 1, lossy: true, canary }
}

#[test]
fn correct_node_is_linearizable_in_every_reachable_state() {
    let checker = config(Canary::default()).into_model().checker().threads(2).spawn_bfs().join();
    checker.assert_no_discovery("linearizable");
    assert!(checker.discovery("every call answered").is_some(), "the model reaches completion (not vacuous)");
    // Pinned so that a change to the node or the session that changes the state space shows.
    assert_eq!(checker.unique_state_count(), 912);
}

#[cfg(crucial_canary)]
#[test]
fn canary_skipping_deduplication_is_caught() {
    let canary = Canary { skip_deduplication: true, ..Canary::default() };
    let checker = config(canary).into_model().checker().threads(2).spawn_bfs().join();
    let path =
        checker.discovery("linearizable").expect("a duplicated call applied twice breaks linearizability");
    assert_eq!(path.into_actions().len(), 5, "the shortest counterexample breadth-first search finds");
}
