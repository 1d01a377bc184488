//! The Santa Claus problem (Trono): Santa sleeps until all nine reindeer are back, then
//! harnesses them and delivers; or until three elves need help, then helps them; reindeer
//! first. A user-defined monitor object (`Workshop`) parks reindeer, elves and Santa; a DSO
//! `Semaphore` of three permits lets at most three elves queue for help.

use crucial_dso::core::object::{ApplyContext, CallId, Outcome};
use crucial_dso::shared;
use crucial_threads::{Context, Runnable};
use serde::{Deserialize, Serialize};

/// Reindeer in the team.
pub const REINDEER: u64 = 9;
/// Elves Santa helps at once.
pub const ELVES_PER_HELP: u64 = 3;

/// What Santa was woken for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Task {
    /// The nine reindeer (ids) are back: harness them and deliver.
    Deliver(Vec<u64>),
    /// These three elves (ids) need help.
    Help(Vec<u64>),
}

/// The monitor: who waits, and what Santa is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Workshop {
    /// Reindeer back from vacation, waiting for Santa: their parked calls and ids.
    reindeer: Vec<(CallId, u64)>,
    /// Elves waiting for help.
    elves: Vec<(CallId, u64)>,
    /// Santa asleep, waiting for a task.
    santa: Option<CallId>,
    /// The group Santa is serving (its parked calls), if any.
    serving: Option<(Task, Vec<(CallId, u64)>)>,
    /// Reindeer of the current team harnessed so far.
    harnessed: Vec<u64>,
    /// Deliveries made.
    deliveries: u64,
}

#[shared]
impl Workshop {
    /// A reindeer is back; waits until Santa harnesses it. Returns the delivery it pulls.
    pub fn reindeer_back(&mut self, id: u64, ctx: &mut ApplyContext<WorkshopRet>) -> Outcome<u64> {
        self.reindeer.push((ctx.caller(), id));
        self.wake_santa(ctx);
        Outcome::Parked { timeout_ms: None }
    }

    /// An elf needs help; waits until Santa helps it. Returns the delivery count then.
    pub fn elf_asks(&mut self, id: u64, ctx: &mut ApplyContext<WorkshopRet>) -> Outcome<u64> {
        self.elves.push((ctx.caller(), id));
        self.wake_santa(ctx);
        Outcome::Parked { timeout_ms: None }
    }

    /// Santa sleeps until nine reindeer or three elves wait (reindeer first) and takes that
    /// group; `None` while he still serves one (he must finish it first).
    pub fn santa_sleeps(&mut self, ctx: &mut ApplyContext<WorkshopRet>) -> Outcome<Option<Task>> {
        if self.serving.is_some() {
            return Outcome::Done(None);
        }
        if let Some(task) = self.take_group() {
            return Outcome::Done(Some(task));
        }
        self.santa = Some(ctx.caller());
        Outcome::Parked { timeout_ms: None }
    }

    /// Santa harnesses reindeer `id` of his team (it stops waiting); whether it was in it.
    pub fn harness(&mut self, id: u64, ctx: &mut ApplyContext<WorkshopRet>) -> Outcome<bool> {
        let Some((Task::Deliver(_), calls)) = &mut self.serving else { return Outcome::Done(false) };
        let Some(position) = calls.iter().position(|(_, reindeer)| *reindeer == id) else {
            return Outcome::Done(false);
        };
        let (call, _) = calls.remove(position);
        self.harnessed.push(id);
        ctx.wake(call, WorkshopRet::ReindeerBack(self.deliveries + 1));
        Outcome::Done(true)
    }

    /// Santa delivers the toys: how many reindeer were harnessed (all nine, or the
    /// invariant broke).
    pub fn deliver(&mut self) -> u64 {
        if !matches!(self.serving, Some((Task::Deliver(_), _))) {
            return 0;
        }
        self.serving = None;
        self.deliveries += 1;
        std::mem::take(&mut self.harnessed).len() as u64
    }

