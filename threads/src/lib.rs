//! Cloud threads: each thread of a program runs as one serverless invocation and shares
//! distributed objects through [`crucial_dso`]. The executors arrive with the cloud-thread issue.

pub use crucial_dso as dso;
