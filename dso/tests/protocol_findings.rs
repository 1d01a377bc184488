//! Regression tests for protocol findings, each a scenario on the sans-IO nodes driven step by
//! step (see `common/harness.rs`): the messages lost, the crashes and the restarts are the
//! test's, so each finding replays exactly.

#[path = "common/harness.rs"]
mod harness;

use crucial_dso::cluster::Placement;
use crucial_dso::protocol::PeerMessage;
use harness::{add, get, Harness};

/// Finding 1: a key created by its first call, whose first entry reached one backup `b` but
/// not the other `p`; the primary crashes and `p` becomes the key's primary. `p` never held
/// the key, so its install says nothing of it; unless installs are authoritative, `b` keeps
/// its copy and the two apply the same entries to different states.
#[test]
fn a_new_primary_install_is_authoritative_for_its_backups() {
    let mut cluster = Harness::new(3, 3);
    let (old, p, b) = (1, 2, 3);
    let after = cluster.stored().next(vec![harness::member(p), harness::member(b)]);
    let key = Harness::key_placed(cluster.stored(), &[old, p, b]);
    assert_eq!(Placement::new(&after).replicas(&key), vec![p, b], "p becomes the key's primary");
    cluster.call(old, add(1, 1, &key, 1));
    // The key's first entry reaches b only.
    cluster.deliver(|m| !(m.to == p && matches!(m.message, PeerMessage::Replicate { .. })));
    cluster.crash(old);
    cluster.advance(400, |_| true);
    assert!(cluster.stored().is_active() && !cluster.stored().is_member(old), "{:?}", cluster.stored());
    cluster.call(p, add(2, 1, &key, 5));
    cluster.advance(50, |_| true);
    assert_eq!(cluster.disagreements(), vec![], "replicas of {key} disagree");
    cluster.call(p, get(2, 2, &key));
    cluster.advance(50, |_| true);
    assert!(cluster.answer(get(2, 2, &key).id).is_some());
}

