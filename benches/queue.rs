//! Placeholder: the queue benchmarks are being written (see the open issue).
fn main() {}
