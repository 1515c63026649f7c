//! An `UnsafeCell` with loom's closure-based API, so that code written against it runs
//! unchanged under loom, where every access is checked for data races.

#[cfg(shmkit_loom)]
pub use loom::cell::UnsafeCell;

/// `std::cell::UnsafeCell` with the `with` / `with_mut` API of `loom::cell::UnsafeCell`.
///
/// `#[repr(transparent)]`: it has the size and alignment of `T` and may be part of a
/// shared-memory layout.
#[cfg(not(shmkit_loom))]
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct UnsafeCell<T: ?Sized>(std::cell::UnsafeCell<T>);

#[cfg(not(shmkit_loom))]
impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

#[cfg(not(shmkit_loom))]
impl<T: ?Sized> UnsafeCell<T> {
    /// Calls `f` with a shared raw pointer to the contents.
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a mutable raw pointer to the contents.
    #[inline(always)]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }

    /// The raw pointer to the contents (not available under loom: use `with_mut`).
    #[inline(always)]
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}
