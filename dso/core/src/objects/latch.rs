//! `CountDownLatch`: `wait` parks until the count reaches zero.

use serde::{Deserialize, Serialize};

use crate::object::{ApplyContext, CallId, Outcome};
use crate::shared;

/// A one-shot gate that opens when counted down to zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CountDownLatch {
    count: u64,
    /// Parked callers, in arrival order.
    waiters: Vec<CallId>,
}

#[shared]
impl CountDownLatch {
    /// A latch that opens after `count` count-downs.
    pub fn new(count: u64) -> Self {
        Self { count, waiters: Vec::new() }
    }

    /// Counts down by one (no effect at zero), opening the latch at zero.
    pub fn count_down(&mut self, ctx: &mut ApplyContext<CountDownLatchRet>) -> Outcome<()> {
        if self.count > 0 {
            self.count -= 1;
            if self.count == 0 {
                for waiter in self.waiters.drain(..) {
                    ctx.wake(waiter, CountDownLatchRet::Wait(true));
                }
            }
        }
        Outcome::Done(())
    }

    /// The current count.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Waits until the count is zero, up to `timeout_ms` (forever if `None`); `true` if it
    /// opened, `false` on timeout.
    pub fn wait(
        &mut self,
        timeout_ms: Option<u64>,
        ctx: &mut ApplyContext<CountDownLatchRet>,
    ) -> Outcome<bool> {
        if self.count == 0 {
            return Outcome::Done(true);
        }
        if timeout_ms == Some(0) {
            return Outcome::Done(false);
        }
        self.waiters.push(ctx.caller());
        Outcome::Parked { timeout_ms }
    }

    #[expire]
    fn expire_wait(
        &mut self,
        waiter: CallId,
        _ctx: &mut ApplyContext<CountDownLatchRet>,
    ) -> Option<CountDownLatchRet> {
        let position = self.waiters.iter().position(|parked| *parked == waiter)?;
        self.waiters.remove(position);
        Some(CountDownLatchRet::Wait(false))
    }
}
