//! One integration-test binary for the crate (one link of burn instead of one per file).

mod layers_hvp;
mod model_sizes;
mod weights;
