//! The queue crate's error type.

/// `Result` with [`Error`] (carrying nothing back) as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a queue operation can report.
///
/// `T` is what a failed put hands back: the item itself for [`Error::Full`], so a
/// non-blocking or timed put loses nothing. Operations that carry nothing back use
/// `Error<()>`, the default.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<T = ()> {
    /// The queue has no room (now, or before the timeout); the item is handed back.
    /// Python: `queue.Full`.
    #[error("queue is full")]
    Full(T),
    /// The queue held nothing to take (now, or before the timeout). Python:
    /// `queue.Empty`.
    #[error("queue is empty")]
    Empty,
    /// A wait other than put/get (e.g. [`crate::JoinableQueue::join_timeout`]) ran out
    /// of time.
    #[error("timed out")]
    Timeout,
    /// The queue was closed: puts are refused, and getters get this once it is drained.
    #[error("queue is closed")]
    Closed,
    /// Every other handle to the queue is gone (dropped in every process, or its
    /// process died): a get on an empty queue or a put on a full one would wait
    /// forever.
    #[error("every other handle to the queue is gone")]
    Disconnected,
    /// The encoded item is larger than the queue's maximum item size; nothing was
    /// written. Create the queue with a larger `max_item_size`.
    #[error("item of {len} bytes is larger than the queue's maximum of {max} bytes")]
    TooLarge {
        /// The item's encoded size in bytes.
        len: usize,
        /// The queue's maximum item size.
        max: usize,
    },
    /// The item could not be encoded or decoded (postcard).
    #[error("item codec error: {0}")]
    Codec(#[source] postcard::Error),
    /// `task_done` was called more times than items were put.
    #[error("task_done() called too many times")]
    TaskDone,
    /// The table of processes holding handles is full (more processes than
    /// [`crate::MAX_PROCESSES`] at once).
    #[error("more than {max} processes hold handles to this queue")]
    TooManyProcesses {
        /// The table size.
        max: usize,
    },
    /// The queue's shared memory holds something no correct peer writes (a length or
    /// header out of range). Recreate the queue.
    #[error("queue is corrupt: {what}")]
    Corrupt {
        /// What was inconsistent.
        what: &'static str,
    },
    /// The configuration cannot describe a queue.
    #[error("invalid queue configuration: {what}")]
    Config {
        /// What is wrong.
        what: &'static str,
    },
    /// An error from the ring below.
    #[error(transparent)]
    Ring(shmkit_ring::Error),
    /// An error from the segment below (create, open, token).
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

    /// Maps the handed-back item.
    pub fn map_item<U>(self, f: impl FnOnce(T) -> U) -> Error<U> {
        match self {
            Error::Full(t) => Error::Full(f(t)),
            Error::Empty => Error::Empty,
            Error::Timeout => Error::Timeout,
            Error::Closed => Error::Closed,
            Error::Disconnected => Error::Disconnected,
            Error::TooLarge { len, max } => Error::TooLarge { len, max },
            Error::Codec(e) => Error::Codec(e),
            Error::TaskDone => Error::TaskDone,
            Error::TooManyProcesses { max } => Error::TooManyProcesses { max },
            Error::Corrupt { what } => Error::Corrupt { what },
            Error::Config { what } => Error::Config { what },
            Error::Ring(e) => Error::Ring(e),
            Error::Segment(e) => Error::Segment(e),
        }
    }
}

impl From<shmkit_ring::Error> for Error {
    fn from(e: shmkit_ring::Error) -> Self {
        match e {
            shmkit_ring::Error::Full(()) => Error::Full(()),
            shmkit_ring::Error::Empty => Error::Empty,
            shmkit_ring::Error::TooLarge { len, max } => Error::TooLarge { len, max },
            e => Error::Ring(e),
        }
    }
}
