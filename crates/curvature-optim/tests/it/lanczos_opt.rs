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

#[test]
fn state_round_trips_and_training_continues_bit_identically() {
    use burn::record::{BinBytesRecorder, DoublePrecisionSettings, Recorder};
    use curvature_optim::History;
    let device = Default::default();
    let data = optdigits().unwrap().take(100);
    let model = LogisticRegressionConfig::optdigits()
        .init::<B>(&device)
        .unwrap();
    let batches = data.batches::<B, 2>(100, &device).unwrap();
    let mut objective = Objective::new(model.clone(), Loss::CrossEntropy, batches.clone()).unwrap();
    let cfg = LanczosOptConfig::new().with_rank(8).with_refresh(2);
    let mut opt = cfg.init::<B>().unwrap();
    let damping = FixedDamping::new(0.5).unwrap();
    for _ in 0..3 {
        opt.step(&mut objective, 0.5, &damping).unwrap();
    }
    let recorder = BinBytesRecorder::<DoublePrecisionSettings>::default();
    let bytes = recorder.record(opt.to_record(), ()).unwrap();
    let mut restored = cfg
        .init::<B>()
        .unwrap()
        .load_record(recorder.load(bytes, &device).unwrap())
        .unwrap();
    assert_eq!(restored.updates(), 3);
    let mut twin = Objective::new(model, Loss::CrossEntropy, batches).unwrap();
    twin.set_params(objective.params()).unwrap();
    let history = std::rc::Rc::new(std::cell::RefCell::new(History::default()));
    let sink = history.clone();
    restored
        .observe(move |r: &curvature_optim::StepReport| sink.borrow_mut().reports.push(r.clone()));
    // Update 3 reuses the saved Ritz pairs, update 4 recomputes them.
    for _ in 0..2 {
        opt.step(&mut objective, 0.5, &damping).unwrap();
        restored.step(&mut twin, 0.5, &damping).unwrap();
    }
    assert_eq!(to_vec(&objective.params()), to_vec(&twin.params()));
    let h = history.borrow();
    assert_eq!(
        h.reports
            .iter()
            .map(|r| (r.step, r.refreshed))
            .collect::<Vec<_>>(),
        vec![(3, false), (4, true)]
    );
    let r = &h.reports[0];
    let (hi, lo) = r.curvature_range.unwrap();
    assert_eq!(r.curvature_ratio, Some(1.0 + (hi - lo) / 0.5));
}

/// Eq. 9 with `k < P`: least squares with a linear model has the Hessian
/// `H = (2/(K N)) I_K ⊗ X̃ᵀX̃` (layout `[weight (K×d), bias (K)]`), whose `m = d + 1 = 4` distinct
/// eigenvalues each have multiplicity `K = 3` (`P = 12`). From the start vector `v`, the Krylov
/// space is spanned by the projections `Π_j v` onto the eigenspaces, so `k = m` Lanczos steps
/// give exactly the Ritz pairs `(μ_j, Π_j v/‖Π_j v‖)` and the closed form
/// `u = (1/η) Σ_j φ_j φ_jᵀ g/(μ_j + δ) + (1/δ)(g − Σ_j φ_j φ_jᵀ g)`, here with `η = 3`. The
/// reference is built from the analytic `X̃ᵀX̃` and nalgebra's eigendecomposition.
#[test]
fn lanczos_opt_with_k_below_p_is_eq_9_on_the_krylov_space() {
    use burn::tensor::{Tensor, TensorData};
    use curvature_core::{Batch, gaussian_vector};
    let device = Default::default();
    let (k, d, n) = (3usize, 3usize, 10usize);
    let x: Vec<f64> = (0..n * d)
        .map(|i| ((i * 7919) % 23) as f64 / 11.0 - 1.0)
        .collect();
    let y: Vec<f64> = (0..n * k).map(|i| ((i * 31) % 5) as f64 - 2.0).collect();
    let batch = Batch::regression(
        Tensor::from_data(TensorData::new(x.clone(), [n, d]), &device),
        Tensor::from_data(TensorData::new(y, [n, k]), &device),
    )
    .unwrap();
    let model = LogisticRegressionConfig::new(d, k)
        .init::<B>(&device)
        .unwrap();
    let mut objective = Objective::new(model, Loss::MeanSquaredError, vec![batch]).unwrap();
    let p = objective.dim();
    assert_eq!(p, 12);
    // X̃ᵀX̃ (4 × 4) and its eigenvectors e_j; H's eigenspaces are I_K ⊗ e_j.
    let xt = nalgebra::DMatrix::from_fn(n, d + 1, |r, c| if c < d { x[r * d + c] } else { 1.0 });
    let gram = xt.transpose() * &xt;
    let eig = gram.symmetric_eigen();
    let index = |class: usize, feature: usize| {
        if feature < d {
            class * d + feature
        } else {
            k * d + class
        }
    };
    let (eta, delta, lr) = (3.0, 0.2, 0.5);
    let w0 = to_vec(&objective.params());
    let (_, g) = objective.gradient().unwrap();
    let g = DVector::from_vec(to_vec(&g));
    // LanczosOPT's first refresh starts from the seeded Gaussian of seed 0.
    let v = DVector::from_vec(to_vec(&gaussian_vector::<B>(p, 0, &device)));
    let mut update = g.clone() / delta;
    for j in 0..=d {
        let mu = 2.0 / (k * n) as f64 * eig.eigenvalues[j];
        // Π_j = I_K ⊗ e_j e_jᵀ in the flat layout.
        let mut pj = nalgebra::DMatrix::<f64>::zeros(p, p);
        for c in 0..k {
            for a in 0..=d {
                for b in 0..=d {
                    pj[(index(c, a), index(c, b))] =
                        eig.eigenvectors[(a, j)] * eig.eigenvectors[(b, j)];
                }
            }
        }
        let phi = &pj * &v;
        let phi = &phi / phi.norm();
        let c = phi.dot(&g);
        update += &phi * (c / (eta * (mu + delta)) - c / delta);
    }
    let expected: Vec<f64> = w0
        .iter()
        .zip(update.iter())
        .map(|(w, u)| w - lr * u)
        .collect();
    let mut opt = LanczosOptConfig::new()
        .with_rank(d + 1)
        .with_eta(eta)
        .init::<B>()
        .unwrap();
    opt.step(&mut objective, lr, &FixedDamping::new(delta).unwrap())
        .unwrap();
    assert_rel_close(
        &to_vec(&objective.params()),
        &expected,
        NEWTON_TOL,
        "LanczosOPT(k = m < P, η = 3) vs eq. 9",
    );
}

