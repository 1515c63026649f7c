//! `imap` and `imap_unordered`: lazy, windowed submission and in-order or
//! completion-order delivery.

use crate::code::CodeRef;
use crate::error::{Error, Failure, Result};
use crate::handler::Sink;
use crate::pool::{lock, Pool};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

type ChunkOutcome = std::result::Result<Vec<u8>, Failure>;

/// Finished chunks waiting to be taken by the iterator.
#[derive(Debug)]
pub(crate) struct IterShared {
    m: Mutex<IterInner>,
    cv: Condvar,
    /// A blocking map's: its thread takes the chunks while draining the result rings
    /// itself (so the result handler need not watch for them).
    pub(crate) drained: bool,
}

#[derive(Debug)]
struct IterInner {
    done: HashMap<usize, ChunkOutcome>,
    /// The first failure to arrive (for a blocking map, which fails with it at once).
    failed: Option<Failure>,
    /// The chunk an ordered taker sleeps for: only its arrival (or a failure) wakes
    /// it, not every chunk that completes out of order.
    waiting: Option<usize>,
    /// Completion order (unordered iterators only).
    arrival: VecDeque<usize>,
    ordered: bool,
}

impl IterShared {
    pub(crate) fn new(ordered: bool) -> Self {
        Self::with(ordered, false)
    }

    /// For a blocking map, whose thread drains the result rings.
    pub(crate) fn drained() -> Self {
        Self::with(true, true)
    }

    fn with(ordered: bool, drained: bool) -> Self {
        IterShared {
            m: Mutex::new(IterInner {
                done: HashMap::new(),
                failed: None,
                waiting: None,
                arrival: VecDeque::new(),
                ordered,
            }),
            cv: Condvar::new(),
            drained,
        }
    }

    pub(crate) fn deliver(&self, index: usize, o: ChunkOutcome) {
        let mut g = lock(&self.m);
        let wake = !g.ordered || g.waiting == Some(index) || o.is_err();
        if let Err(f) = &o {
            if g.failed.is_none() {
                g.failed = Some(f.clone());
            }
        }
        g.done.insert(index, o);
        if !g.ordered {
            g.arrival.push_back(index);
        }
        drop(g);
        if wake {
            self.cv.notify_all();
        }
    }

    /// Chunk `index`, or the first failure of any chunk (a blocking map), if either
    /// has arrived. Does not wait: the blocking map's thread drains the result
    /// rings itself (see `Pool::map_wait`).
    pub(crate) fn try_take_map(&self, index: usize) -> Option<ChunkOutcome> {
        let mut g = lock(&self.m);
        if let Some(f) = g.failed.take() {
            return Some(Err(f));
        }
        g.done.remove(&index)
    }

    /// Waits for chunk `index` (ordered) or any chunk (unordered).
    fn take(&self, index: usize) -> (usize, ChunkOutcome) {
        let mut g = lock(&self.m);
        loop {
            let want = if g.ordered {
                Some(index)
            } else {
                g.arrival.front().copied()
            };
            if let Some(i) = want {
                if let Some(o) = g.done.remove(&i) {
                    if !g.ordered {
                        g.arrival.pop_front();
                    }
                    return (i, o);
                }
            }
            g.waiting = g.ordered.then_some(index);
            g = self.cv.wait(g).unwrap_or_else(PoisonError::into_inner);
            g.waiting = None;
        }
    }
}

/// The iterator returned by [`Pool::imap`] and friends: yields `Result<R>` per input
/// item. It submits chunks as results are taken, keeping a bounded window in
/// flight, so the input may be endless.
pub struct IMap<'p, I, R> {
    pool: &'p Pool,
    code: CodeRef,
    input: std::iter::Fuse<I>,
    chunksize: usize,
    window: usize,
    st: Arc<IterShared>,
    lens: HashMap<usize, usize>,
    submitted: usize,
    taken: usize,
    error: Option<Error>,
    current: std::vec::IntoIter<Result<R>>,
    _r: PhantomData<fn() -> R>,
}

impl<I, R> std::fmt::Debug for IMap<'_, I, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IMap")
            .field("submitted", &self.submitted)
            .field("taken", &self.taken)
            .finish()
    }
}

impl<'p, I, A, R> IMap<'p, I, R>
where
    I: Iterator<Item = A>,
    A: Serialize,
    R: DeserializeOwned,
{
    pub(crate) fn new(
        pool: &'p Pool,
        code: CodeRef,
        input: I,
        chunksize: usize,
        window: usize,
        st: Arc<IterShared>,
    ) -> Self {
        IMap {
            pool,
            code,
            input: input.fuse(),
            chunksize,
            window: window.max(1),
            st,
            lens: HashMap::new(),
            submitted: 0,
            taken: 0,
            error: None,
            current: Vec::new().into_iter(),
            _r: PhantomData,
        }
    }

    /// Submits chunks until the window is full or the input ends.
    fn fill(&mut self) {
        let mut tasks = Vec::new();
        while self.error.is_none() && self.submitted + tasks.len() - self.taken < self.window {
            let chunk: Vec<A> = self.input.by_ref().take(self.chunksize).collect();
            if chunk.is_empty() {
                break;
            }
            let index = self.submitted + tasks.len();
            let msg = crate::worker::task_header(0, self.code).and_then(|h| {
                crate::codec::encode_append(&chunk, h).map_err(|source| Error::Codec {
                    what: "encoding an imap chunk",
                    source,
                })
            });
            match msg {
                Ok(m) => {
                    self.lens.insert(index, chunk.len());
                    tasks.push((
                        m,
                        Sink::Iter {
                            it: Arc::clone(&self.st),
                            index,
                        },
                    ));
                }
                Err(e) => self.error = Some(e),
            }
        }
        let n = tasks.len();
        if n > 0 {
            match self.pool.submit(tasks) {
                Ok(()) => self.submitted += n,
                Err(e) => {
                    for i in self.submitted..self.submitted + n {
                        self.lens.remove(&i);
                    }
                    self.error = Some(e);
                }
            }
        }
    }
}

impl<I, A, R> Iterator for IMap<'_, I, R>
where
    I: Iterator<Item = A>,
    A: Serialize,
    R: DeserializeOwned,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        loop {
            if let Some(x) = self.current.next() {
                return Some(x);
            }
            self.fill();
            if self.taken == self.submitted {
                // Everything submitted was yielded: the input ended or submission
                // failed (reported once, then the iterator ends).
                return self.error.take().map(Err);
            }
            let (index, o) = self.st.take(self.taken);
            self.taken += 1;
            let len = self.lens.remove(&index).unwrap_or(1);
            let items: Vec<Result<R>> = match o {
                Ok(bytes) => match crate::codec::decode::<Vec<R>>(crate::wire::payload(&bytes)) {
                    Ok(v) => v.into_iter().map(Ok).collect(),
                    Err(source) => (0..len)
                        .map(|_| {
                            Err(Error::Codec {
                                what: "decoding an imap chunk",
                                source: source.clone(),
                            })
                        })
                        .collect(),
                },
                Err(f) => (0..len).map(|_| Err(f.to_error())).collect(),
            };
            self.current = items.into_iter();
        }
    }
}
