//! [`JoinableQueue`] and [`SimpleQueue`].

use crate::error::{Error, Result};
use crate::queue::{Queue, QueueOptions};
use crate::raw;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shmkit_segment::shim::time::Deadline;
use shmkit_segment::Token;
use std::time::Duration;

/// A [`Queue`] that also counts unfinished items — Python's
/// `multiprocessing.JoinableQueue`. Every put adds one unfinished item; consumers
/// call [`task_done`](JoinableQueue::task_done) once per item they took and finished;
/// [`join`](JoinableQueue::join) waits until every item ever put is done.
///
/// ```
/// use shmkit_queue::JoinableQueue;
/// let q: JoinableQueue<u32> = JoinableQueue::new(0)?;
/// q.put(7).map_err(shmkit_queue::Error::drop_item)?;
/// assert_eq!(q.get()?, 7);
/// q.task_done()?;
/// q.join()?;
/// assert!(q.task_done().is_err()); // more task_done calls than items
/// # Ok::<(), shmkit_queue::Error>(())
/// ```
#[derive(Debug)]
pub struct JoinableQueue<T> {
    q: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue { q: self.q.clone() }
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// A new anonymous queue (as [`Queue::new`]).
    ///
    /// # Errors
    /// As [`Queue::new`].
    pub fn new(maxsize: i64) -> Result<Self> {
        Ok(JoinableQueue {
            q: Queue::new(maxsize)?,
        })
    }

    /// A new anonymous queue with `opts`.
    ///
    /// # Errors
    /// As [`QueueOptions::anonymous`].
    pub fn with_options(opts: &QueueOptions) -> Result<Self> {
        Ok(JoinableQueue {
            q: opts.anonymous()?,
        })
    }

    /// A new named queue.
    ///
    /// # Errors
    /// As [`Queue::create`].
    pub fn create(name: &str, maxsize: i64) -> Result<Self> {
        Ok(JoinableQueue {
            q: Queue::create(name, maxsize)?,
        })
    }

    /// Opens a named queue.
    ///
    /// # Errors
    /// As [`Queue::open`].
    pub fn open(name: &str) -> Result<Self> {
        Ok(JoinableQueue {
            q: Queue::open(name)?,
        })
    }

    /// Rebuilds a handle from a token.
    ///
    /// # Errors
    /// As [`Queue::from_token`].
    pub fn from_token(token: &Token) -> Result<Self> {
        Ok(JoinableQueue {
            q: Queue::from_token(token)?,
        })
    }

    /// A serialisable reference to this queue.
    ///
    /// # Errors
    /// As [`Queue::token`].
    pub fn token(&self) -> Result<Token> {
        self.q.token()
    }

    fn counted(&self, put: impl FnOnce() -> Result<(), Error<T>>) -> Result<(), Error<T>> {
        let ctl = self.q.core().ctl();
        // Counted before the item is visible, so join cannot return between the put
        // and its count.
        raw::task_added(ctl);
        let r = put();
        if r.is_err() {
            raw::task_unadded(ctl);
        }
        r
    }

    /// Puts `item` (one more unfinished item).
    ///
    /// # Errors
    /// As [`Queue::put`].
    pub fn put(&self, item: T) -> Result<(), Error<T>> {
        self.counted(|| self.q.put(item))
    }

