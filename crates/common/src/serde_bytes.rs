//! Byte strings in serde as *bytes*, not as sequences of `u8`. serde's own `Vec<u8>` goes
//! through `serialize_seq`, one call per byte, and bincode decodes it the same way; a Raft
//! entry of a few hundred writes spent more time there than in copying it. With
//! `#[serde(with = "common::serde_bytes")]` (or `serde_bytes::option` for an
//! `Option<Vec<u8>>`) bincode writes and reads the bytes in one copy.
//!
//! The encoding is unchanged in bincode 1 (a `u64` length, then the bytes, for a sequence of
//! `u8` and for bytes alike), so logs and snapshots written before decode as they did.
//! Formats that have no byte type (JSON) still get an array of numbers, and both forms are
//! accepted when decoding.

use serde::de::{Error, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

/// Serialize a byte string as bytes.
pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(v)
}

/// Deserialize a byte string written as bytes or as a sequence of `u8`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    d.deserialize_byte_buf(BytesVisitor)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

/// The same for an `Option<Vec<u8>>`.
pub mod option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(serde::Deserialize)]
    struct Bytes(#[serde(with = "super")] Vec<u8>);

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_deref().map(BytesRef).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<Bytes>::deserialize(d)?.map(|b| b.0))
    }

    struct BytesRef<'a>(&'a [u8]);

    impl Serialize for BytesRef<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Plain {
        a: Vec<u8>,
        b: Option<Vec<u8>>,
        c: u32,
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct AsBytes {
        #[serde(with = "crate::serde_bytes")]
        a: Vec<u8>,
        #[serde(with = "crate::serde_bytes::option")]
        b: Option<Vec<u8>>,
        c: u32,
    }

    /// bincode encodes both alike, so either decodes what the other wrote; JSON round-trips.
    #[test]
    fn bytes_encode_as_a_sequence_of_u8_did() {
        for b in [None, Some(vec![]), Some(vec![0, 255, 7])] {
            let plain = Plain {
                a: b"row key".to_vec(),
                b: b.clone(),
                c: 9,
            };
            let bytes = AsBytes {
                a: b"row key".to_vec(),
                b,
                c: 9,
            };
            let p = bincode::serialize(&plain).unwrap();
            assert_eq!(p, bincode::serialize(&bytes).unwrap());
            assert_eq!(bincode::deserialize::<AsBytes>(&p).unwrap(), bytes);
            let j = serde_json::to_string(&bytes).unwrap();
            assert_eq!(serde_json::from_str::<AsBytes>(&j).unwrap(), bytes);
        }
    }
}
