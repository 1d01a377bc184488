//! The linearizability checker: Wing & Gong's search with Lowe's memoisation (a cache of
//! (linearized set, state) pairs already explored), over each partition of a history in
//! parallel, within a time budget that yields `Unknown` rather than hanging. A partition is
//! checked segment by segment where it is quiescent, so that memory follows the widest
//! segment rather than the length of the history.

mod search;
mod segments;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::history::Operation;
use crate::model::Model;
use search::{search, Found, Goal};
use segments::{check_segments, first_way_through, quiescent_segments};

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

impl<S> CheckResult<S> {
    /// A verdict that needs no evidence.
    fn plain(verdict: Verdict) -> Self {
        Self { verdict, counterexample: None }
    }
}

/// Whether the time budget ran out or another check found a violation.
fn out_of_budget(deadline: Instant, stop: &AtomicBool) -> bool {
    Instant::now() >= deadline || stop.load(Ordering::Relaxed)
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
                    let mut worst = CheckResult::plain(Verdict::Linearizable);
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
        .unwrap_or(CheckResult::plain(Verdict::Linearizable))
}

/// Checks one partition: in the segments it splits into where no operation is in flight
/// (every earlier one returned before any later one began, so those come first in any
/// linearization), carrying each segment's possible end states into the next; in one piece
/// when it does not split or its segments leave too many possible states.
pub fn check_one<M: Model>(
    model: &M,
    operations: &[Operation<M::Input, M::Output>],
    deadline: Instant,
    stop: &AtomicBool,
) -> CheckResult<M::State> {
    let segments = quiescent_segments(operations);
    if segments.len() > 1 {
        // Most histories are linearizable: one way through each segment in turn usually shows
        // it, as fast as a single search; only when that way runs into a dead end are all the
        // ways each segment can end needed.
        if let Some(result) = first_way_through(model, operations, &segments, deadline, stop) {
            return result;
        }
        if let Some(result) = check_segments(model, operations, &segments, deadline, stop) {
            return result;
        }
    }
    let all: Vec<usize> = (0..operations.len()).collect();
    match search(model, operations, &all, model.init(), Goal::First, deadline, stop) {
        Found::Ends(_) => CheckResult::plain(Verdict::Linearizable),
        Found::Stuck { best, stuck } => not_linearizable(model, operations, best, stuck),
        Found::OutOfTime | Found::TooMany => CheckResult::plain(Verdict::Unknown),
    }
}

/// The verdict for a partition where no order places `stuck` after the longest
/// linearization found, `best`.
fn not_linearizable<M: Model>(
    model: &M,
    operations: &[Operation<M::Input, M::Output>],
    best: Vec<usize>,
    stuck: usize,
) -> CheckResult<M::State> {
    CheckResult {
        verdict: Verdict::NotLinearizable,
        counterexample: Some(Counterexample {
            partition: 0,
            states: replay_states(model, operations, &best),
            linearized: best,
            stuck,
        }),
    }
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
