//! `Future`: a value set once; `get` parks until it is set or the caller's timeout passes.

use serde::{Deserialize, Serialize};

use super::TimedOut;
use crate::object::{ApplyContext, CallId, Outcome};
use crate::{shared, Value};

/// A write-once value that callers wait for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Future {
    value: Option<Value>,
    /// Parked `get` callers, in arrival order (woken in this order).
    waiters: Vec<CallId>,
}

#[shared]
impl Future {
    /// Sets the value if unset, waking every waiter in arrival order; whether it was unset.
    pub fn set(&mut self, value: Value, ctx: &mut ApplyContext<FutureRet>) -> Outcome<bool> {
        if self.value.is_some() {
            return Outcome::Done(false);
        }
        for waiter in self.waiters.drain(..) {
            ctx.wake(waiter, FutureRet::Get(Ok(value.clone())));
        }
        self.value = Some(value);
        Outcome::Done(true)
    }

    /// The value, waiting for it up to `timeout_ms` (forever if `None`).
    pub fn get(
        &mut self,
        timeout_ms: Option<u64>,
        ctx: &mut ApplyContext<FutureRet>,
    ) -> Outcome<Result<Value, TimedOut>> {
        match &self.value {
            Some(value) => Outcome::Done(Ok(value.clone())),
            None if timeout_ms == Some(0) => Outcome::Done(Err(TimedOut)),
            None => {
                self.waiters.push(ctx.caller());
                Outcome::Parked { timeout_ms }
            }
        }
    }

    /// The value if set, without waiting.
    pub fn try_get(&self) -> Option<Value> {
        self.value.clone()
    }

    /// Whether the value is set.
    pub fn is_done(&self) -> bool {
        self.value.is_some()
    }

    #[expire]
    fn expire_get(&mut self, waiter: CallId, _ctx: &mut ApplyContext<FutureRet>) -> Option<FutureRet> {
        let position = self.waiters.iter().position(|parked| *parked == waiter)?;
        self.waiters.remove(position);
        Some(FutureRet::Get(Err(TimedOut)))
    }
}
