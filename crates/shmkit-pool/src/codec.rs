//! postcard encoding into a `Vec<u8>`, tuned for the many small values of a chunk.
//!
//! `postcard::to_extend` writes every varint through `Extend<u8>`, which for a `Vec`
//! becomes one `memcpy` call per value: for a chunk of 12 500 `u64`s that call was
//! most of the encoding time. This flavor appends short runs byte by byte (into
//! reserved space) and only long runs (strings, byte arrays) with `memcpy`. The bytes
//! are postcard's, exactly as `to_extend` would write them.

use postcard::ser_flavors::Flavor;
use serde::de::{DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use serde::Serialize;

/// Runs at most this long are copied byte by byte (a varint is at most 10 bytes).
const SHORT: usize = 16;

/// Appends postcard output to a `Vec<u8>`.
struct VecOut(Vec<u8>);

impl Flavor for VecOut {
    type Output = Vec<u8>;

    #[inline]
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.0.push(b);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= SHORT {
            self.0.reserve(SHORT);
            for &b in data {
                self.0.push(b);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// Appends `value`'s postcard encoding to `out`.
pub(crate) fn encode_append<T: Serialize + ?Sized>(
    value: &T,
    out: Vec<u8>,
) -> postcard::Result<Vec<u8>> {
    postcard::serialize_with_flavor(value, VecOut(out))
}

/// Decodes a postcard sequence of `R`s (a chunk's results), appending them to `out`
/// (no intermediate `Vec` per chunk).
pub(crate) fn decode_append<R: DeserializeOwned>(
    bytes: &[u8],
    out: &mut Vec<R>,
) -> postcard::Result<()> {
    let mut de = postcard::Deserializer::from_bytes(bytes);
    AppendSeq(out).deserialize(&mut de)
}

struct AppendSeq<'a, R>(&'a mut Vec<R>);

impl<'de, R: DeserializeOwned> DeserializeSeed<'de> for AppendSeq<'_, R> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, R: DeserializeOwned> Visitor<'de> for AppendSeq<'_, R> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sequence of results")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        // postcard's hint is the encoded length, and only when the remaining bytes
        // could hold it (untrusted input cannot make us reserve more than that).
        if let Some(n) = seq.size_hint() {
            self.0.reserve(n);
        }
        while let Some(x) = seq.next_element()? {
            self.0.push(x);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn same_bytes_as_postcard() {
        let v: Vec<(u64, String, Vec<u8>, i32)> = (0..300u64)
            .map(|i| {
                (
                    i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (i % 64),
                    "x".repeat(usize::try_from(i % 40).unwrap()),
                    vec![7; usize::try_from(i % 33).unwrap()],
                    -i32::try_from(i).unwrap(),
                )
            })
            .collect();
        let head = vec![1u8, 2, 3];
        let want = postcard::to_extend(&v, head.clone()).unwrap();
        assert_eq!(encode_append(&v, head).unwrap(), want);
        assert_eq!(
            encode_append(&u64::MAX, Vec::new()).unwrap(),
            postcard::to_allocvec(&u64::MAX).unwrap()
        );
    }

    #[test]
    fn decode_append_appends_and_rejects_bad_input() {
        let mut out = vec![String::from("a")];
        let b = postcard::to_allocvec(&vec!["b", "c"]).unwrap();
        decode_append(&b, &mut out).unwrap();
        let empty = postcard::to_allocvec(&Vec::<String>::new()).unwrap();
        decode_append(&empty, &mut out).unwrap();
        assert_eq!(out, ["a", "b", "c"]);
        // A length the bytes cannot hold, and a truncated element.
        let mut v: Vec<u64> = Vec::new();
        assert!(decode_append(&[0xff, 0xff, 0xff, 0x7f, 1], &mut v).is_err());
        assert!(decode_append(&[2, 1, 0x80], &mut v).is_err());
    }
}
