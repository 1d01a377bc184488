//! Parked operations, driven through `SharedObject::apply` itself (the single definition the
//! node, the checker and the models share): who is woken, with what, and in which order.

use crucial_dso::core::object::{ApplyContext, CallId, Outcome, SharedObject};
use crucial_dso::objects::{
    BarrierError, CountDownLatch, CountDownLatchOp, CountDownLatchRet, CyclicBarrier, CyclicBarrierOp,
    CyclicBarrierRet, Future, FutureOp, FutureRet, Semaphore, SemaphoreOp, SemaphoreRet, TimedOut,
};
use crucial_dso::Value;

fn caller(seq: u64) -> CallId {
    CallId { session: seq, seq: 1 }
}

/// Parked callers woken, with their results, in wake order.
type Wakeups<T> = Vec<(CallId, <T as SharedObject>::Ret)>;

/// Applies `op` as `who`; returns the outcome and the wakeups, in order.
fn apply<T: SharedObject>(object: &mut T, who: u64, op: T::Op) -> (Outcome<T::Ret>, Wakeups<T>) {
    let mut ctx = ApplyContext::new(caller(who));
    let outcome = object.apply(op, &mut ctx);
    (outcome, ctx.into_wakeups())
}

fn expire<T: SharedObject>(object: &mut T, who: u64) -> (Option<T::Ret>, Wakeups<T>) {
    let mut ctx = ApplyContext::new(caller(who));
    let answer = object.expire(caller(who), &mut ctx);
    (answer, ctx.into_wakeups())
}

#[test]
fn semaphore_wakes_in_arrival_order_and_never_lets_a_later_small_request_overtake() {
    let mut semaphore = Semaphore::new(0);
    let parked = Outcome::Parked { timeout_ms: None };
    assert_eq!(apply(&mut semaphore, 1, SemaphoreOp::Acquire { permits: 2, timeout_ms: None }).0, parked);
    assert_eq!(apply(&mut semaphore, 2, SemaphoreOp::Acquire { permits: 1, timeout_ms: None }).0, parked);
    assert_eq!(apply(&mut semaphore, 3, SemaphoreOp::Acquire { permits: 1, timeout_ms: None }).0, parked);
    let (_, woken) = apply(&mut semaphore, 9, SemaphoreOp::Release { permits: 1 });
    assert!(woken.is_empty(), "caller 2 fits but must not overtake caller 1");
    let (_, woken) = apply(&mut semaphore, 9, SemaphoreOp::Release { permits: 2 });
    assert_eq!(
        woken,
        vec![(caller(1), SemaphoreRet::Acquire(true)), (caller(2), SemaphoreRet::Acquire(true))]
    );
    let (_, woken) = apply(&mut semaphore, 9, SemaphoreOp::Release { permits: 1 });
    assert_eq!(woken, vec![(caller(3), SemaphoreRet::Acquire(true))]);
    assert_eq!(semaphore.available_permits(), 0);
}

#[test]
fn semaphore_timeout_of_the_head_unblocks_those_behind_it() {
    let mut semaphore = Semaphore::new(1);
    apply(&mut semaphore, 1, SemaphoreOp::Acquire { permits: 5, timeout_ms: Some(10) });
    apply(&mut semaphore, 2, SemaphoreOp::Acquire { permits: 1, timeout_ms: None });
    let (answer, woken) = expire(&mut semaphore, 1);
    assert_eq!(answer, Some(SemaphoreRet::Acquire(false)));
    assert_eq!(woken, vec![(caller(2), SemaphoreRet::Acquire(true))]);
    assert_eq!(expire(&mut semaphore, 1).0, None, "no longer parked");
}

#[test]
fn future_wakes_all_getters_in_arrival_order_and_expires_one() {
    let mut future = Future::default();
    for who in 1..=3 {
        assert_eq!(
            apply(&mut future, who, FutureOp::Get { timeout_ms: Some(100) }).0,
            Outcome::Parked { timeout_ms: Some(100) }
        );
    }
    assert_eq!(expire(&mut future, 2).0, Some(FutureRet::Get(Err(TimedOut))));
    let (outcome, woken) = apply(&mut future, 9, FutureOp::Set { value: Value::from(1) });
    assert_eq!(outcome, Outcome::Done(FutureRet::Set(true)));
    assert_eq!(
        woken,
        vec![
            (caller(1), FutureRet::Get(Ok(Value::from(1)))),
            (caller(3), FutureRet::Get(Ok(Value::from(1))))
        ]
    );
    assert_eq!(
        apply(&mut future, 4, FutureOp::Get { timeout_ms: None }).0,
        Outcome::Done(FutureRet::Get(Ok(Value::from(1))))
    );
}

#[test]
fn barrier_trips_per_generation_and_breaks_on_timeout() {
    let mut barrier = CyclicBarrier::new(3);
    let wait = CyclicBarrierOp::Wait { timeout_ms: None };
    for generation in 0..2 {
        apply(&mut barrier, 1, wait.clone());
        apply(&mut barrier, 2, wait.clone());
        let (outcome, woken) = apply(&mut barrier, 3, wait.clone());
        assert_eq!(outcome, Outcome::Done(CyclicBarrierRet::Wait(Ok(0))));
        assert_eq!(
            woken,
            vec![(caller(1), CyclicBarrierRet::Wait(Ok(2))), (caller(2), CyclicBarrierRet::Wait(Ok(1)))]
        );
        assert_eq!(barrier.generation(), generation + 1);
    }
    apply(&mut barrier, 1, CyclicBarrierOp::Wait { timeout_ms: Some(5) });
    apply(&mut barrier, 2, wait.clone());
    let (answer, woken) = expire(&mut barrier, 1);
    assert_eq!(answer, Some(CyclicBarrierRet::Wait(Err(BarrierError::Timeout))));
    assert_eq!(woken, vec![(caller(2), CyclicBarrierRet::Wait(Err(BarrierError::Broken)))]);
    assert_eq!(
        apply(&mut barrier, 3, wait.clone()).0,
        Outcome::Done(CyclicBarrierRet::Wait(Err(BarrierError::Broken)))
    );
    apply(&mut barrier, 4, CyclicBarrierOp::Reset {});
    assert_eq!(apply(&mut barrier, 1, wait).0, Outcome::Parked { timeout_ms: None }, "reset repairs it");
}

#[test]
fn latch_opens_once_for_every_waiter() {
    let mut latch = CountDownLatch::new(2);
    apply(&mut latch, 1, CountDownLatchOp::Wait { timeout_ms: None });
    apply(&mut latch, 2, CountDownLatchOp::Wait { timeout_ms: Some(1) });
    assert_eq!(expire(&mut latch, 2).0, Some(CountDownLatchRet::Wait(false)));
    assert!(apply(&mut latch, 9, CountDownLatchOp::CountDown {}).1.is_empty());
    let (_, woken) = apply(&mut latch, 9, CountDownLatchOp::CountDown {});
    assert_eq!(woken, vec![(caller(1), CountDownLatchRet::Wait(true))]);
    assert!(apply(&mut latch, 9, CountDownLatchOp::CountDown {}).1.is_empty(), "stays open");
    assert_eq!(latch.count(), 0);
}
