//! The owning-handle plumbing shared by every primitive: a segment holding one raw
//! primitive at data offset 0, optionally followed by a payload (a `Mutex<T>`'s `T`).

use crate::error::{Error, Result};
use shmkit_segment::{Kind, Segment, SegmentOptions, Shared, Token};
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Layout version of every sync segment kind (bump on any layout change).
pub(crate) const KIND_VERSION: u32 = 1;

/// A segment with a raw primitive `R` at data offset 0.
pub(crate) struct Shm<R> {
    seg: Segment,
    raw: NonNull<R>,
    _r: PhantomData<R>,
}

// SAFETY: `raw` points into the mapping owned (through an Arc) by `seg`, which is
// Send; `R: Shared` is Sync and only ever accessed through `&R`.
unsafe impl<R: Shared> Send for Shm<R> {}
// SAFETY: as for Send: shared access to `R` from several threads is what `R: Sync`
// (implied by `Shared`) allows.
unsafe impl<R: Shared> Sync for Shm<R> {}

impl<R> Clone for Shm<R> {
    fn clone(&self) -> Self {
        Shm {
            seg: self.seg.clone(),
            raw: self.raw,
            _r: PhantomData,
        }
    }
}

impl<R: fmt::Debug + Shared> fmt::Debug for Shm<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shm")
            .field("segment", &self.seg.describe())
            .field("raw", self.raw())
            .finish()
    }
}

impl<R: Shared> Shm<R> {
    pub(crate) fn from_parts(seg: Segment, len: usize) -> Result<Self> {
        if seg.data_len() < len {
            return Err(Error::Segment(shmkit_segment::Error::OutOfBounds {
                offset: 0,
                len: len as u64,
                size: seg.data_len() as u64,
            }));
        }
        let raw = NonNull::from(seg.get::<R>(0)?);
        Ok(Shm {
            seg,
            raw,
            _r: PhantomData,
        })
    }

    fn opts(kind: Kind, len: usize) -> SegmentOptions {
        SegmentOptions::new(kind, len.max(std::mem::size_of::<R>())).kind_version(KIND_VERSION)
    }

    fn init_with(init: impl FnOnce(&R)) -> impl FnOnce(&Segment) {
        move |s: &Segment| {
            if let Ok(r) = s.get::<R>(0) {
                init(r);
            }
        }
    }

    /// A new anonymous segment of `len` data bytes; `init` runs on the zeroed `R`.
    pub(crate) fn anonymous(kind: Kind, len: usize, init: impl FnOnce(&R)) -> Result<Self> {
        let seg = Self::opts(kind, len).create_anonymous(Self::init_with(init))?;
        Self::from_parts(seg, len)
    }

    /// A new named segment.
    pub(crate) fn create(
        name: &str,
        kind: Kind,
        len: usize,
        init: impl FnOnce(&R),
    ) -> Result<Self> {
        let seg = Self::opts(kind, len).create(name, Self::init_with(init))?;
        Self::from_parts(seg, len)
    }

    /// Opens a named segment and checks it holds at least `len` data bytes.
    pub(crate) fn open(name: &str, kind: Kind, len: usize) -> Result<Self> {
        let seg = Self::opts(kind, 0).open(name)?;
        Self::from_parts(seg, len)
    }

    /// Opens or creates; the flag says whether this call created it.
    pub(crate) fn open_or_create(
        name: &str,
        kind: Kind,
        len: usize,
        init: impl FnOnce(&R),
    ) -> Result<(Self, bool)> {
        let (seg, created) = Self::opts(kind, len).open_or_create(name, Self::init_with(init))?;
        Ok((Self::from_parts(seg, len)?, created))
    }

    /// Rebuilds a handle from a token made by [`Shm::token`].
    pub(crate) fn from_token(token: &Token, kind: Kind, len: usize) -> Result<Self> {
        if token.kind != kind {
            return Err(Error::Segment(shmkit_segment::Error::TokenStale {
                reason: format!("the token names a {}, not a {}", token.kind, kind),
            }));
        }
        if token.offset != 0 {
            return Err(Error::Segment(shmkit_segment::Error::TokenStale {
                reason: format!("sync tokens have offset 0, found {}", token.offset),
            }));
        }
        Self::from_parts(token.open()?, len)
    }

    /// A token for this object.
    pub(crate) fn token(&self) -> Result<Token> {
        Ok(self.seg.token()?.with_offset(0))
    }

    /// The raw primitive.
    #[inline]
    pub(crate) fn raw(&self) -> &R {
        // SAFETY: `raw` was produced by a bounds- and alignment-checked `Segment::get`
        // on `seg`, whose mapping lives as long as `self`; `R: Shared` tolerates any
        // bit pattern and concurrent atomic mutation, so `&R` is sound.
        unsafe { self.raw.as_ref() }
    }

    /// The segment.
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }
}
