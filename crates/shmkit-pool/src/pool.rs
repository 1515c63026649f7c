//! `Pool`: starting, task submission, close/join/terminate and drop.

pub(crate) use crate::builder::Builder;
use crate::code::{self, CodeRef};
use crate::error::{Error, Failure, Result};
use crate::handler::{self, Sink, State, Task};
use crate::imap::{IMap, IterShared};
use crate::result::{decode_concat, decode_one, AsyncResult, Callbacks, Slot};
use crate::shm::PoolShm;
use crate::threads;
use crate::worker::{self, InitSpec};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shmkit_process::StartMethod;
use shmkit_sync::futex::Deadline;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;

/// Default bytes of each of a worker's two rings (messages larger than half of it
/// travel in fragments).
pub const DEFAULT_RING_BYTES: usize = 512 * 1024;
/// Default number of tasks queued to one worker ahead of the one it runs.
pub const DEFAULT_PREFETCH: usize = 8;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The pool's settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) maxtasks: Option<u64>,
    pub(crate) method: StartMethod,
    pub(crate) ring_bytes: usize,
    pub(crate) prefetch: usize,
    pub(crate) init: Option<InitSpec>,
}

/// The pool's threads (each started on first need).
#[derive(Debug, Default)]
struct Threads {
    handler: Option<JoinHandle<()>>,
    callbacks: Option<JoinHandle<()>>,
    /// Joined or terminated: no thread starts any more.
    ended: bool,
}

/// A pool of worker processes: Python's `multiprocessing.Pool`.
///
/// Tasks are `fn` items (or non-capturing closures) of the program with serde
/// arguments and results, so that they run the same with both start methods.
/// A worker that dies fails only the task it was running ([`Error::WorkerDied`]) and
/// is replaced; the pool keeps its size.
///
/// **Drop** is [`terminate`](Pool::terminate) without waiting for queued callbacks:
/// workers are killed (SIGKILL) and reaped, unfinished results fail with
/// [`Error::Terminated`], the result handler is joined; it never hangs and leaves no
/// worker process behind. Call [`close`](Pool::close) then [`join`](Pool::join) first
/// to let queued tasks finish.
#[derive(Debug)]
pub struct Pool {
    sh: Arc<handler::Shared>,
    threads: Mutex<Threads>,
    /// Set once the result handler thread was started (a lock-free check per submit).
    handler_started: OnceLock<()>,
    owner: u32,
}

/// Python's default `chunksize` for `map`: `ceil(len / (4 * processes))`, at least 1.
pub fn default_chunksize(len: usize, processes: usize) -> usize {
    len.div_ceil(4 * processes.max(1)).max(1)
}

fn codec(what: &'static str) -> impl FnOnce(postcard::Error) -> Error {
    move |source| Error::Codec { what, source }
}

/// A task message for `code` with the encoded `arg` (id filled in at submission).
fn message<T: Serialize + ?Sized>(code: CodeRef, arg: &T) -> Result<Vec<u8>> {
    let head = worker::task_header(0, code)?;
    crate::codec::encode_append(arg, head).map_err(codec("encoding a task's argument"))
}

