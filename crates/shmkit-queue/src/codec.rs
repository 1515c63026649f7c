//! postcard into a slot-sized buffer, without a `memcpy` call per value.
//!
//! `postcard::to_slice` copies every varint into its buffer with
//! `copy_nonoverlapping` of a run-time length, which is a `memcpy` call (measured: about
//! 3% of a `Queue<u64>` put). [`SliceOut`] copies runs of up to 10 bytes (a varint's
//! lengths) with constant-length copies and only longer ones with `copy_from_slice`; the bytes are postcard's, exactly as `to_slice`
//! writes them.

use postcard::ser_flavors::Flavor;

/// Copies the first `N` bytes of `src` into `dst` (both at least `N` long).
#[inline(always)]
fn copy<const N: usize>(dst: &mut [u8], src: &[u8]) {
    dst[..N].copy_from_slice(&src[..N]);
}

/// Writes postcard output into a borrowed buffer; the output is the number of bytes
/// written.
struct SliceOut<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Flavor for SliceOut<'_> {
    type Output = usize;

    #[inline]
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        let slot = self
            .buf
            .get_mut(self.len)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        *slot = b;
        self.len += 1;
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let end = self
            .len
            .checked_add(data.len())
            .filter(|&e| e <= self.buf.len())
            .ok_or(postcard::Error::SerializeBufferFull)?;
        let dst = &mut self.buf[self.len..end];
        // Constant-length copies for the lengths varints have (a byte loop would be
        // turned back into a `memcpy` call).
        match data.len() {
            0 => {}
            1 => copy::<1>(dst, data),
            2 => copy::<2>(dst, data),
            3 => copy::<3>(dst, data),
            4 => copy::<4>(dst, data),
            5 => copy::<5>(dst, data),
            6 => copy::<6>(dst, data),
            7 => copy::<7>(dst, data),
            8 => copy::<8>(dst, data),
            9 => copy::<9>(dst, data),
            10 => copy::<10>(dst, data),
            _ => dst.copy_from_slice(data),
        }
        self.len = end;
        Ok(())
    }

    #[inline]
    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.len)
    }
}

/// Encodes `value` into the start of `buf`, as `postcard::to_slice` does; returns the
/// number of bytes written.
///
/// # Errors
/// [`postcard::Error::SerializeBufferFull`] if it does not fit; any error of the
/// value's `Serialize`.
#[inline]
pub(crate) fn to_slice<T: serde::Serialize + ?Sized>(
    value: &T,
    buf: &mut [u8],
) -> postcard::Result<usize> {
    postcard::serialize_with_flavor(value, SliceOut { buf, len: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_as_postcard() {
        let values: Vec<(u64, String, Vec<u32>)> = vec![
            (0, String::new(), vec![]),
            (u64::MAX, "x".repeat(40), (0..20).collect()),
            (300, "héllo".into(), vec![u32::MAX; 3]),
        ];
        for v in &values {
            let mut ours = [0u8; 256];
            let mut theirs = [0u8; 256];
            let n = to_slice(v, &mut ours).expect("fits");
            let t = postcard::to_slice(v, &mut theirs).expect("fits");
            assert_eq!(&ours[..n], &*t);
        }
    }

    #[test]
    fn full_buffer_is_an_error_at_every_length() {
        let v = (u64::MAX, "x".repeat(40));
        let need = postcard::to_stdvec(&v).expect("encodes").len();
        for len in 0..need {
            let mut buf = vec![0u8; len];
            assert!(matches!(
                to_slice(&v, &mut buf),
                Err(postcard::Error::SerializeBufferFull)
            ));
        }
        let mut buf = vec![0u8; need];
        assert_eq!(to_slice(&v, &mut buf).expect("fits exactly"), need);
    }

    /// Every kind of value postcard writes with `try_extend` (varints of 1 to 19
    /// bytes, floats, chars, strings and byte runs longer than a varint, enums,
    /// options), at every buffer length: the same bytes as `postcard::to_slice` when
    /// it fits, `SerializeBufferFull` exactly when `to_slice` reports it.
    #[test]
    fn same_result_as_postcard_at_every_length() {
        #[derive(serde::Serialize)]
        enum E {
            Unit,
            New(i32),
            Tup(u16, i16),
            Rec { a: f32, b: Option<char> },
        }
        #[derive(serde::Serialize)]
        struct All {
            ints: (u8, i8, u16, i32, u64, i64, u128, i128, usize, isize),
            floats: (f32, f64),
            text: (char, char, String, &'static str),
            bytes: Vec<u8>,
            enums: Vec<E>,
            opt: (Option<u64>, Option<()>, bool, ()),
        }
        let all = |k: usize| All {
            ints: (
                u8::MAX,
                i8::MIN,
                u16::MAX,
                i32::MIN,
                u64::MAX >> k,
                i64::MIN >> k,
                u128::MAX >> k,
                i128::MIN >> k,
                usize::MAX >> k,
                isize::MIN >> k,
            ),
            floats: (-1.5, f64::MIN_POSITIVE),
            text: ('é', '\u{10FFFF}', "ü".repeat(k), "0123456789ab"),
            bytes: vec![0xa5; 1 + k],
            enums: vec![
                E::Unit,
                E::New(-1),
                E::Tup(7, -7),
                E::Rec {
                    a: 2.0,
                    b: Some('x'),
                },
            ],
            opt: (Some(1 << k), None, true, ()),
        };
        for k in [0, 1, 7, 13, 40, 63] {
            let v = all(k);
            let need = postcard::to_stdvec(&v).expect("encodes").len();
            for len in 0..=need + 1 {
                let mut ours = vec![0u8; len];
                let mut theirs = vec![0u8; len];
                match (to_slice(&v, &mut ours), postcard::to_slice(&v, &mut theirs)) {
                    (Ok(n), Ok(t)) => assert_eq!(&ours[..n], &*t, "k {k}, len {len}"),
                    (Err(a), Err(b)) => {
                        assert_eq!(a, b, "k {k}, len {len}");
                        assert_eq!(a, postcard::Error::SerializeBufferFull);
                    }
                    (a, b) => panic!("k {k}, len {len}: {a:?} vs {:?}", b.map(|t| t.len())),
                }
            }
        }
    }

    /// A value whose `Serialize` fails reports its error, as `to_slice` does.
    #[test]
    fn serialize_errors_pass_through() {
        struct Bad;
        impl serde::Serialize for Bad {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let mut buf = [0u8; 16];
        let ours = to_slice(&(1u8, Bad), &mut buf).expect_err("fails");
        let theirs = postcard::to_slice(&(1u8, Bad), &mut buf).expect_err("fails");
        assert_eq!(ours, theirs);
        // Unknown-length sequences, which postcard cannot write.
        struct Seq;
        impl serde::Serialize for Seq {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(std::iter::from_fn(|| Some(1u8)).take(3).filter(|_| true))
            }
        }
        let ours = to_slice(&Seq, &mut buf).expect_err("fails");
        let theirs = postcard::to_slice(&Seq, &mut buf).expect_err("fails");
        assert_eq!(ours, theirs);
    }
}
