//! The ring crate's error type.

/// `Result` with [`Error`] (carrying nothing back) as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a ring operation can report.
///
/// `T` is what a failed non-blocking push hands back: the item itself for
/// [`Error::Full`], so nothing is lost or dropped. Operations that carry nothing back
/// use `Error<()>`, the default.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<T = ()> {
    /// The ring has no room now; the item is handed back. Retry after a consumer ran.
    #[error("ring is full")]
    Full(T),
    /// The ring holds nothing to take now. Retry after a producer ran.
    #[error("ring is empty")]
    Empty,
    /// The item can never fit (bigger than a slot, or than the largest record).
    #[error("item of {len} bytes is larger than the ring's maximum of {max} bytes")]
    TooLarge {
        /// The item's size in bytes.
        len: usize,
        /// The largest size this ring carries.
        max: usize,
    },
    /// The receiving buffer is smaller than the next record, which stays in the ring.
    #[error("buffer of {len} bytes is too short for a {needed}-byte record")]
    BufferTooShort {
        /// Bytes needed for the record.
        needed: usize,
        /// Bytes in the buffer given.
        len: usize,
    },
    /// The shared memory holds something no correct peer could have written.
    /// The ring cannot be used further; recreate it.
    #[error("ring is corrupt: {what}")]
    Corrupt {
        /// What was inconsistent.
        what: &'static str,
    },
    /// The configuration cannot describe a ring (see [`crate::RingConfig`]).
    #[error("invalid ring configuration: {what}")]
    Config {
        /// What is wrong.
        what: &'static str,
    },
    /// The memory holds a ring of another kind, version or shape than asked for.
    #[error("incompatible ring: {what} (expected {expected}, found {found})")]
    Incompatible {
        /// Which field differs.
        what: &'static str,
        /// The value this handle needs.
        expected: u64,
        /// The value in shared memory.
        found: u64,
    },
    /// The producer or consumer role of a single-producer/consumer ring is held by a
    /// live process (`pid`); only one may hold it. Drop that handle first.
    #[error("the {role} end of the ring is held by live process {pid}")]
    InUse {
        /// `"producer"` or `"consumer"`.
        role: &'static str,
        /// The process holding it.
        pid: u32,
    },
    /// Placing or addressing the ring in a segment failed.
    #[error(transparent)]
    Segment(#[from] shmkit_segment::Error),
}

impl<T> Error<T> {
    /// The same error without the handed-back item (`Full(t)` becomes `Full(())`).
    pub fn drop_item(self) -> Error {
        self.map_item(|_| ())
    }

    /// The item handed back by [`Error::Full`], if this is one.
    pub fn into_item(self) -> Option<T> {
        match self {
            Error::Full(t) => Some(t),
            _ => None,
        }
    }

    /// Whether this is [`Error::Full`] or [`Error::Empty`], the transient conditions a
    /// caller retries on.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Full(_) | Error::Empty)
    }

    /// Maps the handed-back item.
    pub fn map_item<U>(self, f: impl FnOnce(T) -> U) -> Error<U> {
        match self {
            Error::Full(t) => Error::Full(f(t)),
            Error::Empty => Error::Empty,
            Error::TooLarge { len, max } => Error::TooLarge { len, max },
            Error::BufferTooShort { needed, len } => Error::BufferTooShort { needed, len },
            Error::Corrupt { what } => Error::Corrupt { what },
            Error::Config { what } => Error::Config { what },
            Error::Incompatible {
                what,
                expected,
                found,
            } => Error::Incompatible {
                what,
                expected,
                found,
            },
            Error::InUse { role, pid } => Error::InUse { role, pid },
            Error::Segment(e) => Error::Segment(e),
        }
    }
}

pub(crate) const fn corrupt<T>(what: &'static str) -> Error<T> {
    Error::Corrupt { what }
}
