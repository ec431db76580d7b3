#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rem::fuzzing::schema_document(data));
