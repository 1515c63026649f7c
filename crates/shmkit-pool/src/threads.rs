//! The pool's threads: the result handler (results, dispatch, worker exits and
//! replacements, shutdown) and the callback thread.

use crate::handler::{CbJob, Shared, State};
use crate::pool::lock;
use shmkit_sync::futex::Deadline;
use std::sync::mpsc::Receiver;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

/// How often worker liveness is checked while tasks are in flight.
pub(crate) const CHECK_BUSY: Duration = Duration::from_millis(5);
/// How often worker liveness is checked while the pool is idle.
const CHECK_IDLE: Duration = Duration::from_millis(50);
/// How long a stopped worker may take to exit before it is killed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// The callback thread: runs callbacks one at a time, in completion order.
pub(crate) fn callback_main(rx: &Receiver<CbJob>) {
    while let Ok(job) = rx.recv() {
        job();
    }
}

/// The result-handler thread.
pub(crate) fn handler_main(sh: &Shared) {
    let doorbell = sh.pool.doorbell();
    let mut last_check = Instant::now();
    loop {
        let mut g = lock(&sh.inner);
        // While a blocking map's thread drains the rings (it sleeps on the doorbell),
        // stay off the doorbell: a result then wakes only that thread. `drainers`
        // changes only under the lock, which this iteration holds until it sleeps.
        let key = (!g.handler_parks()).then(|| doorbell.prepare());
        let mut progress = g.pump_workers();
        // Results handled here (or a failure found below) may be what a drainer
        // waits for: it sleeps on the doorbell.
        let mut ring = progress;
        let retiring = g.workers.iter().any(|w| w.retiring(&sh.cfg));
        let period = if retiring || g.state == State::Terminated {
            Duration::ZERO
        } else if g.busy() {
            CHECK_BUSY
        } else {
            CHECK_IDLE
        };
        if last_check.elapsed() >= period {
            if g.state == State::Terminated {
                for w in g.workers.drain(..) {
                    w.reap(None);
                }
                g.set_done();
                return;
            }
            g.check_workers(sh);
            ring = true;
            last_check = Instant::now();
        }
        progress |= g.dispatch(&sh.cfg);
        if g.state == State::Closed && g.pending.is_empty() && g.backlog.is_empty() {
            g.state = State::Stopping;
            for w in &mut g.workers {
                w.stop_queued = true;
            }
            progress = true;
        }
        if g.state == State::Stopping && g.workers.iter().all(|w| w.stop_sent || w.killed) {
            // Every worker has its STOP and no task: they exit at once. Wait for each
            // (a blocking waitid) instead of polling.
            let workers = std::mem::take(&mut g.workers);
            drop(g);
            for w in workers {
                w.reap(Some(STOP_GRACE));
            }
            lock(&sh.inner).set_done();
            return;
        }
        let wait = if retiring {
            Duration::from_millis(1)
        } else {
            period
        };
        if ring && g.drainers > 0 {
            doorbell.notify_all();
        }
        match key {
            _ if progress => drop(g),
            Some(key) => {
                drop(g);
                doorbell.wait(key, Deadline::after(wait));
            }
            None => {
                // Until the timer (worker checks), the last drainer leaving with
                // work in flight, a submission or close/terminate.
                g.handler_parked = true;
                g.handler_parked_idle = wait >= CHECK_IDLE;
                let (mut g, _) = sh
                    .park
                    .wait_timeout(g, wait)
                    .unwrap_or_else(PoisonError::into_inner);
                g.handler_parked = false;
                g.handler_parked_idle = false;
            }
        }
    }
}
