//! `dso-server`: one Crucial-rs DSO node serving the built-in object types, alone or as a
//! member of a replicated cluster (the command line is [`crucial_dso::cli`]).

use std::process::ExitCode;

/// A server allocates and frees small buffers for every call: mimalloc does that for less CPU
/// than the system allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    crucial_dso::cli::main(crucial_dso::ServerBuilder::new())
}
