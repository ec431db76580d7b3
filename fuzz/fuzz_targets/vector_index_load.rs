#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rem::fuzzing::vector_index_load(data));
