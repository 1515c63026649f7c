//! Placeholder: the pool benchmarks are being written (see the open issue).
fn main() {}
