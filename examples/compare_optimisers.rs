//! SGD, Adam, Adam-D and KFAC — the last two also with RMT auto-damping — training the same
//! MLP (64-100-10, ReLU) on optdigits (1 000 training / 797 test digits, mini-batches of 100).
//!
//! ```text
//! cargo run --release --example compare_optimisers
//! ```
//!
//! Auto-damping (Granziol & Baskerville, *A Random Matrix Theory Approach to Damping in Deep
//! Learning*, §7): the damping starts at a floor δ* and every `N` steps becomes an EMA (0.7) of
//! the mini-batch Hessian variance σ² (Algorithm 1) estimated on the training set; for Adam the
//! damping is ε. The paper uses `N = 100` on CIFAR; this small run uses `N = 20` so that the
//! trajectory is visible.
//!
//! Every optimiser is built from an `OptimizerConfig` and stepped by the same
//! `TrainingStep::train_step` call, under the damping policy of its run.
use std::time::Instant;

use anyhow::{Result, anyhow};
use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use curvature::core::{Batch, HessianVarianceConfig, Loss, Objective};
use curvature::data::optdigits;
use curvature::nets::{Mlp, MlpConfig};
use curvature::optim::{
    AdamConfig, DampingPolicy, FixedDamping, KfacConfig, OptimizerConfig, RmtDamping, SgdConfig,
    TrainingStep,
};

type B = NdArray<f32>;
type AB = Autodiff<B>;
type Model = Mlp<AB>;

const EPOCHS: usize = 20;
const RMT_INTERVAL: usize = 20;

/// How a run's damping is set: fixed (SGD ignores it; Adam's is its ε), or learned online.
enum Damping {
    Fixed(FixedDamping),
    Rmt(RmtDamping),
}

struct Run {
    name: &'static str,
    train_loss: f64,
    train_error: f64,
    test_error: f64,
    seconds: f64,
    trajectory: Vec<(usize, f64)>,
    /// `R = 1 + (λ_max − λ_min)/δ` of the last step, where the optimiser reports one.
    last_ratio: Option<f64>,
}

fn evaluate(model: &Model, data: &[Batch<B, 2>]) -> Result<(f64, f64)> {
    let e = Objective::new(model.valid(), Loss::CrossEntropy, data.to_vec())?.evaluate()?;
    Ok((e.loss, 1.0 - e.accuracy.unwrap_or(0.0)))
}

