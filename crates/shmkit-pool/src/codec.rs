//! postcard encoding of task arguments and results, tuned for the many small values
//! of a `map` chunk.
//!
//! * `postcard::to_extend` writes every varint through `Extend<u8>`, which for a
//!   `Vec` becomes one `memcpy` call per value. [`VecOut`] appends short runs byte by
//!   byte (into reserved space) and only long runs with `memcpy`; the bytes are
//!   postcard's, exactly as `to_extend` would write them.
//! * A chunk is encoded straight from the caller's iterator ([`encode_seq_append`]),
//!   mapped element by element in the worker ([`map_seq`]) and decoded into the
//!   caller's result vector ([`decode_append`]): no vector of a chunk's arguments or
//!   results in between.
//!
//! Everything decoded comes from another process: postcard bounds-checks every read,
//! and a length never reserves more than the remaining bytes could hold.

use postcard::ser_flavors::Flavor;
use postcard::Error;
use serde::de::{DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

type Res<T> = std::result::Result<T, Error>;

/// Runs at most this long are copied byte by byte (a varint is at most 10 bytes).
const SHORT: usize = 16;

/// Bytes of the sequence length [`encode_seq_append`] writes before it knows the
/// count: a varint padded to this width (continuation bits set on the first four
/// bytes), which postcard decodes like the minimal one. Counts up to 2^35 fit.
const SEQ_LEN_BYTES: usize = 5;

/// Appends postcard output to a `Vec<u8>`.
struct VecOut(Vec<u8>);

impl Flavor for VecOut {
    type Output = Vec<u8>;

    #[inline]
    fn try_push(&mut self, b: u8) -> Res<()> {
        self.0.push(b);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> Res<()> {
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

    fn finalize(self) -> Res<Vec<u8>> {
        Ok(self.0)
    }
}

/// A serializer appending to `out`.
fn serializer(out: Vec<u8>) -> postcard::Serializer<VecOut> {
    postcard::Serializer {
        output: VecOut(out),
    }
}

/// Appends `value`'s encoding to `out`.
pub(crate) fn encode_append<T: Serialize + ?Sized>(value: &T, out: Vec<u8>) -> Res<Vec<u8>> {
    postcard::serialize_with_flavor(value, VecOut(out))
}

/// Appends the encoding of a sequence of the items of `iter` to `out`, decoding
/// exactly as [`encode_append`] of a `Vec` of them would, without collecting them
/// first (the length is a padded varint patched in after the items). Returns the
/// buffer and the item count.
///
/// # Errors
/// A value that does not encode; more than 2^35 items.
pub(crate) fn encode_seq_append<T: Serialize>(
    iter: impl Iterator<Item = T>,
    mut out: Vec<u8>,
) -> Res<(Vec<u8>, usize)> {
    let at = out.len();
    out.extend_from_slice(&[0; SEQ_LEN_BYTES]);
    let mut ser = serializer(out);
    let mut n = 0usize;
    for x in iter {
        x.serialize(&mut ser)?;
        n += 1;
    }
    let mut out = ser.output.0;
    let mut left = u64::try_from(n).map_err(|_| Error::SerializeBufferFull)?;
    if left >> (7 * SEQ_LEN_BYTES) != 0 {
        return Err(Error::SerializeBufferFull);
    }
    for (k, b) in out[at..at + SEQ_LEN_BYTES].iter_mut().enumerate() {
        let more = if k + 1 < SEQ_LEN_BYTES { 0x80 } else { 0 };
        // Cast: the low 7 bits.
        *b = (left & 0x7f) as u8 | more;
        left >>= 7;
    }
    Ok((out, n))
}

/// `value`'s encoding.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Res<Vec<u8>> {
    encode_append(value, Vec::new())
}

/// Decodes a `T` from the start of `bytes` (trailing bytes are ignored).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Res<T> {
    Ok(take::<T>(bytes)?.0)
}

/// Decodes a `T` from the start of `bytes`; returns it and the bytes after it.
pub(crate) fn take<T: DeserializeOwned>(bytes: &[u8]) -> Res<(T, &[u8])> {
    postcard::take_from_bytes(bytes)
}

/// Decodes a sequence of `R`s (a chunk's results), appending them to `out` (no
/// intermediate `Vec` per chunk).
pub(crate) fn decode_append<R: DeserializeOwned>(bytes: &[u8], out: &mut Vec<R>) -> Res<()> {
    let mut de = postcard::Deserializer::from_bytes(bytes);
    AppendSeq(out).deserialize(&mut de)
}

/// Why [`map_seq`] stopped.
#[derive(Debug)]
pub(crate) enum MapSeqError<E> {
    /// An argument did not decode.
    Decode(Error),
    /// A result did not encode.
    Encode(Error),
    /// The function failed on an element.
    Task(E),
}

/// A chunk's work in one pass: decodes the sequence of `A`s in `args` one element
/// at a time, and appends the sequence of `f(a)`s to `out` as each is computed —
/// no vector of arguments nor of results in between. Stops at the first failure
/// (the elements before it have been computed; `out` then holds a partial
/// sequence, to be discarded).
pub(crate) fn map_seq<A, R, E>(
    args: &[u8],
    out: &mut Vec<u8>,
    mut f: impl FnMut(A) -> std::result::Result<R, E>,
) -> std::result::Result<(), MapSeqError<E>>
where
    A: DeserializeOwned,
    R: Serialize,
{
    let mut de = postcard::Deserializer::from_bytes(args);
    // A sequence's length is a varint `usize`, as a `usize` value is encoded.
    let n = usize::deserialize(&mut de).map_err(MapSeqError::Decode)?;
    let mut ser = serializer(std::mem::take(out));
    let mut r = n.serialize(&mut ser).map_err(MapSeqError::Encode);
    // At least a byte per result (not more than the argument bytes could announce:
    // untrusted lengths reserve nothing beyond that).
    ser.output.0.reserve(n.min(args.len()));
    for _ in 0..n {
        if r.is_err() {
            break;
        }
        r = A::deserialize(&mut de)
            .map_err(MapSeqError::Decode)
            .and_then(|a| f(a).map_err(MapSeqError::Task))
            .and_then(|v| v.serialize(&mut ser).map_err(MapSeqError::Encode));
    }
    *out = ser.output.0;
    r
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

    fn sample() -> Vec<(u64, String, Vec<u8>, i32)> {
        (0..300u64)
            .map(|i| {
                (
                    i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (i % 64),
                    "x".repeat(usize::try_from(i % 40).unwrap()),
                    vec![7; usize::try_from(i % 33).unwrap()],
                    -i32::try_from(i).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn same_bytes_as_postcard() {
        let v = sample();
        let head = vec![1u8, 2, 3];
        let want = postcard::to_extend(&v, head.clone()).unwrap();
        assert_eq!(encode_append(&v, head).unwrap(), want);
        assert_eq!(
            encode(&u64::MAX).unwrap(),
            postcard::to_allocvec(&u64::MAX).unwrap()
        );
    }

    #[test]
    fn take_returns_the_rest() {
        let mut b = encode(&("a", 300u32)).unwrap();
        b.push(42);
        assert_eq!(take::<(String, u32)>(&b).unwrap().1, &[42]);
        assert_eq!(decode::<(String, u32)>(&b).unwrap(), ("a".into(), 300));
        for n in 0..b.len() - 1 {
            assert!(decode::<(String, u32)>(&b[..n]).is_err(), "prefix of {n}");
        }
    }

    #[test]
    fn encode_seq_append_decodes_as_the_collected_vec() {
        for n in [0usize, 1, 127, 128, 300, 20_000] {
            let items: Vec<u64> = (0..n as u64).map(|i| i * i).collect();
            let (got, count) = encode_seq_append(items.iter().copied(), vec![1, 2]).unwrap();
            assert_eq!(count, n);
            assert_eq!(&got[..2], &[1, 2], "appends after what the buffer held");
            assert_eq!(decode::<Vec<u64>>(&got[2..]).unwrap(), items);
            let mut out = vec![7u64];
            decode_append(&got[2..], &mut out).unwrap();
            assert_eq!(out.len(), n + 1);
        }
        let v = sample();
        let (got, _) = encode_seq_append(v.iter(), Vec::new()).unwrap();
        assert_eq!(decode::<Vec<(u64, String, Vec<u8>, i32)>>(&got).unwrap(), v);
        struct NoEncode;
        impl Serialize for NoEncode {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        assert!(encode_seq_append([NoEncode].into_iter(), Vec::new()).is_err());
    }

    #[test]
    fn map_seq_is_encode_of_the_mapped_vec_and_stops_at_failures() {
        let args = encode(&vec![1u64, 2, 3]).unwrap();
        let mut out = vec![7];
        map_seq(&args, &mut out, |a: u64| Ok::<_, ()>(a * 10)).unwrap();
        assert_eq!(out, encode_append(&vec![10u64, 20, 30], vec![7]).unwrap());
        // Padded lengths from encode_seq_append are read too.
        let (args2, _) = encode_seq_append([1u64, 2, 3].into_iter(), Vec::new()).unwrap();
        let mut out2 = Vec::new();
        map_seq(&args2, &mut out2, |a: u64| Ok::<_, ()>(a * 10)).unwrap();
        assert_eq!(out2, encode(&vec![10u64, 20, 30]).unwrap());
        let mut seen = Vec::new();
        let r = map_seq(&args, &mut Vec::new(), |a: u64| {
            seen.push(a);
            if a == 2 {
                Err("two")
            } else {
                Ok(a)
            }
        });
        assert!(matches!(r, Err(MapSeqError::Task(e)) if e == "two"));
        assert_eq!(seen, [1, 2]);
        // Truncated arguments, and a length the bytes cannot hold.
        let r = map_seq(&args[..2], &mut Vec::new(), |a: u64| Ok::<_, ()>(a));
        assert!(matches!(r, Err(MapSeqError::Decode(_))));
        let mut out = Vec::new();
        let r = map_seq(&[0xff, 0xff, 0xff, 0xff, 0x0f], &mut out, |a: u64| {
            Ok::<_, ()>(a)
        });
        assert!(matches!(r, Err(MapSeqError::Decode(_))));
        assert!(out.capacity() < 1024);
        struct NoEncode;
        impl Serialize for NoEncode {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let r = map_seq(&args, &mut Vec::new(), |_: u64| Ok::<_, ()>(NoEncode));
        assert!(matches!(r, Err(MapSeqError::Encode(_))));
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
        assert!(v.capacity() < 16);
        assert!(decode_append(&[2, 1, 0x80], &mut v).is_err());
    }
}
