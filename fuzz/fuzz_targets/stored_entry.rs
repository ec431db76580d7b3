#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rem::fuzzing::stored_entry(data));
