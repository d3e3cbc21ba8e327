//! Curvature operations against the gradient: loss gradient, exact HVP (reverse-over-reverse),
//! GGN product, finite-difference HVP and one Lanczos step (10 steps with full
//! re-orthogonalisation, reported per step), for the MLP 3072-512-512-10 and the CNN 16-32 —
//! and, with `CURVATURE_BENCH_MODELS=all`, VGG-16-BN and WRN-28-10 — at batch 128 on
//! CIFAR-shaped random input, on whichever backend is compiled in.
//!
//! ```text
//! cargo bench -p curvature-lab --bench hvp                        # NdArray, MLP and CNN
//! CURVATURE_BENCH_MODELS=all cargo bench -p curvature-lab --features cuda --bench hvp
//! ```
//!
//! The operations are `curvature bench`'s (`curvature_lab::bench`); criterion times them. After
//! criterion's report the bench prints the table with the ratios to the gradient (target:
//! exact HVP ≤ 2.2× a gradient). Environment variables: see `benches/common/table.rs`.

#[path = "common/table.rs"]
mod table;

fn main() {
    table::run(table::Part::Curvature);
}
