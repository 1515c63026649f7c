//! shmkit's `sync` layer. Not built yet: see the open issue for it and
//! `docs/architecture.md` for where it sits in the stack.
#![forbid(unsafe_code)]
