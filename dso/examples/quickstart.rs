//! Quickstart: an embedded DSO server, built-in objects and a user-defined one.
//! Run with `cargo run -p crucial-dso --example quickstart`.

use crucial_dso::core::object::{ApplyContext, CallId, Outcome};
use crucial_dso::{shared, DsoError, ServerBuilder, Shared};
use serde::{Deserialize, Serialize};

/// A user-defined shared object: a gate that opens once `needed` threads have arrived.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Gate {
    needed: u32,
    waiting: Vec<CallId>,
}

#[shared]
impl Gate {
    /// Arrives; parks until the gate opens.
    pub fn pass(&mut self, ctx: &mut ApplyContext<GateRet>) -> Outcome<()> {
        self.waiting.push(ctx.caller());
        if (self.waiting.len() as u32) < self.needed {
            return Outcome::Parked { timeout_ms: None };
        }
        for waiter in self.waiting.drain(..) {
            ctx.wake(waiter, GateRet::Pass(()));
        }
        Outcome::Done(())
    }
}

#[tokio::main]
async fn main() -> Result<(), DsoError> {
    let bind = "127.0.0.1:0".parse().expect("valid address");
    let server = ServerBuilder::new()
        .bind(bind)
        .register::<Gate>()
        .start()
        .await
        .map_err(|e| DsoError::Protocol(e.to_string()))?;
    let dso = server.connect().await?;

    let hits = dso.atomic_long("hits");
    let mut threads = Vec::new();
    for thread in 0..4 {
        let dso = server.connect().await?;
        threads.push(tokio::spawn(async move {
            let gate: Shared<Gate> = dso.object("gate", Gate { needed: 4, waiting: vec![] }).await?;
            dso.atomic_long("hits").add_and_get(thread + 1).await?;
            gate.pass().await // all four leave together
        }));
    }
    for thread in threads {
        thread.await.expect("thread ran")?;
    }
    println!("hits = {} (expected 10)", hits.get().await?);
    Ok(())
}
