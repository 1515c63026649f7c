//! Lock-free rings over raw shared memory.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod bytes;
mod config;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod lock;
pub mod mpmc;
pub mod owner;
pub mod raw;
mod role;
pub mod spsc;

pub use config::{RingConfig, RingKind, MAX_BYTES, MAX_SLOTS, MAX_SLOT_SIZE, MIN_BYTES};
pub use error::{Error, Result};
pub use owner::OwnerId;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("shmkit-ring supports 64-bit targets only (positions and sizes are u64)");

/// `u64` to `usize`: lossless, as the crate builds for 64-bit targets only.
#[inline(always)]
#[allow(clippy::cast_possible_truncation)]
pub(crate) const fn us(x: u64) -> usize {
    x as usize
}
