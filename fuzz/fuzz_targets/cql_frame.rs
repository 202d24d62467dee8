//! BCQL's frame body readers on arbitrary bytes: LZ4 decompression and the QUERY/EXECUTE
//! parameters block never panic or over-allocate.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bcql::frame::decompress(data);
    let mut r = bcql::frame::Reader::new(data);
    let _ = bcql::frame::QueryParams::read(&mut r);
    let mut r = bcql::frame::Reader::new(data);
    let _ = r.string_map();
});
