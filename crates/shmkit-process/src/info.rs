//! Questions about this process and its children.

use crate::child::Child;
use crate::state::{self, ProcessInfo};
use crate::sys;

/// This process: its name (`"MainProcess"` unless shmkit started it), pid and daemon
/// flag.
pub fn current_process() -> ProcessInfo {
    state::lock().info()
}

/// The process that started this one through shmkit, or `None` in the main process
/// (or one started some other way). The parent may have exited since.
pub fn parent_process() -> Option<ProcessInfo> {
    state::lock().me().parent.clone()
}

/// The children this process started that are still running. Ended children are
/// reaped on the way (like Python's `active_children`), including those whose
/// `Process` handle was dropped.
pub fn active_children() -> Vec<Child> {
    let mut st = state::lock();
    let mut alive = Vec::new();
    for c in &st.children {
        if matches!(c.poll(), Ok(None)) {
            alive.push(Child {
                inner: std::sync::Arc::clone(c),
            });
        }
    }
    st.prune();
    alive
}

/// The number of CPUs this process may run on (its `sched_getaffinity` mask, so
/// `taskset -c 0 prog` gives 1), falling back to the machine's count, and at least 1.
pub fn cpu_count() -> usize {
    sys::affinity_cpu_count()
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
}
