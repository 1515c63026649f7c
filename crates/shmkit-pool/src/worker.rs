//! The worker process: get a task → run it → put its result, until told to stop.

use crate::code::CodeRef;
use crate::error::Result;
use crate::shm::{PoolShm, WorkerEnds, WorkerShm, WorkerShmToken};
use crate::wire::{self, Inbox, SendQueue, FAILED, INIT_FAILED, OK, PANICKED, STOP};
use serde::{Deserialize, Serialize};
use shmkit_ring::bytes::{Consumer, Producer};
use shmkit_segment::Token;
use shmkit_sync::futex::{spin_until, Deadline, MAX_SPIN};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// How often an idle or blocked worker checks that the pool's process still runs.
const PARENT_CHECK: Duration = Duration::from_millis(200);

/// Exit code of a worker whose initializer failed.
pub(crate) const EXIT_INIT_FAILED: i32 = 3;
/// Exit code of a worker that could not set itself up or lost its rings.
pub(crate) const EXIT_BROKEN: i32 = 70;

/// The initializer, as a worker finds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InitSpec {
    pub(crate) code: CodeRef,
    pub(crate) arg: Vec<u8>,
}

/// A worker's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Settings {
    pub(crate) parent: u32,
    pub(crate) maxtasks: Option<u64>,
    pub(crate) init: Option<InitSpec>,
}

/// Everything a spawned worker needs, as its process's argument (crosses `exec`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Boot {
    pub(crate) pool: Token,
    pub(crate) shm: WorkerShmToken,
    pub(crate) settings: Settings,
}

/// The spawned worker's entry: reopens its segments from their tokens.
pub(crate) fn worker_main(boot: Boot) -> i32 {
    run_worker(&boot.settings, || {
        Ok((PoolShm::open(&boot.pool)?, WorkerShm::open(&boot.shm)?))
    })
}

/// The forked worker's entry: uses the mappings and ring ends inherited from the
/// parent.
pub(crate) fn worker_main_forked(
    pool: PoolShm,
    shm: WorkerShm,
    ends: WorkerEnds,
    settings: &Settings,
) -> i32 {
    run_worker(settings, move || Ok((pool, (shm, ends))))
}

type Opened = (PoolShm, (WorkerShm, WorkerEnds));

fn run_worker(settings: &Settings, open: impl FnOnce() -> Result<Opened>) -> i32 {
    // Task panics are reported to the parent as results; keep stderr quiet.
    std::panic::set_hook(Box::new(|_| {}));
    match open().and_then(|(pool, (shm, ends))| serve(settings, &pool, &shm, ends)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shmkit-pool worker {}: {e}", std::process::id());
            EXIT_BROKEN
        }
    }
}

fn parent_gone(parent: u32) -> bool {
    std::os::unix::process::parent_id() != parent
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Runs `code` and appends the outcome to `out` (which holds a result header).
fn call(id: u64, code: CodeRef, args: &[u8], out: &mut Vec<u8>) {
    let start = std::time::Instant::now();
    run(id, code, args, out);
    wire::set_run_time(out, start.elapsed());
}

fn run(id: u64, code: CodeRef, args: &[u8], out: &mut Vec<u8>) {
    wire::result_header(id, OK, out);
    match catch_unwind(AssertUnwindSafe(|| code.call(args, out))) {
        Ok(Ok(())) => {}
        Ok(Err(msg)) => {
            wire::result_header(id, FAILED, out);
            out.extend_from_slice(msg.as_bytes());
        }
        Err(p) => {
            wire::result_header(id, PANICKED, out);
            out.extend_from_slice(panic_message(p.as_ref()).as_bytes());
        }
    }
}

struct Me<'a> {
    pool: &'a PoolShm,
    shm: &'a WorkerShm,
    parent: u32,
}

