//! Deterministic input mutation for the parsers' fuzz tests (RESP, CQL frames and
//! statements, every port of a running cluster): a small xorshift generator and the edits
//! that turn a valid input into a nearly valid one. Test support only; no server code uses it.

/// xorshift64: fast, reproducible, good enough to pick edits.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator started from `seed` (0 is replaced: xorshift would stay at 0).
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Apply `edits` random edits to `b`, each one of: overwrite a byte, insert a byte (one of
/// `alphabet`, or any byte if it is empty), remove a byte, cut the input short, or insert
/// `splice` (for example a huge length).
pub fn mutate(rng: &mut XorShift, b: &mut Vec<u8>, edits: usize, alphabet: &[u8], splice: &[u8]) {
    for _ in 0..edits {
        let at = rng.below(b.len() + 1);
        match rng.below(5) {
            0 if at < b.len() => b[at] = rng.next_u64() as u8,
            1 => {
                let byte = match alphabet {
                    [] => rng.next_u64() as u8,
                    _ => alphabet[rng.below(alphabet.len())],
                };
                b.insert(at, byte);
            }
            2 if at < b.len() => {
                b.remove(at);
            }
            3 => b.truncate(at),
            _ => b.splice(at..at, splice.iter().copied()).for_each(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_is_reproducible_and_stays_near_the_seed() {
        let run = || {
            let mut rng = XorShift::new(7);
            let mut b = b"*1\r\n$4\r\nPING\r\n".to_vec();
            mutate(&mut rng, &mut b, 2, b"*$", b"99");
            b
        };
        assert_eq!(run(), run());
        assert!(run().len() <= 14 + 2 * 2);
    }
}
