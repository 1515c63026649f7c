//! [`Lock`] (a bare robust lock) and [`Mutex<T>`] (a robust lock around plain data),
//! both in their own shared-memory segment.

use crate::error::{Error, LockError, LockResult, Result};
use crate::handle::Shm;
use crate::raw_mutex::{Acquired, RawMutex};
use shmkit_segment::{Kind, Token};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::Duration;

/// Segment kind of a [`Lock`].
pub const LOCK_KIND: Kind = Kind::from_tag(*b"LOCK");
/// Segment kind of a [`Mutex`].
pub const MUTEX_KIND: Kind = Kind::from_tag(*b"MUTX");

/// Token conversion and serde for a handle type (serialised as its [`Token`]).
macro_rules! token_serde {
    ($t:ident $(<$g:ident: $($b:path),+>)?) => {
        impl$(<$g: $($b +)+>)? serde::Serialize for $t$(<$g>)? {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.token().map_err(serde::ser::Error::custom)?.serialize(s)
            }
        }
        impl<'de, $($g: $($b +)+)?> serde::Deserialize<'de> for $t$(<$g>)? {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let token = shmkit_segment::Token::deserialize(d)?;
                Self::from_token(&token).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use token_serde;

fn lock_result<G>(a: Option<Acquired>, guard: impl FnOnce() -> G) -> LockResult<G> {
    match a {
        Some(Acquired::Clean) => Ok(guard()),
        Some(Acquired::OwnerDied) => Err(LockError::OwnerDied(guard())),
        None => Err(LockError::WouldBlock),
    }
}

/// A robust lock shared between processes (Python's `multiprocessing.Lock`).
///
/// A clone, a forked child's copy, a handle opened by name and one rebuilt from a
/// token all refer to the same lock. If the holder dies (SIGKILL at any point) the
/// next locker gets [`LockError::OwnerDied`] carrying the guard, and the lock keeps
/// working.
///
/// ```
/// use shmkit_sync::Lock;
/// let lock = Lock::new()?;
/// {
///     let _g = lock.lock().expect("not poisoned");
///     assert!(lock.try_lock().is_err());
/// }
/// assert!(lock.try_lock().is_ok());
/// # Ok::<(), shmkit_sync::Error>(())
/// ```
#[derive(Clone)]
pub struct Lock {
    shm: Shm<RawMutex>,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("segment", &self.shm.segment().describe())
            .field("locked", &self.raw().is_locked())
            .finish()
    }
}

const LOCK_LEN: usize = std::mem::size_of::<RawMutex>();

impl Lock {
    /// A new anonymous lock (a memfd segment, inherited by forked children).
    ///
    /// # Errors
    /// [`Error::Segment`] if the segment cannot be created.
    pub fn new() -> Result<Self> {
        Ok(Lock {
            shm: Shm::anonymous(LOCK_KIND, LOCK_LEN, |_| {})?,
        })
    }

    /// A new named lock, openable with [`Lock::open`] by any process.
    ///
    /// # Errors
    /// [`Error::Segment`] (for example `AlreadyExists`).
    pub fn create(name: &str) -> Result<Self> {
        Ok(Lock {
            shm: Shm::create(name, LOCK_KIND, LOCK_LEN, |_| {})?,
        })
    }

    /// Opens the named lock.
    ///
    /// # Errors
    /// [`Error::Segment`] (`NotFound`, `WrongKind`, …).
    pub fn open(name: &str) -> Result<Self> {
        Ok(Lock {
            shm: Shm::open(name, LOCK_KIND, LOCK_LEN)?,
        })
    }

    /// Opens the named lock, creating it if it does not exist.
    ///
    /// # Errors
    /// [`Error::Segment`].
    pub fn open_or_create(name: &str) -> Result<Self> {
        Ok(Lock {
            shm: Shm::open_or_create(name, LOCK_KIND, LOCK_LEN, |_| {})?.0,
        })
    }

    /// A token from which [`Lock::from_token`] rebuilds this lock in another process.
    ///
    /// # Errors
    /// [`Error::Segment`] if the segment's descriptor cannot be examined.
    pub fn token(&self) -> Result<Token> {
        self.shm.token()
    }

    /// Rebuilds a lock from a token.
    ///
    /// # Errors
    /// [`Error::Segment`]: the token is stale or names something else.
    pub fn from_token(token: &Token) -> Result<Self> {
        Ok(Lock {
            shm: Shm::from_token(token, LOCK_KIND, LOCK_LEN)?,
        })
    }

    /// The raw mutex in shared memory.
    pub fn raw(&self) -> &RawMutex {
        self.shm.raw()
    }

    fn guard(&self) -> LockGuard<'_> {
        LockGuard {
            raw: self.raw(),
            _not_send: PhantomData,
        }
    }

    /// Acquires the lock, blocking as long as needed.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (holding the guard) if the previous holder died.
    pub fn lock(&self) -> LockResult<LockGuard<'_>> {
        lock_result(Some(self.raw().lock()), || self.guard())
    }

    /// Acquires the lock if it is free now (Python's `acquire(block=False)`).
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] if it is held; [`LockError::OwnerDied`] (with the guard).
    pub fn try_lock(&self) -> LockResult<LockGuard<'_>> {
        lock_result(self.raw().try_lock(), || self.guard())
    }

    /// Acquires the lock, waiting at most `timeout` (zero = try once, huge = forever).
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] on timeout; [`LockError::OwnerDied`] (with the guard).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<LockGuard<'_>> {
        lock_result(self.raw().lock_timeout(timeout), || self.guard())
    }

    /// Python's `acquire()`: [`Lock::lock`], treating a dead previous owner as success.
    pub fn acquire(&self) -> LockGuard<'_> {
        self.lock()
            .unwrap_or_else(|e| e.into_guard().unwrap_or_else(|| self.guard()))
    }
}

