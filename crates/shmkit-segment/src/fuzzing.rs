//! Shared logic of the `segment_open` fuzz target (`fuzz/`) and of the test that
//! replays its corpus, so both run exactly the same code. Not a stable API.
//!
//! An input is one flag byte followed by the whole content of a segment file (header
//! then data). The flags steer the fuzzer past checks it would rarely satisfy by
//! chance:
//!
//! | bit | effect |
//! |-----|--------|
//! | 0 | expect the kind found in the header (else [`Kind::RAW`]) |
//! | 1 | expect the kind version found in the header (else 1) |
//! | 2 | write [`MAGIC`] at offset 0 |
//! | 3 | write [`FORMAT_VERSION`] at offset 8 |
//! | 4 | grow the file with zeros to a multiple of 4096 bytes |
//! | 5 | write the file's length into `total_size` (offset 24) |
//! | 6 | write `HEADER_SIZE` into `data_offset` (offset 48) |
//! | 7 | prefault the mapping when opening |
//!
//! The file is a memfd (no files left behind, fast), opened with a zero open timeout
//! so that headers that never become ready fail at once.

use crate::header::{HeaderSnapshot, FORMAT_VERSION, HEADER_SIZE, MAGIC};
use crate::shim::atomic::{AtomicU64, AtomicU8, Ordering};
use crate::{sys, Error, Kind, Result, SegmentOptions};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

/// Builds the segment file described by `input` and opens it.
///
/// Returns the validated header of a segment that opened, or the error that refused
/// it. It must never panic, crash or hang, whatever `input` holds.
///
/// # Errors
/// Whatever [`SegmentOptions::open_fd`] reports for the file (almost every input).
pub fn open_input(input: &[u8]) -> Result<HeaderSnapshot> {
    let Some((&flags, content)) = input.split_first() else {
        return Err(Error::TokenStale {
            reason: "empty input".into(),
        });
    };
    let io = |op| move |e| Error::io(op, "fuzz-input", e);
    let fd = sys::memfd_create(c"shmkit-fuzz", false).map_err(io("memfd_create"))?;
    let file = File::from(fd);
    file.write_all_at(content, 0).map_err(io("write"))?;
    let mut len = content.len() as u64;
    if flags & 1 << 4 != 0 {
        len = len.next_multiple_of(4096);
        file.set_len(len).map_err(io("ftruncate"))?;
    }
    let patch = |bit: u32, offset: u64, bytes: &[u8]| -> Result<()> {
        if flags & 1 << bit != 0 && len >= offset + bytes.len() as u64 {
            file.write_all_at(bytes, offset).map_err(io("write"))?;
        }
        Ok(())
    };
    patch(2, 0, &MAGIC.to_le_bytes())?;
    patch(3, 8, &FORMAT_VERSION.to_le_bytes())?;
    patch(5, 24, &len.to_le_bytes())?;
    patch(6, 48, &(HEADER_SIZE as u64).to_le_bytes())?;

    let found = HeaderSnapshot::from_bytes(content);
    let mut opts = SegmentOptions::new(Kind::RAW, 0)
        .open_timeout(Duration::ZERO)
        .prefault(flags & 1 << 7 != 0);
    if let Some(h) = found {
        if flags & 1 != 0 {
            opts = SegmentOptions::new(h.kind, 0)
                .open_timeout(Duration::ZERO)
                .prefault(flags & 1 << 7 != 0);
        }
        if flags & 1 << 1 != 0 {
            opts = opts.kind_version(h.kind_version);
        }
    }
    let seg = opts.open_fd(file.into())?;

    // The segment opened: everything it promises must hold, and all of it must be
    // readable without a fault.
    let info = seg.info();
    assert_eq!(info.total_size, seg.total_size(), "total size");
    assert_eq!(seg.total_size(), seg.data_len() as u64 + HEADER_SIZE as u64);
    assert_eq!(info.data_offset, HEADER_SIZE as u64);
    let bytes = seg.get_slice::<AtomicU8>(0, seg.data_len())?;
    // Relaxed: nobody else writes this memfd; the loads only prove the bytes are mapped.
    let sum = bytes.iter().fold(0u64, |a, b| {
        a.wrapping_add(u64::from(b.load(Ordering::Relaxed)))
    });
    std::hint::black_box(sum);
    if seg.data_len() >= 8 {
        seg.get::<AtomicU64>(0)?.fetch_add(1, Ordering::Relaxed);
    }
    let token = seg.token()?;
    assert_eq!(crate::Token::from_bytes(&token.to_bytes())?, token);
    Ok(info)
}

/// Every file of the fuzz corpus `fuzz/corpus/<target>/` of this workspace, as
/// `(file name, bytes)` sorted by name, for the tests that replay a corpus.
///
/// # Panics
/// If the corpus folder or one of its files cannot be read (a test helper: a missing
/// corpus must fail the test).
pub fn read_corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading corpus {}: {e}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes =
                std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}
