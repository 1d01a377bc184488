//! Random input never panics the node or the codec: random bytes as frames, and random calls
//! (unknown types, unknown methods, garbage arguments and states) straight into the sans-IO node,
//! each answered with a typed error or a result.

use std::sync::Arc;

use crucial_dso::core::codec::decode_frame;
use crucial_dso::core::node::{Node, NodeConfig, Output};
use crucial_dso::core::object::CallId;
use crucial_dso::core::protocol::{Action, Call, Request};
use crucial_dso::core::registry::Registry;

/// A small deterministic generator (the test's own, seeded).
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
    fn vec(&mut self, max: u64) -> Vec<u8> {
        let length = self.below(max + 1);
        (0..length).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_bytes_decode_to_a_frame_or_an_error() {
    let mut random = Bytes(0x9E37_79B9_7F4A_7C15);
    for _ in 0..50_000 {
        let mut bytes = (random.below(64) as u32).to_be_bytes().to_vec();
        bytes.extend(random.vec(80));
        let _ = decode_frame::<Request>(&bytes, 1024);
    }
}

#[test]
fn random_calls_get_answers_not_panics() {
    const TYPES: [&str; 6] = ["AtomicLong", "Map", "Semaphore", "CyclicBarrier", "Future", "NoSuchType"];
    const METHODS: [&str; 8] = ["get", "put", "acquire", "release", "wait", "set", "add_and_get", "nope"];
    let mut node = Node::new(NodeConfig::default(), Arc::new(Registry::default())).unwrap();
    let mut random = Bytes(42);
    let mut answered = 0;
    for seq in 1..=20_000u64 {
        let action = if random.below(10) == 0 {
            Action::Create { state: random.vec(12) }
        } else if random.below(25) == 0 {
            Action::Delete
        } else {
            Action::Invoke { method: METHODS[random.below(8) as usize].into(), args: random.vec(12) }
        };
        let call = Call {
            id: CallId { session: random.below(4), seq },
            acked_below: seq.saturating_sub(random.below(50)),
            key: format!("k{}", random.below(5)),
            type_name: TYPES[random.below(6) as usize].into(),
            action,
            history: random.below(2),
        };
        node.handle_request(seq, random.below(3), call);
        node.handle_timeout(seq);
        while let Some(Output::Reply { .. }) = node.poll_output() {
            answered += 1;
        }
    }
    assert!(answered > 15_000, "most random calls are answered at once ({answered})");
}
