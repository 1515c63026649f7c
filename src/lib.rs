//! shmkit: Python's `multiprocessing` for Rust, on shared memory.
//!
//! This facade re-exports every layer of the workspace (see `docs/architecture.md`);
//! it holds no logic of its own. Start with the [`prelude`].
//!
//! ```
//! use shmkit::prelude::*;
//! use shmkit::segment::shim::atomic::{AtomicU64, Ordering};
//!
//! let seg = Segment::create_anonymous(Kind::RAW, 8)?;
//! seg.get::<AtomicU64>(0)?.store(7, Ordering::Relaxed);
//! assert_eq!(seg.get::<AtomicU64>(0)?.load(Ordering::Relaxed), 7);
//! # Ok::<(), shmkit::segment::Error>(())
//! ```
#![forbid(unsafe_code)]

pub use shmkit_pipe as pipe;
pub use shmkit_pool as pool;
pub use shmkit_process as process;
pub use shmkit_queue as queue;
pub use shmkit_ring as ring;
pub use shmkit_segment as segment;
pub use shmkit_shared as shared;
pub use shmkit_sync as sync;

/// The names most programs need, in one import.
pub mod prelude {
    pub use shmkit_segment::{Kind, Segment, SegmentOptions, Token};
}
