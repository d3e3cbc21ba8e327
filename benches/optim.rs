//! Time per optimiser step relative to an SGD step, on the MLP 784-100-10 (batch 256,
//! NdArray f32). First-order steps include the gradient; LanczosOPT is reported per update
//! with k Lanczos steps (k HVPs) and normalised per Lanczos step.
//!
//! ```text
//! cargo bench --bench optim
//! ```
use std::hint::black_box;

#[path = "common/criterion_results.rs"]
mod criterion_results;
use criterion_results::median_ms;

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use curvature::core::testing::random_classification_batch;
use curvature::core::{Batch, BatchNormMode, Loss, Objective};
use curvature::nets::{Mlp, MlpConfig};
use curvature::optim::{
    AdamConfig, AveragingSchedule, FixedDamping, IterateAveraging, LanczosOptConfig, SgdConfig,
};

type B = NdArray<f32>;
type AB = Autodiff<B>;

fn bench_first_order<O: Optimizer<Mlp<AB>, AB>>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    mut opt: O,
    model: &Mlp<AB>,
    batch: &Batch<B, 2>,
) {
    let mut model = model.clone();
    g.bench_function(name, |b| {
        b.iter(|| {
            let loss = Loss::CrossEntropy.batch_mean(&model, batch, BatchNormMode::Train);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = opt.step(1e-3, model.clone(), grads);
            black_box(&model);
        })
    });
}

fn main() {
    let device = Default::default();
    let mut c = Criterion::default().configure_from_args();
    let batch = random_classification_batch::<B, 2>([256, 784], 10, 0, &device);
    let model = MlpConfig::mnist().init::<AB>(&device).unwrap();
    let mut g = c.benchmark_group("optim_mlp");
    g.sample_size(30);
    bench_first_order(
        &mut g,
        "sgd",
        SgdConfig::new()
            .with_momentum(0.9)
            .init::<AB, Mlp<AB>>()
            .unwrap(),
        &model,
        &batch,
    );
    bench_first_order(
        &mut g,
        "adam",
        AdamConfig::new().init::<AB, Mlp<AB>>().unwrap(),
        &model,
        &batch,
    );
    let averaged = IterateAveraging::new(
        AdamConfig::adamw(1e-4).init::<AB, Mlp<AB>>().unwrap(),
        AveragingSchedule {
            start: 0,
            frequency: 1,
        },
    )
    .unwrap();
    bench_first_order(&mut g, "gadam", averaged, &model, &batch);
    let k = 20;
    let mut objective =
        Objective::new(model.valid(), Loss::CrossEntropy, vec![batch.clone()]).unwrap();
    let mut lopt = LanczosOptConfig::new().with_rank(k).init::<B>().unwrap();
    let damping = FixedDamping::new(1.0).unwrap();
    g.sample_size(10);
    g.bench_function("lanczos_opt_k20", |b| {
        b.iter(|| black_box(lopt.step(&mut objective, 1e-3, &damping).unwrap()))
    });
    g.finish();
    c.final_summary();
    if let Some(sgd) = median_ms("optim_mlp", "sgd") {
        println!("\n{:<22} {:>10} {:>10}", "step (MLP, b256)", "ms", "× SGD");
        for f in ["sgd", "adam", "gadam", "lanczos_opt_k20"] {
            if let Some(t) = median_ms("optim_mlp", f) {
                println!("{f:<22} {t:>10.3} {:>10.2}", t / sgd);
            }
        }
        if let Some(t) = median_ms("optim_mlp", "lanczos_opt_k20") {
            println!(
                "{:<22} {:>10.3} {:>10.2}",
                "  per Lanczos step",
                t / k as f64,
                t / k as f64 / sgd
            );
        }
    }
}
