//! The replication models: a bounded breadth-first search over every interleaving (lossy,
//! duplicating network) near the start, and seeded random walks on in-order links deep enough
//! to cross a failover or a reconfiguration; the correct cluster keeps every property, and each
//! replication canary is rejected.

use crucial_dso_core::node::Canary;
use crucial_models::replication::{ClusterActor, History, ReplicationConfig, Scenario};
use stateright::actor::ActorModel;
use stateright::{Checker, Model, UniformChooser};

/// Steps of the breadth-first search: a call, its replication and its answer, with crashes.
const SEARCH_DEPTH: usize = 6;
/// States the random walks visit, and their length.
const WALK_STATES: usize = 150_000;
const WALK_DEPTH: usize = 300;
/// States the long walks with two calls per client visit.
const LONG_WALK_STATES: usize = 8 * WALK_STATES;

fn config(scenario: Scenario, canary: Canary, walks: bool) -> ReplicationConfig {
    ReplicationConfig {
        scenario,
        clients: 2,
        ops_per_client: 1,
        cas: false,
        crashes: 1,
        lossy: true,
        fifo: walks,
        count_steps: walks,
        canary,
    }
}

type Cluster = ActorModel<ClusterActor, ReplicationConfig, History>;

fn search(canary: Canary) -> impl Checker<Cluster> {
    let builder = config(Scenario::Crash, canary, false).into_model().checker();
    builder.target_max_depth(SEARCH_DEPTH).threads(2).spawn_bfs().join()
}

fn walk(scenario: Scenario, canary: Canary, states: usize) -> impl Checker<Cluster> {
    walk_with(config(scenario, canary, true), states)
}

fn walk_with(config: ReplicationConfig, states: usize) -> impl Checker<Cluster> {
    walk_deep(config, states, WALK_DEPTH)
}

fn walk_deep(config: ReplicationConfig, states: usize, depth: usize) -> impl Checker<Cluster> {
    let builder = config.into_model().checker();
    // One thread: which paths are walked then depends on the seed alone.
    let bounded = builder.target_max_depth(depth).target_state_count(states).threads(1);
    bounded.spawn_simulation(1, UniformChooser).join()
}

#[test]
fn bounded_search_finds_no_violation() {
    let checker = search(Canary::default());
    checker.assert_no_discovery("linearizable");
    checker.assert_no_discovery("no acknowledged update lost");
    assert!(
        checker.unique_state_count() > 5_000,
        "the search explored {} states",
        checker.unique_state_count()
    );
}

#[cfg(crucial_canary)]
#[test]
fn canary_bounded_search_rejects_answers_before_the_backups_hold_them() {
    let checker = search(Canary { reply_before_backup_acks: true, ..Canary::default() });
    let path =
        checker.discovery("no acknowledged update lost").expect("an answer ahead of the backups is caught");
    assert!(path.into_actions().len() <= SEARCH_DEPTH);
}

#[test]
fn walks_cross_a_failover_and_keep_every_property() {
    let checker = walk(Scenario::Crash, Canary::default(), WALK_STATES);
    checker.assert_no_discovery("linearizable");
    checker.assert_no_discovery("no acknowledged update lost");
    assert!(checker.discovery("every call answered after the membership changed").is_some(), "not vacuous");
}

#[test]
fn walks_cross_a_replacement_and_keep_every_property() {
    let checker = walk(Scenario::Replace, Canary::default(), WALK_STATES);
    checker.assert_no_discovery("linearizable");
    checker.assert_no_discovery("no acknowledged update lost");
    assert!(checker.discovery("every call answered after the membership changed").is_some(), "not vacuous");
}

#[cfg(crucial_canary)]
#[test]
fn canary_walks_reject_a_deposed_primary_that_keeps_answering() {
    // The joiner probes before it asks (issue 26), so the membership changes later in a walk:
    // walks four times as long, with a second call per client still to come once the state
    // has moved, reach the deposed primary's window. Only a resend that also asks another
    // member (from the third on) learns the new primary, so the walks visit eight times the
    // states.
    let canary = Canary { accept_old_epochs: true, ..Canary::default() };
    let config = ReplicationConfig { ops_per_client: 2, ..config(Scenario::Replace, canary, true) };
    let checker = walk_deep(config, LONG_WALK_STATES, 4 * WALK_DEPTH);
    assert!(
        checker.discovery("no acknowledged update lost").is_some()
            || checker.discovery("linearizable").is_some(),
        "operations acknowledged in the old epoch after the state moved must be caught"
    );
}

#[test]
fn long_walks_with_two_calls_per_client_keep_every_property_across_a_replacement() {
    // The canary's walks above, on the correct cluster: what they catch is the canary's.
    let config =
        ReplicationConfig { ops_per_client: 2, ..config(Scenario::Replace, Canary::default(), true) };
    let checker = walk_deep(config, LONG_WALK_STATES, 4 * WALK_DEPTH);
    checker.assert_no_discovery("linearizable");
    checker.assert_no_discovery("no acknowledged update lost");
    assert!(checker.discovery("every call answered after the membership changed").is_some(), "not vacuous");
}

#[test]
fn compare_and_set_walks_keep_every_property_across_failovers_and_replacements() {
    for scenario in [Scenario::Crash, Scenario::Replace] {
        let checker = walk_with(
            ReplicationConfig { cas: true, ..config(scenario, Canary::default(), true) },
            WALK_STATES,
        );
        checker.assert_no_discovery("linearizable");
        checker.assert_no_discovery("no acknowledged update lost");
        assert!(
            checker.discovery("every call answered after the membership changed").is_some(),
            "{scenario:?}: not vacuous"
        );
    }
}

#[test]
fn walks_stall_after_rf_minus_one_crashes_until_a_member_joins_and_keep_every_property() {
    let checker = walk(Scenario::Minority, Canary::default(), WALK_STATES);
    checker.assert_no_discovery("linearizable");
    checker.assert_no_discovery("no acknowledged update lost");
    checker.assert_no_discovery("no member removed by a minority");
    assert!(checker.discovery("every call answered after the membership changed").is_some(), "not vacuous");
}

#[cfg(crucial_canary)]
#[test]
fn canary_walks_reject_a_minority_that_removes_the_members_it_cannot_hear() {
    let checker =
        walk(Scenario::Minority, Canary { remove_without_majority: true, ..Canary::default() }, WALK_STATES);
    assert!(checker.discovery("no member removed by a minority").is_some(), "the survivor removed no one");
}

/// The rejoin rule: a joiner cut from the members (not from the store) probes them and never
/// proposes, so the members never stop serving for a join they cannot complete.
#[test]
fn walks_never_list_a_joiner_the_members_cannot_reach() {
    let checker = walk(Scenario::CutJoiner, Canary::default(), WALK_STATES);
    checker.assert_no_discovery("linearizable");
    checker.assert_no_discovery("no unreachable joiner listed");
    assert!(checker.discovery("every call answered after the membership changed").is_some(), "not vacuous");
}

#[cfg(crucial_canary)]
#[test]
fn canary_walks_reject_a_joiner_that_proposes_without_probing() {
    let checker =
        walk(Scenario::CutJoiner, Canary { join_without_probing: true, ..Canary::default() }, WALK_STATES);
    assert!(checker.discovery("no unreachable joiner listed").is_some(), "the cut joiner never proposed");
}