impl Pool {
    /// A pool of `processes` workers with the fork start method.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn new(processes: usize) -> Result<Pool> {
        Builder::default().processes(processes).build()
    }

    /// A builder (initializer, maxtasksperchild, start method …).
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn start(cfg: Config) -> Result<Pool> {
        let (pool_shm, blocks) = PoolShm::create(cfg.processes, cfg.ring_bytes)?;
        let sh = Arc::new(handler::Shared::new(cfg, pool_shm)?);
        // Fork the first workers before this pool starts any thread. The result
        // handler thread starts with the first task (`ensure_handler`): a pool that is
        // closed before it got any work needs no thread at all.
        let started = {
            let mut g = lock(&sh.inner);
            let mut r = Ok(());
            for block in blocks {
                match handler::start_worker(&sh, &mut g, Some(block)) {
                    Ok(w) => g.workers.push(w),
                    Err(e) => {
                        r = Err(e);
                        break;
                    }
                }
            }
            r
        };
        if let Err(e) = started {
            handler::kill_all(&sh);
            return Err(e);
        }
        Ok(Pool {
            sh,
            threads: Mutex::new(Threads::default()),
            handler_started: OnceLock::new(),
            owner: std::process::id(),
        })
    }

    /// Starts the result handler thread unless it runs already (or the pool ended, or
    /// this is a copy of the pool inherited over fork: submission then fails).
    fn ensure_handler(&self) -> Result<()> {
        if self.handler_started.get().is_some() {
            return Ok(());
        }
        let mut t = lock(&self.threads);
        if t.handler.is_some() || t.ended || std::process::id() != self.owner {
            return Ok(());
        }
        let sh = Arc::clone(&self.sh);
        let h = std::thread::Builder::new()
            .name("shmkit-pool-handler".into())
            .spawn(move || threads::handler_main(&sh))
            .map_err(|source| Error::Os {
                op: "spawning the result handler thread",
                source,
            })?;
        t.handler = Some(h);
        let _ = self.handler_started.set(());
        Ok(())
    }

    /// The number of workers the pool keeps.
    pub fn processes(&self) -> usize {
        self.sh.cfg.processes
    }

    /// The pids of the current workers (dead workers are replaced within a few
    /// milliseconds; during that time a pid may be missing or stale). A pool that has
    /// not been given any task yet has no result-handler thread: a worker that dies
    /// then is replaced when the first task is submitted.
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.sh.inner).workers.iter().map(|w| w.pid).collect()
    }

    /// Starts the callback thread on first need (pools without callbacks have none).
    fn callback_thread(&self) -> Result<()> {
        let mut t = lock(&self.threads);
        if t.callbacks.is_some() || t.ended {
            return Ok(());
        }
        let (tx, rx) = std::sync::mpsc::channel::<handler::CbJob>();
        let h = std::thread::Builder::new()
            .name("shmkit-pool-callbacks".into())
            .spawn(move || threads::callback_main(&rx))
            .map_err(|source| Error::Os {
                op: "spawning the callback thread",
                source,
            })?;
        t.callbacks = Some(h);
        lock(&self.sh.inner).set_callback_sender(tx);
        Ok(())
    }

    /// Submits one encoded task whose result (and callbacks) decode as `R`.
    fn submit_one<R>(&self, msg: Vec<u8>, callbacks: Callbacks<R>) -> Result<AsyncResult<R>>
    where
        R: Serialize + DeserializeOwned + 'static,
    {
        let slot = Arc::new(Slot::default());
        if !callbacks.is_empty() {
            self.callback_thread()?;
        }
        let cb = (!callbacks.is_empty()).then(|| callbacks.into_job(decode_one::<R>));
        self.submit(vec![(
            msg,
            Sink::One {
                slot: Arc::clone(&slot),
                cb,
            },
        )])?;
        Ok(AsyncResult::new(slot, decode_one::<R>))
    }

    pub(crate) fn submit(&self, tasks: Vec<(Vec<u8>, Sink)>) -> Result<()> {
        self.ensure_handler()?;
        let mut g = lock(&self.sh.inner);
        g.accepting()?;
        for (mut msg, sink) in tasks {
            let id = g.next_id;
            g.next_id += 1;
            worker::set_task_id(&mut msg, id);
            g.undrained += usize::from(!sink.drained());
            g.pending.insert(id, sink);
            g.backlog.push_back(Task { id, msg });
        }
        g.dispatch(&self.sh.cfg);
        g.drained_idle = false;
        if g.handler_parked && !g.handler_parks() {
            // Parked after a blocking map, or for drainers that do not wait for these
            // results: they need it.
            self.sh.park.notify_all();
        }
        Ok(())
    }

    /// Runs `f(arg)` in a worker and waits for the result (Python's `apply`).
    ///
    /// # Errors
    /// As [`apply_async`](Pool::apply_async) and [`AsyncResult::get`].
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Queues `f(arg)` and returns at once.
    ///
    /// # Errors
    /// [`Error::PoolClosed`] after `close`/`terminate`; [`Error::InitializerFailed`]
    /// if the initializer failed; [`Error::Codec`] if `arg` does not encode;
    /// [`Error::NotInExecutable`] for a function outside the main executable.
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.apply_async_with(f, arg, Callbacks::new())
    }

    /// [`apply_async`](Pool::apply_async) with a `callback` and/or `error_callback`.
    ///
    /// # Errors
    /// As [`apply_async`](Pool::apply_async).
    pub fn apply_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        arg: A,
        callbacks: Callbacks<R>,
    ) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        let msg = message(code::task_one(f)?, &arg)?;
        self.submit_one(msg, callbacks)
    }

    /// [`apply_async_with`](Pool::apply_async_with) for a task that returns a
    /// `Result`: `Ok(r)` is the value; `Err(e)` fails the result with
    /// [`Error::TaskFailed`] carrying `e.to_string()` (Python: the task raised).
    ///
    /// # Errors
    /// As [`apply_async`](Pool::apply_async).
    pub fn try_apply_async_with<A, R, E>(
        &self,
        f: fn(A) -> std::result::Result<R, E>,
        arg: A,
        callbacks: Callbacks<R>,
    ) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        E: std::fmt::Display,
    {
        let msg = message(code::task_try(f)?, &arg)?;
        self.submit_one(msg, callbacks)
    }

    /// [`try_apply_async_with`](Pool::try_apply_async_with) without callbacks.
    ///
    /// # Errors
    /// As [`apply_async`](Pool::apply_async).
    pub fn try_apply_async<A, R, E>(
        &self,
        f: fn(A) -> std::result::Result<R, E>,
        arg: A,
    ) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        E: std::fmt::Display,
    {
        self.try_apply_async_with(f, arg, Callbacks::new())
    }

    /// Runs a fallible task and waits: its `Err(e)` comes back as
    /// [`Error::TaskFailed`]`(e.to_string())`.
    ///
    /// # Errors
    /// As [`apply`](Pool::apply), plus the task's own error.
    pub fn try_apply<A, R, E>(&self, f: fn(A) -> std::result::Result<R, E>, arg: A) -> Result<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        E: std::fmt::Display,
    {
        self.try_apply_async(f, arg)?.get()
    }

    /// [`map`](Pool::map) of a fallible function: the first `Err` (in any chunk)
    /// fails the whole map with [`Error::TaskFailed`]; `chunksize` `None` is the
    /// default.
    ///
    /// # Errors
    /// As [`map`](Pool::map).
    pub fn try_map_async<A, R, E>(
        &self,
        f: fn(A) -> std::result::Result<R, E>,
        iter: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        E: std::fmt::Display,
    {
        self.map_chunks(code::task_try_chunk(f)?, iter, chunksize, Callbacks::new())
    }

    /// [`try_map_async`](Pool::try_map_async) with the default chunksize, waiting.
    ///
    /// # Errors
    /// As [`map`](Pool::map).
    pub fn try_map<A, R, E>(
        &self,
        f: fn(A) -> std::result::Result<R, E>,
        iter: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        E: std::fmt::Display,
    {
        self.map_wait(code::task_try_chunk(f)?, iter)
    }

    /// Encodes the input in chunks of `chunksize` (default: Python's, from the
    /// input's length) and submits each chunk as soon as it is encoded, so that the
    /// workers start on the first chunk while the next ones are encoded. The input is
    /// collected first only when its length is not known exactly. `sink(index)` says
    /// where chunk `index`'s result goes. Returns (chunks, items) submitted.
    fn submit_chunks<I, A>(
        &self,
        code: CodeRef,
        iter: I,
        chunksize: Option<usize>,
        sink: impl FnMut(usize) -> Sink,
    ) -> Result<(usize, usize)>
    where
        I: IntoIterator<Item = A>,
        A: Serialize,
    {
        let iter = iter.into_iter();
        match iter.size_hint() {
            (lo, Some(hi)) if lo == hi => self.submit_chunks_of(code, iter, lo, chunksize, sink),
            _ => {
                let items: Vec<A> = iter.collect();
                let len = items.len();
                self.submit_chunks_of(code, items.into_iter(), len, chunksize, sink)
            }
        }
    }

    fn submit_chunks_of<A: Serialize>(
        &self,
        code: CodeRef,
        iter: impl Iterator<Item = A>,
        len: usize,
        chunksize: Option<usize>,
        mut sink: impl FnMut(usize) -> Sink,
    ) -> Result<(usize, usize)> {
        let cs = chunksize
            .unwrap_or_else(|| default_chunksize(len, self.processes()))
            .max(1);
        // `len` is only a hint (an iterator may misreport it): chunks are cut from
        // what the iterator actually yields, encoded straight from it.
        let mut iter = iter.peekable();
        let (mut chunks, mut items, mut size) = (0, 0, 0);
        while iter.peek().is_some() {
            // A spare buffer of an earlier chunk, if the pool has one.
            let spare = lock(&self.sh.inner).bufs.take().unwrap_or_default();
            let mut head = worker::task_header_into(spare, 0, code)?;
            head.reserve(size);
            let (msg, n) = crate::codec::encode_seq_append(iter.by_ref().take(cs), head)
                .map_err(codec("encoding a task's argument"))?;
            size = msg.len();
            items += n;
            self.submit(vec![(msg, sink(chunks))])?;
            chunks += 1;
        }
        Ok((chunks, items))
    }

    fn map_chunks<I, A, R>(
        &self,
        code: CodeRef,
        iter: I,
        chunksize: Option<usize>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        I: IntoIterator<Item = A>,
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        let slot = Arc::new(Slot::default());
        if !callbacks.is_empty() {
            self.callback_thread()?;
        }
        let cb = (!callbacks.is_empty()).then(|| callbacks.into_job(decode_concat::<R>));
        let map = handler::MapState::new(Arc::clone(&slot), cb);
        let submitted = self.submit_chunks(code, iter, chunksize, |index| {
            lock(&map).add_chunk();
            Sink::Chunk {
                map: Arc::clone(&map),
                index,
            }
        });
        let sealed = submitted.and_then(|(chunks, _)| {
            let mut g = lock(&self.sh.inner);
            if chunks == 0 {
                g.accepting()?;
            }
            g.seal_map(&map);
            Ok(())
        });
        if let Err(e) = sealed {
            lock(&map).abandon();
            return Err(e);
        }
        Ok(AsyncResult::new(slot, decode_concat::<R>))
    }

    /// A blocking map: submits the chunks, then decodes each chunk's results as soon
    /// as it (and those before it) arrived, while the workers still run the later
    /// ones. Fails with the first chunk failure to arrive, like `map_async(..).get()`.
    fn map_wait<I, A, R>(&self, code: CodeRef, iter: I) -> Result<Vec<R>>
    where
        I: IntoIterator<Item = A>,
        A: Serialize,
        R: DeserializeOwned,
    {
        let it = Arc::new(IterShared::drained());
        // Drain from the start: results of the first chunks arrive while the later
        // ones are still being encoded, and the result handler then stays off the
        // doorbell (no second thread to wake, no contention on the pool's lock).
        let _draining = Draining::enter(&self.sh);
        let (chunks, items) = self.submit_chunks(code, iter, None, |index| Sink::Iter {
            it: Arc::clone(&it),
            index,
        })?;
        if chunks == 0 {
            lock(&self.sh.inner).accepting()?;
        }
        let mut out = Vec::with_capacity(items);
        for index in 0..chunks {
            match self.drain_until(&it, index) {
                Ok(msg) => {
                    crate::codec::decode_append(crate::wire::payload(&msg), &mut out)
                        .map_err(codec("decoding a chunk of map results"))?;
                    lock(&self.sh.inner).bufs.put(msg);
                }
                Err(f) => return Err(f.to_error()),
            }
        }
        Ok(out)
    }

    /// Waits for chunk `index` of a blocking map (or its first failure), draining the
    /// result rings in this thread: results are handled here as they arrive, without
    /// a hand-over through the result handler thread (one wake-up per result, not
    /// two). Sleeps on the doorbell the workers ring after each result; the result
    /// handler (which checks the workers on its timer, woken by a drainer that waited
    /// in vain) rings it too when a chunk failed because its worker died.
    fn drain_until(&self, it: &IterShared, index: usize) -> std::result::Result<Vec<u8>, Failure> {
        let doorbell = self.sh.pool.doorbell();
        loop {
            if let Some(o) = it.try_take_map(index) {
                return o;
            }
            if lock(&self.sh.inner).pump_all(&self.sh) {
                continue;
            }
            let key = doorbell.prepare();
            // Re-check after announcing ourselves: a result pushed before `prepare`
            // is seen here, one pushed after it rings the doorbell.
            if lock(&self.sh.inner).pump_all(&self.sh) {
                continue;
            }
            if let Some(o) = it.try_take_map(index) {
                return o;
            }
            if !doorbell.wait(key, Deadline::after(threads::CHECK_BUSY)) {
                // Nothing for a while: a worker may have died, which only the result
                // handler finds, and it may be parked on its idle timer (50 ms; on
                // its busy one it checks as often as this wait times out).
                let g = lock(&self.sh.inner);
                if g.handler_parked_idle {
                    self.sh.park.notify_all();
                }
            }
        }
    }

    /// `[f(x) for x in iter]` computed by the workers, in chunks of the default
    /// size ([`default_chunksize`]); waits for all of it (Python's `map`).
    ///
    /// # Errors
    /// The first failure among the chunks, else as [`apply_async`](Pool::apply_async).
    pub fn map<A, R>(&self, f: fn(A) -> R, iter: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.map_wait(code::task_chunk(f)?, iter)
    }

    /// [`map`](Pool::map) without waiting; `chunksize` `None` is the default.
    ///
    /// # Errors
    /// As [`apply_async`](Pool::apply_async).
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        iter: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.map_async_with(f, iter, chunksize, Callbacks::new())
    }

    /// [`map_async`](Pool::map_async) with callbacks (called once, with the whole
    /// list or the first error).
    ///
    /// # Errors
    /// As [`apply_async`](Pool::apply_async).
    pub fn map_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        iter: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.map_chunks(code::task_chunk(f)?, iter, chunksize, callbacks)
    }

    /// `[f(a, b) for (a, b) in iter]` (Python's `starmap`, for two-argument functions).
    ///
    /// # Errors
    /// As [`map`](Pool::map).
    pub fn starmap<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        iter: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.map_wait(code::task_star(f)?, iter)
    }

    /// [`starmap`](Pool::starmap) without waiting.
    ///
    /// # Errors
    /// As [`apply_async`](Pool::apply_async).
    pub fn starmap_async<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        iter: impl IntoIterator<Item = (A, B)>,
        chunksize: Option<usize>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.map_chunks(code::task_star(f)?, iter, chunksize, Callbacks::new())
    }

    fn imap_inner<I, A, R>(
        &self,
        f: fn(A) -> R,
        iter: I,
        chunksize: usize,
        ordered: bool,
    ) -> Result<IMap<'_, I::IntoIter, R>>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        lock(&self.sh.inner).accepting()?;
        let window = self.processes() * (self.sh.cfg.prefetch + 1);
        Ok(IMap::new(
            self,
            code::task_chunk(f)?,
            iter.into_iter(),
            chunksize.max(1),
            window,
            Arc::new(IterShared::new(ordered)),
        ))
    }

    /// A lazy `map` (Python's `imap`, chunksize 1): the input is consumed as results
    /// are taken (at most a window of `processes × (prefetch + 1)` chunks ahead);
    /// results come in input order, each as soon as it and those before it are done.
    ///
    /// # Errors
    /// [`Error::PoolClosed`] etc. as [`apply_async`](Pool::apply_async); failures of
    /// single items come as `Err` items.
    pub fn imap<I, A, R>(&self, f: fn(A) -> R, iter: I) -> Result<IMap<'_, I::IntoIter, R>>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.imap_inner(f, iter, 1, true)
    }

    /// [`imap`](Pool::imap) with chunks of `chunksize` items (a failed chunk yields
    /// its error for each of its items).
    ///
    /// # Errors
    /// As [`imap`](Pool::imap).
    pub fn imap_chunksize<I, A, R>(
        &self,
        f: fn(A) -> R,
        iter: I,
        chunksize: usize,
    ) -> Result<IMap<'_, I::IntoIter, R>>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.imap_inner(f, iter, chunksize, true)
    }

    /// Like [`imap`](Pool::imap) but yields results in completion order.
    ///
    /// # Errors
    /// As [`imap`](Pool::imap).
    pub fn imap_unordered<I, A, R>(
        &self,
        f: fn(A) -> R,
        iter: I,
    ) -> Result<IMap<'_, I::IntoIter, R>>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.imap_inner(f, iter, 1, false)
    }

    /// [`imap_unordered`](Pool::imap_unordered) with chunks of `chunksize` items.
    ///
    /// # Errors
    /// As [`imap`](Pool::imap).
    pub fn imap_unordered_chunksize<I, A, R>(
        &self,
        f: fn(A) -> R,
        iter: I,
        chunksize: usize,
    ) -> Result<IMap<'_, I::IntoIter, R>>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.imap_inner(f, iter, chunksize, false)
    }

    /// Stops accepting tasks; queued tasks still run. Then call [`join`](Pool::join).
    pub fn close(&self) {
        {
            let mut g = lock(&self.sh.inner);
            if g.state == State::Running {
                g.state = State::Closed;
            }
        }
        self.sh.pool.doorbell().notify_all();
        self.sh.park.notify_all();
    }

    /// Waits until every task is done and its callback ran, the workers have exited
    /// and the pool's threads ended.
    ///
    /// # Errors
    /// [`Error::PoolRunning`] unless [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate) was called first.
    pub fn join(&self) -> Result<()> {
        if lock(&self.sh.inner).state == State::Running {
            return Err(Error::PoolRunning);
        }
        self.join_threads(true);
        Ok(())
    }

    fn join_threads(&self, callbacks: bool) {
        if std::process::id() != self.owner {
            return; // a copy inherited over fork: the threads and workers are not ours
        }
        let mut t = lock(&self.threads);
        t.ended = true;
        match t.handler.take() {
            Some(h) => {
                let _ = h.join();
            }
            // No task was ever submitted: stop (or kill) and reap the workers here.
            None => handler::shutdown_idle(&self.sh, threads::STOP_GRACE),
        }
        let on_callback_thread = t
            .callbacks
            .as_ref()
            .is_some_and(|c| c.thread().id() == std::thread::current().id());
        if callbacks && !on_callback_thread {
            if let Some(c) = t.callbacks.take() {
                let _ = c.join();
            }
        } else {
            // Detach: it ends once the callbacks already queued have run.
            drop(t.callbacks.take());
        }
    }

    /// Kills the workers (SIGKILL) at once; every unfinished result fails with
    /// [`Error::Terminated`] (error callbacks run). Returns after the workers are
    /// reaped and queued callbacks ran.
    pub fn terminate(&self) {
        self.terminate_inner(true);
    }

    fn terminate_inner(&self, join_callbacks: bool) {
        lock(&self.sh.inner).terminate();
        self.sh.pool.doorbell().notify_all();
        self.sh.park.notify_all();
        self.join_threads(join_callbacks);
    }
}

/// Registers a thread draining the result rings (see [`Pool::drain_until`]) while it
/// lives; the last one to leave wakes the result handler back onto the doorbell if
/// tasks are still in flight.
struct Draining<'a>(&'a handler::Shared);

impl<'a> Draining<'a> {
    fn enter(sh: &'a handler::Shared) -> Self {
        lock(&sh.inner).drainers += 1;
        Draining(sh)
    }
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        let mut g = lock(&self.0.inner);
        g.drainers -= 1;
        if g.drainers == 0 {
            if g.pending.is_empty() && g.backlog.is_empty() && g.state == State::Running {
                // Nothing can arrive: the handler may stay parked until the next
                // submission (which wakes it), sparing back-to-back maps its wake-ups.
                g.drained_idle = true;
            } else if g.handler_parked {
                self.0.park.notify_all();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            return; // a copy inherited over fork: the workers are not ours
        }
        self.terminate_inner(false);
    }
}
