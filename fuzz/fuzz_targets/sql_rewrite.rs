#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rem_sql::fuzzing::sql_rewrite(data));
