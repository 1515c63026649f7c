//! The parent side: pool state, dispatching tasks to workers, the result-handler
//! thread (results, worker exits, replacements) and the callback thread.
//!
//! Each worker has its own pair of rings, so the parent always knows which tasks a
//! worker holds: the ones it queued to it (`inflight`, in order) minus the results
//! received. The worker counts the tasks it has *begun* in its segment before
//! running user code; when the worker is seen dead, its remaining results are
//! drained, and if it had begun more tasks than it returned, the first task still in
//! flight is the one it died in: that task (or chunk) fails with
//! [`Error::WorkerDied`](crate::Error::WorkerDied); the tasks queued behind it never
//! started and go back to the front of the backlog. A replacement worker starts.

use crate::error::{Failure, Result};
use crate::imap::IterShared;
use crate::pool::{lock, Config};
use crate::result::{CallbackFn, Outcome, Slot};
use crate::shm::{ParentEnds, PoolShm, WorkerShm};
use crate::wire::{self, Inbox, Outbox, INIT_FAILED, OK, PANICKED};
use crate::worker::{self, Boot, Settings};
use shmkit_process::Process;
use shmkit_process::StartMethod;
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A job for the callback thread.
pub(crate) type CbJob = Box<dyn FnOnce() + Send + 'static>;

/// Tasks taking longer than this on average are queued at most two per worker.
const LONG_TASK_NS: u64 = 500_000;
/// The most capacity of spare message buffers the parent keeps.
const MAX_SPARE_BYTES: usize = 8 << 20;
/// Workers dying before their first task, in a row, that break the pool.
const MAX_STARTUP_FAILURES: u32 = 3;

/// Where a task's result goes.
pub(crate) enum Sink {
    /// An `apply_async` result.
    One {
        slot: Arc<Slot>,
        cb: Option<CallbackFn>,
    },
    /// Chunk `index` of a `map_async`.
    Chunk {
        map: Arc<Mutex<MapState>>,
        index: usize,
    },
    /// Chunk `index` of an `imap`.
    Iter { it: Arc<IterShared>, index: usize },
}

impl Sink {
    /// Whether a blocking map's thread waits for this result, draining the result
    /// rings itself (see [`Inner::undrained`]).
    pub(crate) fn drained(&self) -> bool {
        matches!(self, Sink::Iter { it, .. } if it.drained)
    }
}

/// A `map_async` in progress. Chunks are added as they are submitted; the map is
/// complete once it is sealed (every chunk submitted) and no chunk is outstanding.
pub(crate) struct MapState {
    parts: Vec<Vec<u8>>,
    /// Chunks submitted whose results have not arrived.
    remaining: usize,
    sealed: bool,
    finished: bool,
    slot: Arc<Slot>,
    cb: Option<CallbackFn>,
}

impl MapState {
    pub(crate) fn new(slot: Arc<Slot>, cb: Option<CallbackFn>) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(MapState {
            parts: Vec::new(),
            remaining: 0,
            sealed: false,
            finished: false,
            slot,
            cb,
        }))
    }

    /// Counts one more chunk about to be submitted.
    pub(crate) fn add_chunk(&mut self) {
        self.remaining += 1;
    }

    /// The map will not be delivered: submission failed part-way. Chunks already
    /// submitted still run; their results are dropped and no callback runs.
    pub(crate) fn abandon(&mut self) {
        self.finished = true;
        self.parts = Vec::new();
        self.cb = None;
    }
}

/// A task waiting for or assigned to a worker.
#[derive(Debug)]
pub(crate) struct Task {
    pub(crate) id: u64,
    pub(crate) msg: Vec<u8>,
}

/// The pool's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Accepting tasks.
    Running,
    /// `close()`d: queued tasks finish, then the workers are stopped.
    Closed,
    /// Every task is done; workers were told to exit.
    Stopping,
    /// `terminate()`d: workers are being killed and reaped.
    Terminated,
    /// The handler has ended; no worker is left.
    Done,
}

