//! `Semaphore`: counting permits; `acquire` parks in FIFO order until enough are released.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::object::{ApplyContext, CallId, Outcome};
use crate::shared;

/// A fair counting semaphore: parked acquirers are served strictly in arrival order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Semaphore {
    permits: u64,
    /// Parked acquirers and the permits each needs, in arrival order.
    waiters: VecDeque<(CallId, u64)>,
}

#[shared]
impl Semaphore {
    /// A semaphore with `permits` available.
    pub fn new(permits: u64) -> Self {
        Self { permits, waiters: VecDeque::new() }
    }

    /// Takes `permits`, waiting behind earlier acquirers up to `timeout_ms` (forever if `None`);
    /// `true` once acquired, `false` on timeout.
    pub fn acquire(
        &mut self,
        permits: u64,
        timeout_ms: Option<u64>,
        ctx: &mut ApplyContext<SemaphoreRet>,
    ) -> Outcome<bool> {
        if self.waiters.is_empty() && self.permits >= permits {
            self.permits -= permits;
            return Outcome::Done(true);
        }
        if timeout_ms == Some(0) {
            return Outcome::Done(false);
        }
        self.waiters.push_back((ctx.caller(), permits));
        Outcome::Parked { timeout_ms }
    }

    /// Takes `permits` if available now, even ahead of parked acquirers (as Java's
    /// `tryAcquire` barges); whether it did.
    pub fn try_acquire(&mut self, permits: u64) -> bool {
        let available = self.permits >= permits;
        if available {
            self.permits -= permits;
        }
        available
    }

    /// Returns `permits`, waking parked acquirers in order while they fit.
    pub fn release(&mut self, permits: u64, ctx: &mut ApplyContext<SemaphoreRet>) -> Outcome<()> {
        self.permits = self.permits.saturating_add(permits);
        self.wake_waiters(ctx);
        Outcome::Done(())
    }

    /// The permits available now.
    pub fn available_permits(&self) -> u64 {
        self.permits
    }

    /// Takes every available permit; how many.
    pub fn drain_permits(&mut self) -> u64 {
        std::mem::take(&mut self.permits)
    }

    /// The number of parked acquirers.
    pub fn queue_length(&self) -> u64 {
        self.waiters.len() as u64
    }

    fn wake_waiters(&mut self, ctx: &mut ApplyContext<SemaphoreRet>) {
        while let Some(&(waiter, needed)) = self.waiters.front() {
            if needed > self.permits {
                break;
            }
            self.permits -= needed;
            self.waiters.pop_front();
            ctx.wake(waiter, SemaphoreRet::Acquire(true));
        }
    }

    #[expire]
    fn expire_acquire(
        &mut self,
        waiter: CallId,
        ctx: &mut ApplyContext<SemaphoreRet>,
    ) -> Option<SemaphoreRet> {
        let position = self.waiters.iter().position(|(parked, _)| *parked == waiter)?;
        self.waiters.remove(position);
        // The head may have been the one blocking smaller requests behind it.
        self.wake_waiters(ctx);
        Some(SemaphoreRet::Acquire(false))
    }
}
