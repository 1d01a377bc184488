//! Wing & Gong's search with Lowe's memoisation over chosen operations of a history, from a
//! given state: finds one linearization of them, or every way they can end. An operation
//! whose outcome is unknown (it never returned) may take effect at any point after its call
//! or never; a search ends once every operation that returned is placed, leaving the unknown
//! ones still unplaced to whatever follows.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::history::Operation;
use crate::model::Model;

/// What a search looks for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Goal {
    /// One way to place every operation that returned.
    First,
    /// Every end that matters (see [`keep_maximal`]), within bounds.
    Every {
        /// At most this many ends.
        ends: usize,
        /// At most this many steps.
        steps: u64,
    },
}

/// One way the chosen operations can end.
#[derive(Clone, Debug)]
pub(super) struct End<S> {
    /// The state after them.
    pub state: S,
    /// Operations of unknown outcome left unplaced (history indices, ascending).
    pub unplaced: Vec<usize>,
    /// The order the others were placed in (history indices).
    pub order: Vec<usize>,
}

/// What a search found.
#[derive(Debug)]
pub(super) enum Found<S> {
    /// The ends reached (one for [`Goal::First`]).
    Ends(Vec<End<S>>),
    /// No end: the longest order found (history indices) and the operation that returned
    /// before it could be placed after it.
    Stuck { best: Vec<usize>, stuck: usize },
    /// The deadline passed, or another search found a violation.
    OutOfTime,
    /// More ends or steps than [`Goal::Every`] allows, or a memo cache past
    /// [`MEMO_BYTES_MAX`].
    TooMany,
}

/// An entry of the doubly linked event list: a call or a return.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Index into the chosen operations.
    operation: usize,
    is_call: bool,
    /// The return of an operation of unknown outcome (it sorts after every other).
    unknown: bool,
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

/// The most memory a search's memo cache may take: each entry holds a bit per operation, so a
/// search over millions of operations that cannot be split fills the machine within seconds;
/// past this the search gives up (an unknown verdict) instead of being killed.
pub(super) const MEMO_BYTES_MAX: usize = 4 << 30;

#[cfg(not(test))]
fn memo_bytes_max() -> usize {
    MEMO_BYTES_MAX
}

#[cfg(test)]
thread_local! {
    /// Tests lower the memo bound to see the search give up.
    static MEMO_BYTES_MAX_IN_TESTS: std::cell::Cell<usize> = const { std::cell::Cell::new(MEMO_BYTES_MAX) };
}

