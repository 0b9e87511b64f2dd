//! Fuzz target `http_events`: its body is `socket_bridge::fuzzing::http_events` (docs/reliability.md, "Fuzzing").
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| socket_bridge::fuzzing::http_events(data));
