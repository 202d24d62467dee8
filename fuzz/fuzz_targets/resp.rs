//! BEDIS's RESP request parser on arbitrary bytes: every request it finds is inside the
//! input, and parsing never panics or over-allocates.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((_, used))) = bedis::frame::parse_request(rest) {
        assert!(used <= rest.len());
        if used == 0 {
            break;
        }
        rest = &rest[used..];
    }
});
