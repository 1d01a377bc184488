//! The workload: keys of every built-in type that the checker can model, and random
//! operations on them (parked ones included), drawn from the seed.

use crucial_dso::object::{encode, Operation};
use crucial_dso::objects::{
    AtomicBooleanOp, AtomicByteArray, AtomicByteArrayOp, AtomicIntOp, AtomicLongOp, AtomicReferenceOp,
    BlobOp, CountDownLatch, CountDownLatchOp, CounterOp, CyclicBarrier, CyclicBarrierOp, FutureOp, ListOp,
    LoggerOp, MapOp, Matrix, MatrixOp, Semaphore, SemaphoreOp, SetOp, SortedMapOp,
};
use crucial_dso::{Value, F64};

use super::rng::Rng;

/// One key the workload uses.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct KeySpec {
    /// The key.
    pub key: String,
    /// Its object type (one of [`TYPES`]).
    pub type_name: String,
    /// The encoded initial state, for types created explicitly (`None`: the type's default).
    pub initial: Option<Vec<u8>>,
}

/// The types the workload cycles through: every built-in, the parking ones among the first
/// eight so that small key counts still park.
pub const TYPES: [&str; 17] = [
    "AtomicLong",
    "AtomicReference",
    "Map",
    "List",
    "Future",
    "Semaphore",
    "CountDownLatch",
    "CyclicBarrier",
    "AtomicInt",
    "AtomicBoolean",
    "AtomicByteArray",
    "Counter",
    "Set",
    "SortedMap",
    "Matrix",
    "Blob",
    "Logger",
];

/// `count` keys, cycling through the types so every type appears once `count >= 17`.
pub fn keys(count: usize) -> Vec<KeySpec> {
    (0..count)
        .map(|index| {
            let type_name = TYPES[index % TYPES.len()];
            let initial = match type_name {
                "Semaphore" => Some(encode(&Semaphore::new(2))),
                "CountDownLatch" => Some(encode(&CountDownLatch::new(4))),
                "CyclicBarrier" => Some(encode(&CyclicBarrier::new(2))),
                "AtomicByteArray" => Some(encode(&AtomicByteArray::new(3))),
                "Matrix" => Some(encode(&Matrix::new(2, 2))),
                _ => None,
            };
            KeySpec {
                key: format!("{}-{index}", type_name.to_lowercase()),
                type_name: type_name.to_string(),
                initial,
            }
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
    match key.type_name.as_str() {
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
        "AtomicInt" => match rng.below(3) {
            0 => encoded(AtomicIntOp::GetAndAdd { delta: 1 }),
            1 => encoded(AtomicIntOp::Get {}),
            _ => {
                encoded(AtomicIntOp::CompareAndSet { expected: small(rng) as i32, update: small(rng) as i32 })
            }
        },
        "AtomicBoolean" => match rng.below(3) {
            0 => encoded(AtomicBooleanOp::GetAndSet { value: rng.chance(0.5) }),
            1 => encoded(AtomicBooleanOp::Get {}),
            _ => {
                encoded(AtomicBooleanOp::CompareAndSet { expected: rng.chance(0.5), update: rng.chance(0.5) })
            }
        },
        "AtomicByteArray" => match rng.below(3) {
            0 => encoded(AtomicByteArrayOp::AddAndGet { index: rng.below(4), delta: 1 }),
            1 => encoded(AtomicByteArrayOp::Get { index: rng.below(3) }),
            _ => encoded(AtomicByteArrayOp::CompareAndSet {
                index: rng.below(3),
                expected: rng.below(3) as u8,
                update: 9,
            }),
        },
        "Counter" => match rng.below(3) {
            0 => encoded(CounterOp::Increment {}),
            1 => encoded(CounterOp::Get {}),
            _ => encoded(CounterOp::Add { delta: small(rng) - 1 }),
        },
        "Set" => match rng.below(3) {
            0 => encoded(SetOp::Add { value: Value::Int(small(rng)) }),
            1 => encoded(SetOp::Contains { value: Value::Int(small(rng)) }),
            _ => encoded(SetOp::Remove { value: Value::Int(small(rng)) }),
        },
        "SortedMap" => match rng.below(3) {
            0 => encoded(SortedMapOp::Put { key: Value::Int(small(rng)), value: Value::Int(small(rng)) }),
            1 => encoded(SortedMapOp::Top { k: 2 }),
            _ => encoded(SortedMapOp::Remove { key: Value::Int(small(rng)) }),
        },
        "Matrix" => match rng.below(3) {
            0 => encoded(MatrixOp::Add { row: rng.below(2), column: rng.below(2), delta: F64(1.0) }),
            1 => encoded(MatrixOp::Get { row: rng.below(2), column: rng.below(2) }),
            _ => encoded(MatrixOp::Row { row: rng.below(3) }),
        },
        "Blob" => match rng.below(3) {
            0 => encoded(BlobOp::Append { bytes: vec![small(rng) as u8] }),
            1 => encoded(BlobOp::Len {}),
            _ => encoded(BlobOp::Set { bytes: vec![] }),
        },
        "Logger" => match rng.below(2) {
            0 => encoded(LoggerOp::Log { line: format!("line {}", small(rng)) }),
            _ => encoded(LoggerOp::Len {}),
        },
        other => unreachable!("workload has no operations for {other}"),
    }
}
