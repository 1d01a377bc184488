//! The fuzz targets' inputs, replayed without a fuzzer (`fuzz/`, run with `cargo +nightly fuzz`):
//! every committed corpus input and crash, through the same code the targets run
//! (`common/fuzz_inputs.rs`). A crash the fuzzer finds lands in `fuzz/regressions/<target>/`
//! once fixed, and from then on runs here with every test run.
//!
//! Set `FUZZ_WRITE_SEEDS=1` to (re)write the seed inputs (valid calls of every built-in type,
//! peer messages and configurations, in the node target's format) into `fuzz/seeds/`.

#[path = "common/fuzz_inputs.rs"]
mod fuzz_inputs;

use std::path::{Path, PathBuf};

use crucial_dso::cluster::{Configuration, Member};
use crucial_dso::core::object::{encode, CallId, Operation};
use crucial_dso::core::protocol::{Action, Call, PeerMessage};
use crucial_dso::objects::{BlobOp, CounterOp, ListOp, MapOp, SemaphoreOp};
use crucial_dso::Value;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file under `fuzz/<folder>/<target>/`.
fn inputs(folder: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(folder).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(|entry| Some(entry.ok()?.path())).collect();
    files.sort();
    files.into_iter().filter_map(|path| Some((path.clone(), std::fs::read(&path).ok()?))).collect()
}

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let mut replayed = 0;
    for folder in ["regressions", "seeds", "corpus"] {
        for (path, bytes) in inputs(folder, target) {
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "{} panics", path.display());
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn every_committed_frames_input_is_handled() {
    let replayed = replay("frames", fuzz_inputs::frames);
    assert!(replayed > 0, "the frames corpus is committed");
}

#[test]
fn every_committed_node_input_is_handled() {
    let replayed = replay("node_inputs", fuzz_inputs::node_inputs);
    assert!(replayed > 0, "the node corpus is committed");
}

/// One input of the node target: `kind`, then a payload of at most 255 bytes.
fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![kind, payload.len().min(255) as u8];
    bytes.extend_from_slice(&payload[..payload.len().min(255)]);
    bytes
}

fn call(seq: u64, key: &str, type_name: &str, op: &impl Operation) -> Vec<u8> {
    let call = Call {
        id: CallId { session: 1, seq },
        acked_below: seq,
        key: key.into(),
        type_name: type_name.into(),
        action: Action::Invoke { method: op.method().into(), args: op.encode_args() },
        history: 0,
    };
    record(0, &encode(&call))
}

/// Valid inputs for the node target: calls of several types (with a wait and a timeout), peer
/// messages and a new configuration; and their frames for the frames target.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let member = |id| Member { id, addr: format!("m{id}") };
    let first = Configuration::initial(vec![member(1), member(2)], 2);
    let second = first.next(vec![member(1), member(2), member(3)]);
    let tick = record(2, &[0, 50]);
    let calls = [
        call(1, "c", "Counter", &CounterOp::Add { delta: 3 }),
        call(2, "l", "List", &ListOp::Add { value: Value::Str("x".into()) }),
        call(3, "m", "Map", &MapOp::Put { key: Value::Int(1), value: Value::Int(2) }),
        call(4, "b", "Blob", &BlobOp::Append { bytes: vec![1, 2, 3] }),
        call(5, "s", "Semaphore", &SemaphoreOp::Acquire { permits: 1, timeout_ms: Some(30) }),
        call(6, "c", "List", &CounterOp::Get {}),
    ];
    let peers = [
        record(1, &encode(&PeerMessage::Heartbeat { epoch: 1 })),
        record(1, &encode(&PeerMessage::Pull { config: second.clone(), after: None })),
        record(1, &encode(&PeerMessage::Ack { epoch: 1, key: "c".into(), applied: 1 })),
        record(3, &encode(&second)),
    ];
    let mut node_inputs: Vec<u8> = calls.concat();
    node_inputs.extend(tick.iter().chain(&tick).chain(&tick));
    node_inputs.extend(peers.concat());
    node_inputs.extend(tick.iter().chain(&tick));
    let mut frame = Vec::new();
    crucial_dso::core::codec::encode_frame(
        &crucial_dso::core::protocol::Request::Peer(PeerMessage::Pull { config: second, after: None }),
        &mut frame,
    );
    vec![("node_inputs", calls.concat()), ("node_inputs", node_inputs), ("frames", frame)]
}

#[test]
fn the_seed_inputs_are_handled_and_can_be_rewritten() {
    for (target, bytes) in seeds() {
        match target {
            "frames" => fuzz_inputs::frames(&bytes),
            _ => fuzz_inputs::node_inputs(&bytes),
        }
    }
    if std::env::var_os("FUZZ_WRITE_SEEDS").is_some() {
        for (index, (target, bytes)) in seeds().into_iter().enumerate() {
            let dir = fuzz_dir().join("seeds").join(target);
            std::fs::create_dir_all(&dir).expect("seed folder");
            std::fs::write(dir.join(format!("seed-{index}")), bytes).expect("seed written");
        }
    }
}
