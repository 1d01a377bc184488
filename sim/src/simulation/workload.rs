//! The workload: keys of every built-in type that the checker can model, and random
//! operations on them (parked ones included), drawn from the seed.

use crucial_dso::core::object::{encode, CallId, Operation};
use crucial_dso::core::registry::Registry;
use crucial_dso::objects::{
    AtomicBooleanOp, AtomicByteArray, AtomicByteArrayOp, AtomicIntOp, AtomicLongOp, AtomicReferenceOp,
    BlobOp, CountDownLatch, CountDownLatchOp, CounterOp, CyclicBarrier, CyclicBarrierOp, FutureOp, ListOp,
    LoggerOp, MapOp, Matrix, MatrixOp, MergeFunction, Semaphore, SemaphoreOp, SetOp, SortedMapOp,
};
use crucial_dso::{Value, F64};

use super::rng::Rng;
use super::user_type::StackOp;

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

/// The types the workload cycles through: every built-in, in the core's one list of them
/// (the parking ones among the first eight, so that small key counts still park).
pub const TYPES: &[&str] = crucial_dso::objects::BUILTIN_TYPE_NAMES;

/// The built-in types whose calls may park (wait for other clients): a wait on them says
/// nothing of availability.
pub const PARKING_TYPES: [&str; 4] = ["Future", "Semaphore", "CountDownLatch", "CyclicBarrier"];

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

