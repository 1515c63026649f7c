//! Naming task functions so that a worker process can call them.
//!
//! A task crosses to a worker as two code references: a monomorphised trampoline
//! (which knows the argument and result types and decodes/encodes them) and the
//! user's `fn`. The references come from `shmkit-process`'s portable function
//! references (an offset from an anchor of the main executable, valid in a forked
//! child and in a re-executed one alike), so this module holds no address arithmetic
//! of its own.
//!
//! Trust: a worker calls whatever code reference its task ring holds. The ring lives
//! in an anonymous segment shared only by the pool's parent and that worker, the same
//! trust the spawn start method places in its payload.

use crate::codec::MapSeqError;
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;

/// What a trampoline returns when the task could not run or transfer its values.
pub(crate) type TrampResult = std::result::Result<(), String>;

/// A trampoline: calls the `fn` at the given address with the argument decoded from
/// the bytes, and appends the encoded result to the output.
pub(crate) type Tramp = fn(usize, &[u8], &mut Vec<u8>) -> TrampResult;

/// A task function as a worker finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CodeRef {
    tramp: shmkit_process::FnRef,
    func: shmkit_process::FnRef,
}

impl CodeRef {
    /// References `func` (a `fn` pointer cast to `usize`) called through `tramp`.
    pub(crate) fn new(tramp: Tramp, func: usize) -> Result<Self> {
        let r = |addr| shmkit_process::FnRef::from_addr(addr).ok_or(Error::NotInExecutable);
        Ok(CodeRef {
            tramp: r(tramp as usize)?,
            func: r(func)?,
        })
    }

    /// Runs the task.
    pub(crate) fn call(self, args: &[u8], out: &mut Vec<u8>) -> TrampResult {
        // SAFETY: `tramp` was made by `CodeRef::new` from a `Tramp` of this same
        // executable (the worker runs the parent's executable: forked, or spawned and
        // checked by device and inode), so its address here is that function.
        let tramp = unsafe { std::mem::transmute::<usize, Tramp>(self.tramp.addr()) };
        tramp(self.func.addr(), args, out)
    }
}

fn decode<A: DeserializeOwned>(args: &[u8]) -> std::result::Result<A, String> {
    crate::codec::decode(args).map_err(|e| {
        format!(
            "cannot decode the argument as {}: {e}",
            std::any::type_name::<A>()
        )
    })
}

fn encode<R: Serialize>(r: &R, out: &mut Vec<u8>) -> TrampResult {
    let v = std::mem::take(out);
    match crate::codec::encode_append(r, v) {
        Ok(v) => {
            *out = v;
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot encode the result {}: {e}",
            std::any::type_name::<R>()
        )),
    }
}

/// # Safety
/// `f` must be the address of a `fn(A) -> R` of this executable.
unsafe fn as_fn1<A, R>(f: usize) -> fn(A) -> R {
    // SAFETY: forwarded from the caller.
    unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) }
}

/// # Safety
/// `f` must be the address of a `fn(A, B) -> R` of this executable.
unsafe fn as_fn2<A, B, R>(f: usize) -> fn(A, B) -> R {
    // SAFETY: forwarded from the caller.
    unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(f) }
}

/// One call `f(a)`.
pub(crate) fn one<A: DeserializeOwned, R: Serialize>(
    f: usize,
    args: &[u8],
    out: &mut Vec<u8>,
) -> TrampResult {
    let a: A = decode(args)?;
    // SAFETY: `CodeRef`s pair this trampoline only with a `fn(A) -> R` (see `task_one`).
    let f = unsafe { as_fn1::<A, R>(f) };
    encode(&f(a), out)
}

/// A chunk of calls `f(a)` for each `a` of a `Vec<A>`, giving a `Vec<R>`.
pub(crate) fn chunk<A: DeserializeOwned, R: Serialize>(
    f: usize,
    args: &[u8],
    out: &mut Vec<u8>,
) -> TrampResult {
    // SAFETY: `CodeRef`s pair this trampoline only with a `fn(A) -> R` (see `task_chunk`).
    let f = unsafe { as_fn1::<A, R>(f) };
    map_seq::<A, R, Infallible>(args, out, |a| Ok(f(a)))
}