impl Me<'_> {
    /// Waits for the next whole task message; `None` when the parent is gone.
    ///
    /// `spin`: spin briefly before sleeping. A new worker does not: its pool is still
    /// starting (forking the other workers), and spinning would only take a core
    /// from it.
    fn next_task(
        &self,
        rx: &mut Consumer,
        inbox: &mut Inbox,
        spin: bool,
    ) -> Result<Option<Vec<u8>>> {
        loop {
            let mut consumed = false;
            if let Some(m) = inbox.poll(rx, &mut consumed)? {
                return Ok(Some(m));
            }
            if consumed {
                // Half a message: the parent has room for the rest now.
                self.pool.doorbell().notify_all();
            }
            if spin && spin_until(Deadline::after(MAX_SPIN), || rx.peek().is_ok()) {
                continue;
            }
            let ec = self.shm.tasks_ec();
            let key = ec.prepare();
            if rx.peek().is_ok() {
                continue;
            }
            if !ec.wait(key, Deadline::after(PARENT_CHECK)) && parent_gone(self.parent) {
                return Ok(None);
            }
        }
    }

    /// Sends a result, waiting for room; `false` when the parent is gone.
    fn send(&self, tx: &mut Producer, q: &mut SendQueue, msg: Vec<u8>) -> Result<bool> {
        let mut done = q.send(tx, msg)?;
        while !done {
            self.pool.doorbell().notify_all();
            let ec = self.shm.space_ec();
            let key = ec.prepare();
            done = q.flush(tx)?;
            if !done && !ec.wait(key, Deadline::after(PARENT_CHECK)) && parent_gone(self.parent) {
                return Ok(false);
            }
        }
        self.pool.doorbell().notify_all();
        Ok(true)
    }
}

fn serve(boot: &Settings, pool: &PoolShm, shm: &WorkerShm, mut ends: WorkerEnds) -> Result<i32> {
    let me = Me {
        pool,
        shm,
        parent: boot.parent,
    };
    let mut q = SendQueue::default();
    if let Some(init) = &boot.init {
        let mut out = Vec::new();
        call(INIT_FAILED, init.code, &init.arg, &mut out);
        if wire::parse_result(&out).is_some_and(|r| r.status != OK) {
            me.send(&mut ends.results, &mut q, out)?;
            return Ok(EXIT_INIT_FAILED);
        }
    }
    let mut inbox = Inbox::default();
    let mut done = 0u64;
    loop {
        let Some(msg) = me.next_task(&mut ends.tasks, &mut inbox, done > 0)? else {
            return Ok(0);
        };
        let (id, code, args) = match parse_task(&msg) {
            Some(Task::Run(id, code, args)) => (id, code, args),
            Some(Task::Stop) => return Ok(0),
            None => return Ok(EXIT_BROKEN),
        };
        shm.begin_task();
        let mut out = q.buffer();
        call(id, code, args, &mut out);
        inbox.recycle(msg);
        if !me.send(&mut ends.results, &mut q, out)? {
            return Ok(0);
        }
        done += 1;
        if boot.maxtasks == Some(done) {
            return Ok(0);
        }
    }
}

/// A task message, parsed.
enum Task<'a> {
    /// Run `code` on the argument bytes as task `id`.
    Run(u64, CodeRef, &'a [u8]),
    /// Exit.
    Stop,
}

fn parse_task(msg: &[u8]) -> Option<Task<'_>> {
    let id = u64::from_le_bytes(msg.get(..8)?.try_into().ok()?);
    if id == STOP {
        return Some(Task::Stop);
    }
    let (code, args) = crate::codec::take::<CodeRef>(&msg[8..]).ok()?;
    Some(Task::Run(id, code, args))
}

/// Starts a task message: id and code; the encoded argument follows.
pub(crate) fn task_header(id: u64, code: CodeRef) -> Result<Vec<u8>> {
    task_header_into(Vec::with_capacity(64), id, code)
}

/// [`task_header`] in `msg` (emptied first).
pub(crate) fn task_header_into(mut msg: Vec<u8>, id: u64, code: CodeRef) -> Result<Vec<u8>> {
    msg.clear();
    msg.extend_from_slice(&id.to_le_bytes());
    crate::codec::encode_append(&code, msg).map_err(|source| crate::Error::Codec {
        what: "task header",
        source,
    })
}

/// Sets the id of a task message made by [`task_header`].
pub(crate) fn set_task_id(msg: &mut [u8], id: u64) {
    msg[..8].copy_from_slice(&id.to_le_bytes());
}

/// The STOP message.
pub(crate) fn stop_message() -> Vec<u8> {
    STOP.to_le_bytes().to_vec()
}
