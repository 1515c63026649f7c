//! The encoding of task arguments and results: a compact serde format in the
//! spirit of postcard, but with fixed-width little-endian integers.
//!
//! postcard writes every integer as a varint: one branch per byte to write and to
//! read it, one call per value. For the many small values of a `map` chunk that was
//! most of the time the parent and the workers spent on a trivial task. Here an
//! integer is a plain little-endian store and load: a few times faster per value, for
//! up to 8 bytes per `u64` instead of 1–10 (a `memcpy` through the rings, far cheaper
//! than the varint arithmetic it replaces). Both ends are the same executable, so the
//! format never has to be read by anything else.
//!
//! The format (no self-description, like postcard):
//! - `bool`, `u8`, `i8`: one byte (`bool` 0 or 1);
//! - `u16`…`u128`, `i16`…`i128`, `f32`, `f64`: little-endian, their own width
//!   (`usize`/`isize` travel as 64 bits, as serde hands them over);
//! - `char`: its scalar value as a `u32`;
//! - `str`, bytes, sequences, maps: a `u64` length, then the bytes or elements
//!   (sequences and maps must know their length, else
//!   `SerializeSeqLengthUnknown`);
//! - `Option`: a byte 0 (`None`) or 1 followed by the value;
//! - unit, unit structs: nothing; newtype structs: the inner value; tuples, tuple
//!   structs, structs: their fields in order;
//! - enum variants: the variant index as a `u32`, then the variant's fields.
//!
//! Errors are postcard's error type (the pool's [`Error::Codec`](crate::Error::Codec)
//! carries one). The decoder takes untrusted bytes: every read is bounds-checked and a
//! length never reserves more than the remaining bytes could hold.

use postcard::Error;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, SeqAccess,
    VariantAccess, Visitor,
};
use serde::ser::{self, Serialize};

type Res<T> = std::result::Result<T, Error>;

/// Appends `value`'s encoding to `out`.
pub(crate) fn encode_append<T: Serialize + ?Sized>(value: &T, out: Vec<u8>) -> Res<Vec<u8>> {
    let mut s = Ser { out };
    value.serialize(&mut s)?;
    Ok(s.out)
}

/// Appends the encoding of a sequence of the items of `iter` to `out`, exactly as
/// [`encode_append`] of a `Vec` of them would, without collecting them first (the
/// length is patched in after the items). Returns the buffer and the item count.
pub(crate) fn encode_seq_append<T: Serialize>(
    iter: impl Iterator<Item = T>,
    out: Vec<u8>,
) -> Res<(Vec<u8>, usize)> {
    let mut s = Ser { out };
    let at = s.out.len();
    s.len(0);
    let mut n = 0usize;
    for x in iter {
        x.serialize(&mut s)?;
        n += 1;
    }
    s.out[at..at + 8].copy_from_slice(&(n as u64).to_le_bytes());
    Ok((s.out, n))
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
    let mut de = De { input: bytes };
    let v = T::deserialize(&mut de)?;
    Ok((v, de.input))
}

/// Decodes a sequence of `R`s (a chunk's results), appending them to `out` (no
/// intermediate `Vec` per chunk).
pub(crate) fn decode_append<R: DeserializeOwned>(bytes: &[u8], out: &mut Vec<R>) -> Res<()> {
    let mut de = De { input: bytes };
    de::Deserializer::deserialize_seq(&mut de, AppendSeq(out))
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
    let mut de = De { input: args };
    let n = de.len().map_err(MapSeqError::Decode)?;
    let mut ser = Ser {
        out: std::mem::take(out),
    };
    ser.len(n);
    // A chunk of `n` fixed-width results needs at least this much room (not more
    // than the argument bytes could announce: untrusted lengths reserve nothing).
    ser.out
        .reserve(n.min(args.len()).saturating_mul(std::mem::size_of::<R>()));
    let mut r = Ok(());
    for _ in 0..n {
        let step = A::deserialize(&mut de)
            .map_err(MapSeqError::Decode)
            .and_then(|a| f(a).map_err(MapSeqError::Task))
            .and_then(|v| v.serialize(&mut ser).map_err(MapSeqError::Encode));
        if step.is_err() {
            r = step;
            break;
        }
    }
    *out = ser.out;
    r
}

