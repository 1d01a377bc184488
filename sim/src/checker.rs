//! The linearizability checker: Wing & Gong's search with Lowe's memoisation (a cache of
//! (linearized set, state) pairs already explored), over each partition of a history in
//! parallel, within a time budget that yields `Unknown` rather than hanging.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::history::Operation;
use crate::model::Model;

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations respects real time and the model.
    Linearizable,
    /// No such order exists.
    NotLinearizable,
    /// The time budget ran out first.
    Unknown,
}

/// Why a partition is not linearizable: the longest linearizable prefix found and the
/// operation that could not be placed after it.
#[derive(Clone, Debug)]
pub struct Counterexample<S> {
    /// Which partition (index into the input).
    pub partition: usize,
    /// Indices (into the partition) of the longest linearization found, in order.
    pub linearized: Vec<usize>,
    /// Model states after each linearized operation (same length).
    pub states: Vec<S>,
    /// The first operation to complete that no order could place (index into the partition).
    pub stuck: usize,
}

/// A check's outcome.
#[derive(Clone, Debug)]
pub struct CheckResult<S> {
    /// The verdict.
    pub verdict: Verdict,
    /// For `NotLinearizable`: the evidence.
    pub counterexample: Option<Counterexample<S>>,
}

/// An entry of the doubly linked event list: a call or a return.
#[derive(Clone, Copy, Debug)]
struct Entry {
    operation: usize,
    is_call: bool,
    /// For a call, the index of its return entry.
    matching: usize,
    previous: usize,
    next: usize,
}

/// A fast, non-cryptographic hasher for the memo cache (its keys are not adversarial).
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

/// The memo cache: (linearized set, state) pairs already explored.
type Cache<S> = HashSet<(Bits, S), BuildHasherDefault<FastHasher>>;

/// A fixed-size set of operation indices; up to 256 operations without a heap allocation (the
/// memo cache clones one per step, so this is the hot path).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Bits {
    Small([u64; 4]),
    Large(Vec<u64>),
}

impl Bits {
    fn new(size: usize) -> Self {
        if size <= 256 {
            Bits::Small([0; 4])
        } else {
            Bits::Large(vec![0; size.div_ceil(64)])
        }
    }
    fn words(&mut self) -> &mut [u64] {
        match self {
            Bits::Small(words) => words,
            Bits::Large(words) => words,
        }
    }
    fn set(&mut self, index: usize) {
        self.words()[index / 64] |= 1 << (index % 64);
    }
    fn clear(&mut self, index: usize) {
        self.words()[index / 64] &= !(1 << (index % 64));
    }
}

/// Checks each partition (in parallel across the machine's cores); stops early on the first
/// violation; gives `Unknown` if `budget` passes first.
pub fn check_partitions<M: Model>(
    model: &M,
    partitions: &[Vec<Operation<M::Input, M::Output>>],
    budget: Duration,
) -> CheckResult<M::State> {
    let deadline = Instant::now() + budget;
    let stop = AtomicBool::new(false);
    if let [only] = partitions {
        return check_one(model, only, deadline, &stop);
    }
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(partitions.len().max(1));
    let results: Vec<CheckResult<M::State>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut worst = CheckResult { verdict: Verdict::Linearizable, counterexample: None };
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= partitions.len() || stop.load(Ordering::Relaxed) {
                            return worst;
                        }
                        let mut result = check_one(model, &partitions[index], deadline, &stop);
                        if let Some(counterexample) = &mut result.counterexample {
                            counterexample.partition = index;
                        }
                        match result.verdict {
                            Verdict::Linearizable => {}
                            Verdict::NotLinearizable => {
                                stop.store(true, Ordering::Relaxed);
                                return result;
                            }
                            Verdict::Unknown => worst = result,
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("checker worker panicked")).collect()
    });
    let pick = |verdict: Verdict| results.iter().find(|r| r.verdict == verdict).cloned();
    pick(Verdict::NotLinearizable)
        .or_else(|| pick(Verdict::Unknown))
        .unwrap_or(CheckResult { verdict: Verdict::Linearizable, counterexample: None })
}

