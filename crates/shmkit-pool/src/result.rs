//! Where results land in the parent: [`AsyncResult`] and the slots behind it.

use crate::error::{Error, Failure, Result};
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A finished task (or map): its result messages (the encoded value is each one's
/// [`payload`](crate::wire::payload)), or why it failed.
pub(crate) type Outcome = std::result::Result<Vec<Vec<u8>>, Failure>;

/// One result's cell: filled once by the result handler (or the callback thread
/// after the callbacks ran), read by any number of waiters.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    value: Mutex<Option<Outcome>>,
    cv: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slot {
    pub(crate) fn fill(&self, o: Outcome) {
        let mut v = lock(&self.value);
        if v.is_none() {
            *v = Some(o);
        }
        drop(v);
        self.cv.notify_all();
    }

    /// Waits until filled or `deadline`; the guard holds `Some` when filled.
    fn wait_until(&self, deadline: Option<Instant>) -> MutexGuard<'_, Option<Outcome>> {
        let mut v = lock(&self.value);
        while v.is_none() {
            match deadline {
                None => v = self.cv.wait(v).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    v = self
                        .cv
                        .wait_timeout(v, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        v
    }

    pub(crate) fn is_filled(&self) -> bool {
        lock(&self.value).is_some()
    }
}

/// Decodes a finished task's parts as the handle's value.
pub(crate) type DecodeFn<T> = fn(&[Vec<u8>]) -> Result<T>;

pub(crate) fn decode_one<R: DeserializeOwned>(parts: &[Vec<u8>]) -> Result<R> {
    let bytes = parts.first().map_or(&[][..], |p| crate::wire::payload(p));
    crate::codec::decode(bytes).map_err(|source| Error::Codec {
        what: "decoding a task's result",
        source,
    })
}

pub(crate) fn decode_concat<R: DeserializeOwned>(parts: &[Vec<u8>]) -> Result<Vec<R>> {
    let mut all = Vec::new();
    for p in parts {
        let v: Vec<R> =
            crate::codec::decode(crate::wire::payload(p)).map_err(|source| Error::Codec {
                what: "decoding a chunk of map results",
                source,
            })?;
        if all.is_empty() {
            all = v;
        } else {
            all.extend(v);
        }
    }
    Ok(all)
}

/// The result of [`Pool::apply_async`](crate::Pool::apply_async) or
/// [`Pool::map_async`](crate::Pool::map_async): Python's `AsyncResult`.
///
/// The value stays in the handle: [`get`](AsyncResult::get) may be called again
/// (each call decodes it anew). Dropping the handle frees the value, or frees it as
/// soon as it arrives; the task still runs and its callbacks still run.
pub struct AsyncResult<T> {
    slot: Arc<Slot>,
    decode: DecodeFn<T>,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<T> AsyncResult<T> {
    pub(crate) fn new(slot: Arc<Slot>, decode: DecodeFn<T>) -> Self {
        AsyncResult {
            slot,
            decode,
            _t: PhantomData,
        }
    }

    fn take(&self, deadline: Option<Instant>) -> Result<T> {
        let v = self.slot.wait_until(deadline);
        match &*v {
            None => Err(Error::Timeout),
            Some(Ok(parts)) => (self.decode)(parts),
            Some(Err(f)) => Err(f.to_error()),
        }
    }

    /// Waits for the result and returns it.
    ///
    /// # Errors
    /// The task's failure: [`Error::Panicked`], [`Error::TaskFailed`],
    /// [`Error::WorkerDied`], [`Error::Terminated`], [`Error::InitializerFailed`];
    /// [`Error::Codec`] if the result does not decode as `T`.
    pub fn get(&self) -> Result<T> {
        self.take(None)
    }

    /// Like [`get`](AsyncResult::get) but waits at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the result is not ready in time (it can still be
    /// fetched later); otherwise as [`get`](AsyncResult::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.take(Some(Instant::now() + timeout))
    }

    /// Waits until the result is ready.
    pub fn wait(&self) {
        drop(self.slot.wait_until(None));
    }

    /// Waits at most `timeout`; whether the result is ready.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.slot
            .wait_until(Some(Instant::now() + timeout))
            .is_some()
    }

    /// Whether the result is ready (the task finished, failed, or the pool was
    /// terminated).
    pub fn ready(&self) -> bool {
        self.slot.is_filled()
    }

    /// Whether the task completed without failing.
    ///
    /// # Errors
    /// [`Error::NotReady`] before the result is ready (like Python's `ValueError`).
    pub fn successful(&self) -> Result<bool> {
        match &*self.slot.wait_until(Some(Instant::now())) {
            None => Err(Error::NotReady),
            Some(o) => Ok(o.is_ok()),
        }
    }
}

/// Callbacks for [`Pool::apply_async_with`](crate::Pool::apply_async_with) and
/// [`Pool::map_async_with`](crate::Pool::map_async_with): run in the parent, on the
/// pool's callback thread, one at a time, in the order results complete; the
/// result becomes ready after its callback returned.
///
/// Callbacks must not wait for another result that has callbacks (that result's
/// callback would queue behind the waiting one).
pub struct Callbacks<T> {
    on_ok: Option<Box<dyn FnOnce(T) + Send + 'static>>,
    on_err: Option<Box<dyn FnOnce(Error) + Send + 'static>>,
}

impl<T> std::fmt::Debug for Callbacks<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("callback", &self.on_ok.is_some())
            .field("error_callback", &self.on_err.is_some())
            .finish()
    }
}

impl<T> Default for Callbacks<T> {
    fn default() -> Self {
        Callbacks {
            on_ok: None,
            on_err: None,
        }
    }
}

impl<T: 'static> Callbacks<T> {
    /// No callbacks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Called with the value when the task succeeds.
    #[must_use]
    pub fn callback(mut self, f: impl FnOnce(T) + Send + 'static) -> Self {
        self.on_ok = Some(Box::new(f));
        self
    }

    /// Called with the error when the task fails (panics, its worker dies, the pool
    /// is terminated, or the result does not decode).
    #[must_use]
    pub fn error_callback(mut self, f: impl FnOnce(Error) + Send + 'static) -> Self {
        self.on_err = Some(Box::new(f));
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.on_ok.is_none() && self.on_err.is_none()
    }

    /// Into a job run on the callback thread.
    pub(crate) fn into_job(self, decode: DecodeFn<T>) -> CallbackFn {
        Box::new(move |o: &Outcome| match o {
            Ok(parts) => match decode(parts) {
                Ok(v) => {
                    if let Some(f) = self.on_ok {
                        f(v);
                    }
                }
                Err(e) => {
                    if let Some(f) = self.on_err {
                        f(e);
                    }
                }
            },
            Err(fail) => {
                if let Some(f) = self.on_err {
                    f(fail.to_error());
                }
            }
        })
    }
}

/// Callbacks bound to their result's decoder.
pub(crate) type CallbackFn = Box<dyn FnOnce(&Outcome) + Send + 'static>;
