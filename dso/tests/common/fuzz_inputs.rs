//! What the fuzz targets (`fuzz/`) feed the code, shared with the regression tests that replay
//! the inputs the fuzzer found (`tests/fuzz_regressions.rs`): one definition, so a replayed
//! input meets exactly the code the fuzzer ran.

use std::sync::{Arc, OnceLock};

use crucial_dso::cluster::{Configuration, Member};
use crucial_dso::core::codec::decode_frame;
use crucial_dso::core::node::{ClusterTiming, Node, NodeConfig};
use crucial_dso::core::object::decode;
use crucial_dso::core::protocol::{Call, PeerMessage, Request, Response};
use crucial_dso::core::registry::Registry;
use crucial_dso::core::shard::{Shard, ShardImage};

/// The frame limit the decoders run with: small, so that the fuzzer meets it.
const FRAME_BYTES_MAX: usize = 1 << 16;

/// The built-in types, registered once for every input.
fn registry() -> Arc<Registry> {
    static REGISTRY: OnceLock<Arc<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| Arc::new(Registry::default())).clone()
}

/// Bytes off the wire: decoded as every kind of frame a member or client reads, then as the
/// payloads that travel inside frames; a shard image that decodes is rebuilt into a shard.
/// Nothing may panic; errors are fine.
pub fn frames(data: &[u8]) {
    let _ = decode_frame::<Request>(data, FRAME_BYTES_MAX);
    let _ = decode_frame::<Response>(data, FRAME_BYTES_MAX);
    // A stream of frames, read as a connection reads them.
    let mut rest = data;
    while let Ok(Some((_, used))) = decode_frame::<Request>(rest, FRAME_BYTES_MAX) {
        rest = &rest[used.max(1)..];
    }
    let _ = decode::<Call>(data);
    let _ = decode::<PeerMessage>(data);
    if let Ok(image) = decode::<ShardImage>(data) {
        let _ = Shard::from_image(image, &registry());
    }
}

/// A member of a two-member cluster fed a sequence of inputs read from `data`: client calls,
/// peer messages, configuration records and time, each payload decoded from the bytes. After
/// every input its outputs are drained; the node checks its own invariants (debug builds).
pub fn node_inputs(data: &[u8]) {
    let member = |id| Member { id, addr: format!("m{id}") };
    let timing = ClusterTiming { tick_ms: 10, suspect_after_ms: 100, poll_every_ticks: 1 };
    let config = NodeConfig {
        sessions_max: 4,
        session_calls_max: 8,
        transfer_bytes_max: 256,
        resend_bytes_max: 256,
        ..Default::default()
    };
    let Ok(mut node) = Node::member(config, registry(), member(1), 2, timing) else {
        return;
    };
    node.bootstrap(0, Configuration::initial(vec![member(1), member(2)], 2));
    let mut now_ms = 0u64;
    let mut rest = data;
    while let [kind, length, tail @ ..] = rest {
        let (payload, next) = tail.split_at((*length as usize).min(tail.len()));
        rest = next;
        match kind % 4 {
            0 => {
                if let Ok(call) = decode::<Call>(payload) {
                    node.handle_request(now_ms, u64::from(kind / 4), call);
                }
            }
            1 => {
                if let Ok(message) = decode::<PeerMessage>(payload) {
                    node.handle_peer(now_ms, 2 + u64::from(kind / 4 % 2), message);
                }
            }
            2 => {
                let step = payload
                    .iter()
                    .fold(0u64, |sum, byte| sum.wrapping_mul(256).wrapping_add(u64::from(*byte)));
                now_ms = now_ms.saturating_add(step % 100_000);
                node.handle_timeout(now_ms);
            }
            _ => {
                if let Ok(record) = decode::<Configuration>(payload) {
                    node.handle_config(now_ms, record);
                }
            }
        }
        while node.poll_output().is_some() {}
    }
}