struct AppendSeq<'a, R>(&'a mut Vec<R>);

impl<'de, R: DeserializeOwned> Visitor<'de> for AppendSeq<'_, R> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sequence of results")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        // The hint is the encoded length, and only when the remaining bytes could
        // hold it (untrusted input cannot make us reserve more than that).
        if let Some(n) = seq.size_hint() {
            self.0.reserve(n);
        }
        while let Some(x) = seq.next_element()? {
            self.0.push(x);
        }
        Ok(())
    }
}

/// The encoder: appends to a `Vec<u8>`.
struct Ser {
    out: Vec<u8>,
}

impl Ser {
    #[inline]
    fn put<const N: usize>(&mut self, b: [u8; N]) {
        self.out.extend_from_slice(&b);
    }

    #[inline]
    fn len(&mut self, n: usize) {
        self.put((n as u64).to_le_bytes());
    }

    #[inline]
    fn variant(&mut self, index: u32) {
        self.put(index.to_le_bytes());
    }
}

impl ser::Serializer for &mut Ser {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Res<()> {
        self.put([u8::from(v)]);
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Res<()> {
        self.put(v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Res<()> {
        self.put(v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Res<()> {
        self.put(v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Res<()> {
        self.put(v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_i128(self, v: i128) -> Res<()> {
        self.put(v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Res<()> {
        self.put([v]);
        Ok(())
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Res<()> {
        self.put(v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Res<()> {
        self.put(v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Res<()> {
        self.put(v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_u128(self, v: u128) -> Res<()> {
        self.put(v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Res<()> {
        self.put(v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Res<()> {
        self.put(v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_char(self, v: char) -> Res<()> {
        self.put(u32::from(v).to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Res<()> {
        self.serialize_bytes(v.as_bytes())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Res<()> {
        self.len(v.len());
        self.out.extend_from_slice(v);
        Ok(())
    }
    #[inline]
    fn serialize_none(self) -> Res<()> {
        self.put([0]);
        Ok(())
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res<()> {
        self.put([1]);
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> Res<()> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Res<()> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(self, _name: &'static str, index: u32, _v: &'static str) -> Res<()> {
        self.variant(index);
        Ok(())
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Res<()> {
        value.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Res<()> {
        self.variant(index);
        value.serialize(self)
    }
    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Res<Self> {
        self.len(len.ok_or(Error::SerializeSeqLengthUnknown)?);
        Ok(self)
    }
    #[inline]
    fn serialize_tuple(self, _len: usize) -> Res<Self> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Res<Self> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Res<Self> {
        self.variant(index);
        Ok(self)
    }
    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Res<Self> {
        self.len(len.ok_or(Error::SerializeSeqLengthUnknown)?);
        Ok(self)
    }
    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Res<Self> {
        Ok(self)
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Res<Self> {
        self.variant(index);
        Ok(self)
    }
}

/// Implements a compound serializer whose elements are just written in order.
macro_rules! compound {
    ($($tr:ident :: $elem:ident $(($key:ident))?),* $(,)?) => {$(
        impl ser::$tr for &mut Ser {
            type Ok = ();
            type Error = Error;

            #[inline]
            fn $elem<T: Serialize + ?Sized>(&mut self, $($key: &'static str,)? value: &T) -> Res<()> {
                $(let _ = $key;)?
                value.serialize(&mut **self)
            }

            #[inline]
            fn end(self) -> Res<()> {
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
    SerializeStruct::serialize_field(key),
    SerializeStructVariant::serialize_field(key),
);

impl ser::SerializeMap for &mut Ser {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res<()> {
        key.serialize(&mut **self)
    }

    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        value.serialize(&mut **self)
    }

    #[inline]
    fn end(self) -> Res<()> {
        Ok(())
    }
}

/// The decoder: reads from the front of a byte slice.
struct De<'de> {
    input: &'de [u8],
}

impl<'de> De<'de> {
    #[inline]
    fn get<const N: usize>(&mut self) -> Res<[u8; N]> {
        let (head, rest) = self
            .input
            .split_first_chunk::<N>()
            .ok_or(Error::DeserializeUnexpectedEnd)?;
        self.input = rest;
        Ok(*head)
    }

    #[inline]
    fn bytes(&mut self, n: usize) -> Res<&'de [u8]> {
        if n > self.input.len() {
            return Err(Error::DeserializeUnexpectedEnd);
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    /// A length (of a string, a sequence, a map), as a `usize`.
    #[inline]
    fn len(&mut self) -> Res<usize> {
        usize::try_from(u64::from_le_bytes(self.get()?)).map_err(|_| Error::DeserializeBadEncoding)
    }

    #[inline]
    fn str(&mut self) -> Res<&'de str> {
        let n = self.len()?;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| Error::DeserializeBadUtf8)
    }
}

macro_rules! de_num {
    ($($method:ident $visit:ident $t:ty),* $(,)?) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
            visitor.$visit(<$t>::from_le_bytes(self.get()?))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut De<'de> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Res<V::Value> {
        // Not self-describing (nor is postcard).
        Err(Error::WontImplement)
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.get::<1>()? {
            [0] => visitor.visit_bool(false),
            [1] => visitor.visit_bool(true),
            _ => Err(Error::DeserializeBadBool),
        }
    }

    de_num!(
        deserialize_i8 visit_i8 i8,
        deserialize_i16 visit_i16 i16,
        deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64,
        deserialize_i128 visit_i128 i128,
        deserialize_u8 visit_u8 u8,
        deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32,
        deserialize_u64 visit_u64 u64,
        deserialize_u128 visit_u128 u128,
        deserialize_f32 visit_f32 f32,
        deserialize_f64 visit_f64 f64,
    );

    #[inline]
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let c = char::from_u32(u32::from_le_bytes(self.get()?)).ok_or(Error::DeserializeBadChar)?;
        visitor.visit_char(c)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_borrowed_str(self.str()?)
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let n = self.len()?;
        visitor.visit_borrowed_bytes(self.bytes(n)?)
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.deserialize_bytes(visitor)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.get::<1>()? {
            [0] => visitor.visit_none(),
            [1] => visitor.visit_some(self),
            _ => Err(Error::DeserializeBadOption),
        }
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let len = self.len()?;
        visitor.visit_seq(Elems { de: self, len })
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Res<V::Value> {
        visitor.visit_seq(Elems { de: self, len })
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Res<V::Value> {
        self.deserialize_tuple(len, visitor)
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let len = self.len()?;
        visitor.visit_map(Elems { de: self, len })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Res<V::Value> {
        Err(Error::WontImplement)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Res<V::Value> {
        Err(Error::WontImplement)
    }
}

/// The elements of a sequence, tuple or struct, or the entries of a map.
struct Elems<'a, 'de> {
    de: &'a mut De<'de>,
    len: usize,
}

impl<'de> SeqAccess<'de> for Elems<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Res<Option<T::Value>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        // Only a length the remaining bytes could hold (at most one element per byte
        // is not true of zero-sized elements, which then get no hint).
        (self.len <= self.de.input.len()).then_some(self.len)
    }
}

impl<'de> de::MapAccess<'de> for Elems<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Res<Option<K::Value>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Res<V::Value> {
        seed.deserialize(&mut *self.de)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        (self.len <= self.de.input.len()).then_some(self.len)
    }
}

impl<'de> EnumAccess<'de> for &mut De<'de> {
    type Error = Error;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Res<(V::Value, Self)> {
        let index = u32::from_le_bytes(self.get()?);
        let v = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(index))?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for &mut De<'de> {
    type Error = Error;

    #[inline]
    fn unit_variant(self) -> Res<()> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Res<T::Value> {
        seed.deserialize(self)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Res<V::Value> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum E {
        Unit,
        New(i16),
        Tup(u8, char),
        Rec { a: Option<String>, b: Vec<u8> },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Unit;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrap(u32);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct All {
        b: bool,
        i: (i8, i16, i32, i64, i128),
        u: (u8, u16, u32, u64, u128),
        f: (f32, f64),
        sz: (usize, isize),
        c: char,
        s: String,
        o: Option<Option<u64>>,
        unit: (),
        us: Unit,
        w: Wrap,
        e: Vec<E>,
        m: BTreeMap<String, Vec<u64>>,
        bytes: serde_bytes_like::Bytes,
    }

    /// `Vec<u8>` through serialize_bytes / deserialize_byte_buf.
    mod serde_bytes_like {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        #[derive(Debug, PartialEq)]
        pub(super) struct Bytes(pub(super) Vec<u8>);

        impl Serialize for Bytes {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for Bytes {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                        Ok(Bytes(v.to_vec()))
                    }
                }
                d.deserialize_byte_buf(V)
            }
        }
    }

    fn all() -> All {
        All {
            b: true,
            i: (i8::MIN, -2, i32::MAX, i64::MIN, -(1 << 100)),
            u: (u8::MAX, 600, 70_000, u64::MAX, u128::MAX),
            f: (1.5, -f64::MAX),
            sz: (usize::MAX, isize::MIN),
            c: '€',
            s: "héllo".into(),
            o: Some(None),
            unit: (),
            us: Unit,
            w: Wrap(7),
            e: vec![
                E::Unit,
                E::New(-3),
                E::Tup(9, 'x'),
                E::Rec {
                    a: Some("a".into()),
                    b: vec![1, 2],
                },
                E::Rec { a: None, b: vec![] },
            ],
            m: [("k".to_owned(), vec![1, u64::MAX]), (String::new(), vec![])]
                .into_iter()
                .collect(),
            bytes: serde_bytes_like::Bytes(vec![0, 255, 3]),
        }
    }

    #[test]
    fn round_trips_every_kind_of_value() {
        let v = all();
        let head = vec![9u8, 8];
        let enc = encode_append(&v, head).unwrap();
        assert_eq!(&enc[..2], &[9, 8], "appends after what the buffer held");
        let (back, rest): (All, _) = take(&enc[2..]).unwrap();
        assert_eq!(back, v);
        assert!(rest.is_empty());
        // Trailing bytes are left to the caller.
        let mut more = encode(&v).unwrap();
        more.push(42);
        assert_eq!(take::<All>(&more).unwrap().1, &[42]);
        assert_eq!(decode::<All>(&more).unwrap(), v);
    }

    #[test]
    fn integers_are_fixed_width_little_endian() {
        assert_eq!(encode(&0x0102_0304u32).unwrap(), [4, 3, 2, 1]);
        assert_eq!(encode(&1u64).unwrap(), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(&-1i16).unwrap(), [255, 255]);
        assert_eq!(
            encode(&vec![5u16, 6]).unwrap(),
            [2, 0, 0, 0, 0, 0, 0, 0, 5, 0, 6, 0]
        );
        assert_eq!(encode(&Some(true)).unwrap(), [1, 1]);
        assert_eq!(encode(&E::New(1)).unwrap(), [1, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn every_truncation_of_a_value_is_an_error() {
        let enc = encode(&all()).unwrap();
        for n in 0..enc.len() {
            assert!(decode::<All>(&enc[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        assert!(matches!(
            decode::<bool>(&[2]),
            Err(Error::DeserializeBadBool)
        ));
        assert!(matches!(
            decode::<Option<u8>>(&[7, 0]),
            Err(Error::DeserializeBadOption)
        ));
        assert!(matches!(
            decode::<char>(&0xD800u32.to_le_bytes()),
            Err(Error::DeserializeBadChar)
        ));
        let mut s = encode(&2u64).unwrap();
        s.extend_from_slice(&[0xff, 0xfe]);
        assert!(matches!(
            decode::<String>(&s),
            Err(Error::DeserializeBadUtf8)
        ));
        assert!(decode::<E>(&9u32.to_le_bytes()).is_err());
        // A length far beyond the bytes: an error, and no huge reservation.
        let mut v = encode(&u64::MAX).unwrap();
        v.extend_from_slice(&[1, 2, 3]);
        assert!(decode::<Vec<u64>>(&v).is_err());
        assert!(decode::<String>(&v).is_err());
        let mut out: Vec<u64> = Vec::new();
        assert!(decode_append(&v, &mut out).is_err());
        assert!(out.capacity() < 16);
        // A sequence of unknown length does not encode.
        struct Unknown;
        impl Serialize for Unknown {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                s.serialize_seq(None)?.end()
            }
        }
        assert!(matches!(
            encode(&Unknown),
            Err(Error::SerializeSeqLengthUnknown)
        ));
    }

    #[test]
    fn map_seq_is_encode_of_the_mapped_vec_and_stops_at_failures() {
        let args = encode(&vec![1u32, 2, 3]).unwrap();
        let mut out = vec![7u8];
        map_seq::<u32, u64, ()>(&args, &mut out, |x| Ok(u64::from(x) * 10)).unwrap();
        assert_eq!(out, encode_append(&vec![10u64, 20, 30], vec![7]).unwrap());
        let mut seen = Vec::new();
        let r = map_seq::<u32, u64, String>(&args, &mut Vec::new(), |x| {
            seen.push(x);
            if x == 2 {
                Err("two".into())
            } else {
                Ok(0)
            }
        });
        assert!(matches!(r, Err(MapSeqError::Task(e)) if e == "two"));
        assert_eq!(seen, [1, 2]);
        let short = &args[..args.len() - 1];
        let r = map_seq::<u32, u64, ()>(short, &mut Vec::new(), |x| Ok(x.into()));
        assert!(matches!(r, Err(MapSeqError::Decode(_))));
        // An absurd length: an error, not a huge reservation.
        let mut bad = encode(&u64::MAX).unwrap();
        bad.push(1);
        let mut out = Vec::new();
        let r = map_seq::<u8, u64, ()>(&bad, &mut out, |x| Ok(x.into()));
        assert!(matches!(r, Err(MapSeqError::Decode(_))));
        assert!(out.capacity() < 1024);
        struct NoEncode;
        impl Serialize for NoEncode {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let r = map_seq::<u32, NoEncode, ()>(&args, &mut Vec::new(), |_| Ok(NoEncode));
        assert!(matches!(r, Err(MapSeqError::Encode(_))));
    }

    #[test]
    fn encode_seq_append_is_encode_of_the_collected_vec() {
        for n in [0usize, 1, 7, 1000] {
            let items: Vec<(u64, String)> = (0..n as u64).map(|i| (i, i.to_string())).collect();
            let (got, count) = encode_seq_append(items.iter(), vec![1, 2]).unwrap();
            assert_eq!(count, n);
            assert_eq!(got, encode_append(&items, vec![1, 2]).unwrap());
        }
        struct NoEncode;
        impl Serialize for NoEncode {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        assert!(encode_seq_append([NoEncode].into_iter(), Vec::new()).is_err());
    }

    #[test]
    fn decode_append_appends() {
        let mut out = vec![String::from("a")];
        decode_append(&encode(&vec!["b", "c"]).unwrap(), &mut out).unwrap();
        decode_append(&encode(&Vec::<String>::new()).unwrap(), &mut out).unwrap();
        assert_eq!(out, ["a", "b", "c"]);
        let mut v: Vec<u64> = Vec::new();
        // Two elements announced, one and a half present.
        let mut b = encode(&vec![1u64, 2]).unwrap();
        b.truncate(b.len() - 4);
        assert!(decode_append(&b, &mut v).is_err());
    }
}
