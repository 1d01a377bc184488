//! A cloud-thread workload for real clusters: waves of threads on the local executor, each
//! moving amounts between counters (accounts) along a plan drawn from its own seed, with
//! injected kills, retries and speculative backups; between waves the program's own plain
//! calls (through the executor's DSO handle) set and read a wave marker. Every plan is known
//! in advance, so exactly-once effects are checked exactly: every account must end at the sum
//! of its planned movements and the transfer count at the number of transfers planned.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crucial_dso::DsoError;
use crucial_threads::{CloudThread, Context, Executor, Local, LocalFaults, Runnable};
use serde::{Deserialize, Serialize};

use crate::simulation::rng::Rng;

/// The counter counting transfers done.
const DONE: &str = "transfers-done";
/// The key the program's plain calls set and read between waves.
const WAVE: &str = "transfers-wave";

/// One cloud thread: `transfers` movements between `accounts` accounts, planned from `seed`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transfers {
    /// Seeds the plan (a function of the wave and the thread).
    pub seed: u64,
    /// Accounts to move between.
    pub accounts: u64,
    /// Movements.
    pub transfers: u64,
}

impl Transfers {
    /// The plan: (from, to, amount) for each movement.
    pub fn plan(&self) -> Vec<(u64, u64, i64)> {
        let mut rng = Rng::new(self.seed);
        (0..self.transfers)
            .map(|_| {
                let from = rng.below(self.accounts);
                let to = (from + 1 + rng.below(self.accounts - 1)) % self.accounts;
                (from, to, 1 + rng.below(100) as i64)
            })
            .collect()
    }

    /// DSO calls one run of this thread makes.
    pub fn calls(&self) -> u64 {
        2 * self.transfers + 1
    }
}

fn account(index: u64) -> String {
    format!("account-{index}")
}

impl Runnable for Transfers {
    const NAME: &'static str = "crucial-sim.transfers";
    type Output = i64;
    type Error = DsoError;

    async fn run(self, ctx: &Context) -> Result<i64, DsoError> {
        for (from, to, amount) in self.plan() {
            ctx.dso().counter(account(from)).add(-amount).await?;
            ctx.dso().counter(account(to)).add(amount).await?;
        }
        ctx.dso().counter(DONE).add(self.transfers as i64).await
    }
}

crucial_threads::register!(Transfers);

/// The workload's shape.
#[derive(Clone, Debug)]
pub struct TransferWorkload {
    /// The cluster's members (`HOST:PORT`).
    pub members: Vec<String>,
    /// Threads per wave.
    pub threads_per_wave: u64,
    /// Accounts.
    pub accounts: u64,
    /// Movements per thread.
    pub transfers: u64,
    /// Seeds the plans and the kills.
    pub seed: u64,
    /// A wave starts at most this often (each thread leaves its stored outcome behind, so an
    /// unpaced run grows the cluster's keys by thousands a minute).
    pub wave_interval: Duration,
}

/// What the waves did.
#[derive(Debug, Default)]
pub struct TransferOutcome {
    /// Threads started (each with its retries and backups).
    pub threads: u64,
    /// Threads whose join failed, with why.
    pub failed: Vec<String>,
    /// Plain calls of the program that failed, with why.
    pub plain_failures: Vec<String>,
    /// Accounts whose final balance differs from the sum of their planned movements.
    pub wrong_balances: Vec<String>,
    /// Transfers counted, and planned (by the threads that succeeded).
    pub done: (i64, i64),
}

impl std::fmt::Display for TransferOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} started, {} failed, {} plain calls failed, {} of {} transfers counted, {} balances wrong",
            self.threads,
            self.failed.len(),
            self.plain_failures.len(),
            self.done.0,
            self.done.1,
            self.wrong_balances.len()
        )
    }
}

/// Runs waves of threads until `until`, then checks every balance.
pub async fn run_waves(workload: TransferWorkload, until: Instant) -> Result<TransferOutcome, String> {
    let calls = Transfers { seed: 0, accounts: workload.accounts, transfers: workload.transfers }.calls();
    let faults = LocalFaults { seed: workload.seed, kill_attempts_below: 1, kill_at_calls: 1..=calls };
    let executor = Local::builder()
        .dso(workload.members.clone())
        .faults(faults)
        .start()
        .await
        .map_err(|e| format!("the cloud-thread executor did not start: {e}"))?;
    let mut outcome = TransferOutcome::default();
    let mut expected: BTreeMap<u64, i64> = BTreeMap::new();
    let mut wave = 0u64;
    while Instant::now() < until {
        let wave_started = Instant::now();
        let marker = executor.dso().atomic_long(WAVE);
        if let Err(error) = marker.set(wave as i64).await {
            outcome.plain_failures.push(format!("setting the wave marker before wave {wave}: {error}"));
        }
        let mut handles = Vec::new();
        for thread in 0..workload.threads_per_wave {
            let runnable = Transfers {
                seed: workload.seed ^ (wave << 20 | thread).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                accounts: workload.accounts,
                transfers: workload.transfers,
            };
            let mut builder = CloudThread::builder().retries(3).timeout(Duration::from_secs(60));
            if thread % 2 == 0 {
                builder = builder.backup_after(Duration::ZERO);
            }
            handles.push((runnable.clone(), builder.spawn(&executor, runnable)));
            outcome.threads += 1;
        }
        for (runnable, handle) in handles {
            match handle.join().await {
                Ok(_) => {
                    for (from, to, amount) in runnable.plan() {
                        *expected.entry(from).or_default() -= amount;
                        *expected.entry(to).or_default() += amount;
                    }
                    outcome.done.1 += runnable.transfers as i64;
                }
                Err(error) => outcome.failed.push(format!("wave {wave}: {error}")),
            }
        }
        match marker.get().await {
            Ok(read) if read == wave as i64 => {}
            Ok(read) => outcome.plain_failures.push(format!("the wave marker read {read} after wave {wave}")),
            Err(error) => {
                outcome.plain_failures.push(format!("reading the wave marker after wave {wave}: {error}"))
            }
        }
        wave += 1;
        tokio::time::sleep(workload.wave_interval.saturating_sub(wave_started.elapsed())).await;
    }
    for index in 0..workload.accounts {
        let balance = executor.dso().counter(account(index)).get().await.map_err(|e| e.to_string())?;
        let planned = expected.get(&index).copied().unwrap_or(0);
        if balance != planned {
            outcome.wrong_balances.push(format!("{}: {balance}, planned {planned}", account(index)));
        }
    }
    outcome.done.0 = executor.dso().counter(DONE).get().await.map_err(|e| e.to_string())?;
    Ok(outcome)
}