/// Checks one partition.
pub fn check_one<M: Model>(
    model: &M,
    operations: &[Operation<M::Input, M::Output>],
    deadline: Instant,
    stop: &AtomicBool,
) -> CheckResult<M::State> {
    let count = operations.len();
    if count == 0 {
        return CheckResult { verdict: Verdict::Linearizable, counterexample: None };
    }
    let mut entries = build_entries(operations);
    let head = entries.len() - 1;
    let mut cache: Cache<M::State> = Cache::default();
    let mut linearized = Bits::new(count);
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    // The longest prefix after which some operation's return was reached unplaced, and that
    // operation: the clearest evidence once the search fails.
    let mut best: Vec<usize> = Vec::new();
    let mut stuck = 0;
    let mut entry = entries[head].next;
    let mut steps: u64 = 0;
    while entries[head].next != head {
        steps += 1;
        if steps.is_multiple_of(4096) && (Instant::now() >= deadline || stop.load(Ordering::Relaxed)) {
            return CheckResult { verdict: Verdict::Unknown, counterexample: None };
        }
        let current = entries[entry];
        if current.is_call {
            let operation = &operations[current.operation];
            let next_state = model.step(&state, &operation.input, operation.output.as_ref());
            linearized.set(current.operation);
            let placed =
                next_state.filter(|next_state| cache.insert((linearized.clone(), next_state.clone())));
            if let Some(next_state) = placed {
                stack.push((entry, std::mem::replace(&mut state, next_state)));
                lift(&mut entries, entry);
                entry = entries[head].next;
            } else {
                linearized.clear(current.operation);
                entry = current.next;
            }
        } else {
            if stack.len() >= best.len() && (stack.len() > best.len() || best.is_empty()) {
                best = stack.iter().map(|(call, _)| entries[*call].operation).collect();
                stuck = current.operation;
            }
            let Some((call_entry, previous_state)) = stack.pop() else {
                return CheckResult {
                    verdict: Verdict::NotLinearizable,
                    counterexample: Some(Counterexample {
                        partition: 0,
                        states: replay_states(model, operations, &best),
                        linearized: best,
                        stuck,
                    }),
                };
            };
            state = previous_state;
            linearized.clear(entries[call_entry].operation);
            unlift(&mut entries, call_entry);
            entry = entries[call_entry].next;
        }
    }
    CheckResult { verdict: Verdict::Linearizable, counterexample: None }
}

/// The states after each operation of a linearization, for reports.
fn replay_states<M: Model>(
    model: &M,
    operations: &[Operation<M::Input, M::Output>],
    order: &[usize],
) -> Vec<M::State> {
    let mut state = model.init();
    order
        .iter()
        .map(|index| {
            let operation = &operations[*index];
            state = model
                .step(&state, &operation.input, operation.output.as_ref())
                .expect("a found linearization replays");
            state.clone()
        })
        .collect()
}

/// Builds the event list in time order (calls before returns at equal times would make them
/// overlap; returns go first so that touching intervals stay ordered), with a sentinel head
/// at the end of the vector.
fn build_entries<I, O>(operations: &[Operation<I, O>]) -> Vec<Entry> {
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(operations.len() * 2);
    for (index, operation) in operations.iter().enumerate() {
        events.push((operation.call, true, index));
        events.push((operation.ret, false, index));
    }
    // At equal times: returns (false) sort before calls (true).
    events.sort_by_key(|&(time, is_call, index)| (time, is_call, index));
    let count = events.len();
    let head = count;
    let mut entries: Vec<Entry> = events
        .iter()
        .enumerate()
        .map(|(position, &(_, is_call, operation))| Entry {
            operation,
            is_call,
            matching: usize::MAX,
            previous: if position == 0 { head } else { position - 1 },
            next: if position + 1 == count { head } else { position + 1 },
        })
        .collect();
    let mut return_of = vec![usize::MAX; operations.len()];
    for (position, entry) in entries.iter().enumerate() {
        if !entry.is_call {
            return_of[entry.operation] = position;
        }
    }
    for entry in entries.iter_mut().filter(|entry| entry.is_call) {
        entry.matching = return_of[entry.operation];
    }
    entries.push(Entry {
        operation: usize::MAX,
        is_call: false,
        matching: usize::MAX,
        previous: count - 1,
        next: 0,
    });
    entries
}

/// Unlinks a call entry and its return.
fn lift(entries: &mut [Entry], call: usize) {
    for position in [call, entries[call].matching] {
        let Entry { previous, next, .. } = entries[position];
        entries[previous].next = next;
        entries[next].previous = previous;
    }
}

/// Relinks what `lift` unlinked (in reverse order).
fn unlift(entries: &mut [Entry], call: usize) {
    for position in [entries[call].matching, call] {
        let Entry { previous, next, .. } = entries[position];
        entries[previous].next = position;
        entries[next].previous = position;
    }
}
