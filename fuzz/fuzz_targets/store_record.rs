//! Fuzz target `store_record`: its body is `socket_bridge::fuzzing::store_record` (docs/reliability.md, "Fuzzing").
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| socket_bridge::fuzzing::store_record(data));
