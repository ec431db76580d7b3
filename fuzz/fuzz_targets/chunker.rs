#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rem_ingest::fuzzing::chunker(data));
