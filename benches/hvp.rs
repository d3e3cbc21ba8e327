//! Gradient vs exact HVP, GGN product, finite-difference HVP and a Lanczos step (10 steps with
//! full re-orthogonalisation, divided by 10), on NdArray f32 (one precision per process), for an
//! MLP (784-100-10, batch 256) and a small conv net (3×32×32, conv 16-32 with batch norm,
//! batch 32). Batch 128, VGG-16 and WRN-28-10 are measured by `curvature bench` (seconds to
//! minutes per call on a CPU; see docs/benchmarks.md).
//!
//! ```text
//! cargo bench --bench hvp
//! ```
//!
//! After criterion's own report, prints the medians and their ratios to the gradient (the
//! target is exact HVP ≤ 2.2× a gradient).
use std::hint::black_box;

#[path = "common/criterion_results.rs"]
mod criterion_results;
use criterion_results::median_ms;

use burn::backend::NdArray;
use criterion::Criterion;
use curvature::core::testing::random_classification_batch;
use curvature::core::{
    Batch, CurvatureModel, LanczosConfig, LinearOperator, Loss, Objective, gaussian_vector, lanczos,
};

/// Lanczos steps of the `lanczos_10` row (reported per step).
const LANCZOS_STEPS: usize = 10;
use curvature::nets::{MlpConfig, SimpleCnnConfig};

type B = NdArray<f32>;

fn batch<const D: usize>(shape: [usize; D], classes: usize) -> Batch<B, D> {
    random_classification_batch(shape, classes, 0, &Default::default())
}

fn bench_model<M: CurvatureModel<B, D>, const D: usize>(
    c: &mut Criterion,
    name: &str,
    objective: &Objective<B, M, D>,
    samples: usize,
) {
    let v = gaussian_vector::<B>(objective.dim(), 0, &Default::default());
    let fd = objective.finite_difference_hessian();
    let mut group = c.benchmark_group(name);
    group.sample_size(samples);
    group.bench_function("gradient", |b| {
        b.iter(|| black_box(objective.gradient().unwrap()))
    });
    group.bench_function("exact_hvp", |b| {
        b.iter(|| black_box(objective.hvp(&v).unwrap()))
    });
    group.bench_function("ggn_vp", |b| {
        b.iter(|| black_box(objective.ggn_vp(&v).unwrap()))
    });
    group.bench_function("fd_hvp", |b| b.iter(|| black_box(fd.apply(&v).unwrap())));
    let config = LanczosConfig::new().with_steps(LANCZOS_STEPS);
    let hessian = objective.hessian();
    group.bench_function("lanczos_10", |b| {
        b.iter(|| black_box(lanczos(&hessian, &config).unwrap()))
    });
    group.finish();
}

fn main() {
    let device = Default::default();
    let mut c = Criterion::default().configure_from_args();

    let mlp = MlpConfig::mnist().init::<B>(&device).unwrap();
    let mlp = Objective::new(mlp, Loss::CrossEntropy, vec![batch([256, 784], 10)]).unwrap();
    bench_model(&mut c, "mlp_784_100_10_b256", &mlp, 60);

    let cnn = SimpleCnnConfig::new(3, [32, 32], vec![16, 32], 10)
        .init::<B>(&device)
        .unwrap();
    let cnn = Objective::new(cnn, Loss::CrossEntropy, vec![batch([32, 3, 32, 32], 10)]).unwrap();
    bench_model(&mut c, "cnn_3x32x32_16_32_b32", &cnn, 10);

    c.final_summary();
    println!(
        "\n{:<24} {:>8} {:>9} {:>9} {:>9} {:>9} {:>13} {:>9} {:>9} {:>9} {:>9}",
        "model",
        "P",
        "grad ms",
        "HVP ms",
        "GGN ms",
        "FD ms",
        "Lanczos/step",
        "HVP/g",
        "GGN/g",
        "FD/g",
        "step/g"
    );
    for (group, p) in [
        ("mlp_784_100_10_b256", mlp.dim()),
        ("cnn_3x32x32_16_32_b32", cnn.dim()),
    ] {
        let ms = |f: &str| median_ms(group, f);
        if let (Some(g), Some(h), Some(n), Some(f), Some(l)) = (
            ms("gradient"),
            ms("exact_hvp"),
            ms("ggn_vp"),
            ms("fd_hvp"),
            ms("lanczos_10"),
        ) {
            let step = l / LANCZOS_STEPS as f64;
            println!(
                "{group:<24} {p:>8} {g:>9.3} {h:>9.3} {n:>9.3} {f:>9.3} {step:>13.3} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                h / g,
                n / g,
                f / g,
                step / g
            );
        }
    }
}
