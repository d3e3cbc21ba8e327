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
