//! Placing several `#[repr(C)]` structures at aligned offsets of one segment.
//!
//! A queue needs a ring header, two wait words, counters and a slot array in one
//! segment. [`Layout`] hands out typed offsets ([`Region`], [`ArrayRegion`]) relative to
//! the data area; the same code in every process computes the same offsets, and each
//! access through a segment is bounds- and alignment-checked.
//!
//! ```
//! use shmkit_segment::{layout::Layout, shim::atomic::{AtomicU32, AtomicU64}, Kind, Segment};
//! let mut l = Layout::new();
//! let head = l.add::<AtomicU64>();
//! let words = l.add_array::<AtomicU32>(4)?;
//! let seg = Segment::create_anonymous(Kind::RAW, l.size())?;
//! assert_eq!(words.get(&seg)?.len(), 4);
//! head.get(&seg)?;
//! # Ok::<(), shmkit_segment::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::segment::{Segment, MAX_SEGMENT_SIZE};
use crate::Shared;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Asserts at compile time the size, alignment and field offsets of a shared type.
///
/// ```
/// #[repr(C)]
/// struct Pair { a: u32, b: u64 }
/// shmkit_segment::assert_layout!(Pair, size = 16, align = 8, a @ 0, b @ 8);
/// ```
#[macro_export]
macro_rules! assert_layout {
    ($t:ty, size = $size:expr, align = $align:expr $(, $field:ident @ $off:expr)* $(,)?) => {
        #[cfg(not(shmkit_loom))]
        const _: () = {
            assert!(::core::mem::size_of::<$t>() == $size, concat!("size of ", stringify!($t)));
            assert!(::core::mem::align_of::<$t>() == $align, concat!("align of ", stringify!($t)));
            $(assert!(
                ::core::mem::offset_of!($t, $field) == $off,
                concat!("offset of ", stringify!($t), ".", stringify!($field))
            );)*
        };
    };
}

/// Computes offsets for a sequence of items in a segment's data area.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    size: usize,
    align: usize,
}

const fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
}

impl Layout {
    /// An empty layout.
    pub const fn new() -> Self {
        Layout { size: 0, align: 1 }
    }

    /// Places one `T` at the next offset aligned for it.
    ///
    /// # Panics
    /// If the layout would exceed the maximum segment size (a programming error; sizes
    /// from input go through [`Layout::add_array`] or [`Layout::add_bytes`]).
    pub const fn add<T>(&mut self) -> Region<T> {
        let align = std::mem::align_of::<T>();
        let offset = align_up(self.size, align);
        self.size = offset + std::mem::size_of::<T>();
        assert!(self.size as u64 <= MAX_SEGMENT_SIZE, "layout too large");
        if align > self.align {
            self.align = align;
        }
        Region {
            offset,
            _t: PhantomData,
        }
    }

    /// Places `len` `T`s, aligned for `T`.
    ///
    /// # Errors
    /// [`Error::TooLarge`] if the layout would exceed the maximum segment size.
    pub fn add_array<T>(&mut self, len: usize) -> Result<ArrayRegion<T>> {
        let align = std::mem::align_of::<T>();
        let r = self.reserve(len.checked_mul(std::mem::size_of::<T>()), align)?;
        Ok(ArrayRegion {
            offset: r,
            len,
            _t: PhantomData,
        })
    }

    /// Places `len` raw bytes aligned to `align` (a power of two, at most 4096).
    ///
    /// # Errors
    /// [`Error::TooLarge`] if the layout would exceed the maximum segment size, or
    /// [`Error::Misaligned`] for a bad `align`.
    pub fn add_bytes(&mut self, len: usize, align: usize) -> Result<ByteRegion> {
        if !align.is_power_of_two() || align > 4096 {
            return Err(Error::Misaligned {
                offset: 0,
                align: align as u64,
            });
        }
        let offset = self.reserve(Some(len), align)?;
        Ok(ByteRegion { offset, len })
    }

    fn reserve(&mut self, len: Option<usize>, align: usize) -> Result<usize> {
        let offset = align_up(self.size, align);
        let end = len.and_then(|l| offset.checked_add(l));
        match end {
            Some(end) if end as u64 <= MAX_SEGMENT_SIZE => {
                self.size = end;
                self.align = self.align.max(align);
                Ok(offset)
            }
            _ => Err(Error::TooLarge {
                requested: end.map_or(u64::MAX, |e| e as u64),
                max: MAX_SEGMENT_SIZE,
            }),
        }
    }

    /// Bytes needed so far.
    pub const fn size(&self) -> usize {
        self.size
    }

    /// The largest alignment placed (at most 128 is guaranteed by a segment's data area).
    pub const fn align(&self) -> usize {
        self.align
    }
}

/// The offset of one `T` in a segment's data area.
#[derive(Debug)]
pub struct Region<T> {
    offset: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Region<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Region<T> {}

impl<T> Region<T> {
    /// A region at a known offset (for example from a token).
    pub const fn at(offset: usize) -> Self {
        Region {
            offset,
            _t: PhantomData,
        }
    }

    /// The offset in the data area.
    pub const fn offset(&self) -> usize {
        self.offset
    }
}

impl<T: Shared> Region<T> {
    /// The `T` in `seg`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::Misaligned`] if `seg` does not hold this layout.
    pub fn get<'a>(&self, seg: &'a Segment) -> Result<&'a T> {
        seg.get(self.offset)
    }
}

/// The offset and length of an array of `T` in a segment's data area.
#[derive(Debug)]
pub struct ArrayRegion<T> {
    offset: usize,
    len: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for ArrayRegion<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ArrayRegion<T> {}

impl<T> ArrayRegion<T> {
    /// The offset in the data area.
    pub const fn offset(&self) -> usize {
        self.offset
    }

    /// Number of elements.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T: Shared> ArrayRegion<T> {
    /// The slice in `seg`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::Misaligned`] if `seg` does not hold this layout.
    pub fn get<'a>(&self, seg: &'a Segment) -> Result<&'a [T]> {
        seg.get_slice(self.offset, self.len)
    }
}

/// The offset and length of raw bytes in a segment's data area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRegion {
    offset: usize,
    len: usize,
}

impl ByteRegion {
    /// The offset in the data area.
    pub const fn offset(&self) -> usize {
        self.offset
    }

    /// Number of bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A bounds-checked pointer to the bytes in `seg`. Accesses through it must be
    /// synchronised by the caller's protocol (other processes may write them).
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if `seg` is too small for this layout.
    pub fn ptr(&self, seg: &Segment) -> Result<NonNull<u8>> {
        seg.range(self.offset, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_aligned_and_sizes_checked() {
        let mut l = Layout::new();
        let a = l.add::<u8>();
        let b = l.add::<u64>();
        let c = l.add_bytes(3, 128).expect("bytes");
        assert_eq!((a.offset(), b.offset(), c.offset()), (0, 8, 128));
        assert_eq!(l.size(), 131);
        assert_eq!(l.align(), 128);
        assert!(l.add_array::<u64>(usize::MAX / 4).is_err());
        assert!(l.add_bytes(1, 3).is_err());
        assert_eq!(l.size(), 131, "a failed add leaves the layout unchanged");
    }
}