/// A random operation on `key`: its method name and encoded arguments. Every method of every
/// built-in type is drawn, with small arguments (so that operations collide): indices and
/// permits sometimes out of range, and waits sometimes without a timeout.
pub fn operation(rng: &mut Rng, key: &KeySpec) -> (String, Vec<u8>) {
    fn encoded<O: Operation>(op: O) -> (String, Vec<u8>) {
        (op.method().to_string(), op.encode_args())
    }
    let small = |rng: &mut Rng| rng.below(4) as i64;
    let value = |rng: &mut Rng| Value::Int(rng.below(4) as i64);
    let values =
        |rng: &mut Rng| (0..rng.below(3)).map(|_| Value::Int(rng.below(4) as i64)).collect::<Vec<_>>();
    let index = |rng: &mut Rng| rng.below(4);
    // A wait's timeout: mostly short, sometimes none at all.
    let timeout = |rng: &mut Rng| if rng.chance(0.15) { None } else { Some(rng.between(20, 200)) };
    let merge = |rng: &mut Rng| {
        *rng.pick(&[
            MergeFunction::Replace,
            MergeFunction::KeepExisting,
            MergeFunction::Sum,
            MergeFunction::Min,
            MergeFunction::Max,
            MergeFunction::Concat,
        ])
    };
    let draw = |rng: &mut Rng, methods: u64| rng.below(methods);
    match key.type_name.as_str() {
        "AtomicLong" => match draw(rng, 10) {
            0 => encoded(AtomicLongOp::Get {}),
            1 => encoded(AtomicLongOp::Set { value: small(rng) }),
            2 => encoded(AtomicLongOp::GetAndSet { value: small(rng) }),
            3 => encoded(AtomicLongOp::CompareAndSet { expected: small(rng), update: small(rng) }),
            4 => encoded(AtomicLongOp::GetAndAdd { delta: small(rng) - 1 }),
            5 => encoded(AtomicLongOp::AddAndGet { delta: 1 + small(rng) }),
            6 => encoded(AtomicLongOp::GetAndIncrement {}),
            7 => encoded(AtomicLongOp::GetAndDecrement {}),
            8 => encoded(AtomicLongOp::IncrementAndGet {}),
            _ => encoded(AtomicLongOp::DecrementAndGet {}),
        },
        "AtomicInt" => match draw(rng, 10) {
            0 => encoded(AtomicIntOp::Get {}),
            1 => encoded(AtomicIntOp::Set { value: small(rng) as i32 }),
            2 => encoded(AtomicIntOp::GetAndSet { value: small(rng) as i32 }),
            3 => {
                encoded(AtomicIntOp::CompareAndSet { expected: small(rng) as i32, update: small(rng) as i32 })
            }
            4 => encoded(AtomicIntOp::GetAndAdd { delta: 1 }),
            5 => encoded(AtomicIntOp::AddAndGet { delta: small(rng) as i32 - 1 }),
            6 => encoded(AtomicIntOp::GetAndIncrement {}),
            7 => encoded(AtomicIntOp::GetAndDecrement {}),
            8 => encoded(AtomicIntOp::IncrementAndGet {}),
            _ => encoded(AtomicIntOp::DecrementAndGet {}),
        },
        "AtomicBoolean" => match draw(rng, 4) {
            0 => encoded(AtomicBooleanOp::Get {}),
            1 => encoded(AtomicBooleanOp::Set { value: rng.chance(0.5) }),
            2 => encoded(AtomicBooleanOp::GetAndSet { value: rng.chance(0.5) }),
            _ => {
                encoded(AtomicBooleanOp::CompareAndSet { expected: rng.chance(0.5), update: rng.chance(0.5) })
            }
        },
        "AtomicReference" => match draw(rng, 4) {
            0 => encoded(AtomicReferenceOp::Get {}),
            1 => encoded(AtomicReferenceOp::Set { value: value(rng) }),
            2 => encoded(AtomicReferenceOp::GetAndSet { value: value(rng) }),
            _ => encoded(AtomicReferenceOp::CompareAndSet { expected: value(rng), update: value(rng) }),
        },
        "AtomicByteArray" => match draw(rng, 8) {
            0 => encoded(AtomicByteArrayOp::Length {}),
            1 => encoded(AtomicByteArrayOp::Get { index: index(rng) }),
            2 => encoded(AtomicByteArrayOp::Set { index: index(rng), value: rng.below(3) as u8 }),
            3 => encoded(AtomicByteArrayOp::GetAndSet { index: index(rng), value: rng.below(3) as u8 }),
            4 => encoded(AtomicByteArrayOp::CompareAndSet {
                index: index(rng),
                expected: rng.below(3) as u8,
                update: 9,
            }),
            5 => encoded(AtomicByteArrayOp::GetAndAdd { index: index(rng), delta: 1 }),
            6 => encoded(AtomicByteArrayOp::AddAndGet { index: index(rng), delta: 1 }),
            _ => encoded(AtomicByteArrayOp::ToVec {}),
        },
        "Counter" => match draw(rng, 5) {
            0 => encoded(CounterOp::Increment {}),
            1 => encoded(CounterOp::Decrement {}),
            2 => encoded(CounterOp::Add { delta: small(rng) - 1 }),
            3 => encoded(CounterOp::Get {}),
            _ => encoded(CounterOp::Reset {}),
        },
        "Future" => match draw(rng, 5) {
            0 => encoded(FutureOp::Set { value: value(rng) }),
            1 => encoded(FutureOp::TryGet {}),
            2 => encoded(FutureOp::IsDone {}),
            _ => encoded(FutureOp::Get { timeout_ms: timeout(rng) }),
        },
        "Semaphore" => match draw(rng, 7) {
            0 => encoded(SemaphoreOp::Release { permits: 1 + rng.below(2) }),
            1 => encoded(SemaphoreOp::AvailablePermits {}),
            2 => encoded(SemaphoreOp::TryAcquire { permits: 1 + rng.below(3) }),
            3 => encoded(SemaphoreOp::DrainPermits {}),
            4 => encoded(SemaphoreOp::QueueLength {}),
            // One permit per acquire: a waiting acquire of several holds later ones back (the
            // queue is fair), which a model where calls linearize when they complete cannot
            // express; releases and try-acquires take several.
            _ => encoded(SemaphoreOp::Acquire { permits: 1, timeout_ms: timeout(rng) }),
        },
        "CountDownLatch" => match draw(rng, 3) {
            0 => encoded(CountDownLatchOp::CountDown {}),
            1 => encoded(CountDownLatchOp::Count {}),
            _ => encoded(CountDownLatchOp::Wait { timeout_ms: timeout(rng) }),
        },
        "CyclicBarrier" => match draw(rng, 8) {
            0 => encoded(CyclicBarrierOp::Reset {}),
            1 => encoded(CyclicBarrierOp::NumberWaiting {}),
            2 => encoded(CyclicBarrierOp::Parties {}),
            3 => encoded(CyclicBarrierOp::IsBroken {}),
            4 => encoded(CyclicBarrierOp::Generation {}),
            _ => encoded(CyclicBarrierOp::Wait { timeout_ms: timeout(rng) }),
        },
        "List" => match draw(rng, 14) {
            0 => encoded(ListOp::Add { value: value(rng) }),
            1 => encoded(ListOp::AddAt { index: index(rng), value: value(rng) }),
            2 => encoded(ListOp::AddAll { values: values(rng) }),
            3 => encoded(ListOp::Get { index: index(rng) }),
            4 => encoded(ListOp::Set { index: index(rng), value: value(rng) }),
            5 => encoded(ListOp::RemoveAt { index: index(rng) }),
            6 => encoded(ListOp::Remove { value: value(rng) }),
            7 => encoded(ListOp::Contains { value: value(rng) }),
            8 => encoded(ListOp::IndexOf { value: value(rng) }),
            9 => encoded(ListOp::Size {}),
            10 => encoded(ListOp::IsEmpty {}),
            11 => encoded(ListOp::Clear {}),
            12 => encoded(ListOp::SubList { from: rng.below(3), to: rng.below(4) }),
            _ => encoded(ListOp::ToVec {}),
        },
        "Set" => match draw(rng, 9) {
            0 => encoded(SetOp::Add { value: value(rng) }),
            1 => encoded(SetOp::AddAll { values: values(rng) }),
            2 => encoded(SetOp::Remove { value: value(rng) }),
            3 => encoded(SetOp::RemoveAll { values: values(rng) }),
            4 => encoded(SetOp::Contains { value: value(rng) }),
            5 => encoded(SetOp::Size {}),
            6 => encoded(SetOp::IsEmpty {}),
            7 => encoded(SetOp::Clear {}),
            _ => encoded(SetOp::ToVec {}),
        },
        "Map" => match draw(rng, 14) {
            0 => encoded(MapOp::Get { key: value(rng) }),
            1 => encoded(MapOp::Put { key: value(rng), value: value(rng) }),
            2 => encoded(MapOp::PutIfAbsent { key: value(rng), value: value(rng) }),
            3 => {
                encoded(MapOp::PutAll { entries: values(rng).into_iter().map(|k| (k, value(rng))).collect() })
            }
            4 => encoded(MapOp::Remove { key: value(rng) }),
            5 => encoded(MapOp::ContainsKey { key: value(rng) }),
            6 => encoded(MapOp::Size {}),
            7 => encoded(MapOp::IsEmpty {}),
            8 => encoded(MapOp::Clear {}),
            9 => encoded(MapOp::Keys {}),
            10 => encoded(MapOp::Values {}),
            11 => encoded(MapOp::Entries {}),
            12 => encoded(MapOp::Merge { key: value(rng), value: value(rng), function: merge(rng) }),
            _ => encoded(MapOp::MergeAll {
                entries: values(rng).into_iter().map(|k| (k, value(rng))).collect(),
                function: merge(rng),
            }),
        },
        "SortedMap" => match draw(rng, 9) {
            0 => encoded(SortedMapOp::Put { key: value(rng), value: value(rng) }),
            1 => encoded(SortedMapOp::Get { key: value(rng) }),
            2 => encoded(SortedMapOp::Remove { key: value(rng) }),
            3 => encoded(SortedMapOp::Size {}),
            4 => encoded(SortedMapOp::First {}),
            5 => encoded(SortedMapOp::Last {}),
            6 => encoded(SortedMapOp::Range { from: value(rng), to: value(rng) }),
            7 => encoded(SortedMapOp::Top { k: rng.below(3) }),
            _ => encoded(SortedMapOp::Clear {}),
        },
        "Matrix" => {
            let cell = |rng: &mut Rng| (rng.below(3), rng.below(2));
            let number = |rng: &mut Rng| F64(rng.below(3) as f64);
            match draw(rng, 9) {
                0 => encoded(MatrixOp::Dimensions {}),
                1 => {
                    let (row, column) = cell(rng);
                    encoded(MatrixOp::Get { row, column })
                }
                2 => {
                    let (row, column) = cell(rng);
                    encoded(MatrixOp::Set { row, column, value: number(rng) })
                }
                3 => {
                    let (row, column) = cell(rng);
                    encoded(MatrixOp::Add { row, column, delta: F64(1.0) })
                }
                4 => encoded(MatrixOp::Row { row: rng.below(3) }),
                5 => encoded(MatrixOp::SetRow { row: rng.below(3), values: vec![number(rng); 2] }),
                6 => encoded(MatrixOp::AddAll { deltas: vec![F64(1.0); 2 + rng.below(3) as usize] }),
                7 => encoded(MatrixOp::Fill { value: number(rng) }),
                _ => encoded(MatrixOp::ToVec {}),
            }
        }
        "Blob" => match draw(rng, 7) {
            0 => encoded(BlobOp::Get {}),
            1 => encoded(BlobOp::Set { bytes: vec![small(rng) as u8; rng.below(3) as usize] }),
            2 => encoded(BlobOp::Append { bytes: vec![small(rng) as u8] }),
            3 => encoded(BlobOp::Read { offset: rng.below(3), length: rng.below(3) }),
            4 => encoded(BlobOp::Len {}),
            5 => encoded(BlobOp::IsEmpty {}),
            _ => encoded(BlobOp::Clear {}),
        },
        "Stack" => match draw(rng, 4) {
            0 => encoded(StackOp::Push { item: small(rng) }),
            1 => encoded(StackOp::Pop {}),
            2 => encoded(StackOp::Peek {}),
            _ => encoded(StackOp::Depth {}),
        },
        "Logger" => match draw(rng, 5) {
            0 => encoded(LoggerOp::Log { line: format!("line {}", small(rng)) }),
            1 => encoded(LoggerOp::Read { from: rng.below(3), limit: rng.below(3) }),
            2 => encoded(LoggerOp::Len {}),
            3 => encoded(LoggerOp::IsEmpty {}),
            _ => encoded(LoggerOp::Clear {}),
        },
        other => unreachable!("workload has no operations for {other}"),
    }
}