/// Runs a chunk through [`crate::codec::map_seq`], with the messages of the
/// one-call trampolines for values that do not transfer.
fn map_seq<A: DeserializeOwned, R: Serialize, E: std::fmt::Display>(
    args: &[u8],
    out: &mut Vec<u8>,
    f: impl FnMut(A) -> std::result::Result<R, E>,
) -> TrampResult {
    crate::codec::map_seq(args, out, f).map_err(|e| match e {
        MapSeqError::Decode(e) => format!(
            "cannot decode the argument as {}: {e}",
            std::any::type_name::<Vec<A>>()
        ),
        MapSeqError::Encode(e) => format!(
            "cannot encode the result {}: {e}",
            std::any::type_name::<Vec<R>>()
        ),
        MapSeqError::Task(e) => e.to_string(),
    })
}

/// A chunk of calls `f(a, b)` for each `(a, b)` of a `Vec<(A, B)>`, giving a `Vec<R>`.
pub(crate) fn star_chunk<A: DeserializeOwned, B: DeserializeOwned, R: Serialize>(
    f: usize,
    args: &[u8],
    out: &mut Vec<u8>,
) -> TrampResult {
    // SAFETY: `CodeRef`s pair this trampoline only with a `fn(A, B) -> R` (see `task_star`).
    let f = unsafe { as_fn2::<A, B, R>(f) };
    map_seq::<(A, B), R, Infallible>(args, out, |(a, b)| Ok(f(a, b)))
}

/// The code reference for `f(a)`.
pub(crate) fn task_one<A, R>(f: fn(A) -> R) -> Result<CodeRef>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    CodeRef::new(one::<A, R> as Tramp, f as usize)
}

/// The code reference for a chunk of `f(a)` calls.
pub(crate) fn task_chunk<A, R>(f: fn(A) -> R) -> Result<CodeRef>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    CodeRef::new(chunk::<A, R> as Tramp, f as usize)
}

/// One call of a fallible task: `Err(e)` fails the result with `e`'s message.
pub(crate) fn one_try<A: DeserializeOwned, R: Serialize, E: std::fmt::Display>(
    f: usize,
    args: &[u8],
    out: &mut Vec<u8>,
) -> TrampResult {
    let a: A = decode(args)?;
    // SAFETY: `CodeRef`s pair this trampoline only with a `fn(A) -> Result<R, E>`
    // (see `task_try`).
    let f = unsafe { as_fn1::<A, std::result::Result<R, E>>(f) };
    match f(a) {
        Ok(r) => encode(&r, out),
        Err(e) => Err(e.to_string()),
    }
}

/// A chunk of fallible calls: the first `Err` fails the chunk with its message.
pub(crate) fn chunk_try<A: DeserializeOwned, R: Serialize, E: std::fmt::Display>(
    f: usize,
    args: &[u8],
    out: &mut Vec<u8>,
) -> TrampResult {
    // SAFETY: `CodeRef`s pair this trampoline only with a `fn(A) -> Result<R, E>`
    // (see `task_try_chunk`).
    let f = unsafe { as_fn1::<A, std::result::Result<R, E>>(f) };
    map_seq::<A, R, E>(args, out, f)
}

/// The code reference for a fallible `f(a)`.
pub(crate) fn task_try<A, R, E>(f: fn(A) -> std::result::Result<R, E>) -> Result<CodeRef>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
    E: std::fmt::Display,
{
    CodeRef::new(one_try::<A, R, E> as Tramp, f as usize)
}

/// The code reference for a chunk of fallible `f(a)` calls.
pub(crate) fn task_try_chunk<A, R, E>(f: fn(A) -> std::result::Result<R, E>) -> Result<CodeRef>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
    E: std::fmt::Display,
{
    CodeRef::new(chunk_try::<A, R, E> as Tramp, f as usize)
}

/// The code reference for a chunk of `f(a, b)` calls.
pub(crate) fn task_star<A, B, R>(f: fn(A, B) -> R) -> Result<CodeRef>
where
    A: Serialize + DeserializeOwned,
    B: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    CodeRef::new(star_chunk::<A, B, R> as Tramp, f as usize)
}
