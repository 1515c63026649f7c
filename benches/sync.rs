//! Placeholder: the sync benchmarks are being written (see the open issue).
fn main() {}
