//! Lock-free rings over raw shared memory.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod bytes;
mod config;
pub mod error;
mod lock;
pub mod mpmc;
pub mod owner;
pub mod raw;
mod role;
pub mod spsc;

pub use config::{RingConfig, RingKind, MAX_BYTES, MAX_SLOTS, MAX_SLOT_SIZE, MIN_BYTES};
pub use error::{Error, Result};
pub use owner::OwnerId;
