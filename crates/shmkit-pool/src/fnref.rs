//! Stand-in for `shmkit_process::FnRef` until that crate exposes its portable
//! function references: a raw address, valid only in forked workers (same address
//! space layout). The spawn start method is refused while this stand-in is in use.

use serde::{Deserialize, Serialize};

/// Whether references survive `exec` (false: fork workers only).
pub(crate) const PORTABLE: bool = false;

/// A reference to a function of the main executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FnRef(u64);

impl FnRef {
    /// The reference to the function at `addr`.
    pub(crate) fn from_addr(addr: usize) -> Option<Self> {
        Some(FnRef(addr as u64))
    }

    /// The function's address in this process.
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) fn addr(self) -> usize {
        self.0 as usize
    }
}
