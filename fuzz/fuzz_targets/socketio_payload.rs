//! Fuzz target `socketio_payload`: its body is `socket_bridge::fuzzing::socketio_payload` (docs/reliability.md, "Fuzzing").
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| socket_bridge::fuzzing::socketio_payload(data));
