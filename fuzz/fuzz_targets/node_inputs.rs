//! A cluster member fed arbitrary client calls, peer messages, configurations and time.
#![no_main]

#[path = "../../dso/tests/common/fuzz_inputs.rs"]
mod fuzz_inputs;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_inputs::node_inputs(data));
