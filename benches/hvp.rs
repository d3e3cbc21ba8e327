//! Gradient vs exact HVP vs finite-difference HVP, on NdArray f32 (one precision per
//! process), for an MLP (784-100-10, batch 256) and a small conv net (3×32×32, batch 32).
//!
//! ```text
//! cargo bench --bench hvp
//! ```
//!
//! After criterion's own report, prints the medians and the ratios HVP / gradient and
//! FD / gradient (the target is exact HVP ≤ 2.2× a gradient).
use std::hint::black_box;

#[path = "common/criterion_results.rs"]
mod criterion_results;
use criterion_results::median_ms;

use burn::backend::NdArray;
use criterion::Criterion;
use curvature::core::testing::random_classification_batch;
use curvature::core::{Batch, CurvatureModel, LinearOperator, Loss, Objective, gaussian_vector};
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
    group.bench_function("fd_hvp", |b| b.iter(|| black_box(fd.apply(&v).unwrap())));
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
        "\n{:<24} {:>8} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "model", "P", "gradient ms", "HVP ms", "FD HVP ms", "HVP/grad", "FD/grad"
    );
    for (group, p) in [
        ("mlp_784_100_10_b256", mlp.dim()),
        ("cnn_3x32x32_16_32_b32", cnn.dim()),
    ] {
        if let (Some(g), Some(h), Some(f)) = (
            median_ms(group, "gradient"),
            median_ms(group, "exact_hvp"),
            median_ms(group, "fd_hvp"),
        ) {
            println!(
                "{group:<24} {p:>8} {g:>12.3} {h:>12.3} {f:>12.3} {:>10.2} {:>10.2}",
                h / g,
                f / g
            );
        }
    }
}