/// Train `init` for `EPOCHS` epochs with the optimiser of `config` at learning rate `lr`:
/// every optimiser goes through the same `TrainingStep::train_step` call.
fn run(
    name: &'static str,
    config: OptimizerConfig,
    lr: f64,
    mut damping: Damping,
    init: &Model,
    train: &[Batch<B, 2>],
    test: &[Batch<B, 2>],
) -> Result<Run> {
    let start = Instant::now();
    let mut optimizer = config.init::<B, Model>()?;
    let mut model = init.clone();
    let mut last_ratio = None;
    for _ in 0..EPOCHS {
        for batch in train {
            let policy: &dyn DampingPolicy = match &mut damping {
                Damping::Fixed(fixed) => fixed,
                Damping::Rmt(rmt) => {
                    // Re-estimated every RMT_INTERVAL steps on the training set.
                    let objective =
                        Objective::new(model.valid(), Loss::CrossEntropy, train.to_vec())?;
                    rmt.step_with(&objective, &HessianVarianceConfig::new())?;
                    rmt
                }
            };
            let (stepped, report) = optimizer
                .train_step(model, batch, Loss::CrossEntropy, lr, policy)
                .map_err(|(_, e)| anyhow!(e))?;
            model = stepped;
            last_ratio = report.curvature_ratio;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let (train_loss, train_error) = evaluate(&model, train)?;
    let (_, test_error) = evaluate(&model, test)?;
    Ok(Run {
        name,
        train_loss,
        train_error,
        test_error,
        seconds,
        trajectory: match damping {
            Damping::Rmt(rmt) => rmt.trajectory,
            Damping::Fixed(_) => Vec::new(),
        },
        last_ratio,
    })
}

fn main() -> Result<()> {
    let device = Default::default();
    <B as burn::tensor::backend::Backend>::seed(&device, 0);
    let (train, test) = optdigits()?.split(797, 1)?;
    let train_batches = train.batches::<B, 2>(100, &device)?;
    let test_batches = test.batches::<B, 2>(test.len(), &device)?;
    let init: Model = MlpConfig::new(64, vec![100], 10).init(&device)?;
    println!(
        "MLP 64-100-10 on optdigits: {} train / {} test, batch 100, {EPOCHS} epochs ({} steps)\n",
        train.len(),
        test.len(),
        EPOCHS * train_batches.len()
    );
    let fixed = |delta: f64| -> Result<Damping> { Ok(Damping::Fixed(FixedDamping::new(delta)?)) };
    let rmt = |floor: f64| -> Result<Damping> {
        Ok(Damping::Rmt(
            RmtDamping::new(floor)?.with_schedule(RMT_INTERVAL, 0.7)?,
        ))
    };
    let sgd = OptimizerConfig::Sgd(SgdConfig::new().with_momentum(0.9));
    let adam = OptimizerConfig::Adam(AdamConfig::new());
    let adam_d = OptimizerConfig::Adam(AdamConfig::adam_d(1e-2, 0.0));
    let kfac = OptimizerConfig::Kfac(KfacConfig::new());
    let cases = [
        // SGD ignores the damping.
        ("SGD (ρ = 0.9, α = 0.05)", sgd, 0.05, fixed(1.0)?),
        // Adam's damping is its ε.
        (
            "Adam (ε = 1e-8, α = 5e-3)",
            adam.clone(),
            5e-3,
            fixed(1e-8)?,
        ),
        ("Adam-D (ε = 1e-2, α = 5e-3)", adam_d, 5e-3, fixed(1e-2)?),
        // Adam with ε learned by RMT auto-damping (floor 1e-8).
        ("Adam + RMT ε (δ* = 1e-8)", adam, 5e-3, rmt(1e-8)?),
        // KFAC with a fixed damping, and with RMT auto-damping from the floor δ* = 1e-3.
        ("KFAC (δ = 0.1, α = 0.05)", kfac.clone(), 0.05, fixed(1e-1)?),
        ("KFAC + RMT δ (δ* = 1e-3)", kfac, 0.05, rmt(1e-3)?),
    ];
    let mut runs = Vec::new();
    for (name, config, lr, damping) in cases {
        runs.push(run(
            name,
            config,
            lr,
            damping,
            &init,
            &train_batches,
            &test_batches,
        )?);
    }

    println!(
        "{:<30} {:>10} {:>11} {:>11} {:>9}",
        "optimiser", "train loss", "train err", "test err", "time"
    );
    for r in &runs {
        println!(
            "{:<30} {:>10.4} {:>10.2}% {:>10.2}% {:>7.0}ms",
            r.name,
            r.train_loss,
            100.0 * r.train_error,
            100.0 * r.test_error,
            1e3 * r.seconds
        );
    }
    for r in runs.iter().filter(|r| !r.trajectory.is_empty()) {
        let t: Vec<String> = r
            .trajectory
            .iter()
            .map(|(s, d)| format!("{s}:{d:.2e}"))
            .collect();
        println!(
            "\ndamping trajectory of {} (step:δ): {}",
            r.name,
            t.join(" ")
        );
    }
    if let Some(r) = runs.last().and_then(|r| r.last_ratio) {
        println!(
            "\nKFAC + RMT: estimated-curvature learning-rate ratio R = 1 + (λ_max − λ_min)/δ = {r:.3e} at the last step"
        );
    }
    Ok(())
}