/// One worker as the parent sees it.
pub(crate) struct Worker {
    pub(crate) pid: u32,
    pub(crate) process: Process,
    shm: WorkerShm,
    ends: ParentEnds,
    /// Tasks queued to this worker, in ring order, whose results have not arrived.
    inflight: VecDeque<Task>,
    /// `inflight[..sent]` are wholly in the ring.
    sent: usize,
    out: Outbox,
    inbox: Inbox,
    /// Tasks ever queued to it (bounded by `maxtasksperchild`).
    assigned: u64,
    /// Results received from it.
    received: u64,
    pub(crate) stop_queued: bool,
    pub(crate) stop_sent: bool,
    /// Killed because it broke the protocol.
    pub(crate) killed: bool,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("pid", &self.pid)
            .field("inflight", &self.inflight.len())
            .finish()
    }
}

impl Worker {
    fn can_take(&self, cfg: &Config, prefetch: usize) -> bool {
        !self.stop_queued
            && !self.killed
            && self.inflight.len() < prefetch
            && cfg.maxtasks.map_or(true, |m| self.assigned < m)
    }

    /// Whether it is about to exit by itself (quota reached or told to stop).
    pub(crate) fn retiring(&self, cfg: &Config) -> bool {
        self.stop_sent || self.killed || cfg.maxtasks.is_some_and(|m| self.received >= m)
    }

    /// Pushes what fits of the unsent tasks (then STOP, if queued).
    fn flush(&mut self) -> std::result::Result<bool, shmkit_ring::Error> {
        let mut pushed = false;
        while self.sent < self.inflight.len() {
            let done = self
                .out
                .push(&mut self.ends.tasks, &self.inflight[self.sent].msg)?;
            pushed |= done || self.out.in_progress();
            if !done {
                break;
            }
            self.sent += 1;
        }
        if self.stop_queued
            && !self.stop_sent
            && self.sent == self.inflight.len()
            && self
                .out
                .push(&mut self.ends.tasks, &worker::stop_message())?
        {
            self.stop_sent = true;
            pushed = true;
        }
        if pushed {
            self.shm.tasks_ec().notify_all();
        }
        Ok(pushed)
    }

