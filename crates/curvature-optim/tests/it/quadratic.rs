//! Convergence on an ill-conditioned quadratic: least squares `L(w) = (1/N)‖Xw − y‖²/K` with
//! feature scales spanning two orders of magnitude (condition number of the Hessian ≈ 10⁴).
//! Also: a NaN loss stops the step with a clear error.

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::tensor::{Tensor, TensorData};
use curvature_core::testing::to_vec;
use curvature_core::{Batch, BatchNormMode, Loss, Objective, gaussian_vector};
use curvature_nets::{LogisticRegression, LogisticRegressionConfig};
use curvature_optim::*;

type B = NdArray<f64>;
type AB = Autodiff<B>;

fn problem() -> Batch<B, 2> {
    let dev = Default::default();
    let (n, d) = (200, 8);
    let z = to_vec(&gaussian_vector::<B>(n * d, 3, &dev));
    // Column j scaled by 10^(−2j/(d−1)): Hessian eigenvalues spread over 10⁴.
    let x: Vec<f64> = z
        .iter()
        .enumerate()
        .map(|(i, v)| v * 10f64.powf(-2.0 * (i % d) as f64 / (d - 1) as f64))
        .collect();
    let w_true: Vec<f64> = (0..d).map(|j| 1.0 + j as f64).collect();
    let y: Vec<f64> = (0..n)
        .map(|r| (0..d).map(|j| x[r * d + j] * w_true[j]).sum::<f64>() + 0.5)
        .collect();
    Batch::regression(
        Tensor::from_data(TensorData::new(x, [n, d]), &dev),
        Tensor::from_data(TensorData::new(y, [n, 1]), &dev),
    )
    .unwrap()
}

fn run<O: Optimizer<LogisticRegression<AB>, AB>>(mut opt: O, lr: f64, steps: usize) -> (f64, f64) {
    let dev = Default::default();
    let batch = problem();
    let mut model = LogisticRegressionConfig::new(8, 1)
        .init::<AB>(&dev)
        .unwrap();
    let loss_of = |m: &LogisticRegression<AB>| {
        Objective::new(m.valid(), Loss::MeanSquaredError, vec![batch.clone()])
            .unwrap()
            .evaluate()
            .unwrap()
            .loss
    };
    let start = loss_of(&model);
    for _ in 0..steps {
        let loss = Loss::MeanSquaredError.batch_mean(&model, &batch, BatchNormMode::Train);
        model = checked_step(&mut opt, lr, model, loss)
            .map_err(|(_, e)| e)
            .unwrap()
            .0;
    }
    // Noiseless data and a well-specified model: the minimum loss is 0.
    (start, loss_of(&model))
}

#[test]
fn first_order_optimisers_reduce_an_ill_conditioned_quadratic() {
    let (s, e) = run(
        SgdConfig::new()
            .with_momentum(0.9)
            .init::<AB, LogisticRegression<AB>>()
            .unwrap(),
        0.05,
        2000,
    );
    // Momentum SGD is slowed by the condition number (≈10⁴): measured ≈400× in 2 000 steps.
    assert!(e < 1e-2 * s, "SGD+momentum: {s} → {e}");
    let (s2, e2) = run(
        AdamConfig::new()
            .init::<AB, LogisticRegression<AB>>()
            .unwrap(),
        0.05,
        2000,
    );
    // The ill-conditioning is axis-aligned, which Adam's diagonal preconditioner removes.
    assert!(e2 < 1e-8 * s2, "Adam: {s2} → {e2}");
    // Adam-D: a large ε (damping) makes it SGD-like in the small-gradient directions.
    let (s3, e3) = run(
        AdamConfig::adam_d(5e-3, 0.0)
            .init::<AB, LogisticRegression<AB>>()
            .unwrap(),
        0.05,
        2000,
    );
    // Measured ≈3e-6× in 2 000 steps.
    assert!(e3 < 1e-4 * s3, "Adam-D: {s3} → {e3}");
    let (s4, e4) = run(
        gadam::<AB, LogisticRegression<AB>>(
            0.0,
            AveragingSchedule {
                start: 1000,
                frequency: 1,
            },
        )
        .unwrap(),
        0.05,
        2000,
    );
    // The raw iterates (AdamW without decay) converge like Adam; averaging does not disturb them.
    assert!(e4 < 1e-6 * s4, "Gadam: {s4} → {e4}");
}

#[test]
fn lanczos_opt_solves_the_quadratic_in_a_few_steps() {
    let dev = Default::default();
    let model = LogisticRegressionConfig::new(8, 1).init::<B>(&dev).unwrap();
    let mut objective = Objective::new(model, Loss::MeanSquaredError, vec![problem()]).unwrap();
    let start = objective.evaluate().unwrap().loss;
    // k = P = 9 and tiny damping: (almost) Newton's method, exact for a quadratic.
    let mut opt = LanczosOptConfig::new().with_rank(9).init::<B>().unwrap();
    let damping = FixedDamping::new(1e-10).unwrap();
    for _ in 0..3 {
        opt.step(&mut objective, 1.0, &damping).unwrap();
    }
    let end = objective.evaluate().unwrap().loss;
    assert!(end < 1e-12 * start, "LanczosOPT: {start} → {end}");
}

