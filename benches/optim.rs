//! Time per optimiser step relative to an SGD step, on the MLP 784-100-10 (batch 256) and a
//! small CNN (conv 16-32 with batch norm, 3×32×32 inputs, batch 128), NdArray f32. Every step
//! includes the forward/backward pass. LanczosOPT is reported per update with k Lanczos steps
//! (k HVPs) and normalised per Lanczos step. KFAC is measured in its three kinds of step —
//! plain (precondition only), factor update (every T_cov) and factor update + inversion
//! (every T_inv) — and amortised over T_cov = 10, T_inv = 100:
//! `plain + (factor − plain)/10 + (inversion − factor)/100`.
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
use burn::tensor::Tensor;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use curvature::core::testing::random_classification_batch;
use curvature::core::{Batch, BatchNormMode, Loss, Network, Objective};
use curvature::nets::{Mlp, MlpConfig, SimpleCnn, SimpleCnnConfig};
use curvature::optim::{
    AdamConfig, AveragingSchedule, FixedDamping, IterateAveraging, KfacConfig, LanczosOptConfig,
    SgdConfig,
};

type B = NdArray<f32>;
type AB = Autodiff<B>;

fn bench_first_order<M, O, const D: usize>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    mut opt: O,
    model: &M,
    batch: &Batch<B, D>,
) where
    M: AutodiffModule<AB> + Network<AB, D>,
    O: Optimizer<M, AB>,
{
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

/// KFAC steps of one kind: `(cov, inv)` intervals after a warm-up step that builds the state.
fn bench_kfac<M, const D: usize>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    (cov, inv): (usize, usize),
    model: &M,
    batch: &Batch<B, D>,
) where
    M: AutodiffModule<AB> + Network<AB, D>,
{
    let mut kfac = KfacConfig::new()
        .with_cov_interval(cov)
        .with_inv_interval(inv)
        .init::<AB, M>()
        .unwrap();
    let damping = FixedDamping::new(1e-2).unwrap();
    let x = Tensor::<AB, D>::from_inner(batch.inputs.clone());
    let mut model = model.clone();
    let mut step = |m: M| {
        kfac.step(m, 1e-4, &damping, Loss::CrossEntropy, &batch.targets, |m| {
            m.output(x.clone(), BatchNormMode::Train)
        })
        .map_err(|(_, e)| e)
        .unwrap()
        .0
    };
    model = step(model); // factors and first inversion
    g.bench_function(name, |b| {
        b.iter(|| {
            model = step(model.clone());
            black_box(&model);
        })
    });
}

const NEVER: usize = usize::MAX;

fn report(group: &str, title: &str, extra: &[&str]) {
    let Some(sgd) = median_ms(group, "sgd") else {
        return;
    };
    println!("\n{:<26} {:>10} {:>10}", title, "ms", "× SGD");
    for f in ["sgd", "adam"].iter().chain(extra) {
        if let Some(t) = median_ms(group, f) {
            println!("{f:<26} {t:>10.3} {:>10.2}", t / sgd);
        }
    }
    if let (Some(p), Some(f), Some(i)) = (
        median_ms(group, "kfac_plain"),
        median_ms(group, "kfac_factors"),
        median_ms(group, "kfac_inversion"),
    ) {
        let t = p + (f - p) / 10.0 + (i - f) / 100.0;
        println!(
            "{:<26} {t:>10.3} {:>10.2}",
            "kfac amortised (10, 100)",
            t / sgd
        );
    }
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
    g.sample_size(20);
    bench_kfac(&mut g, "kfac_plain", (NEVER, NEVER), &model, &batch);
    bench_kfac(&mut g, "kfac_factors", (1, NEVER), &model, &batch);
    bench_kfac(&mut g, "kfac_inversion", (1, 1), &model, &batch);
    g.finish();

    let images = random_classification_batch::<B, 4>([128, 3, 32, 32], 10, 1, &device);
    let cnn: SimpleCnn<AB> = SimpleCnnConfig::new(3, [32, 32], vec![16, 32], 10)
        .init(&device)
        .unwrap();
    let mut g = c.benchmark_group("optim_cnn");
    g.sample_size(10);
    bench_first_order(
        &mut g,
        "sgd",
        SgdConfig::new()
            .with_momentum(0.9)
            .init::<AB, SimpleCnn<AB>>()
            .unwrap(),
        &cnn,
        &images,
    );
    bench_first_order(
        &mut g,
        "adam",
        AdamConfig::new().init::<AB, SimpleCnn<AB>>().unwrap(),
        &cnn,
        &images,
    );
    bench_kfac(&mut g, "kfac_plain", (NEVER, NEVER), &cnn, &images);
    bench_kfac(&mut g, "kfac_factors", (1, NEVER), &cnn, &images);
    bench_kfac(&mut g, "kfac_inversion", (1, 1), &cnn, &images);
    g.finish();
    c.final_summary();

    let kfac = ["kfac_plain", "kfac_factors", "kfac_inversion"];
    let mut mlp_rows = vec!["gadam", "lanczos_opt_k20"];
    mlp_rows.extend(kfac);
    report("optim_mlp", "step (MLP, b256)", &mlp_rows);
    if let (Some(t), Some(sgd)) = (
        median_ms("optim_mlp", "lanczos_opt_k20"),
        median_ms("optim_mlp", "sgd"),
    ) {
        println!(
            "{:<26} {:>10.3} {:>10.2}",
            "  lanczos per Lanczos step",
            t / k as f64,
            t / k as f64 / sgd
        );
    }
    report("optim_cnn", "step (CNN, b128)", &kfac);
}
