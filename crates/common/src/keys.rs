//! Order-preserving key encoding and the partition hash.
//!
//! `encode_bytes` escapes a byte string so that the encodings of two strings compare as the
//! strings do *and* no encoding is a prefix of another: `0x00` becomes `0x00 0xFF` and the
//! string ends with `0x00 0x00`. Storage keys are built by concatenating such components.
//!
//! Hash-partitioned tables place rows by [`partition_hash`], a 16-bit hash of the partition
//! key, as YugabyteDB does: tablet *i* of *n* owns hashes `[i·65536/n, (i+1)·65536/n)`.

/// Number of distinct partition hash values.
pub const HASH_SPACE: u32 = 65536;

/// Append the order-preserving, prefix-free encoding of `s` to `out`.
pub fn encode_bytes(s: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Decode one component written by [`encode_bytes`] from the front of `input`; returns the
/// bytes and the rest of the input, or `None` if the input is malformed.
pub fn decode_bytes(input: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == 0 {
            match input.get(i + 1)? {
                0x00 => return Some((out, &input[i + 2..])),
                0xFF => {
                    out.push(0);
                    i += 2;
                }
                _ => return None,
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
    None
}

/// 16-bit partition hash of a partition key (FNV-1a folded to 16 bits; stable forever,
/// because it decides where rows live on disk).
pub fn partition_hash(key: &[u8]) -> u16 {
    let mut h: u32 = 0x811c9dc5;
    for b in key {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    ((h >> 16) ^ (h & 0xFFFF)) as u16
}

/// The hash range `[start, end)` of tablet `i` of `n` hash tablets (`end` may be 65536).
pub fn hash_split(i: u32, n: u32) -> (u32, u32) {
    let n = n.max(1);
    (i * HASH_SPACE / n, (i + 1) * HASH_SPACE / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_preserves_order_and_round_trips() {
        let mut words: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![0, 1],
            vec![1],
            b"a".to_vec(),
            b"a\0b".to_vec(),
            b"ab".to_vec(),
            vec![0xFF],
        ];
        words.sort();
        let enc: Vec<Vec<u8>> = words
            .iter()
            .map(|w| {
                let mut o = Vec::new();
                encode_bytes(w, &mut o);
                o
            })
            .collect();
        for pair in enc.windows(2) {
            assert!(pair[0] < pair[1]);
        }
        for (w, e) in words.iter().zip(&enc) {
            let (d, rest) = decode_bytes(e).unwrap();
            assert_eq!(&d, w);
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn hash_split_covers_the_space() {
        let n = 7;
        let mut next = 0;
        for i in 0..n {
            let (s, e) = hash_split(i, n);
            assert_eq!(s, next);
            next = e;
        }
        assert_eq!(next, HASH_SPACE);
    }
}