#[test]
fn kfac_solves_the_quadratic_whose_hessian_is_a_kronecker_product() {
    // Least squares with one linear layer: H = A ⊗ (2/K)I exactly, so KFAC with the exact
    // Fisher and tiny damping is Newton's method; with sampled labels the `G` estimate is
    // noisy (≈ ±10% at N = 200) and averaging makes it converge linearly.
    let dev = Default::default();
    let batch = problem();
    let x = Tensor::<AB, 2>::from_inner(batch.inputs.clone());
    for (fisher, lr, steps, factor) in [
        (FisherEstimate::Exact, 1.0, 3, 1e-12),
        (FisherEstimate::Sampled, 0.5, 60, 1e-8),
    ] {
        let mut model = LogisticRegressionConfig::new(8, 1)
            .init::<AB>(&dev)
            .unwrap();
        let cfg = KfacConfig::new()
            .with_fisher(fisher)
            .with_momentum(0.0)
            .with_kl_clip(None)
            .with_cov_interval(1)
            .with_inv_interval(1);
        let mut kfac = cfg.init::<AB, LogisticRegression<AB>>().unwrap();
        let damping = FixedDamping::new(1e-10).unwrap();
        let mut losses = Vec::new();
        for _ in 0..steps {
            let (m, r) = kfac
                .step(
                    model,
                    lr,
                    &damping,
                    Loss::MeanSquaredError,
                    &batch.targets,
                    |m| m.forward(x.clone()),
                )
                .map_err(|(_, e)| e)
                .unwrap();
            losses.push(r.loss);
            model = m;
        }
        let end = Loss::MeanSquaredError
            .batch_mean(&model, &batch, BatchNormMode::Train)
            .into_scalar();
        assert!(
            end < factor * losses[0],
            "KFAC {fisher:?}: {} → {end}",
            losses[0]
        );
    }
}

/// On a quadratic whose Hessian the optimiser models exactly, the predicted change of the loss
/// is the actual change, so the Levenberg–Marquardt ratio is 1 and δ shrinks by ω every
/// T_adapt steps. Only rounding separates them: stated bound 1e-8 relative.
#[test]
fn predicted_changes_are_exact_on_the_quadratic_and_drive_levenberg_marquardt() {
    const PRED_TOL: f64 = 1e-8;
    let dev = Default::default();
    let batch = problem();
    let x = Tensor::<AB, 2>::from_inner(batch.inputs.clone());
    let mut model = LogisticRegressionConfig::new(8, 1)
        .init::<AB>(&dev)
        .unwrap();
    let mut kfac = KfacConfig::new()
        .with_fisher(FisherEstimate::Exact)
        .with_momentum(0.0)
        .with_kl_clip(None)
        .with_cov_interval(1)
        .with_inv_interval(1)
        .with_predict_change(true)
        .init::<AB, LogisticRegression<AB>>()
        .unwrap();
    let mut lm = LevenbergMarquardt::new(1.0).unwrap();
    for _ in 0..10 {
        let (m, r) = kfac
            .step(
                model,
                0.5,
                &lm,
                Loss::MeanSquaredError,
                &batch.targets,
                |m| m.forward(x.clone()),
            )
            .map_err(|(_, e)| e)
            .unwrap();
        model = m;
        let after = Loss::MeanSquaredError
            .batch_mean(&model, &batch, BatchNormMode::Train)
            .into_scalar();
        let predicted = r.predicted_change.unwrap();
        let actual = after - r.loss;
        assert!(
            (actual - predicted).abs() <= PRED_TOL * predicted.abs(),
            "KFAC: actual {actual} vs predicted {predicted}"
        );
        lm.observe(actual / predicted);
    }
    assert!(
        // Two adaptations (steps 5 and 10) of ω = (19/20)^5 each (Martens & Grosse §6.5).
        (lm.damping() - 0.95f64.powi(10)).abs() < 1e-12,
        "{}",
        lm.damping()
    );

    let plain = LogisticRegressionConfig::new(8, 1).init::<B>(&dev).unwrap();
    let mut objective = Objective::new(plain, Loss::MeanSquaredError, vec![problem()]).unwrap();
    let mut opt = LanczosOptConfig::new().with_rank(9).init::<B>().unwrap();
    let damping = FixedDamping::new(0.1).unwrap();
    for _ in 0..3 {
        let r = opt.step(&mut objective, 0.5, &damping).unwrap();
        let actual = objective.evaluate().unwrap().loss - r.loss;
        let predicted = r.predicted_change.unwrap();
        assert!(
            (actual - predicted).abs() <= PRED_TOL * predicted.abs(),
            "LanczosOPT: actual {actual} vs predicted {predicted}"
        );
    }
}

#[test]
fn a_nan_loss_stops_the_step_with_a_clear_error() {
    let dev = Default::default();
    let model = LogisticRegressionConfig::new(8, 1)
        .init::<AB>(&dev)
        .unwrap();
    let mut opt = SgdConfig::new()
        .init::<AB, LogisticRegression<AB>>()
        .unwrap();
    let before: Vec<f64> = model
        .linear
        .weight
        .val()
        .into_data()
        .iter::<f64>()
        .collect();
    let loss = Tensor::<AB, 1>::from_data(TensorData::new(vec![f64::NAN], [1]), &dev);
    let (model, err) = checked_step(&mut opt, 0.1, model, loss).err().unwrap();
    assert!(err.to_string().contains("non-finite loss NaN"), "{err}");
    let after: Vec<f64> = model
        .linear
        .weight
        .val()
        .into_data()
        .iter::<f64>()
        .collect();
    assert_eq!(before, after, "the model is untouched");
}