token_serde!(Lock);

/// Holds a [`Lock`] until dropped. Not `Send`: the thread that locked unlocks.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    raw: &'a RawMutex,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockGuard")
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Fails only in a forked child that inherited the guard: the parent's lock
        // must not be released by the child.
        let _ = self.raw.unlock();
    }
}

impl LockGuard<'_> {
    /// The raw mutex this guard holds.
    pub fn raw(&self) -> &RawMutex {
        self.raw
    }
}

/// A robust mutex around plain data `T` (any [`bytemuck::Pod`] type), shared
/// between processes.
///
/// `T` lives in the segment after the lock. After an [`LockError::OwnerDied`] the
/// data may be half-updated; being `Pod`, every bit pattern is still a valid `T`.
/// Processes must agree on `T`: opening checks only that the segment is large enough.
///
/// ```
/// use shmkit_sync::Mutex;
/// let m = Mutex::new(0u64)?;
/// *m.lock().expect("clean") += 5;
/// assert_eq!(*m.lock().expect("clean"), 5);
/// # Ok::<(), shmkit_sync::Error>(())
/// ```
pub struct Mutex<T> {
    shm: Shm<RawMutex>,
    data: NonNull<T>,
}

// SAFETY: `data` points into the mapping kept alive by `shm`; `T: Send` data is
// handed out only through a guard that holds the lock.
unsafe impl<T: bytemuck::Pod + Send> Send for Mutex<T> {}
// SAFETY: as for Send; concurrent access to `T` is serialised by the lock.
unsafe impl<T: bytemuck::Pod + Send> Sync for Mutex<T> {}

impl<T> Clone for Mutex<T> {
    fn clone(&self) -> Self {
        Mutex {
            shm: self.shm.clone(),
            data: self.data,
        }
    }
}

