//! Real partitions between real processes: `dso-server` members in network namespaces of
//! their own ([`crate::netns`]), the recorded workload of [`crate::processes`] running from
//! the hub namespace, and a schedule of partitions, each held and then healed, cutting links
//! by dropping their packets. Measures what each partition costs: the longest wait of a call,
//! the longest time without any answer, how soon after the heal every member serves again,
//! and the configurations stored; the history is checked afterwards like any other.

use std::time::{Duration, Instant};

use crucial_dso::client::member_status;

use crate::netns::{Partition, Topology};
use crate::processes::{ProcessOutcome, ProcessRun, Running, Servers};
use crate::simulation::rng::Rng;
use crate::simulation::run::Recorded;
use crate::simulation::workload::PARKING_TYPES;
use crate::transfers::{run_waves, TransferOutcome, TransferWorkload};

/// How long after a heal the members have to serve together again before the round fails.
const REJOIN_WITHIN: Duration = Duration::from_secs(30);

/// The schedule: `rounds` partitions, kinds in turn, targets drawn from `seed`.
#[derive(Clone, Debug)]
pub struct PartitionPlan {
    /// Kinds, used in turn.
    pub kinds: Vec<Partition>,
    /// Partitions in all.
    pub rounds: usize,
    /// How long each is held.
    pub hold: Duration,
    /// How long the cluster runs healed after each (at least until it serves whole again).
    pub healed: Duration,
    /// Draws the targets.
    pub seed: u64,
    /// Cloud threads per wave of the transfer workload (0: none), which runs beside the
    /// plain clients for the whole schedule.
    pub threads_per_wave: u64,
    /// A wave starts at most this often.
    pub wave_interval: Duration,
}

/// What one partition cost.
#[derive(Clone, Debug)]
pub struct PartitionRound {
    /// The kind.
    pub kind: Partition,
    /// The member it targeted.
    pub target: usize,
    /// When it started and was healed, in the history's ms.
    pub cut_ms: u64,
    /// When it was healed.
    pub healed_ms: u64,
    /// When its round ended (the cluster whole again and `healed` passed).
    pub ended_ms: u64,
    /// The longest wait of a call that does not park and was in flight from the cut to the
    /// end of the round.
    pub longest_wait_ms: u64,
    /// The longest time within that window without any call answered.
    pub longest_silence_ms: u64,
    /// From the heal until every member served in one configuration listing all of them.
    pub whole_after_heal_ms: Option<u64>,
    /// Configurations stored from the cut until the cluster was whole again.
    pub epochs: u64,
}

/// What a run with partitions recorded.
#[derive(Debug)]
pub struct PartitionsOutcome {
    /// The history, the witness counter and the final configuration.
    pub run: ProcessOutcome,
    /// Each partition.
    pub rounds: Vec<PartitionRound>,
    /// What the cloud threads did, if they ran.
    pub threads: Option<TransferOutcome>,
}

/// Starts the members in `topology`'s namespaces (`run.namespaces` must name them), runs the
/// workload from the hub (the calling thread must have entered it: see
/// [`Topology::enter_hub`]) and the partitions of `plan`; returns what was recorded.
pub async fn run_partitions(
    run: ProcessRun,
    topology: &Topology,
    plan: &PartitionPlan,
    progress: impl Fn(&PartitionRound),
) -> Result<PartitionsOutcome, String> {
    let servers = Servers::start(&run)?;
    servers.settled(Duration::from_secs(30)).await?;
    let running = Running::start(&servers, &run).await?;
    let started = running.recorder.started;
    let threads = (plan.threads_per_wave > 0).then(|| {
        let workload = TransferWorkload {
            members: servers.addrs.clone(),
            threads_per_wave: plan.threads_per_wave,
            accounts: 8,
            transfers: 5,
            seed: plan.seed,
            wave_interval: plan.wave_interval,
        };
        let schedule = (plan.hold + plan.healed) * plan.rounds as u32;
        tokio::spawn(run_waves(workload, Instant::now() + schedule))
    });
    let since = |at: Instant| at.duration_since(started).as_millis() as u64;
    let mut rng = Rng::new(plan.seed);
    let mut rounds = Vec::new();
    for round in 0..plan.rounds {
        let kind = plan.kinds[round % plan.kinds.len()];
        let target = rng.below(topology.members() as u64) as usize;
        let epoch_before = newest_epoch(&servers).await;
        let ends = topology.cut_ends(kind, target);
        topology.cut(&ends)?;
        let cut_ms = since(Instant::now());
        tokio::time::sleep(plan.hold).await;
        topology.heal(&ends)?;
        let healed = Instant::now();
        let whole = servers.settled(REJOIN_WITHIN).await.ok().map(|_| since(Instant::now()) - since(healed));
        let epoch_after = newest_epoch(&servers).await;
        tokio::time::sleep(plan.healed.saturating_sub(healed.elapsed())).await;
        let partition = PartitionRound {
            kind,
            target,
            cut_ms,
            healed_ms: since(healed),
            ended_ms: since(Instant::now()),
            longest_wait_ms: 0,
            longest_silence_ms: 0,
            whole_after_heal_ms: whole,
            epochs: epoch_after.saturating_sub(epoch_before),
        };
        progress(&partition);
        rounds.push(partition);
        if whole.is_none() {
            break;
        }
    }
    let threads = match threads {
        Some(waves) => Some(waves.await.map_err(|e| e.to_string())??),
        None => None,
    };
    let outcome = running.finish(&servers).await?;
    for partition in &mut rounds {
        let window = partition.cut_ms..partition.ended_ms;
        partition.longest_wait_ms = longest_wait_ms(&outcome.history, &window);
        partition.longest_silence_ms = longest_silence_ms(&outcome.history, &window);
    }
    Ok(PartitionsOutcome { run: outcome, rounds, threads })
}

