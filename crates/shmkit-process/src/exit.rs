//! What a target returns and how that becomes the child's exit code.

use crate::state;
use std::fmt::Debug;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// A target's return value, turned into the child's exit code.
///
/// `()` is 0. `Result<T, E>` is `T`'s code on `Ok` and 1 on `Err`, after printing
/// `E` (with `{:?}`, like `main`) on the child's stderr. `i32` is used as is, so a
/// target can choose its exit status without calling `exit`.
pub trait IntoExitCode {
    /// The exit code.
    fn into_exit_code(self) -> i32;
}

impl IntoExitCode for () {
    fn into_exit_code(self) -> i32 {
        0
    }
}

impl IntoExitCode for i32 {
    fn into_exit_code(self) -> i32 {
        self
    }
}

impl<T: IntoExitCode, E: Debug> IntoExitCode for Result<T, E> {
    fn into_exit_code(self) -> i32 {
        match self {
            Ok(t) => t.into_exit_code(),
            Err(e) => {
                let who = who();
                // Written to the real stderr, past any test-harness capture.
                let _ = writeln!(std::io::stderr(), "{who} failed: Error: {e:?}");
                1
            }
        }
    }
}

/// The error type of [`Run::run`]: any error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The trait form of a process, like subclassing Python's `Process` and overriding
/// `run`: implement it and start the value with [`Process::from_run`](crate::Process::from_run).
///
/// ```
/// use shmkit_process::{Process, Run, BoxError};
/// struct Greeter { greeting: String }
/// impl Run for Greeter {
///     fn run(&mut self) -> Result<(), BoxError> {
///         println!("{} from {}", self.greeting, std::process::id());
///         Ok(())
///     }
/// }
/// let mut p = Process::from_run(Greeter { greeting: "hello".into() });
/// p.start()?;
/// p.join()?;
/// assert_eq!(p.exitcode(), Some(0));
/// # Ok::<(), shmkit_process::Error>(())
/// ```
pub trait Run: Send + 'static {
    /// The process's work, run in the child. An `Err` gives exit code 1 (the error is
    /// printed on the child's stderr), a panic likewise.
    ///
    /// # Errors
    /// Whatever the implementation reports.
    fn run(&mut self) -> Result<(), BoxError>;
}

fn who() -> String {
    let mut st = state::lock();
    let info = st.info();
    format!("Process {} (pid {})", info.name, info.pid)
}

/// Installs, once per program, a panic hook that prints a shmkit child's panics as
/// `Process <name> (pid <pid>) panicked at …` straight to stderr (past any test-harness
/// output capture) and hands every other panic to the hook that was there before.
/// Done in the parent before the first start so that children pay nothing for it.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    if std::thread::panicking() {
        return; // set_hook would panic; the hook is best effort
    }
    ONCE.call_once(|| {
        // Initialise stdout here, once, so that a forked child's final flush finds it
        // ready instead of allocating its buffer (copy-on-write faults) every time.
        drop(std::io::stdout());
        let prev = panic::take_hook();
        panic::set_hook(Box::new(move |info| match state::child_who() {
            Some(who) => {
                let _ = writeln!(std::io::stderr(), "{who} {info}");
            }
            None => prev(info),
        }));
    });
}

/// Runs `target` in a child: a panic (reported by the hook above) gives exit code 1;
/// stdout is flushed afterwards. Touches as little memory as it can: every page a
/// forked child writes is a copy-on-write fault.
pub(crate) fn run_target(target: impl FnOnce() -> i32) -> i32 {
    let code = panic::catch_unwind(AssertUnwindSafe(target)).unwrap_or(1);
    let _ = std::io::stdout().flush();
    code
}
