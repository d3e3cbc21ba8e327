//! One optimiser step against an SGD step: SGD (momentum 0.9), Adam, KFAC in its three kinds of
//! step — plain (precondition only), factor update and factor update + eigendecomposition —
//! amortised over T_cov = 10, T_inv = 100 as `plain + (factor − plain)/10 + (inversion −
//! factor)/100`, and LanczosOPT (k = 5 Lanczos steps), for the MLP 3072-512-512-10 and the
//! CNN 16-32 — and, with `CURVATURE_BENCH_MODELS=all`, VGG-16-BN and WRN-28-10 — at batch 128
//! on CIFAR-shaped random input, on whichever backend is compiled in. Every step includes the
//! forward/backward pass; the SGD row's note is the training throughput (images/s).
//!
//! ```text
//! cargo bench -p curvature-lab --bench optim                      # NdArray, MLP and CNN
//! CURVATURE_BENCH_MODELS=vgg16-bn cargo bench -p curvature-lab --features cuda --bench optim
//! ```
//!
//! The steps are `curvature bench`'s (`curvature_lab::bench`); criterion times them. After
//! criterion's report the bench prints the table with the ratios to the SGD step. Environment
//! variables: see `benches/common/table.rs`.

#[path = "common/table.rs"]
mod table;

fn main() {
    table::run(table::Part::Optimisers);
}