    /// Santa helps the elves of his group (they stop waiting): how many.
    pub fn help(&mut self, ctx: &mut ApplyContext<WorkshopRet>) -> Outcome<u64> {
        let Some((Task::Help(_), calls)) = &self.serving else { return Outcome::Done(0) };
        for (call, _) in calls.clone() {
            ctx.wake(call, WorkshopRet::ElfAsks(self.deliveries));
        }
        let helped = calls.len() as u64;
        self.serving = None;
        Outcome::Done(helped)
    }
}

impl Workshop {
    /// Takes a full group, reindeer first, and marks it as served.
    fn take_group(&mut self) -> Option<Task> {
        let (task, calls) = if self.reindeer.len() as u64 >= REINDEER {
            let team: Vec<_> = self.reindeer.drain(..REINDEER as usize).collect();
            (Task::Deliver(team.iter().map(|(_, id)| *id).collect()), team)
        } else if self.elves.len() as u64 >= ELVES_PER_HELP {
            let group: Vec<_> = self.elves.drain(..ELVES_PER_HELP as usize).collect();
            (Task::Help(group.iter().map(|(_, id)| *id).collect()), group)
        } else {
            return None;
        };
        self.serving = Some((task.clone(), calls));
        Some(task)
    }

    /// Wakes a sleeping Santa if a group is ready.
    fn wake_santa(&mut self, ctx: &mut ApplyContext<WorkshopRet>) {
        if self.santa.is_some() && self.serving.is_none() {
            if let Some(task) = self.take_group() {
                let santa = self.santa.take().expect("checked above");
                ctx.wake(santa, WorkshopRet::SantaSleeps(Some(task)));
            }
        }
    }
}

/// Who a thread is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Santa: serves until `deliveries` deliveries and `helps` helps are done.
    Santa {
        /// Deliveries to make.
        deliveries: u64,
        /// Groups of elves to help.
        helps: u64,
    },
    /// Reindeer `id`: comes back `rounds` times.
    Reindeer {
        /// Its id.
        id: u64,
        /// How many times.
        rounds: u64,
    },
    /// Elf `id`: takes tickets from a shared `AtomicLong` and asks for help once per ticket,
    /// until `requests` tickets are gone (with fixed counts per elf, the last requests could
    /// fall to fewer than three elves, who would wait for ever).
    Elf {
        /// Its id.
        id: u64,
        /// Tickets in all (a multiple of 3).
        requests: u64,
    },
}

/// What a thread saw: Santa's tasks with the harness count of each delivery; for reindeer the
/// deliveries pulled; for elves the help count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seen {
    /// Santa's tasks in order, each delivery with the number of reindeer harnessed for it.
    Santa(Vec<(Task, u64)>),
    /// The deliveries a reindeer pulled.
    Reindeer(Vec<u64>),
    /// How many times an elf was helped.
    Elf(u64),
}

/// One thread of the Santa Claus problem.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SantaActor {
    /// Its role.
    pub role: Role,
    /// Prefix of this run's keys.
    pub run: String,
}

#[crucial_threads::runnable]
impl Runnable for SantaActor {
    const NAME: &'static str = "apps.santa";
    type Output = Seen;
    type Error = crucial_dso::DsoError;