    /// Puts `item`, waiting up to `timeout`.
    ///
    /// # Errors
    /// As [`Queue::put_timeout`].
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), Error<T>> {
        self.counted(|| self.q.put_timeout(item, timeout))
    }

    /// Puts `item` if there is room now.
    ///
    /// # Errors
    /// As [`Queue::try_put`].
    pub fn try_put(&self, item: T) -> Result<(), Error<T>> {
        self.counted(|| self.q.try_put(item))
    }

    /// Takes the oldest item (call [`task_done`](JoinableQueue::task_done) when
    /// finished with it).
    ///
    /// # Errors
    /// As [`Queue::get`].
    pub fn get(&self) -> Result<T> {
        self.q.get()
    }

    /// Takes the oldest item, waiting up to `timeout`.
    ///
    /// # Errors
    /// As [`Queue::get_timeout`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.q.get_timeout(timeout)
    }

    /// Takes the oldest item if there is one now.
    ///
    /// # Errors
    /// As [`Queue::try_get`].
    pub fn try_get(&self) -> Result<T> {
        self.q.try_get()
    }

    /// Marks one taken item as finished.
    ///
    /// # Errors
    /// [`Error::TaskDone`] if called more times than items were put (Python's
    /// `ValueError`).
    pub fn task_done(&self) -> Result<()> {
        raw::task_done(self.q.core().ctl())
    }

    /// Items put and not yet marked done.
    pub fn unfinished(&self) -> u64 {
        raw::unfinished(self.q.core().ctl())
    }

    /// Waits until every item ever put has been marked done.
    ///
    /// # Errors
    /// None in practice (it waits without a deadline); the `Result` matches
    /// [`JoinableQueue::join_timeout`].
    pub fn join(&self) -> Result<()> {
        raw::join(self.q.core().ctl(), Deadline::NEVER)
    }

    /// Waits up to `timeout` until every item ever put has been marked done.
    ///
    /// # Errors
    /// [`Error::Timeout`] if items are still unfinished at the timeout.
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        raw::join(self.q.core().ctl(), Deadline::after(timeout))
    }

    /// Approximate number of queued items.
    pub fn qsize(&self) -> usize {
        self.q.qsize()
    }

    /// Whether the queue is (approximately) empty.
    pub fn empty(&self) -> bool {
        self.q.empty()
    }

    /// Whether the queue is (approximately) full.
    pub fn full(&self) -> bool {
        self.q.full()
    }

    /// Closes the queue (as [`Queue::close`]).
    pub fn close(&self) {
        self.q.close();
    }

    /// The underlying queue (its puts are not counted).
    pub fn as_queue(&self) -> &Queue<T> {
        &self.q
    }
}

/// The smallest queue — Python's `multiprocessing.SimpleQueue`: `put`, `get`,
/// `empty`, `close`; unbounded in Python's sense ([`crate::DEFAULT_CAPACITY`] items).
///
/// ```
/// use shmkit_queue::SimpleQueue;
/// let q = SimpleQueue::new()?;
/// q.put("hi".to_string()).map_err(shmkit_queue::Error::drop_item)?;
/// assert!(!q.empty());
/// assert_eq!(q.get()?, "hi");
/// # Ok::<(), shmkit_queue::Error>(())
/// ```
#[derive(Debug)]
pub struct SimpleQueue<T> {
    q: Queue<T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue { q: self.q.clone() }
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new anonymous queue.
    ///
    /// # Errors
    /// As [`Queue::new`].
    pub fn new() -> Result<Self> {
        Ok(SimpleQueue { q: Queue::new(0)? })
    }

    /// A new named queue.
    ///
    /// # Errors
    /// As [`Queue::create`].
    pub fn create(name: &str) -> Result<Self> {
        Ok(SimpleQueue {
            q: Queue::create(name, 0)?,
        })
    }

    /// Opens a named queue.
    ///
    /// # Errors
    /// As [`Queue::open`].
    pub fn open(name: &str) -> Result<Self> {
        Ok(SimpleQueue {
            q: Queue::open(name)?,
        })
    }

    /// Puts `item`, waiting while full.
    ///
    /// # Errors
    /// As [`Queue::put`].
    pub fn put(&self, item: T) -> Result<(), Error<T>> {
        self.q.put(item)
    }

    /// Takes the oldest item, waiting while empty.
    ///
    /// # Errors
    /// As [`Queue::get`].
    pub fn get(&self) -> Result<T> {
        self.q.get()
    }

    /// Whether the queue is (approximately) empty.
    pub fn empty(&self) -> bool {
        self.q.empty()
    }

    /// Closes the queue (as [`Queue::close`]).
    pub fn close(&self) {
        self.q.close();
    }
}
