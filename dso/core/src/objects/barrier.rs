//! `CyclicBarrier`: `wait` parks until `parties` callers arrive, then all proceed; reusable.

use serde::{Deserialize, Serialize};

use crate::object::{ApplyContext, CallId, Outcome};
use crate::shared;

/// Why a barrier wait failed (Java's `BrokenBarrierException` / `TimeoutException`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum BarrierError {
    /// Another party timed out or the barrier was reset while waiting; `reset` repairs it.
    #[error("barrier is broken")]
    Broken,
    /// This caller's own timeout passed; the barrier is now broken for the others.
    #[error("barrier wait timed out")]
    Timeout,
}

/// A reusable rendezvous of a fixed number of parties, generation after generation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CyclicBarrier {
    parties: u64,
    generation: u64,
    broken: bool,
    /// Parked parties of the current generation and their arrival indices.
    waiting: Vec<(CallId, u64)>,
}

#[shared]
impl CyclicBarrier {
    /// A barrier for `parties` callers (at least one).
    pub fn new(parties: u64) -> Self {
        Self { parties: parties.max(1), generation: 0, broken: false, waiting: Vec::new() }
    }

    /// Waits until all parties arrive (up to `timeout_ms`, forever if `None`). Returns the
    /// arrival index as Java does: `parties - 1` for the first to arrive, `0` for the last.
    pub fn wait(
        &mut self,
        timeout_ms: Option<u64>,
        ctx: &mut ApplyContext<CyclicBarrierRet>,
    ) -> Outcome<Result<u64, BarrierError>> {
        if self.broken {
            return Outcome::Done(Err(BarrierError::Broken));
        }
        let index = self.parties - 1 - self.waiting.len() as u64;
        if index == 0 {
            for (waiter, waiter_index) in self.waiting.drain(..) {
                ctx.wake(waiter, CyclicBarrierRet::Wait(Ok(waiter_index)));
            }
            self.generation += 1;
            return Outcome::Done(Ok(0));
        }
        self.waiting.push((ctx.caller(), index));
        Outcome::Parked { timeout_ms }
    }

    /// Breaks the current generation's waiters and starts a fresh, unbroken generation.
    pub fn reset(&mut self, ctx: &mut ApplyContext<CyclicBarrierRet>) -> Outcome<()> {
        self.break_waiters(ctx);
        self.broken = false;
        self.generation += 1;
        Outcome::Done(())
    }

    /// The number of parties needed to trip the barrier.
    pub fn parties(&self) -> u64 {
        self.parties
    }

    /// The number of parties parked now.
    pub fn number_waiting(&self) -> u64 {
        self.waiting.len() as u64
    }

    /// Whether a timeout or reset broke the barrier.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// How many times the barrier has tripped or been reset.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn break_waiters(&mut self, ctx: &mut ApplyContext<CyclicBarrierRet>) {
        for (waiter, _) in self.waiting.drain(..) {
            ctx.wake(waiter, CyclicBarrierRet::Wait(Err(BarrierError::Broken)));
        }
    }

    #[expire]
    fn expire_wait(
        &mut self,
        waiter: CallId,
        ctx: &mut ApplyContext<CyclicBarrierRet>,
    ) -> Option<CyclicBarrierRet> {
        let position = self.waiting.iter().position(|(parked, _)| *parked == waiter)?;
        self.waiting.remove(position);
        self.broken = true;
        self.break_waiters(ctx);
        Some(CyclicBarrierRet::Wait(Err(BarrierError::Timeout)))
    }
}
