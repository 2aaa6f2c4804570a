//! `bench-api`: not written yet.
fn main() {}
