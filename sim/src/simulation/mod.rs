//! The deterministic simulator: the real sans-IO node and client session on a simulated clock
//! and network, under a seeded nemesis, with every operation recorded and checked.

pub mod availability;
pub mod nemesis;
pub mod report;
pub mod rng;
pub mod run;
pub mod user_type;
pub mod verify;
pub mod workload;
