//! Checking a long history in pieces. Where a history is quiescent (every operation invoked
//! so far has returned, or never will) it splits: real time puts everything before the cut
//! ahead of everything after it. Each segment is searched from every state the previous one
//! can end in, together with the operations of unknown outcome still unplaced (they may take
//! effect later, or never). The result is exact, and the memo cache only ever holds one
//! segment's operations, where a single search over a history of millions of operations on
//! one key needs a bit set of millions per cache entry.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::search::{keep_maximal, search, Found, Goal};
use super::{not_linearizable, out_of_budget, CheckResult, Verdict};
use crate::history::Operation;
use crate::model::Model;

/// The most distinct states (with their unplaced operations) carried from one segment to the
/// next; beyond it, the history is checked in one piece (operations of unknown outcome left
/// pending multiply the ways a segment can end).
const MOST_CARRIED: usize = 64;

/// The most steps of a search for every way a segment can end, per operation in it (at least
/// [`MOST_STEPS_MIN`]); beyond it, the history is checked in one piece (many overlapping calls
/// make every order of them an end to explore, where a search for one order is quick).
const MOST_STEPS_PER_OPERATION: u64 = 64;
const MOST_STEPS_MIN: u64 = 4_096;

/// The history's operations (indices) split where it is quiescent, each segment in order of
/// invocation. An operation that never returned does not hold a cut back: it is carried.
pub(super) fn quiescent_segments<I, O>(operations: &[Operation<I, O>]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..operations.len()).collect();
    order.sort_by_key(|&index| (operations[index].call, index));
    let mut segments = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut latest_return = 0;
    for index in order {
        let operation = &operations[index];
        // Returns come before calls at equal times (see the search's event order).
        if !current.is_empty() && operation.call >= latest_return {
            segments.push(std::mem::take(&mut current));
            latest_return = 0;
        }
        if operation.ret != u64::MAX {
            latest_return = latest_return.max(operation.ret);
        }
        current.push(index);
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

/// Follows the first way found through each segment in turn: `Linearizable` if it reaches the
/// end (a linearization is its own proof), `Unknown` if the budget runs out, `None` if it
/// runs into a dead end (another way through an earlier segment might not).
pub(super) fn first_way_through<M: Model>(
    model: &M,
    operations: &[Operation<M::Input, M::Output>],
    segments: &[Vec<usize>],
    deadline: Instant,
    stop: &AtomicBool,
) -> Option<CheckResult<M::State>> {
    let mut state = model.init();
    let mut unplaced: Vec<usize> = Vec::new();
    for segment in segments {
        if out_of_budget(deadline, stop) {
            return Some(CheckResult::plain(Verdict::Unknown));
        }
        let chosen: Vec<usize> = unplaced.iter().chain(segment).copied().collect();
        match search(model, operations, &chosen, state, Goal::First, deadline, stop) {
            Found::Ends(mut ends) => {
                let end = ends.pop().expect("a search that found a way gives it");
                (state, unplaced) = (end.state, end.unplaced);
            }
            Found::Stuck { .. } => return None,
            Found::OutOfTime | Found::TooMany => return Some(CheckResult::plain(Verdict::Unknown)),
        }
    }
    Some(CheckResult::plain(Verdict::Linearizable))
}

/// A way the segments so far can end, and how it was reached.
struct Carried<S> {
    state: S,
    /// Operations of unknown outcome not placed yet (history indices, ascending).
    unplaced: Vec<usize>,
    /// Index of the way the previous segments ended that this one continues.
    parent: usize,
    /// This segment's operations in the order placed (history indices).
    order: Vec<usize>,
}

/// Checks `segments` in turn; `None` when more than [`MOST_CARRIED`] ways to end a segment
/// would have to be carried, or finding them takes too long (check in one piece instead).
pub(super) fn check_segments<M: Model>(
    model: &M,
    operations: &[Operation<M::Input, M::Output>],
    segments: &[Vec<usize>],
    deadline: Instant,
    stop: &AtomicBool,
) -> Option<CheckResult<M::State>> {
    let start = Carried { state: model.init(), unplaced: Vec::new(), parent: 0, order: Vec::new() };
    let mut layers: Vec<Vec<Carried<M::State>>> = vec![vec![start]];
    for (number, segment) in segments.iter().enumerate() {
        let last = number + 1 == segments.len();
        let mut next: Vec<Carried<M::State>> = Vec::new();
        let mut first_failure = None;
        let previous = layers.last().expect("the first layer is the start");
        for (parent, carried) in previous.iter().enumerate() {
            // Each search counts its own steps: the budget is checked between them too.
            if out_of_budget(deadline, stop) {
                return Some(CheckResult::plain(Verdict::Unknown));
            }
            let chosen: Vec<usize> = carried.unplaced.iter().chain(segment).copied().collect();
            let steps = (chosen.len() as u64 * MOST_STEPS_PER_OPERATION).max(MOST_STEPS_MIN);
            let goal = if last { Goal::First } else { Goal::Every { ends: MOST_CARRIED, steps } };
            match search(model, operations, &chosen, carried.state.clone(), goal, deadline, stop) {
                Found::OutOfTime => return Some(CheckResult::plain(Verdict::Unknown)),
                Found::TooMany => return None,
                Found::Stuck { best, stuck } => {
                    first_failure.get_or_insert((parent, best, stuck));
                }
                Found::Ends(_) if last => return Some(CheckResult::plain(Verdict::Linearizable)),
                Found::Ends(ends) => {
                    for end in ends {
                        let carried =
                            Carried { state: end.state, unplaced: end.unplaced, parent, order: end.order };
                        keep_maximal(&mut next, carried, |carried| (&carried.state, &carried.unplaced));
                    }
                    if next.len() > MOST_CARRIED {
                        return None;
                    }
                }
            }
        }
        if next.is_empty() {
            let (parent, best, stuck) = first_failure.expect("a segment with no end failed from every start");
            let mut linearized = witness(&layers, parent);
            linearized.extend(best);
            return Some(not_linearizable(model, operations, linearized, stuck));
        }
        layers.push(next);
    }
    Some(CheckResult::plain(Verdict::Linearizable))
}

/// The order of every operation placed on the way to the `index`th end of the last layer.
fn witness<S>(layers: &[Vec<Carried<S>>], mut index: usize) -> Vec<usize> {
    let mut parts = Vec::with_capacity(layers.len());
    for layer in layers.iter().rev() {
        let carried = &layer[index];
        parts.push(&carried.order);
        index = carried.parent;
    }
    parts.into_iter().rev().flatten().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::search::search as search_whole;
    use crate::model::{CasRegister, RegisterInput, RegisterOutput};
    use crate::simulation::rng::Rng;
    use std::collections::HashSet;

    type RegisterOp = Operation<RegisterInput, RegisterOutput>;

    fn op(
        process: u64,
        input: RegisterInput,
        output: Option<RegisterOutput>,
        call: u64,
        ret: u64,
    ) -> RegisterOp {
        Operation { process, input, output, call, ret }
    }

    fn far() -> Instant {
        Instant::now() + std::time::Duration::from_secs(60)
    }

    fn segmented(operations: &[RegisterOp]) -> Option<Verdict> {
        let segments = quiescent_segments(operations);
        check_segments(&CasRegister, operations, &segments, far(), &AtomicBool::new(false)).map(|r| r.verdict)
    }

    fn whole(operations: &[RegisterOp]) -> Verdict {
        let all: Vec<usize> = (0..operations.len()).collect();
        match search_whole(&CasRegister, operations, &all, None, Goal::First, far(), &AtomicBool::new(false))
        {
            Found::Ends(_) => Verdict::Linearizable,
            Found::Stuck { .. } => Verdict::NotLinearizable,
            Found::OutOfTime | Found::TooMany => Verdict::Unknown,
        }
    }

    /// An independent oracle for small histories: tries every order that respects real time
    /// (an operation goes next only if no operation still unplaced returned before its call),
    /// remembering (placed set, state) pairs that failed.
    fn linearizable_by_brute_force(history: &[RegisterOp]) -> bool {
        fn next(
            history: &[RegisterOp],
            placed: u32,
            state: Option<i64>,
            failed: &mut HashSet<(u32, Option<i64>)>,
        ) -> bool {
            let unplaced = |index: usize| placed & (1 << index) == 0;
            if (0..history.len()).all(|index| !unplaced(index) || history[index].ret == u64::MAX) {
                return true;
            }
            if failed.contains(&(placed, state)) {
                return false;
            }
            for (index, candidate) in history.iter().enumerate().filter(|(index, _)| unplaced(*index)) {
                let blocked = (history.iter().enumerate())
                    .any(|(other, op)| other != index && unplaced(other) && op.ret <= candidate.call);
                let after = CasRegister.step(&state, &candidate.input, candidate.output.as_ref());
                if let Some(after) = after.filter(|_| !blocked) {
                    if next(history, placed | (1 << index), after, failed) {
                        return true;
                    }
                }
            }
            failed.insert((placed, state));
            false
        }
        next(history, 0, None, &mut HashSet::new())
    }

    #[test]
    fn a_history_splits_where_nothing_is_in_flight() {
        let history = [
            op(0, RegisterInput::Write(1), Some(RegisterOutput::Written), 0, 2),
            op(1, RegisterInput::Read, Some(RegisterOutput::Read(Some(1))), 1, 3),
            op(0, RegisterInput::Write(2), Some(RegisterOutput::Written), 3, 4),
            op(1, RegisterInput::Write(3), None, 5, u64::MAX),
            op(0, RegisterInput::Read, Some(RegisterOutput::Read(Some(2))), 6, 7),
        ];
        assert_eq!(quiescent_segments(&history), vec![vec![0, 1], vec![2], vec![3], vec![4]]);
    }

    #[test]
    fn an_unknown_write_may_take_effect_segments_later() {
        let history = [
            op(0, RegisterInput::Write(1), None, 0, u64::MAX),
            op(1, RegisterInput::Read, Some(RegisterOutput::Read(None)), 1, 2),
            op(1, RegisterInput::Read, Some(RegisterOutput::Read(None)), 3, 4),
            op(1, RegisterInput::Read, Some(RegisterOutput::Read(Some(1))), 5, 6),
            op(1, RegisterInput::Read, Some(RegisterOutput::Read(Some(1))), 7, 8),
        ];
        assert!(quiescent_segments(&history).len() > 2);
        assert_eq!(segmented(&history), Some(Verdict::Linearizable));
        let mut undone = history.to_vec();
        undone.push(op(1, RegisterInput::Read, Some(RegisterOutput::Read(None)), 9, 10));
        assert_eq!(segmented(&undone), Some(Verdict::NotLinearizable), "a write cannot be undone");
    }

    #[test]
    fn concurrent_writes_carry_both_orders_into_the_next_segment() {
        let history = [
            op(0, RegisterInput::Write(1), Some(RegisterOutput::Written), 0, 3),
            op(1, RegisterInput::Write(2), Some(RegisterOutput::Written), 1, 2),
            op(0, RegisterInput::Read, Some(RegisterOutput::Read(Some(1))), 4, 5),
        ];
        assert_eq!(segmented(&history), Some(Verdict::Linearizable));
        let mut other = history.to_vec();
        other[2].output = Some(RegisterOutput::Read(Some(2)));
        assert_eq!(segmented(&other), Some(Verdict::Linearizable));
        // Whichever order the first way through the writes takes, the other one is found.
        for history in [&history[..], &other[..]] {
            let result = check_one(&CasRegister, history, far(), &AtomicBool::new(false));
            assert_eq!(result.verdict, Verdict::Linearizable);
        }
        other[2].output = Some(RegisterOutput::Read(None));
        assert_eq!(segmented(&other), Some(Verdict::NotLinearizable));
    }

    #[test]
    fn a_violation_segments_later_names_its_whole_prefix() {
        let mut history: Vec<RegisterOp> = (0..50)
            .map(|n| {
                op(0, RegisterInput::Write(n), Some(RegisterOutput::Written), 2 * n as u64, 2 * n as u64 + 1)
            })
            .collect();
        history.push(op(1, RegisterInput::Read, Some(RegisterOutput::Read(Some(7))), 100, 101));
        let result = check_one(&CasRegister, &history, far(), &AtomicBool::new(false));
        assert_eq!(result.verdict, Verdict::NotLinearizable);
        let counterexample = result.counterexample.expect("evidence");
        assert_eq!(counterexample.linearized, (0..50).collect::<Vec<_>>());
        assert_eq!(counterexample.states.last(), Some(&Some(49)));
        assert_eq!(counterexample.stuck, 50);
    }

    use super::super::check_one;

    /// A random register history: `clients` clients, each a few operations in a row, some
    /// answers wrong, some never returning.
    fn random_history(rng: &mut Rng) -> Vec<RegisterOp> {
        let clients = 1 + rng.below(3);
        let mut clock = 0u64;
        let mut value = None;
        let mut history = Vec::new();
        let mut open: Vec<(u64, RegisterInput, u64)> = Vec::new();
        for _ in 0..(4 + rng.below(16)) {
            clock += 1 + rng.below(3);
            if open.len() < clients as usize && rng.below(3) != 0 {
                let input = match rng.below(3) {
                    0 => RegisterInput::Read,
                    1 => RegisterInput::Write(rng.below(3) as i64),
                    _ => RegisterInput::Cas(rng.below(3) as i64, rng.below(3) as i64),
                };
                open.push((open.len() as u64, input, clock));
                continue;
            }
            let Some((process, input, call)) = (!open.is_empty()).then(|| open.remove(0)) else { continue };
            let (output, next) = match &input {
                RegisterInput::Read => (RegisterOutput::Read(value), value),
                RegisterInput::Write(v) => (RegisterOutput::Written, Some(*v)),
                RegisterInput::Cas(from, to) if value == Some(*from) => {
                    (RegisterOutput::Cas(true), Some(*to))
                }
                RegisterInput::Cas(..) => (RegisterOutput::Cas(false), value),
            };
            value = next;
            let output = match rng.below(8) {
                0 => None,
                1 => Some(RegisterOutput::Read(Some(rng.below(3) as i64))),
                _ => Some(output),
            };
            let ret = if output.is_none() { u64::MAX } else { clock };
            history.push(op(process, input, output, call, ret));
        }
        history
    }

    #[test]
    fn a_long_history_on_one_key_checks_in_bounded_memory() {
        // Six clients writing and reading one register, each call overlapping the others' and
        // a quiescent moment every few calls: 240,000 operations. In one piece, every memo
        // entry would hold a 30 kB bit set (gigabytes within a second); in segments, 32 bytes.
        let mut history = Vec::new();
        let mut clock = 0;
        for round in 0..40_000i64 {
            for client in 0..6u64 {
                let input = if client % 2 == 0 { RegisterInput::Write(round) } else { RegisterInput::Read };
                let output = match input {
                    RegisterInput::Read => RegisterOutput::Read(Some(round)),
                    _ => RegisterOutput::Written,
                };
                let call = if client % 2 == 0 { clock } else { clock + 10 };
                history.push(op(client, input, Some(output), call + client, clock + 20 + client));
            }
            clock += 30;
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(120);
        let result = check_one(&CasRegister, &history, deadline, &AtomicBool::new(false));
        assert_eq!(result.verdict, Verdict::Linearizable);
        history[100_001].output = Some(RegisterOutput::Read(Some(3)));
        let result = check_one(&CasRegister, &history, deadline, &AtomicBool::new(false));
        assert_eq!(result.verdict, Verdict::NotLinearizable);
        assert_eq!(result.counterexample.map(|c| c.stuck), Some(100_001));
    }

    #[test]
    fn calls_of_unknown_outcome_that_change_nothing_are_not_carried_twice() {
        // Twenty reads that never returned, each in a segment of its own, between writes: a
        // read placed or not leaves the same state, so one way to end is carried, not 2^20.
        let mut history = Vec::new();
        for n in 0..20u64 {
            history.push(op(1, RegisterInput::Read, None, 4 * n, u64::MAX));
            let write =
                op(0, RegisterInput::Write(n as i64), Some(RegisterOutput::Written), 4 * n + 1, 4 * n + 2);
            history.push(write);
        }
        history.push(op(0, RegisterInput::Read, Some(RegisterOutput::Read(Some(19))), 80, 81));
        assert_eq!(segmented(&history), Some(Verdict::Linearizable));
        history.last_mut().unwrap().output = Some(RegisterOutput::Read(Some(18)));
        assert_eq!(segmented(&history), Some(Verdict::NotLinearizable));
    }

    #[test]
    fn segments_give_the_verdict_of_one_search_over_the_whole_history() {
        let mut rng = Rng::new(7);
        let (mut split, mut violations, mut in_one_piece) = (0, 0, 0);
        for _ in 0..20_000 {
            let history = random_history(&mut rng);
            let expected = whole(&history);
            let oracle = linearizable_by_brute_force(&history);
            assert_eq!(expected == Verdict::Linearizable, oracle, "{history:#?}");
            let checked = check_one(&CasRegister, &history, far(), &AtomicBool::new(false)).verdict;
            assert_eq!(checked, expected, "{history:#?}");
            match segmented(&history) {
                Some(verdict) => assert_eq!(verdict, expected, "{history:#?}"),
                None => in_one_piece += 1,
            }
            split += usize::from(quiescent_segments(&history).len() > 1);
            violations += usize::from(expected == Verdict::NotLinearizable);
        }
        assert!(
            split > 5_000 && violations > 1_000,
            "the histories exercise both: {split} split, {violations} violations"
        );
        assert!(in_one_piece < 100, "{in_one_piece} histories were too much for segments");
    }
}