/// The newest epoch any member reports.
async fn newest_epoch(servers: &Servers) -> u64 {
    let mut newest = 0;
    for addr in &servers.addrs {
        let status =
            member_status(addr, servers.token.as_ref(), servers.tls.as_ref(), Duration::from_millis(300))
                .await;
        if let Ok(status) = status {
            newest = newest.max(status.config.epoch);
        }
    }
    newest
}

/// The longest wait of a call that does not park and was in flight within `window` (a call
/// with no answer counts as waiting until the last call of the history started).
pub fn longest_wait_ms(history: &[Recorded], window: &std::ops::Range<u64>) -> u64 {
    let last_call_ms = history.iter().map(|op| op.call_ms).max().unwrap_or(0);
    (history.iter())
        .filter(|op| !PARKING_TYPES.contains(&op.type_name.as_str()))
        .map(|op| {
            let ret_ms = if op.output.is_some() { op.ret_ms } else { last_call_ms.max(op.call_ms) };
            (op.call_ms, ret_ms)
        })
        .filter(|(call_ms, ret_ms)| *call_ms < window.end && *ret_ms >= window.start)
        .map(|(call_ms, ret_ms)| ret_ms - call_ms)
        .max()
        .unwrap_or(0)
}

/// The longest time within `window` in which no call that does not park was answered while
/// one was waiting (clients all parked on barriers or futures are not a stall).
pub fn longest_silence_ms(history: &[Recorded], window: &std::ops::Range<u64>) -> u64 {
    let last_call_ms = history.iter().map(|op| op.call_ms).max().unwrap_or(0);
    let mut calls: Vec<(u64, u64)> = (history.iter())
        .filter(|op| !PARKING_TYPES.contains(&op.type_name.as_str()))
        .map(|op| (op.call_ms, if op.output.is_some() { op.ret_ms } else { u64::MAX }))
        .collect();
    calls.sort_unstable();
    // The latest answer of the calls started so far: a gap from `a` to `b` is a stall if a
    // call started by `a` was still waiting at `b`.
    let mut latest = Vec::with_capacity(calls.len());
    for (_, ret_ms) in &calls {
        latest.push(latest.last().copied().unwrap_or(0).max(*ret_ms));
    }
    let mut answers: Vec<u64> =
        calls.iter().map(|(_, ret_ms)| *ret_ms).filter(|ret_ms| window.contains(ret_ms)).collect();
    answers.push(window.start);
    answers.push(window.end.min(last_call_ms.max(window.start)));
    answers.sort_unstable();
    (answers.windows(2))
        .filter(|pair| {
            let started = calls.partition_point(|(call_ms, _)| *call_ms <= pair[0]);
            started > 0 && latest[started - 1] >= pair[1]
        })
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or(0)
}

/// Calls that do not park and got no answer (their client gave up or lost its connection):
/// the cluster failed them.
pub fn unanswered(history: &[Recorded]) -> usize {
    (history.iter())
        .filter(|op| op.output.is_none() && !PARKING_TYPES.contains(&op.type_name.as_str()))
        .count()
}

/// Calls refused for their session (already acknowledged, non-deterministic): a protocol
/// error that must never reach a user.
pub fn session_refusals(history: &[Recorded]) -> Vec<&Recorded> {
    (history.iter())
        .filter(|op| {
            matches!(&op.output, Some(Err(error))
                if error.contains("already acknowledged") || error.contains("non-deterministic replay"))
        })
        .collect()
}
