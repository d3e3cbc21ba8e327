//! One integration-test binary for the crate (one link of burn instead of one per file).

mod failures;
mod sharded_objective;
