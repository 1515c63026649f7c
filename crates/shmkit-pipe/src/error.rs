//! The pipe crate's error type.

/// `Result` with the pipe [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a pipe operation can report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer end is closed in every process that held it (dropped, closed, or its
    /// process died) and every message it sent has been received: Python's `EOFError`.
    #[error("end of file: the peer end is closed everywhere and everything it sent was received")]
    Eof,
    /// The peer end is closed in every process: nothing sent now can ever be received
    /// (Python's `BrokenPipeError`).
    #[error("the peer end is closed in every process; nothing more can be sent")]
    Closed,
    /// `recv_bytes_into`: the message did not fit; here it is, whole (it was consumed).
    #[error("buffer too short for a {}-byte message (the message is carried in this error)", .0.len())]
    BufferTooShort(Vec<u8>),
    /// `recv_bytes_max`: the next message is longer than the limit. It was **not**
    /// consumed: it stays first in the pipe (receive it with a larger limit).
    #[error("message of {len} bytes is longer than maxlength {max}; it stays queued")]
    MessageTooLong {
        /// The message's length.
        len: u64,
        /// The limit given.
        max: usize,
    },
    /// The message is larger than the largest message a pipe carries.
    #[error("message of {len} bytes exceeds the largest message of {max} bytes")]
    TooLarge {
        /// The message's length.
        len: u64,
        /// [`crate::MAX_MESSAGE_LEN`].
        max: u64,
    },
    /// `send_bytes_range`: `offset`/`size` select bytes outside the buffer; nothing was sent.
    #[error("offset {offset} + size {size} is outside the {len}-byte buffer; nothing was sent")]
    OutOfRange {
        /// The offset given.
        offset: usize,
        /// The size given.
        size: usize,
        /// The buffer's length.
        len: usize,
    },
    /// `recv_bytes_into`: the offset lies beyond the end of the buffer; nothing was received.
    #[error("offset {offset} is beyond the end of the {len}-byte buffer; nothing was received")]
    BadOffset {
        /// The offset given.
        offset: usize,
        /// The buffer's length.
        len: usize,
    },
    /// The deadline passed first.
    #[error("timed out")]
    Timeout,
    /// Encoding or decoding a serde value failed (postcard).
    #[error("codec: {0}")]
    Codec(#[source] postcard::Error),
    /// The shared memory holds something no correct peer could have written.
    #[error("corrupt pipe: {what}")]
    Corrupt {
        /// What was inconsistent.
        what: &'static str,
    },
    /// More processes than [`crate::MAX_HOLDERS`] hold this end at once.
    #[error("end {end} is already held by {max} processes")]
    TooManyHolders {
        /// The end (0 or 1).
        end: usize,
        /// [`crate::MAX_HOLDERS`].
        max: usize,
    },
    /// A bad configuration (for example a ring capacity that is not a power of two).
    #[error("invalid pipe configuration: {what}")]
    Config {
        /// What is wrong.
        what: &'static str,
    },
    /// A segment operation failed (create, open, token).
    #[error(transparent)]
    Segment(#[from] shmkit_segment::Error),
    /// The underlying ring reported an unexpected error.
    #[error("ring: {0}")]
    Ring(#[source] shmkit_ring::Error),
}

impl From<shmkit_ring::Error> for Error {
    fn from(e: shmkit_ring::Error) -> Self {
        match e {
            shmkit_ring::Error::Corrupt { what } => Error::Corrupt { what },
            e => Error::Ring(e),
        }
    }
}

pub(crate) fn corrupt(what: &'static str) -> Error {
    Error::Corrupt { what }
}
