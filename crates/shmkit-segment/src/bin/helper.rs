//! Test helper: a separate program that opens a segment the way an unrelated
//! process would, and writes into it.
//!
//! `shmkit-segment-helper name <name> <offset> <value>` opens the named RAW segment,
//! stores `value` as a u64 at `offset` of the data area and exits 0.
//! `shmkit-segment-helper token <postcard-hex> <value>` rebuilds it from a token.
//! Any failure prints the error and exits 2.

#![cfg_attr(shmkit_loom, allow(unused))]

use shmkit_segment::shim::atomic::{AtomicU64, Ordering};
use shmkit_segment::{Kind, Segment, Token};

#[cfg(not(shmkit_loom))]
fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (seg, offset, value) = match args.as_slice() {
        [cmd, name, off, val] if cmd == "name" => (
            Segment::open(name, Kind::RAW).map_err(|e| e.to_string())?,
            off.parse::<usize>().map_err(|e| e.to_string())?,
            val.parse::<u64>().map_err(|e| e.to_string())?,
        ),
        [cmd, hex, val] if cmd == "token" => {
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let token = Token::from_bytes(&bytes).map_err(|e| e.to_string())?;
            let off = usize::try_from(token.offset).map_err(|e| e.to_string())?;
            (
                token.open().map_err(|e| e.to_string())?,
                off,
                val.parse::<u64>().map_err(|e| e.to_string())?,
            )
        }
        _ => return Err("usage: name <name> <offset> <value> | token <hex> <value>".into()),
    };
    seg.get::<AtomicU64>(offset)
        .map_err(|e| e.to_string())?
        .store(value, Ordering::Release);
    Ok(())
}

#[cfg(shmkit_loom)]
fn run() -> Result<(), String> {
    Err("not built under loom".into())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("shmkit-segment-helper: {e}");
        std::process::exit(2);
    }
}