/// The method name a `Create` call is recorded under (no method can be named so).
pub const CREATE: &str = "<create>";

/// The method name a `Delete` call is recorded under.
pub const DELETE: &str = "<delete>";

/// A random state of `type_name` for a `Create` call: its default after a few random
/// operations.
pub fn initial_state(rng: &mut Rng, registry: &Registry, type_name: &str) -> Vec<u8> {
    let mut object = (registry.create_default(type_name).ok().flatten())
        .unwrap_or_else(|| panic!("the workload creates only types with a default, not {type_name}"));
    let key = KeySpec { key: String::new(), type_name: type_name.to_string(), initial: None };
    for seq in 0..1 + rng.below(3) {
        let (method, args) = operation(rng, &key);
        // Refused operations (an index out of range) change nothing.
        let _ = object.0.apply_encoded(CallId { session: u64::MAX, seq }, &method, &args);
    }
    object.0.encode_state()
}

/// Whether a call waits without a timeout: it may rightly still wait at the end of a run, so
/// the liveness check does not judge it.
pub fn waits_forever(type_name: &str, method: &str, args: &[u8]) -> bool {
    match type_name {
        "Future" => matches!(FutureOp::decode(method, args), Ok(FutureOp::Get { timeout_ms: None })),
        "Semaphore" => {
            matches!(SemaphoreOp::decode(method, args), Ok(SemaphoreOp::Acquire { timeout_ms: None, .. }))
        }
        "CountDownLatch" => {
            matches!(CountDownLatchOp::decode(method, args), Ok(CountDownLatchOp::Wait { timeout_ms: None }))
        }
        "CyclicBarrier" => {
            matches!(CyclicBarrierOp::decode(method, args), Ok(CyclicBarrierOp::Wait { timeout_ms: None }))
        }
        _ => false,
    }
}
