//! Code generation throughput (filled in by the generator work).
fn main() {}