    async fn run(self, ctx: &Context) -> Result<Seen, Self::Error> {
        let workshop = ctx.dso().handle::<Workshop>(format!("{}.workshop", self.run));
        match self.role {
            Role::Santa { deliveries, helps } => {
                let mut tasks = Vec::new();
                let (mut delivered, mut helped) = (0, 0);
                while delivered < deliveries || helped < helps {
                    match workshop.santa_sleeps().await? {
                        Some(Task::Deliver(team)) => {
                            for reindeer in &team {
                                workshop.harness(*reindeer).await?;
                            }
                            let harnessed = workshop.deliver().await?;
                            tasks.push((Task::Deliver(team), harnessed));
                            delivered += 1;
                        }
                        Some(Task::Help(elves)) => {
                            let count = workshop.help().await?;
                            tasks.push((Task::Help(elves), count));
                            helped += 1;
                        }
                        None => return Err(crucial_dso::DsoError::Codec("Santa was still serving".into())),
                    }
                }
                Ok(Seen::Santa(tasks))
            }
            Role::Reindeer { id, rounds } => {
                let mut pulled = Vec::new();
                for _ in 0..rounds {
                    pulled.push(workshop.reindeer_back(id).await?);
                }
                Ok(Seen::Reindeer(pulled))
            }
            Role::Elf { id, requests } => {
                let queue = ctx.dso().semaphore(format!("{}.elf_queue", self.run), ELVES_PER_HELP).await?;
                let tickets = ctx.dso().atomic_long(format!("{}.tickets", self.run));
                let mut helped = 0;
                while tickets.increment_and_get().await? <= requests as i64 {
                    if !queue.acquire(1, None).await? {
                        return Err(crucial_dso::DsoError::Codec("an untimed acquire gave up".into()));
                    }
                    workshop.elf_asks(id).await?;
                    queue.release(1).await?;
                    helped += 1;
                }
                Ok(Seen::Elf(helped))
            }
        }
    }
}

/// The threads: Santa, nine reindeer, `elves` elves (at least 3) sharing `requests` requests
/// for help (a multiple of 3).
pub fn actors(rounds: u64, elves: u64, requests: u64, run: &str) -> Vec<SantaActor> {
    let santa = Role::Santa { deliveries: rounds, helps: requests / ELVES_PER_HELP };
    let reindeer = (0..REINDEER).map(|id| Role::Reindeer { id, rounds });
    let elves = (0..elves).map(|id| Role::Elf { id, requests });
    std::iter::once(santa)
        .chain(reindeer)
        .chain(elves)
        .map(|role| SantaActor { role, run: run.to_string() })
        .collect()
}

/// Checks the invariants on what the threads saw: every delivery by all nine reindeer, each
/// harnessed before it; every help for exactly three distinct elves; each reindeer pulled
/// every delivery in order; the elves helped `requests` times in all. An error names the
/// first broken one.
pub fn check(seen: &[Seen], rounds: u64, requests: u64) -> Result<(), String> {
    let Some(Seen::Santa(tasks)) = seen.first() else { return Err("the first thread is not Santa".into()) };
    let mut deliveries = 0;
    let mut helps = 0;
    for (task, count) in tasks {
        match task {
            Task::Deliver(team) => {
                let mut ids = team.clone();
                ids.sort_unstable();
                ids.dedup();
                if ids.len() as u64 != REINDEER || *count != REINDEER {
                    return Err(format!("delivery {deliveries} had team {team:?} with {count} harnessed"));
                }
                deliveries += 1;
            }
            Task::Help(group) => {
                let mut ids = group.clone();
                ids.sort_unstable();
                ids.dedup();
                if ids.len() as u64 != ELVES_PER_HELP || *count != ELVES_PER_HELP {
                    return Err(format!("help {helps} was for {group:?} ({count} helped)"));
                }
                helps += 1;
            }
        }
    }
    if deliveries != rounds || helps != requests / ELVES_PER_HELP {
        return Err(format!("{deliveries} deliveries and {helps} helps"));
    }
    let mut elves_helped = 0;
    for (index, thread) in seen.iter().enumerate().skip(1) {
        match thread {
            Seen::Reindeer(pulled) if *pulled != (1..=rounds).collect::<Vec<_>>() => {
                return Err(format!("reindeer {} pulled deliveries {pulled:?}", index - 1))
            }
            Seen::Reindeer(_) => {}
            Seen::Elf(helped) => elves_helped += helped,
            Seen::Santa(_) => return Err("two Santas".into()),
        }
    }
    if elves_helped != requests {
        return Err(format!("the elves were helped {elves_helped} times for {requests} requests"));
    }
    Ok(())
}
