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
//! damping is ε, handed to the optimiser through a `DampingCell`. The paper uses `N = 100` on
//! CIFAR; this small run uses `N = 20` so that the trajectory is visible.
use std::time::Instant;

use anyhow::{Result, anyhow};
use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::tensor::Tensor;
use curvature::core::{Batch, BatchNormMode, HessianVarianceConfig, Loss, Network, Objective};
use curvature::data::optdigits;
use curvature::nets::{Mlp, MlpConfig};
use curvature::optim::{
    AdamConfig, DampingCell, DampingPolicy, FixedDamping, KfacConfig, RmtDamping, SgdConfig,
    StepReport,
};

type B = NdArray<f32>;
type AB = Autodiff<B>;
type Model = Mlp<AB>;

const EPOCHS: usize = 20;
const RMT_INTERVAL: usize = 20;

/// One training step: the model and the batch in, the model and the batch loss out.
type Step<'a> = Box<dyn FnMut(Model, &Batch<B, 2>) -> Result<(Model, f64)> + 'a>;

struct Run {
    name: &'static str,
    train_loss: f64,
    train_error: f64,
    test_error: f64,
    seconds: f64,
    trajectory: Vec<(usize, f64)>,
}

fn evaluate(model: &Model, data: &[Batch<B, 2>]) -> Result<(f64, f64)> {
    let e = Objective::new(model.valid(), Loss::CrossEntropy, data.to_vec())?.evaluate()?;
    Ok((e.loss, 1.0 - e.accuracy.unwrap_or(0.0)))
}

/// Re-estimate an RMT damping every `RMT_INTERVAL` steps on the training set.
fn rmt_step(rmt: &mut RmtDamping, model: &Model, train: &[Batch<B, 2>]) -> Result<()> {
    let objective = Objective::new(model.valid(), Loss::CrossEntropy, train.to_vec())?;
    rmt.step_with(&objective, &HessianVarianceConfig::new())?;
    Ok(())
}

fn first_order<O: Optimizer<Model, AB>>(
    mut opt: O,
    lr: f64,
) -> impl FnMut(Model, &Batch<B, 2>) -> Result<(Model, f64)> {
    move |model: Model, batch: &Batch<B, 2>| {
        let loss = Loss::CrossEntropy.batch_mean(&model, batch, BatchNormMode::Train);
        curvature::optim::checked_step(&mut opt, lr, model, loss).map_err(|(_, e)| anyhow!(e))
    }
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

    let run = |name: &'static str,
               mut step: Step,
               trajectory: &dyn Fn() -> Vec<(usize, f64)>|
     -> Result<Run> {
        let start = Instant::now();
        let mut model = init.clone();
        for _ in 0..EPOCHS {
            for batch in &train_batches {
                model = step(model, batch)?.0;
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let (train_loss, train_error) = evaluate(&model, &train_batches)?;
        let (_, test_error) = evaluate(&model, &test_batches)?;
        Ok(Run {
            name,
            train_loss,
            train_error,
            test_error,
            seconds,
            trajectory: trajectory(),
        })
    };
    let none = || Vec::new();
    let mut runs = Vec::new();

    runs.push(run(
        "SGD (ρ = 0.9, α = 0.05)",
        Box::new(first_order(
            SgdConfig::new().with_momentum(0.9).init::<AB, Model>()?,
            0.05,
        )),
        &none,
    )?);
    runs.push(run(
        "Adam (ε = 1e-8, α = 5e-3)",
        Box::new(first_order(AdamConfig::new().init::<AB, Model>()?, 5e-3)),
        &none,
    )?);
    runs.push(run(
        "Adam-D (ε = 1e-2, α = 5e-3)",
        Box::new(first_order(
            AdamConfig::adam_d(1e-2, 0.0).init::<AB, Model>()?,
            5e-3,
        )),
        &none,
    )?);

    // Adam with ε learned by RMT auto-damping (floor 1e-8).
    let adam_rmt =
        std::cell::RefCell::new(RmtDamping::new(1e-8)?.with_schedule(RMT_INTERVAL, 0.7)?);
    let cell = DampingCell::new(1e-8)?;
    let mut adam = first_order(
        AdamConfig::new().init_damped::<AB, Model>(cell.clone())?,
        5e-3,
    );
    runs.push(run(
        "Adam + RMT ε (δ* = 1e-8)",
        Box::new(|model: Model, batch: &Batch<B, 2>| {
            rmt_step(&mut adam_rmt.borrow_mut(), &model, &train_batches)?;
            cell.follow(&*adam_rmt.borrow())?;
            adam(model, batch)
        }),
        &|| adam_rmt.borrow().trajectory.clone(),
    )?);

    // KFAC with a fixed damping, and with RMT auto-damping from the floor δ* = 1e-3.
    let mut kfac = KfacConfig::new().init::<AB, Model>()?;
    let fixed = FixedDamping::new(1e-1)?;
    runs.push(run(
        "KFAC (δ = 0.1, α = 0.05)",
        Box::new(|model: Model, batch: &Batch<B, 2>| {
            let (model, report) = kfac_step(&mut kfac, model, batch, &fixed)?;
            Ok((model, report.loss))
        }),
        &none,
    )?);
    let mut kfac = KfacConfig::new().init::<AB, Model>()?;
    let kfac_rmt =
        std::cell::RefCell::new(RmtDamping::new(1e-3)?.with_schedule(RMT_INTERVAL, 0.7)?);
    let last_ratio = std::cell::Cell::new(None);
    runs.push(run(
        "KFAC + RMT δ (δ* = 1e-3)",
        Box::new(|model: Model, batch: &Batch<B, 2>| {
            rmt_step(&mut kfac_rmt.borrow_mut(), &model, &train_batches)?;
            let damping = kfac_rmt.borrow();
            let (model, report) = kfac_step(&mut kfac, model, batch, &*damping)?;
            last_ratio.set(report.curvature_ratio);
            Ok((model, report.loss))
        }),
        &|| kfac_rmt.borrow().trajectory.clone(),
    )?);

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
    if let Some(r) = last_ratio.get() {
        println!(
            "\nKFAC + RMT: estimated-curvature learning-rate ratio R = 1 + (λ_max − λ_min)/δ = {r:.3e} at the last step"
        );
    }
    Ok(())
}

fn kfac_step(
    kfac: &mut curvature::optim::Kfac<AB, Model>,
    model: Model,
    batch: &Batch<B, 2>,
    damping: &dyn DampingPolicy,
) -> Result<(Model, StepReport)> {
    let x = Tensor::<AB, 2>::from_inner(batch.inputs.clone());
    let (model, report) = kfac
        .step(
            model,
            0.05,
            damping,
            Loss::CrossEntropy,
            &batch.targets,
            |m| m.output(x.clone(), BatchNormMode::Train),
        )
        .map_err(|(_, e)| anyhow!(e))?;
    Ok((model, report))
}
