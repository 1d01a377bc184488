//! Bytes off the wire, decoded as every frame and payload a member or client reads.
#![no_main]

#[path = "../../dso/tests/common/fuzz_inputs.rs"]
mod fuzz_inputs;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_inputs::frames(data));
