//! Python's `multiprocessing` queues on shared memory: [`Queue`], [`SimpleQueue`],
//! [`JoinableQueue`], and [`PodQueue`] for plain-data items without a codec.
//!
//! This crate sits on `shmkit-ring` (a crash-tolerant MPMC ring in a shared segment
//! carries the items), `shmkit-sync` (blocking calls spin briefly, then sleep on
//! shared futexes through its `EventCount`) and `shmkit-segment` (the segment, its
//! name and token). Items are any serde type encoded with postcard into fixed-size
//! slots (a queue's *maximum item size*; bigger items are refused with
//! [`Error::TooLarge`]), or `bytemuck::Pod` values copied as raw bytes
//! ([`PodQueue`]). Handles are `Clone` and survive `fork`; unrelated processes open a
//! queue by name or by [`Token`](shmkit_segment::Token). Each queue counts its
//! handles per process in shared memory, so a blocked `get` on an empty queue (or
//! `put` on a full one) returns [`Error::Disconnected`] once every other handle is
//! dropped or its process died (noticed within [`LIVENESS_SLICE`]). See
//! `docs/queue.md` for the segment layout, the blocking protocol and the exact
//! delivery guarantee when a process is SIGKILLed.
//!
//! ```
//! use shmkit_queue::{Error, Queue};
//! use std::time::Duration;
//!
//! let q: Queue<String> = Queue::new(10)?;
//! let producer = {
//!     let q = q.clone(); // another handle to the same queue (also works across fork)
//!     std::thread::spawn(move || {
//!         for i in 0..3 {
//!             q.put(format!("item {i}")).map_err(Error::drop_item)?;
//!         }
//!         Ok::<(), Error>(())
//!     })
//! };
//! for i in 0..3 {
//!     assert_eq!(q.get()?, format!("item {i}"));
//! }
//! producer.join().expect("producer")?;
//! // The producer's handle is gone: an empty queue with no other handle disconnects.
//! assert!(matches!(q.get(), Err(Error::Disconnected)));
//! assert!(matches!(q.get_timeout(Duration::ZERO), Err(Error::Empty)));
//! # Ok::<(), Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

mod error;
pub mod raw;

#[cfg(not(shmkit_loom))]
mod codec;
#[cfg(not(shmkit_loom))]
mod core;
#[cfg(not(shmkit_loom))]
mod joinable;
#[cfg(not(shmkit_loom))]
mod local;
#[cfg(not(shmkit_loom))]
mod queue;

pub use error::{Error, Result};
pub use raw::{LIVENESS_SLICE, MAX_PROCESSES};

#[cfg(not(shmkit_loom))]
pub use crate::core::{QUEUE_KIND, QUEUE_KIND_VERSION};
#[cfg(not(shmkit_loom))]
pub use joinable::{JoinableQueue, SimpleQueue};
#[cfg(not(shmkit_loom))]
pub use queue::{
    PodQueue, Queue, QueueOptions, DEFAULT_CAPACITY, DEFAULT_MAX_ITEM_SIZE, SLOT_OVERHEAD,
};
