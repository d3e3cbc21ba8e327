//! One integration-test binary for the crate (one link of burn instead of one per file).

mod averaging;
mod first_order;
mod kfac;
mod lanczos_opt;
mod quadratic;
mod rmt_damping;
#[cfg(feature = "flex")]
mod sgd_on_flex;
mod training_step;
