//! BSQL's statement intake on arbitrary text: parsing (with the `pg_catalog` rewrites) and
//! the COPY command parser never panic; they answer a statement or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = bsql::session::parse(text);
    if bsql::copy::is_copy(text) {
        let _ = bsql::copy::parse(text);
    }
});
