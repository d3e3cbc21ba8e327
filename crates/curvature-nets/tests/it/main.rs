//! One integration-test binary for the crate (one link of burn instead of one per file).

mod batch_norm_on_flex;
mod conv_on_flex;
mod layers_hvp;
mod model_sizes;
mod pooling;

// `tests/weights.rs` is a binary of its own: its f64 NdArray models would meet this binary's f32
// ones (`model_sizes`), and burn 0.21's NdArray keeps one float dtype per process
// (`TypeMismatch("expected F64, got F32")` when they share one).
mod drop_in;
mod tap;
