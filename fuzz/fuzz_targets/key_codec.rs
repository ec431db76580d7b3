#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rem::fuzzing::key_codec(data));