    fn drain(
        &mut self,
        into: &mut Vec<Vec<u8>>,
        bufs: &mut Buffers,
    ) -> std::result::Result<(), shmkit_ring::Error> {
        let mut consumed = false;
        let r = loop {
            if self.inbox.wants_buffer() {
                if let Some(b) = bufs.take() {
                    self.inbox.recycle(b);
                }
            }
            match self.inbox.poll(&mut self.ends.results, &mut consumed) {
                Ok(Some(m)) => into.push(m),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if consumed {
            self.shm.space_ec().notify_all();
        }
        r
    }

    fn kill(&mut self) {
        self.killed = true;
        let _ = self.process.kill();
    }

    /// Reaps it: waits up to `grace` for it to exit by itself, then (or at once, with
    /// no grace) kills it and waits. Bounded, so that nothing (e.g. a task's stray
    /// child holding the worker up) can hang join or drop.
    pub(crate) fn reap(self, grace: Option<std::time::Duration>) {
        let exited = grace.is_some_and(|g| matches!(self.process.join_timeout(g), Ok(true)));
        if !exited {
            let _ = self.process.kill();
            let _ = self.process.join();
        }
    }

    /// How it ended: (signal, exit code).
    fn death(&self) -> (Option<i32>, Option<i32>) {
        match self.process.exitcode() {
            Some(c) if c < 0 => (Some(-c), None),
            Some(c) => (None, Some(c)),
            None => (None, None),
        }
    }
}

/// Spare message buffers of the parent (task messages whose results arrived, result
/// messages a blocking map has decoded), reused for the next messages: the large
/// buffers of back-to-back maps are then not allocated and page-faulted anew each
/// time. Holds at most `max_bytes` of capacity, and only buffers of at least
/// [`Buffers::MIN`] bytes.
#[derive(Debug)]
pub(crate) struct Buffers {
    spare: Vec<Vec<u8>>,
    bytes: usize,
    max_bytes: usize,
}

impl Buffers {
    /// Smaller buffers are not kept (cheap to allocate; they would only dilute).
    const MIN: usize = 4096;

    fn new(max_bytes: usize) -> Self {
        Buffers {
            spare: Vec::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// A spare buffer (empty, with capacity), if any.
    pub(crate) fn take(&mut self) -> Option<Vec<u8>> {
        let b = self.spare.pop()?;
        self.bytes -= b.capacity();
        Some(b)
    }

    /// Keeps `b` for reuse if it is large and there is room.
    pub(crate) fn put(&mut self, mut b: Vec<u8>) {
        let c = b.capacity();
        if c < Self::MIN || self.bytes + c > self.max_bytes {
            return;
        }
        b.clear();
        self.bytes += c;
        self.spare.push(b);
    }
}

/// State shared by the pool handle and its threads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) inner: Mutex<Inner>,
    /// The result handler sleeps here (with `inner`) instead of on the doorbell while
    /// a blocking map's thread drains the result rings ([`Inner::drainers`] > 0), so
    /// that a worker's result wakes only that thread. Notified when the last drainer
    /// leaves, on close/terminate, on a submission it must watch for
    /// ([`Inner::undrained`]), and by a drainer when a worker retires or (if it sleeps
    /// on its idle timer) when the drainer's wait timed out.
    pub(crate) park: Condvar,
    pub(crate) pool: PoolShm,
    pub(crate) cfg: Config,
}

impl Shared {
    pub(crate) fn new(cfg: Config, pool: PoolShm) -> Result<Self> {
        Ok(Shared {
            inner: Mutex::new(Inner {
                state: State::Running,
                broken: None,
                next_id: 0,
                backlog: VecDeque::new(),
                pending: HashMap::new(),
                workers: Vec::new(),
                cb_tx: None,
                rx_buf: Vec::new(),
                started: 0,
                start_error: None,
                // Until results show otherwise, assume long tasks (queue little).
                avg_task_ns: 2 * LONG_TASK_NS,
                startup_failures: 0,
                owner: std::process::id(),
                drainers: 0,
                // About what the rings hold (a map's worth of chunk messages), and
                // never more than a few MiB.
                bufs: Buffers::new(
                    cfg.ring_bytes
                        .saturating_mul(cfg.processes.saturating_mul(2))
                        .min(MAX_SPARE_BYTES),
                ),
                drained_idle: false,
                handler_parked: false,
                handler_parked_idle: false,
                undrained: 0,
            }),
            park: Condvar::new(),
            pool,
            cfg,
        })
    }
}

/// The pool's mutable state (parent only, behind one mutex).
pub(crate) struct Inner {
    pub(crate) state: State,
    /// Set when the initializer failed: every task fails with it.
    broken: Option<Failure>,
    pub(crate) next_id: u64,
    /// Submitted tasks not yet queued to a worker.
    pub(crate) backlog: VecDeque<Task>,
    /// Every task whose result has not been delivered.
    pub(crate) pending: HashMap<u64, Sink>,
    pub(crate) workers: Vec<Worker>,
    pub(crate) cb_tx: Option<Sender<CbJob>>,
    rx_buf: Vec<Vec<u8>>,
    /// Workers started so far (for names).
    started: u64,
    /// Why the last replacement failed to start (retried on the next check).
    start_error: Option<String>,
    /// Workers in a row that died before their first task.
    startup_failures: u32,
    /// The process that made the pool.
    owner: u32,
    /// Moving average of how long a task runs in a worker, for the dispatch policy.
    avg_task_ns: u64,
    /// Threads in a blocking `map` that drain the result rings themselves, sleeping
    /// on the doorbell; meanwhile the result handler only checks the workers (on its
    /// timer) and does not wait on the doorbell.
    pub(crate) drainers: usize,
    /// The last drainer left with nothing in flight: the result handler stays
    /// parked (on its timer) until the next submission, so that back-to-back blocking
    /// maps never move it onto the doorbell and off again.
    pub(crate) drained_idle: bool,
    /// Spare message buffers.
    pub(crate) bufs: Buffers,
    /// The result handler sleeps on [`Shared::park`] (set and cleared under the lock).
    pub(crate) handler_parked: bool,
    /// ... on its idle timer (it parked with nothing in flight), too long to find a
    /// worker dying under a blocking map that started since.
    pub(crate) handler_parked_idle: bool,
    /// Pending tasks whose results no drainer waits for (`apply_async`, `map_async`,
    /// `imap`): while there are any, the result handler stays on the doorbell, as a
    /// drainer may not be draining when one arrives (say, while it still consumes its
    /// map's input, which may itself wait for such a result).
    pub(crate) undrained: usize,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("state", &self.state)
            .field("backlog", &self.backlog.len())
            .field("pending", &self.pending.len())
            .field("undrained", &self.undrained)
            .field("workers", &self.workers)
            .finish()
    }
}

/// Delivers an outcome: at once, or through the callback thread (callbacks first,
/// then the slot, so that a ready result's callback has run).
fn finish(cb_tx: Option<&Sender<CbJob>>, slot: Arc<Slot>, cb: Option<CallbackFn>, o: Outcome) {
    let Some(cb) = cb else {
        slot.fill(o);
        return;
    };
    let job: CbJob = Box::new(move || {
        if catch_unwind(AssertUnwindSafe(|| cb(&o))).is_err() {
            eprintln!("shmkit-pool: a result callback panicked (ignored)");
        }
        slot.fill(o);
    });
    match cb_tx {
        Some(tx) => {
            if let Err(e) = tx.send(job) {
                (e.0)();
            }
        }
        None => job(),
    }
}

/// Delivers a map's outcome (its parts, or its first failure) once: marks it
/// finished and unlocks it before the slot is filled or the callback queued.
fn deliver_map(cb_tx: Option<&Sender<CbJob>>, mut m: MutexGuard<'_, MapState>, o: Outcome) {
    m.finished = true;
    let (slot, cb) = (Arc::clone(&m.slot), m.cb.take());
    drop(m);
    finish(cb_tx, slot, cb, o);
}

impl Inner {
    /// Whether the result handler sleeps on [`Shared::park`] rather than the doorbell:
    /// while drainers handle the results and no other result is awaited, or after a
    /// blocking map until the next submission (nothing can arrive for anyone
    /// meanwhile).
    pub(crate) fn handler_parks(&self) -> bool {
        self.undrained == 0
            && (self.drainers > 0 || (self.drained_idle && self.state == State::Running))
    }

    /// The pool has ended: no worker is left and no callback is sent any more.
    pub(crate) fn set_done(&mut self) {
        self.state = State::Done;
        self.cb_tx = None;
    }

    /// Hands callbacks to this thread from now on (unless the pool has ended).
    pub(crate) fn set_callback_sender(&mut self, tx: Sender<CbJob>) {
        if self.state != State::Done {
            self.cb_tx = Some(tx);
        }
    }

    /// `Ok` when tasks may be submitted.
    pub(crate) fn accepting(&self) -> Result<()> {
        if let Some(f) = &self.broken {
            return Err(f.to_error());
        }
        if std::process::id() != self.owner {
            // A copy of the pool inherited over fork: its threads and workers belong
            // to the parent.
            return Err(crate::Error::PoolClosed);
        }
        match self.state {
            State::Running => Ok(()),
            _ => Err(crate::Error::PoolClosed),
        }
    }

    /// Every chunk of `map` has been submitted: delivers it if all have completed.
    pub(crate) fn seal_map(&mut self, map: &Mutex<MapState>) {
        let mut m = lock(map);
        m.sealed = true;
        if m.finished || m.remaining > 0 {
            return;
        }
        let parts = std::mem::take(&mut m.parts);
        deliver_map(self.cb_tx.as_ref(), m, Ok(parts));
    }

    /// Delivers the result of task `id`.
    fn complete(&mut self, id: u64, o: std::result::Result<Vec<u8>, Failure>) {
        let sink = self.pending.remove(&id);
        if sink.as_ref().is_some_and(|s| !s.drained()) {
            self.undrained -= 1;
        }
        match sink {
            None => {}
            Some(Sink::One { slot, cb }) => {
                finish(self.cb_tx.as_ref(), slot, cb, o.map(|v| vec![v]))
            }
            Some(Sink::Chunk { map, index }) => {
                let mut m = lock(&map);
                if m.finished {
                    return;
                }
                let out = match o {
                    Ok(v) => {
                        if m.parts.len() <= index {
                            m.parts.resize_with(index + 1, Vec::new);
                        }
                        m.parts[index] = v;
                        m.remaining = m.remaining.saturating_sub(1);
                        if m.remaining > 0 || !m.sealed {
                            return;
                        }
                        Ok(std::mem::take(&mut m.parts))
                    }
                    Err(f) => {
                        m.parts = Vec::new();
                        Err(f)
                    }
                };
                deliver_map(self.cb_tx.as_ref(), m, out);
            }
            Some(Sink::Iter { it, index }) => it.deliver(index, o),
        }
    }

    /// Fails every task not yet delivered, in submission order.
    fn fail_all(&mut self, f: &Failure) {
        self.backlog.clear();
        for w in &mut self.workers {
            w.inflight.clear();
            w.sent = 0;
        }
        let mut ids: Vec<u64> = self.pending.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.complete(id, Err(f.clone()));
        }
    }

    /// Queues backlog tasks to workers with room, least loaded first.
    pub(crate) fn dispatch(&mut self, cfg: &Config) -> bool {
        let mut any = false;
        // Long tasks: keep one queued behind the running one (enough to hide the
        // hand-over), so that an idle worker can take the rest; short tasks: batch.
        let prefetch = if self.avg_task_ns > LONG_TASK_NS {
            cfg.prefetch.min(2)
        } else {
            cfg.prefetch
        };
        while !self.backlog.is_empty() {
            let best = self
                .workers
                .iter()
                .enumerate()
                .filter(|(_, w)| w.can_take(cfg, prefetch))
                .min_by_key(|(_, w)| w.inflight.len())
                .map(|(i, _)| i);
            let Some(i) = best else { break };
            let Some(t) = self.backlog.pop_front() else {
                break;
            };
            let w = &mut self.workers[i];
            w.inflight.push_back(t);
            w.assigned += 1;
            any = true;
        }
        if any {
            for w in &mut self.workers {
                if w.sent < w.inflight.len() && w.flush().is_err() {
                    w.kill();
                }
            }
        }
        any
    }

    /// Pumps every worker and dispatches the backlog (what the result handler does
    /// on each wake-up), for a thread that drains the rings itself. Rings the
    /// doorbell when it delivered something and other drainers may be waiting for it.
    pub(crate) fn pump_all(&mut self, sh: &Shared) -> bool {
        let mut progress = self.pump_workers();
        progress |= self.dispatch(&sh.cfg);
        if progress && self.drainers > 1 {
            sh.pool.doorbell().notify_all();
        }
        if progress
            && self.handler_parked
            && sh.cfg.maxtasks.is_some()
            && self.workers.iter().any(|w| w.retiring(&sh.cfg))
        {
            // A worker has done its `maxtasksperchild`: only the result handler
            // replaces it, and it may be parked on its idle timer (50 ms).
            sh.park.notify_all();
        }
        progress
    }

    /// [`Inner::pump`]s every worker; whether any made progress.
    pub(crate) fn pump_workers(&mut self) -> bool {
        let mut progress = false;
        for i in 0..self.workers.len() {
            progress |= self.pump(i);
        }
        progress
    }

    /// Sends what fits to worker `i` and handles the results it has sent.
    pub(crate) fn pump(&mut self, i: usize) -> bool {
        let mut msgs = std::mem::take(&mut self.rx_buf);
        let w = &mut self.workers[i];
        let mut progress = false;
        if !w.killed {
            match w.flush().and_then(|p| {
                progress |= p;
                w.drain(&mut msgs, &mut self.bufs)
            }) {
                Ok(()) => {}
                Err(_) => w.kill(),
            }
        }
        for m in msgs.drain(..) {
            progress = true;
            self.on_result(i, m);
        }
        self.rx_buf = msgs;
        progress
    }

    fn on_result(&mut self, i: usize, m: Vec<u8>) {
        let w = &mut self.workers[i];
        let Some(wire::ResultMsg {
            id, status, micros, ..
        }) = wire::parse_result(&m)
        else {
            w.kill();
            return;
        };
        let text = |m: &[u8]| String::from_utf8_lossy(wire::payload(m)).into_owned();
        if id == INIT_FAILED {
            let f = Failure::InitializerFailed(text(&m));
            self.broken = Some(f.clone());
            self.fail_all(&f);
            return;
        }
        if w.inflight.front().map(|t| t.id) != Some(id) || w.sent == 0 {
            w.kill(); // not the task it was given: a protocol error
            return;
        }
        if let Some(t) = w.inflight.pop_front() {
            self.bufs.put(t.msg);
        }
        w.sent -= 1;
        w.received += 1;
        // The worker's own measure of the run time: queueing and wake-ups excluded.
        let took = u64::from(micros) * 1000;
        self.avg_task_ns = (self.avg_task_ns / 8)
            .saturating_mul(7)
            .saturating_add(took / 8);
        let o = match status {
            // The whole message: its payload is read in place after the header
            // (`wire::payload`), with no copy and no allocation — unless it is small
            // in a large spare buffer, which is then kept for the next chunk.
            OK if m.capacity() >= Buffers::MIN && m.len() < m.capacity() / 4 => {
                let small = m.clone();
                self.bufs.put(m);
                Ok(small)
            }
            OK => Ok(m),
            PANICKED => Err(Failure::Panicked(text(&m))),
            _ => Err(Failure::TaskFailed(text(&m))),
        };
        self.complete(id, o);
    }

    /// Handles workers that have exited: fails the task each held, requeues the
    /// rest, starts replacements while the pool runs.
    pub(crate) fn check_workers(&mut self, sh: &Shared) {
        let mut i = 0;
        while i < self.workers.len() {
            if self.workers[i].process.is_alive() {
                i += 1;
                continue;
            }
            // Whatever it sent before it died.
            self.pump(i);
            let mut w = self.workers.swap_remove(i);
            let started = w.shm.started();
            let held = started > w.received;
            let (signal, exit_code) = w.death();
            if started == 0 && exit_code != Some(0) && !w.killed {
                // Died before its first task (a crashing initializer, a broken
                // start-up): after a few in a row, stop respawning (Python loops).
                self.startup_failures += 1;
                if self.startup_failures >= MAX_STARTUP_FAILURES {
                    let how = match (signal, exit_code) {
                        (Some(s), _) => format!("signal {s}"),
                        (None, Some(c)) => format!("exit code {c}"),
                        (None, None) => "unknown status".to_owned(),
                    };
                    let f = Failure::InitializerFailed(format!(
                        "{MAX_STARTUP_FAILURES} workers in a row died before their first task ({how})"
                    ));
                    self.broken = Some(f.clone());
                    self.fail_all(&f);
                }
            } else if started > 0 {
                self.startup_failures = 0;
            }
            let mut inflight = std::mem::take(&mut w.inflight);
            if held {
                if let Some(t) = inflight.pop_front() {
                    self.complete(
                        t.id,
                        Err(Failure::WorkerDied {
                            pid: w.pid,
                            signal,
                            exit_code,
                        }),
                    );
                }
            }
            for t in inflight.into_iter().rev() {
                self.backlog.push_front(t);
            }
        }
        let want = match self.state {
            State::Running | State::Closed if self.broken.is_none() => sh.cfg.processes,
            _ => 0,
        };
        while self.workers.len() < want {
            match start_worker(sh, self, None) {
                Ok(w) => {
                    self.workers.push(w);
                    self.start_error = None;
                }
                Err(e) => {
                    if self.start_error.is_none() {
                        eprintln!(
                            "shmkit-pool: cannot start a replacement worker (will retry): {e}"
                        );
                    }
                    self.start_error = Some(e.to_string());
                    break;
                }
            }
        }
    }

    /// Kills every worker and fails every unfinished task with `Terminated`.
    pub(crate) fn terminate(&mut self) {
        if matches!(self.state, State::Done | State::Terminated) {
            return;
        }
        self.state = State::Terminated;
        for w in &mut self.workers {
            w.kill();
        }
        self.fail_all(&Failure::Terminated);
    }

    pub(crate) fn busy(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// Starts one worker (fork or spawn, as configured) on `block` (an initial worker's
/// block of the pool segment), or on a new worker segment of its own.
pub(crate) fn start_worker(
    sh: &Shared,
    inner: &mut Inner,
    block: Option<(WorkerShm, ParentEnds)>,
) -> Result<Worker> {
    let (shm, ends) = match block {
        Some(b) => b,
        None => WorkerShm::create(sh.cfg.ring_bytes)?,
    };
    let settings = Settings {
        parent: std::process::id(),
        maxtasks: sh.cfg.maxtasks,
        init: sh.cfg.init.clone(),
    };
    inner.started += 1;
    let name = format!("PoolWorker-{}", inner.started);
    let mut p = match sh.cfg.method {
        // The child inherits the mappings and its ends of the rings, attached here:
        // no reopening, no prefaulting, no attaching again.
        StartMethod::Fork => {
            let pool = sh.pool.clone();
            let (wshm, wends) = shm.worker_ends_for_fork()?;
            Process::new(move || worker::worker_main_forked(pool, wshm, wends, &settings))
        }
        _ => {
            let boot = Boot {
                // Only spawned workers need it (forked ones inherit the mapping).
                pool: sh.pool.token()?,
                shm: shm.token()?,
                settings,
            };
            Process::spawn_fn(worker::worker_main, boot).start_method(StartMethod::Spawn)
        }
    }
    .name(name);
    p.start()?;
    Ok(Worker {
        pid: p.pid().unwrap_or(0),
        process: p,
        shm,
        ends,
        inflight: VecDeque::new(),
        sent: 0,
        out: Outbox::default(),
        inbox: Inbox::default(),
        assigned: 0,
        received: 0,
        stop_queued: false,
        stop_sent: false,
        killed: false,
    })
}

/// Ends a pool whose result handler never started (no task was ever submitted):
/// after `close`, sends every worker its STOP and reaps it (killing one that has not
/// exited `grace` after its STOP); after `terminate`, kills and reaps them. Does
/// nothing once the pool is done.
pub(crate) fn shutdown_idle(sh: &Shared, grace: std::time::Duration) {
    let mut g = lock(&sh.inner);
    if g.state == State::Done {
        return;
    }
    // No handler means no task was ever accepted; fail anything regardless.
    if g.busy() || !g.backlog.is_empty() {
        g.terminate();
    }
    let kill = g.state != State::Closed;
    for w in &mut g.workers {
        if kill {
            w.kill();
        } else {
            w.stop_queued = true;
            if w.flush().is_err() {
                w.kill();
            }
        }
    }
    let workers = std::mem::take(&mut g.workers);
    g.set_done();
    drop(g);
    for w in workers {
        w.reap((!kill).then_some(grace));
    }
}

/// Kills and reaps every worker (pool start failed).
pub(crate) fn kill_all(sh: &Shared) {
    let mut g = lock(&sh.inner);
    g.terminate();
    for w in g.workers.drain(..) {
        let _ = w.process.join();
    }
    g.set_done();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::Buffers;

    #[test]
    fn buffers_keep_only_large_ones_within_the_bound() {
        let mut b = Buffers::new(3 * Buffers::MIN);
        assert!(b.take().is_none());
        b.put(Vec::with_capacity(Buffers::MIN - 1));
        assert!(b.take().is_none(), "small buffers are not kept");
        let mut big = Vec::with_capacity(2 * Buffers::MIN);
        big.extend_from_slice(b"old bytes");
        b.put(big);
        b.put(Vec::with_capacity(2 * Buffers::MIN)); // over the bound: dropped
        b.put(Vec::with_capacity(Buffers::MIN));
        let x = b.take().unwrap();
        assert_eq!(x.capacity(), Buffers::MIN);
        let y = b.take().unwrap();
        assert!(y.is_empty() && y.capacity() >= 2 * Buffers::MIN);
        assert!(b.take().is_none());
        assert_eq!(b.bytes, 0);
    }
}
