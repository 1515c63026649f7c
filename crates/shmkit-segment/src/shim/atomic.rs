//! Atomic integers and orderings: thin `#[repr(transparent)]` wrappers over std's
//! (so clippy's `disallowed-types` can keep std atomics out of every other module),
//! or loom's types under `--cfg shmkit_loom`.
//!
//! In shared memory an atomic is valid for every bit pattern, so a zeroed mapping is
//! a valid array of atomics equal to 0.

#[cfg(shmkit_loom)]
pub use loom::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
};
pub use std::sync::atomic::Ordering;

/// A memory fence (std's, or loom's under `--cfg shmkit_loom`).
#[cfg(not(shmkit_loom))]
#[inline(always)]
pub fn fence(order: Ordering) {
    std::sync::atomic::fence(order);
}

/// A compiler-only fence: orders this thread's accesses against the compiler, not
/// the CPU (the light half of an asymmetric fence whose heavy half is
/// [`crate::shim::membarrier::global_expedited`]). Under loom it is a full fence,
/// since loom does not model membarrier.
#[inline(always)]
pub fn compiler_fence(order: Ordering) {
    #[cfg(not(shmkit_loom))]
    std::sync::atomic::compiler_fence(order);
    #[cfg(shmkit_loom)]
    fence(order);
}

#[cfg(not(shmkit_loom))]
macro_rules! atomic_int {
    ($name:ident, $int:ty) => {
        #[doc = concat!("`std::sync::atomic::", stringify!($name), "` behind the shim.")]
        #[derive(Default)]
        #[repr(transparent)]
        pub struct $name(std::sync::atomic::$name);

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl $name {
            /// A new atomic holding `v`.
            #[inline(always)]
            pub const fn new(v: $int) -> Self {
                Self(std::sync::atomic::$name::new(v))
            }
            /// Atomic load.
            #[inline(always)]
            pub fn load(&self, order: Ordering) -> $int {
                self.0.load(order)
            }
            /// Atomic store.
            #[inline(always)]
            pub fn store(&self, v: $int, order: Ordering) {
                self.0.store(v, order)
            }
            /// Atomic swap; returns the previous value.
            #[inline(always)]
            pub fn swap(&self, v: $int, order: Ordering) -> $int {
                self.0.swap(v, order)
            }
            /// Strong compare-and-exchange.
            ///
            /// # Errors
            /// The current value, when it differs from `current`.
            #[inline(always)]
            pub fn compare_exchange(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.0.compare_exchange(current, new, success, failure)
            }
            /// Weak compare-and-exchange (may fail spuriously).
            ///
            /// # Errors
            /// The current value, when it differs or on a spurious failure.
            #[inline(always)]
            pub fn compare_exchange_weak(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.0.compare_exchange_weak(current, new, success, failure)
            }
            /// Wrapping add; returns the previous value.
            #[inline(always)]
            pub fn fetch_add(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_add(v, order)
            }
            /// Wrapping subtract; returns the previous value.
            #[inline(always)]
            pub fn fetch_sub(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_sub(v, order)
            }
            /// Bitwise and; returns the previous value.
            #[inline(always)]
            pub fn fetch_and(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_and(v, order)
            }
            /// Bitwise or; returns the previous value.
            #[inline(always)]
            pub fn fetch_or(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_or(v, order)
            }
            /// Bitwise xor; returns the previous value.
            #[inline(always)]
            pub fn fetch_xor(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_xor(v, order)
            }
            /// Maximum; returns the previous value.
            #[inline(always)]
            pub fn fetch_max(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_max(v, order)
            }
            /// Minimum; returns the previous value.
            #[inline(always)]
            pub fn fetch_min(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_min(v, order)
            }
            /// Applies `f` in a compare-exchange loop until it returns `None` or succeeds.
            ///
            /// # Errors
            /// The last value seen, when `f` returned `None`.
            #[inline(always)]
            pub fn fetch_update(
                &self,
                set_order: Ordering,
                fetch_order: Ordering,
                f: impl FnMut($int) -> Option<$int>,
            ) -> Result<$int, $int> {
                self.0.fetch_update(set_order, fetch_order, f)
            }
            /// A raw pointer to the integer (for futex system calls).
            #[inline(always)]
            pub const fn as_ptr(&self) -> *mut $int {
                self.0.as_ptr()
            }
            /// Exclusive access to the value.
            #[inline(always)]
            pub fn get_mut(&mut self) -> &mut $int {
                self.0.get_mut()
            }
            /// Unwraps the value.
            #[inline(always)]
            pub fn into_inner(self) -> $int {
                self.0.into_inner()
            }
        }
    };
}

#[cfg(not(shmkit_loom))]
atomic_int!(AtomicU8, u8);
#[cfg(not(shmkit_loom))]
atomic_int!(AtomicU32, u32);
#[cfg(not(shmkit_loom))]
atomic_int!(AtomicU64, u64);
#[cfg(not(shmkit_loom))]
atomic_int!(AtomicI32, i32);
#[cfg(not(shmkit_loom))]
atomic_int!(AtomicI64, i64);
#[cfg(not(shmkit_loom))]
atomic_int!(AtomicUsize, usize);

/// `std::sync::atomic::AtomicBool` behind the shim. Not [`crate::Shared`]: only 0 and 1
/// are valid, so it must never be read from shared memory.
#[cfg(not(shmkit_loom))]
#[derive(Default, Debug)]
#[repr(transparent)]
pub struct AtomicBool(std::sync::atomic::AtomicBool);

#[cfg(not(shmkit_loom))]
impl AtomicBool {
    /// A new atomic holding `v`.
    #[inline(always)]
    pub const fn new(v: bool) -> Self {
        Self(std::sync::atomic::AtomicBool::new(v))
    }
    /// Atomic load.
    #[inline(always)]
    pub fn load(&self, order: Ordering) -> bool {
        self.0.load(order)
    }
    /// Atomic store.
    #[inline(always)]
    pub fn store(&self, v: bool, order: Ordering) {
        self.0.store(v, order)
    }
    /// Atomic swap; returns the previous value.
    #[inline(always)]
    pub fn swap(&self, v: bool, order: Ordering) -> bool {
        self.0.swap(v, order)
    }
    /// Strong compare-and-exchange.
    ///
    /// # Errors
    /// The current value, when it differs from `current`.
    #[inline(always)]
    pub fn compare_exchange(
        &self,
        current: bool,
        new: bool,
        success: Ordering,
        failure: Ordering,
    ) -> Result<bool, bool> {
        self.0.compare_exchange(current, new, success, failure)
    }
}
