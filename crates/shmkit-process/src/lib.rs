//! Processes for shmkit: Python's `multiprocessing.Process` for Rust.
//!
//! This crate sits right above `shmkit-segment` (beside `shmkit-sync`) and is how
//! every other part of shmkit, and its tests, start child processes. A [`Process`]
//! runs a target in a child started with the **fork** start method (a closure, the
//! default) or the **spawn** start method (a `fn` with a serde argument, run in a
//! re-executed copy of the current binary — see [`Process::spawn_fn`] and [`init`]).
//! It has Python's `start`, `join`, `join_timeout`, `is_alive`, `exitcode`,
//! `terminate`, `kill`, `name`, `daemon`; [`Run`] is the trait form of subclassing
//! `Process`. Every child is reaped — also when its handle is dropped without `join`
//! — and daemon children die with their parent, even when it is SIGKILLed.
//! See `docs/process.md` for start methods, exit codes, daemons and what `Drop` does.
//!
//! ```
//! use shmkit_process::{current_process, Process};
//!
//! let mut p = Process::new(|| {
//!     println!("child {} named {}", std::process::id(), current_process().name);
//! })
//! .name("writer");
//! p.start()?;
//! p.join()?;
//! assert_eq!(p.exitcode(), Some(0));
//!
//! let mut failing = Process::new(|| -> Result<(), String> { Err("no luck".into()) });
//! failing.start()?;
//! failing.join()?;
//! assert_eq!(failing.exitcode(), Some(1));
//! # Ok::<(), shmkit_process::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

mod child;
mod error;
mod exit;
mod info;
mod process;
mod spawn;
mod state;
mod sys;

pub use child::Child;
pub use error::{Error, Result};
pub use exit::{BoxError, IntoExitCode, Run};
pub use info::{active_children, cpu_count, current_process, parent_process};
pub use process::{Process, StartMethod};
pub use spawn::{init, FnRef, HANDSHAKE_TIMEOUT, SPAWN_ENV};
pub use state::ProcessInfo;
