//! LanczosOPT with k = P is exactly a damped Newton step; with k < P it still trains.

use burn::backend::NdArray;
use curvature_core::testing::{assert_rel_close, random_classification_batch, to_vec};
use curvature_core::{DenseReferenceConfig, Loss, Objective, dense_matrix};
use curvature_data::optdigits;
use curvature_nets::LogisticRegressionConfig;
use curvature_optim::{FixedDamping, LanczosOptConfig, NegativeCurvature};
use nalgebra::DVector;

type B = NdArray<f64>;

/// Full-rank Lanczos with re-orthogonalisation reproduces the eigendecomposition to f64
/// rounding; the damped solve agrees with nalgebra's LU to ≈1e-13. Stated bound 1e-10.
const NEWTON_TOL: f64 = 1e-10;

#[test]
fn full_rank_lanczos_opt_is_a_damped_newton_step() {
    let device = Default::default();
    let model = LogisticRegressionConfig::new(5, 3)
        .init::<B>(&device)
        .unwrap();
    let mut objective = Objective::new(
        model,
        Loss::CrossEntropy,
        vec![random_classification_batch([40, 5], 3, 1, &device)],
    )
    .unwrap();
    let p = objective.dim();
    let (delta, lr) = (0.3, 0.7);
    let w0 = to_vec(&objective.params());
    let (_, g) = objective.gradient().unwrap();
    let h = dense_matrix(&objective.hessian(), DenseReferenceConfig::default()).unwrap();
    // Softmax regression's Hessian is PSD, so |λ| = λ and the step is (H + δI)⁻¹ g.
    let newton = (h + nalgebra::DMatrix::identity(p, p) * delta)
        .lu()
        .solve(&DVector::from_vec(to_vec(&g)))
        .unwrap();
    let expected: Vec<f64> = w0
        .iter()
        .zip(newton.iter())
        .map(|(w, u)| w - lr * u)
        .collect();
    let mut opt = LanczosOptConfig::new()
        .with_rank(p)
        .with_negative(NegativeCurvature::Clip)
        .init::<B>()
        .unwrap();
    let report = opt
        .step(&mut objective, lr, &FixedDamping::new(delta).unwrap())
        .unwrap();
    assert!(report.refreshed);
    assert_rel_close(
        &to_vec(&objective.params()),
        &expected,
        NEWTON_TOL,
        "LanczosOPT(k = P) vs damped Newton",
    );
}

#[test]
fn low_rank_lanczos_opt_trains_softmax_regression() {
    let device = Default::default();
    let data = optdigits().unwrap().take(300);
    let model = LogisticRegressionConfig::optdigits()
        .init::<B>(&device)
        .unwrap();
    let mut objective = Objective::new(
        model,
        Loss::CrossEntropy,
        data.batches::<B, 2>(300, &device).unwrap(),
    )
    .unwrap();
    let start = objective.evaluate().unwrap().loss;
    let mut opt = LanczosOptConfig::new()
        .with_rank(20)
        .with_refresh(2)
        .init::<B>()
        .unwrap();
    let damping = FixedDamping::new(0.1).unwrap();
    let mut refreshes = 0;
    for _ in 0..6 {
        refreshes += opt.step(&mut objective, 1.0, &damping).unwrap().refreshed as usize;
    }
    let end = objective.evaluate().unwrap().loss;
    assert!(end < 0.5 * start, "loss {start} → {end}");
    assert_eq!(refreshes, 3, "Ritz pairs recomputed every second update");
    assert!(LanczosOptConfig::new().with_rank(0).init::<B>().is_err());
    assert!(LanczosOptConfig::new().with_eta(0.0).init::<B>().is_err());
    assert!(opt.step(&mut objective, -1.0, &damping).is_err());
}
