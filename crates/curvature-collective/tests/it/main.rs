//! One integration-test binary for the crate (one link of burn instead of one per file).

mod data_parallel_training;
mod failures;
mod sharded_objective;