impl<T> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("segment", &self.shm.segment().describe())
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: bytemuck::Pod + Send> Mutex<T> {
    const fn data_offset() -> usize {
        let a = std::mem::align_of::<T>();
        let base = std::mem::size_of::<RawMutex>();
        (base + a - 1) & !(a - 1)
    }

    const fn len() -> usize {
        Self::data_offset() + std::mem::size_of::<T>()
    }

    fn check_align() -> Result<()> {
        if std::mem::align_of::<T>() > 128 {
            return Err(Error::InvalidArgument {
                what: "T",
                reason: "alignment above 128 bytes is not supported",
            });
        }
        Ok(())
    }

    fn from_shm(shm: Shm<RawMutex>) -> Result<Self> {
        let p = shm
            .segment()
            .range(Self::data_offset(), std::mem::size_of::<T>())?;
        Ok(Mutex {
            shm,
            data: p.cast(),
        })
    }

    fn init(value: T) -> impl FnOnce(&shmkit_segment::Segment) {
        move |s| {
            if let Ok(p) = s.range(Self::data_offset(), std::mem::size_of::<T>()) {
                // SAFETY: `p` is in bounds for a T (checked by `range`), aligned (the
                // data area is 128-aligned and data_offset a multiple of align_of T),
                // and no other process can see the segment before it is published.
                unsafe { p.cast::<T>().as_ptr().write(value) };
            }
        }
    }

    /// A new anonymous mutex holding `value`.
    ///
    /// # Errors
    /// [`Error::Segment`]; [`Error::InvalidArgument`] if `T` needs alignment above 128.
    pub fn new(value: T) -> Result<Self> {
        Self::check_align()?;
        let seg = shmkit_segment::SegmentOptions::new(MUTEX_KIND, Self::len())
            .kind_version(crate::handle::KIND_VERSION)
            .create_anonymous(Self::init(value))?;
        Self::from_shm(Shm::from_parts(seg, Self::len())?)
    }

    /// A new named mutex holding `value`.
    ///
    /// # Errors
    /// As [`Mutex::new`], plus `AlreadyExists`.
    pub fn create(name: &str, value: T) -> Result<Self> {
        Self::check_align()?;
        let seg = shmkit_segment::SegmentOptions::new(MUTEX_KIND, Self::len())
            .kind_version(crate::handle::KIND_VERSION)
            .create(name, Self::init(value))?;
        Self::from_shm(Shm::from_parts(seg, Self::len())?)
    }

    /// Opens the named mutex (which must hold a `T`).
    ///
    /// # Errors
    /// [`Error::Segment`] (`NotFound`, `WrongKind`, `OutOfBounds` when too small).
    pub fn open(name: &str) -> Result<Self> {
        Self::check_align()?;
        Self::from_shm(Shm::open(name, MUTEX_KIND, Self::len())?)
    }

    /// Opens the named mutex, or creates it holding `value`.
    ///
    /// # Errors
    /// As [`Mutex::create`] and [`Mutex::open`].
    pub fn open_or_create(name: &str, value: T) -> Result<Self> {
        Self::check_align()?;
        let (seg, _) = shmkit_segment::SegmentOptions::new(MUTEX_KIND, Self::len())
            .kind_version(crate::handle::KIND_VERSION)
            .open_or_create(name, Self::init(value))?;
        Self::from_shm(Shm::from_parts(seg, Self::len())?)
    }

    /// A token for [`Mutex::from_token`].
    ///
    /// # Errors
    /// [`Error::Segment`].
    pub fn token(&self) -> Result<Token> {
        self.shm.token()
    }

    /// Rebuilds a mutex from a token.
    ///
    /// # Errors
    /// [`Error::Segment`]: stale token, wrong kind, or too small for `T`.
    pub fn from_token(token: &Token) -> Result<Self> {
        Self::check_align()?;
        Self::from_shm(Shm::from_token(token, MUTEX_KIND, Self::len())?)
    }

    /// The raw mutex.
    pub fn raw(&self) -> &RawMutex {
        self.shm.raw()
    }

    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            _not_send: PhantomData,
        }
    }

    /// Locks, blocking as long as needed.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] with the guard if the previous holder died.
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        lock_result(Some(self.raw().lock()), || self.guard())
    }

    /// Locks if free now (checks once whether a holder died).
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] or [`LockError::OwnerDied`] (with the guard).
    pub fn try_lock(&self) -> LockResult<MutexGuard<'_, T>> {
        lock_result(self.raw().try_lock(), || self.guard())
    }

    /// Locks, waiting at most `timeout` (zero = try once, huge = forever).
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] on timeout or [`LockError::OwnerDied`] (with the guard).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<MutexGuard<'_, T>> {
        lock_result(self.raw().lock_timeout(timeout), || self.guard())
    }
}

impl<T: bytemuck::Pod + Send> serde::Serialize for Mutex<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.token()
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }
}

impl<'de, T: bytemuck::Pod + Send> serde::Deserialize<'de> for Mutex<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let token = Token::deserialize(d)?;
        Self::from_token(&token).map_err(serde::de::Error::custom)
    }
}

/// Access to a [`Mutex`]'s data; unlocks when dropped. Not `Send`.
#[must_use = "the mutex is unlocked as soon as the guard is dropped"]
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: fmt::Debug + bytemuck::Pod + Send> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MutexGuard").field(&**self).finish()
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other thread or process accesses
        // the data (by the protocol); the pointer is in bounds and aligned (checked
        // at construction) and lives as long as the mutex's segment.
        unsafe { self.mutex.data.as_ref() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        let mut p = self.mutex.data;
        // SAFETY: as in `deref`; `&mut self` makes this the only reference made
        // through this guard, and the lock excludes every other guard.
        unsafe { p.as_mut() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // Fails only in a forked child that inherited the guard (see LockGuard).
        let _ = self.mutex.shm.raw().unlock();
    }
}