#[cfg(test)]
fn memo_bytes_max() -> usize {
    MEMO_BYTES_MAX_IN_TESTS.get()
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

/// Searches for orders of the operations `chosen` (history indices) that respect real time
/// and `model`, starting from `start`.
pub(super) fn search<M: Model>(
    model: &M,
    operations: &[Operation<M::Input, M::Output>],
    chosen: &[usize],
    start: M::State,
    goal: Goal,
    deadline: Instant,
    stop: &AtomicBool,
) -> Found<M::State> {
    let mut entries = build_entries(operations, chosen);
    let head = entries.len() - 1;
    let mut cache: Cache<M::State> = Cache::default();
    let mut linearized = Bits::new(chosen.len());
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = start;
    let mut ends: Vec<End<M::State>> = Vec::new();
    // The longest prefix after which some operation's return was reached unplaced, and that
    // operation: the clearest evidence once the search fails.
    let mut best: Vec<usize> = Vec::new();
    let mut stuck = 0;
    let mut entry = entries[head].next;
    let mut steps: u64 = 0;
    let entry_bytes = chosen.len().div_ceil(64) * 8 + std::mem::size_of::<(Bits, M::State)>();
    let memo_entries_max = memo_bytes_max() / entry_bytes;
    loop {
        steps += 1;
        if matches!(goal, Goal::Every { steps: most, .. } if steps > most) {
            return Found::TooMany;
        }
        if steps.is_multiple_of(4096) && super::out_of_budget(deadline, stop) {
            return Found::OutOfTime;
        }
        let current = entries[entry];
        if entry == head || current.unknown {
            // Every operation that returned is placed: an end.
            let unplaced = unplaced_from(&entries, entry, head, chosen);
            let order = stack.iter().map(|(call, _)| chosen[entries[*call].operation]).collect();
            let end = End { state: state.clone(), unplaced, order };
            match goal {
                Goal::First => return Found::Ends(vec![end]),
                Goal::Every { ends: most, .. } => {
                    keep_maximal(&mut ends, end, |end| (&end.state, &end.unplaced));
                    if ends.len() > most {
                        return Found::TooMany;
                    }
                }
            }
        } else if current.is_call {
            let operation = &operations[chosen[current.operation]];
            let next_state = model.step(&state, &operation.input, operation.output.as_ref());
            // An operation of unknown outcome that would change nothing here is better left
            // unplaced: anything placing it could leave it out.
            let changes_nothing = operation.ret == u64::MAX && next_state.as_ref() == Some(&state);
            let next_state = next_state.filter(|_| !changes_nothing);
            linearized.set(current.operation);
            let placed =
                next_state.filter(|next_state| cache.insert((linearized.clone(), next_state.clone())));
            if cache.len() > memo_entries_max {
                return Found::TooMany;
            }
            if let Some(next_state) = placed {
                stack.push((entry, std::mem::replace(&mut state, next_state)));
                lift(&mut entries, entry);
                entry = entries[head].next;
            } else {
                linearized.clear(current.operation);
                entry = current.next;
            }
            continue;
        } else if stack.len() >= best.len() && (stack.len() > best.len() || best.is_empty()) {
            best = stack.iter().map(|(call, _)| chosen[entries[*call].operation]).collect();
            stuck = chosen[current.operation];
        }
        // Back off the latest placement and try what follows it.
        let Some((call_entry, previous_state)) = stack.pop() else {
            return if ends.is_empty() { Found::Stuck { best, stuck } } else { Found::Ends(ends) };
        };
        state = previous_state;
        linearized.clear(entries[call_entry].operation);
        unlift(&mut entries, call_entry);
        entry = entries[call_entry].next;
    }
}

/// Adds `new` to `ends` unless an end in the same state leaves every operation it leaves
/// unplaced and more (an operation of unknown outcome may also never take effect, so that end
/// can go wherever this one can), and drops the ends `new` covers that way.
pub(super) fn keep_maximal<T, S: Eq>(ends: &mut Vec<T>, new: T, key: impl Fn(&T) -> (&S, &[usize])) {
    let (state, unplaced) = key(&new);
    if ends.iter().any(|end| key(end).0 == state && is_subset(unplaced, key(end).1)) {
        return;
    }
    ends.retain(|end| !(key(end).0 == state && is_subset(key(end).1, unplaced)));
    ends.push(new);
}

/// Whether ascending `small` is within ascending `large`.
fn is_subset(small: &[usize], large: &[usize]) -> bool {
    let mut large = large.iter();
    small.iter().all(|item| large.any(|other| other == item))
}

/// The operations whose returns are still listed from `entry` on (all of unknown outcome),
/// as history indices in ascending order.
fn unplaced_from(entries: &[Entry], mut entry: usize, head: usize, chosen: &[usize]) -> Vec<usize> {
    let mut unplaced = Vec::new();
    while entry != head {
        unplaced.push(chosen[entries[entry].operation]);
        entry = entries[entry].next;
    }
    unplaced.sort_unstable();
    unplaced
}

/// Builds the event list of the `chosen` operations in time order (calls before returns at
/// equal times would make them overlap; returns go first so that touching intervals stay
/// ordered), with a sentinel head at the end of the vector.
fn build_entries<I, O>(operations: &[Operation<I, O>], chosen: &[usize]) -> Vec<Entry> {
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(chosen.len() * 2);
    for (position, &index) in chosen.iter().enumerate() {
        events.push((operations[index].call, true, position));
        events.push((operations[index].ret, false, position));
    }
    // At equal times: returns (false) sort before calls (true).
    events.sort_by_key(|&(time, is_call, position)| (time, is_call, position));
    let count = events.len();
    let head = count;
    let mut entries: Vec<Entry> = events
        .iter()
        .enumerate()
        .map(|(position, &(time, is_call, operation))| Entry {
            operation,
            is_call,
            unknown: !is_call && time == u64::MAX,
            matching: usize::MAX,
            previous: if position == 0 { head } else { position - 1 },
            next: if position + 1 == count { head } else { position + 1 },
        })
        .collect();
    let mut return_of = vec![usize::MAX; chosen.len()];
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
        unknown: false,
        matching: usize::MAX,
        previous: if count == 0 { head } else { count - 1 },
        next: if count == 0 { head } else { 0 },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CasRegister, RegisterInput, RegisterOutput};

    /// Fourteen concurrent writes, then a read of a value none wrote: the search must try
    /// every subset of the writes before it can say so.
    fn unsplittable_violation() -> Vec<Operation<RegisterInput, RegisterOutput>> {
        let write = |value: i64| Operation {
            process: value as u64,
            input: RegisterInput::Write(value),
            output: Some(RegisterOutput::Written),
            call: 0,
            ret: 100,
        };
        let read = Operation {
            process: 99,
            input: RegisterInput::Read,
            output: Some(RegisterOutput::Read(Some(999))),
            call: 200,
            ret: 300,
        };
        (1..=14).map(write).chain([read]).collect()
    }

    fn run(operations: &[Operation<RegisterInput, RegisterOutput>]) -> Found<Option<i64>> {
        let all: Vec<usize> = (0..operations.len()).collect();
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        search(&CasRegister, operations, &all, None, Goal::First, deadline, &AtomicBool::new(false))
    }

    #[test]
    fn a_search_whose_memo_outgrows_its_bound_gives_up_instead_of_growing_on() {
        let operations = unsplittable_violation();
        assert!(matches!(run(&operations), Found::Stuck { .. }), "within the bound the violation is found");
        MEMO_BYTES_MAX_IN_TESTS.set(64 << 10);
        let bounded = run(&operations);
        MEMO_BYTES_MAX_IN_TESTS.set(MEMO_BYTES_MAX);
        assert!(matches!(bounded, Found::TooMany), "past 64 KiB of memo the search gives up: {bounded:?}");
    }
}
