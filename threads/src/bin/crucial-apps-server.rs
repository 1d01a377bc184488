//! `crucial-apps-server`: `dso-server` (the same flags, settings file, TLS and graceful leave)
//! that also serves the example applications' object types (`VectorSum`, `Image`, `Workshop`),
//! for running the examples against a real cluster. Build it with S3 discovery for EC2:
//! `cargo build --release -p crucial-threads --bin crucial-apps-server --features crucial-dso/s3`.

#[path = "../../examples/apps/mod.rs"]
mod apps;

fn main() -> std::process::ExitCode {
    crucial_dso::cli::main(apps::server())
}
