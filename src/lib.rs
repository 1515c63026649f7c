//! shmkit: Python's `multiprocessing` for Rust, on shared memory.
//!
//! This facade re-exports every layer of the workspace (see `docs/architecture.md`);
//! it holds no logic of its own. Each layer is also available as a module
//! ([`segment`], [`process`], [`sync`], [`ring`], [`queue`], [`pipe`], [`pool`]), with
//! its own `Error` type; the [`prelude`] has the handles most programs need.
//!
//! ```
//! use shmkit::prelude::*;
//!
//! let q: Queue<String> = Queue::new(10)?;
//! let mut child = Process::new({
//!     let q = q.clone(); // another handle to the same shared queue
//!     move || q.put("hi from the child".to_string())
//! });
//! child.start()?;
//! assert_eq!(q.get()?, "hi from the child");
//! child.join()?;
//! assert_eq!(child.exitcode(), Some(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
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

/// The names most programs need, in one import (each crate's `Error` stays in its
/// module: `shmkit::queue::Error`, `shmkit::sync::Error`, …).
pub mod prelude {
    pub use shmkit_pipe::{Connection, Pipe, Receiver, Sender};
    pub use shmkit_pool::{AsyncResult, Callbacks, Pool};
    pub use shmkit_process::{
        active_children, cpu_count, current_process, parent_process, Process, Run, StartMethod,
    };
    pub use shmkit_queue::{JoinableQueue, PodQueue, Queue, SimpleQueue};
    pub use shmkit_segment::{Kind, Segment, SegmentOptions, Token};
    pub use shmkit_sync::{
        Barrier, BoundedSemaphore, Condition, Event, Lock, LockError, Mutex, RLock, Semaphore,
    };
}
