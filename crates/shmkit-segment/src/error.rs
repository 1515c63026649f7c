//! The segment crate's error type.

use crate::Kind;
use std::io;
use std::time::Duration;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong creating, opening or addressing a segment.
///
/// `segment` fields name the segment as a user would: its name, its path, or
/// `memfd:<kind>` for an anonymous one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name is empty, too long, or has a character other than `A-Z a-z 0-9 _ - .`.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No segment of that name exists (check the name, or create it first).
    #[error("segment {segment:?} does not exist")]
    NotFound {
        /// The segment.
        segment: String,
    },
    /// A segment of that name exists already (open it, or use `open_or_create`).
    #[error("segment {segment:?} already exists; open it or pick another name")]
    AlreadyExists {
        /// The segment.
        segment: String,
    },
    /// The segment exists but this user may not open it (see its mode with `ls -l /dev/shm`).
    #[error("permission denied opening segment {segment:?}")]
    PermissionDenied {
        /// The segment.
        segment: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The header's magic number is wrong: this is not a shmkit segment, or it was overwritten.
    #[error("segment {segment:?} is corrupt: {reason}")]
    Corrupt {
        /// The segment.
        segment: String,
        /// What was found.
        reason: String,
    },
    /// The segment was written by an incompatible shmkit (header format version).
    #[error("segment {segment:?} has header format version {found}, this build reads version {expected}; use the same shmkit version on both sides")]
    Incompatible {
        /// The segment.
        segment: String,
        /// The version this build reads.
        expected: u32,
        /// The version in the header.
        found: u32,
    },
    /// The segment holds a different kind of object than asked for.
    #[error("segment {segment:?} holds a {found}, not a {expected}")]
    WrongKind {
        /// The segment.
        segment: String,
        /// The kind asked for.
        expected: Kind,
        /// The kind in the header.
        found: Kind,
    },
    /// The object's own layout version differs (an older or newer shmkit made it).
    #[error("segment {segment:?} holds a {kind} of layout version {found}, this build uses version {expected}; use the same shmkit version on both sides")]
    KindVersion {
        /// The segment.
        segment: String,
        /// Its kind.
        kind: Kind,
        /// The version this build uses.
        expected: u32,
        /// The version in the header.
        found: u32,
    },
    /// The file is shorter than its header says (someone truncated it).
    #[error(
        "segment {segment:?} is truncated: the header says {expected} bytes, the file has {found}"
    )]
    Truncated {
        /// The segment.
        segment: String,
        /// Size the header (or the minimum header) requires.
        expected: u64,
        /// Size of the file.
        found: u64,
    },
    /// The creator died before it finished initialising; remove it (`shmkit gc`) and create it again.
    #[error("the creator of segment {segment:?} (pid {pid}) died before it was ready; remove it with `shmkit gc` and create it again")]
    CreatorDied {
        /// The segment.
        segment: String,
        /// The creator's pid.
        pid: u32,
    },
    /// The creator gave up initialising (its initialiser panicked).
    #[error("the creator of segment {segment:?} failed to initialise it")]
    CreatorFailed {
        /// The segment.
        segment: String,
    },
    /// The segment did not become ready within the open timeout.
    #[error("segment {segment:?} was not ready after {waited:?}; its creator may be stuck, or it is not a shmkit segment")]
    NotReady {
        /// The segment.
        segment: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The requested size cannot be represented or mapped.
    #[error("segment size {requested} bytes is too large (at most {max})")]
    TooLarge {
        /// Requested bytes.
        requested: u64,
        /// The limit.
        max: u64,
    },
    /// An offset/length pair does not lie inside the segment's data area.
    #[error("range {offset}+{len} is outside the segment's {size} data bytes")]
    OutOfBounds {
        /// Offset into the data area.
        offset: u64,
        /// Length of the access.
        len: u64,
        /// Size of the data area.
        size: u64,
    },
    /// An offset is not aligned for the type placed there.
    #[error("offset {offset} is not aligned to {align}")]
    Misaligned {
        /// Offset into the data area.
        offset: u64,
        /// Required alignment.
        align: u64,
    },
    /// A token no longer names a reachable segment (its process and fd are gone).
    #[error("token cannot be opened: {reason}")]
    TokenStale {
        /// Why.
        reason: String,
    },
    /// Any other OS failure.
    #[error("{op} failed for segment {segment:?}")]
    Io {
        /// The operation (`shm_open`, `ftruncate`, `mmap`, …).
        op: &'static str,
        /// The segment.
        segment: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Maps an OS error from opening `segment` to the specific variant.
    pub(crate) fn from_open(op: &'static str, segment: &str, source: io::Error) -> Self {
        let segment = segment.to_owned();
        match source.kind() {
            io::ErrorKind::NotFound => Error::NotFound { segment },
            io::ErrorKind::AlreadyExists => Error::AlreadyExists { segment },
            io::ErrorKind::PermissionDenied => Error::PermissionDenied { segment, source },
            _ => Error::Io {
                op,
                segment,
                source,
            },
        }
    }

    pub(crate) fn io(op: &'static str, segment: &str, source: io::Error) -> Self {
        Error::Io {
            op,
            segment: segment.to_owned(),
            source,
        }
    }
}
