//! Shared-memory segments for shmkit, and the shim every shmkit crate builds on.
//!
//! This is the bottom layer of the stack (see `docs/architecture.md`). A [`Segment`] is
//! one `mmap`ed shared-memory object — a named POSIX shm object in `/dev/shm`, an
//! anonymous `memfd` inherited over `fork`, or a file — that begins with a validated
//! [`Header`](header::Header) (magic, versions, kind, size, creator pid + start time,
//! init state) and is created with a create → initialise → publish-ready protocol, so
//! an opener never sees a half-built object. [`layout::Layout`] places several
//! `#[repr(C)]` structures in one segment; a [`Token`] rebuilds a handle in another
//! process; [`list`] finds every shmkit segment on the machine.
//!
//! The [`shim`] module is the one place that names atomics, cells, futexes, time and
//! pids, so that `--cfg shmkit_loom` swaps them all for loom models.
//!
//! ```
//! use shmkit_segment::{shim::atomic::{AtomicU64, Ordering}, Kind, SegmentOptions};
//!
//! const COUNTER: Kind = Kind::from_tag(*b"CNTR");
//! let name = format!("doc-example-{}", std::process::id());
//! let seg = SegmentOptions::new(COUNTER, 8).create(&name, |s| {
//!     s.get::<AtomicU64>(0).unwrap().store(41, Ordering::Relaxed);
//! })?;
//! // Any process may now open it by name; the kind is checked.
//! let other = SegmentOptions::new(COUNTER, 0).open(&name)?;
//! other.get::<AtomicU64>(0)?.fetch_add(1, Ordering::Relaxed);
//! assert_eq!(seg.get::<AtomicU64>(0)?.load(Ordering::Relaxed), 42);
//! drop((seg, other)); // the creator's last handle unlinks the name
//! assert!(matches!(
//!     SegmentOptions::new(COUNTER, 0).open(&name),
//!     Err(shmkit_segment::Error::NotFound { .. })
//! ));
//! # Ok::<(), shmkit_segment::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

pub mod error;
#[cfg(not(shmkit_loom))]
#[doc(hidden)]
pub mod fuzzing;
pub mod header;
pub mod layout;
mod list;
mod name;
mod segment;
pub mod shim;
mod sys;
mod token;

pub use error::{Error, Result};
pub use list::{inspect, list, SegmentInfo, CREATION_GRACE};
pub use name::{shm_path, validate_name, MAX_NAME_LEN, PREFIX, SHM_DIR};
pub use segment::{
    unlink, Backing, Segment, SegmentOptions, DEFAULT_OPEN_TIMEOUT, MAX_SEGMENT_SIZE,
};
pub use token::{Source, Token};

use serde::{Deserialize, Serialize};

/// What lives in a segment: four ASCII bytes, stored little-endian in the header.
///
/// ```
/// use shmkit_segment::Kind;
/// const QUEUE: Kind = Kind::from_tag(*b"QUEU");
/// assert_eq!(QUEUE.to_string(), "QUEU");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Kind(pub u32);

impl Kind {
    /// Raw bytes with no structure imposed by shmkit.
    pub const RAW: Kind = Kind::from_tag(*b"RAW_");

    /// The kind with tag `tag`.
    pub const fn from_tag(tag: [u8; 4]) -> Self {
        Kind(u32::from_le_bytes(tag))
    }

    /// The four tag bytes.
    pub const fn tag(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.tag() {
            let c = if b.is_ascii_graphic() { b as char } else { '?' };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kind({self})")
    }
}

/// Types that may be referenced in shared memory.
///
/// # Safety
/// Implementors must be `#[repr(C)]` or `#[repr(transparent)]`, valid for **every**
/// bit pattern (another process may write anything), contain no pointers or
/// references, have no `Drop`, and be mutated through a shared reference only via
/// atomics or a cell whose accesses the type's protocol synchronises.
pub unsafe trait Shared: Sync {}

macro_rules! shared_atomics {
    ($($t:ident),*) => {$(
        // SAFETY: an atomic integer is repr(transparent) over its integer, valid for
        // every bit pattern, has no Drop and is mutated only atomically.
        #[cfg(not(shmkit_loom))]
        unsafe impl Shared for shim::atomic::$t {}
    )*};
}
shared_atomics!(
    AtomicU8,
    AtomicU32,
    AtomicU64,
    AtomicI32,
    AtomicI64,
    AtomicUsize
);

// SAFETY: an array of Shared elements is laid out contiguously with no padding
// between elements and inherits each element's guarantees.
unsafe impl<T: Shared, const N: usize> Shared for [T; N] {}

// SAFETY: the header is repr(C), made only of atomic integers (valid for every bit
// pattern, no Drop), and is mutated only atomically.
#[cfg(not(shmkit_loom))]
unsafe impl Shared for header::Header {}