/// Eq. 9 with `f(λ) = |λ|` (the default) on an indefinite Hessian — a tanh MLP at its
/// initialisation, `P = 17` — with `k = P` and `η = 3`:
/// `u = (1/η) Σ_i u_i u_iᵀ g/(|λ_i| + δ)`, from nalgebra's eigendecomposition of the dense
/// Hessian.
#[test]
fn lanczos_opt_uses_absolute_eigenvalues_on_an_indefinite_hessian() {
    use curvature_nets::{Activation, MlpConfig};
    let device = Default::default();
    let model = MlpConfig::new(2, vec![3], 2)
        .with_activation(Activation::Tanh)
        .init::<B>(&device)
        .unwrap();
    let mut objective = Objective::new(
        model,
        Loss::CrossEntropy,
        vec![random_classification_batch([30, 2], 2, 4, &device)],
    )
    .unwrap();
    let p = objective.dim();
    assert_eq!(p, 17);
    let h = dense_matrix(&objective.hessian(), DenseReferenceConfig::default()).unwrap();
    let eig = h.symmetric_eigen();
    assert!(
        eig.eigenvalues.iter().any(|l| *l < -1e-6),
        "the test needs an indefinite Hessian: {:?}",
        eig.eigenvalues
    );
    let (eta, delta, lr) = (3.0, 0.05, 0.4);
    let w0 = to_vec(&objective.params());
    let (_, g) = objective.gradient().unwrap();
    let g = DVector::from_vec(to_vec(&g));
    let mut update = DVector::<f64>::zeros(p);
    for i in 0..p {
        let u = eig.eigenvectors.column(i);
        update += u * (u.dot(&g) / (eta * (eig.eigenvalues[i].abs() + delta)));
    }
    let expected: Vec<f64> = w0
        .iter()
        .zip(update.iter())
        .map(|(w, u)| w - lr * u)
        .collect();
    let mut opt = LanczosOptConfig::new()
        .with_rank(p)
        .with_eta(eta)
        .init::<B>()
        .unwrap();
    assert_eq!(opt_negative_default(), NegativeCurvature::Absolute);
    opt.step(&mut objective, lr, &FixedDamping::new(delta).unwrap())
        .unwrap();
    assert_rel_close(
        &to_vec(&objective.params()),
        &expected,
        1e-8,
        "LanczosOPT(|λ|, η = 3) vs eq. 9 on an indefinite Hessian",
    );
}

fn opt_negative_default() -> NegativeCurvature {
    LanczosOptConfig::new().negative
}
