//! Fuzz target `nats_message`: its body is `socket_bridge::fuzzing::nats_message` (docs/reliability.md, "Fuzzing").
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| socket_bridge::fuzzing::nats_message(data));
