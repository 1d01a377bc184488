//! The workload: keys of every built-in type that the checker can model, and random
//! operations on them (parked ones included), drawn from the seed.

use crucial_dso::object::{encode, Operation};
use crucial_dso::objects::{
    AtomicLongOp, AtomicReferenceOp, CountDownLatch, CountDownLatchOp, CyclicBarrier, CyclicBarrierOp,
    FutureOp, ListOp, MapOp, Semaphore, SemaphoreOp,
};
use crucial_dso::Value;

use super::rng::Rng;

/// One key the workload uses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeySpec {
    /// The key.
    pub key: String,
    /// Its object type.
    pub type_name: &'static str,
    /// The encoded initial state, for types created explicitly (`None`: the type's default).
    pub initial: Option<Vec<u8>>,
}

/// The types the workload cycles through.
const TYPES: [&str; 8] = [
    "AtomicLong",
    "AtomicReference",
    "Map",
    "List",
    "Future",
    "Semaphore",
    "CountDownLatch",
    "CyclicBarrier",
];

/// `count` keys, cycling through the types so every type appears once `count >= 8`.
pub fn keys(count: usize) -> Vec<KeySpec> {
    (0..count)
        .map(|index| {
            let type_name = TYPES[index % TYPES.len()];
            let initial = match type_name {
                "Semaphore" => Some(encode(&Semaphore::new(2))),
                "CountDownLatch" => Some(encode(&CountDownLatch::new(4))),
                "CyclicBarrier" => Some(encode(&CyclicBarrier::new(2))),
                _ => None,
            };
            KeySpec { key: format!("{}-{index}", type_name.to_lowercase()), type_name, initial }
        })
        .collect()
}

/// A random operation on `key`: its method name and encoded arguments.
pub fn operation(rng: &mut Rng, key: &KeySpec) -> (String, Vec<u8>) {
    let small = |rng: &mut Rng| rng.below(4) as i64;
    let timeout = |rng: &mut Rng| Some(rng.between(20, 200));
    fn encoded<O: Operation>(op: O) -> (String, Vec<u8>) {
        (op.method().to_string(), op.encode_args())
    }
    match key.type_name {
        "AtomicLong" => match rng.below(3) {
            0 => encoded(AtomicLongOp::AddAndGet { delta: 1 + small(rng) }),
            1 => encoded(AtomicLongOp::Get {}),
            _ => encoded(AtomicLongOp::CompareAndSet { expected: small(rng), update: small(rng) }),
        },
        "AtomicReference" => match rng.below(3) {
            0 => encoded(AtomicReferenceOp::Set { value: Value::Int(small(rng)) }),
            1 => encoded(AtomicReferenceOp::Get {}),
            _ => encoded(AtomicReferenceOp::CompareAndSet {
                expected: Value::Int(small(rng)),
                update: Value::Int(small(rng)),
            }),
        },
        "Map" => match rng.below(3) {
            0 => encoded(MapOp::Put { key: Value::Int(small(rng)), value: Value::Int(small(rng)) }),
            1 => encoded(MapOp::Get { key: Value::Int(small(rng)) }),
            _ => encoded(MapOp::Remove { key: Value::Int(small(rng)) }),
        },
        "List" => match rng.below(3) {
            0 => encoded(ListOp::Add { value: Value::Int(small(rng)) }),
            1 => encoded(ListOp::Size {}),
            _ => encoded(ListOp::Get { index: rng.below(3) }),
        },
        "Future" => match rng.below(4) {
            0 => encoded(FutureOp::Set { value: Value::Int(small(rng)) }),
            1 => encoded(FutureOp::TryGet {}),
            _ => encoded(FutureOp::Get { timeout_ms: timeout(rng) }),
        },
        "Semaphore" => match rng.below(3) {
            0 => encoded(SemaphoreOp::Release { permits: 1 }),
            1 => encoded(SemaphoreOp::AvailablePermits {}),
            _ => encoded(SemaphoreOp::Acquire { permits: 1, timeout_ms: timeout(rng) }),
        },
        "CountDownLatch" => match rng.below(3) {
            0 => encoded(CountDownLatchOp::CountDown {}),
            1 => encoded(CountDownLatchOp::Count {}),
            _ => encoded(CountDownLatchOp::Wait { timeout_ms: timeout(rng) }),
        },
        "CyclicBarrier" => match rng.below(4) {
            0 => encoded(CyclicBarrierOp::Reset {}),
            1 => encoded(CyclicBarrierOp::NumberWaiting {}),
            _ => encoded(CyclicBarrierOp::Wait { timeout_ms: timeout(rng) }),
        },
        other => unreachable!("workload has no operations for {other}"),
    }
}
