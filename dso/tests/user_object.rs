//! A user-defined object: written with `#[shared]`, registered in a server builder, called
//! through its generated typed handle; unknown types, methods and bad arguments are typed errors.

#![cfg(not(madsim))]

use std::net::SocketAddr;

use crucial_dso::core::object::{encode, ApplyContext, CallId, Outcome};
use crucial_dso::core::protocol::Action;
use crucial_dso::{shared, CallError, Dso, DsoError, ServerBuilder, Shared};
use serde::{Deserialize, Serialize};

/// The server's version of a user type: a gate that opens after `needed` arrivals.
mod server_side {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub struct Gate {
        pub needed: u32,
        pub arrived: u32,
        pub waiting: Vec<CallId>,
    }

    impl Gate {
        pub fn new(needed: u32) -> Self {
            Self { needed, arrived: 0, waiting: Vec::new() }
        }
    }

    #[shared]
    impl Gate {
        /// Arrives and waits until the gate opens; how many had arrived before.
        pub fn pass(&mut self, ctx: &mut ApplyContext<GateRet>) -> Outcome<u32> {
            let before = self.arrived;
            self.arrived += 1;
            if self.arrived < self.needed {
                self.waiting.push(ctx.caller());
                return Outcome::Parked { timeout_ms: None };
            }
            for (index, waiter) in self.waiting.drain(..).enumerate() {
                ctx.wake(waiter, GateRet::Pass(index as u32));
            }
            Outcome::Done(before)
        }

        /// Arrivals so far.
        pub fn arrived(&self) -> u32 {
            self.arrived
        }

        /// Changes how many arrivals open the gate.
        pub fn set_needed(&mut self, needed: u32) {
            self.needed = needed;
        }
    }
}

/// A newer client-side version of the same type with a method the server does not know.
mod client_side {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub struct Gate {
        pub needed: u32,
        pub arrived: u32,
        pub waiting: Vec<CallId>,
    }

    #[shared(name = "Gate")]
    impl Gate {
        /// Arrivals so far.
        pub fn arrived(&self) -> u32 {
            self.arrived
        }

        /// Not on the server.
        pub fn close(&mut self) -> bool {
            true
        }
    }
}

/// A type nobody registered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Unregistered;

#[shared]
impl Unregistered {
    /// Answers true.
    pub fn ping(&self) -> bool {
        true
    }
}

async fn server_with_gate() -> (crucial_dso::Server, Dso) {
    let server = ServerBuilder::new()
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .register::<server_side::Gate>()
        .start()
        .await
        .unwrap();
    let client = server.connect().await.unwrap();
    (server, client)
}

#[tokio::test]
async fn user_object_through_its_generated_handle() {
    let (server, dso) = server_with_gate().await;
    let gate: Shared<server_side::Gate> = dso.object("gate", server_side::Gate::new(3)).await.unwrap();
    assert_eq!(gate.key(), "gate");
    let mut passers = Vec::new();
    for _ in 0..2 {
        let client = server.connect().await.unwrap();
        passers.push(tokio::spawn(async move { client.handle::<server_side::Gate>("gate").pass().await }));
    }
    while gate.arrived().await.unwrap() < 2 {
        tokio::task::yield_now().await;
    }
    assert!(passers.iter().all(|p| !p.is_finished()), "the first two park");
    assert_eq!(gate.pass().await.unwrap(), 2, "the third opens the gate");
    let mut woken: Vec<u32> = Vec::new();
    for passer in passers {
        woken.push(passer.await.unwrap().unwrap());
    }
    woken.sort();
    assert_eq!(woken, vec![0, 1]);
    gate.set_needed(1).await.unwrap();
    assert_eq!(gate.pass().await.unwrap(), 3);
}

#[tokio::test]
async fn unknown_type_method_and_bad_arguments_are_typed_errors() {
    let (_server, dso) = server_with_gate().await;
    dso.object("gate", server_side::Gate::new(1)).await.unwrap();

    let newer = dso.handle::<client_side::Gate>("gate");
    assert_eq!(newer.arrived().await.unwrap(), 0, "methods both sides know still work");
    match newer.close().await {
        Err(DsoError::Call(CallError::UnknownMethod { type_name, method })) => {
            assert_eq!((type_name.as_str(), method.as_str()), ("Gate", "close"));
        }
        other => panic!("expected UnknownMethod, got {other:?}"),
    }

    match dso.object("u", Unregistered).await {
        Err(DsoError::Call(CallError::UnknownType { type_name })) => assert_eq!(type_name, "Unregistered"),
        other => panic!("expected UnknownType, got {other:?}"),
    }
    match dso.handle::<Unregistered>("u").ping().await {
        Err(DsoError::Call(CallError::UnknownType { .. })) => {}
        other => panic!("expected UnknownType, got {other:?}"),
    }

    let wrong_args = Action::Invoke { method: "set_needed".into(), args: encode(&("not a number",)) };
    match dso.call_raw("gate", "Gate", wrong_args).await {
        Err(DsoError::Call(CallError::BadArguments { method, .. })) => assert_eq!(method, "set_needed"),
        other => panic!("expected BadArguments, got {other:?}"),
    }
    let wrong_state = Action::Create { state: vec![0xff; 3] };
    match dso.call_raw("other-gate", "Gate", wrong_state).await {
        Err(DsoError::Call(CallError::BadState { .. })) => {}
        other => panic!("expected BadState, got {other:?}"),
    }
    assert_eq!(dso.handle::<server_side::Gate>("gate").arrived().await.unwrap(), 0, "nothing changed");
}
