//! Exact curvature of non-linear networks (MLP, CNN with batch norm) against independent f64
//! references, and the Hessian variance against dense per-batch Hessians.

use burn::backend::NdArray;
use burn::tensor::Tensor;
use curvature_core::testing::{assert_rel_close, norm, richardson_hvp, to_vec};
use curvature_core::*;
use curvature_data::{ClassificationData, optdigits};
use curvature_nets::{Activation, Mlp, MlpConfig, Pooling, SimpleCnn, SimpleCnnConfig};
use nalgebra::{DMatrix, DVector};

type B = NdArray<f64>;

/// Exact HVP vs Richardson-extrapolated central differences (h = 1e-3, truncation O(h⁴),
/// rounding ≈ ε/h): both f64, agreement ≈1e-10 for smooth networks.
const RICHARDSON_TOL: f64 = 1e-8;
/// Hv vs the dense Hessian (formed from HVP columns) times v: f64 rounding only.
const DENSE_TOL: f64 = 1e-10;

fn digits(n: usize) -> ClassificationData {
    optdigits().unwrap().take(n)
}

fn mlp_objective(activation: Activation) -> Objective<B, Mlp<B>, 2> {
    let device = Default::default();
    let model = MlpConfig::new(64, vec![12], 10)
        .with_activation(activation)
        .init::<B>(&device)
        .unwrap();
    Objective::new(
        model,
        Loss::CrossEntropy,
        digits(300).batches::<B, 2>(100, &device).unwrap(),
    )
    .unwrap()
}

fn random(p: usize, seed: u64) -> Tensor<B, 1> {
    gaussian_vector::<B>(p, seed, &Default::default())
}

#[test]
fn mlp_exact_hvp_matches_independent_references() {
    let objective = mlp_objective(Activation::Tanh);
    let p = objective.dim();
    assert_eq!(p, 64 * 12 + 12 + 12 * 10 + 10);
    let dense = dense_matrix(&objective.hessian(), DenseReferenceConfig::default()).unwrap();
    let spectrum = dense_spectrum(&dense);
    assert!(
        spectrum.asymmetry < 1e-12,
        "dense Hessian asymmetry {}",
        spectrum.asymmetry
    );
    for seed in [1, 2] {
        let v = random(p, seed);
        let hv = to_vec(&objective.hvp(&v).unwrap());
        assert_rel_close(
            &hv,
            &richardson_hvp(&objective, &v, 1e-3).unwrap(),
            RICHARDSON_TOL,
            "MLP Hv vs Richardson FD",
        );
        let dense_hv = &dense * DVector::from_vec(to_vec(&v));
        assert_rel_close(&hv, dense_hv.as_slice(), DENSE_TOL, "MLP Hv vs dense H·v");
    }
    // An MLP Hessian is indefinite: it has negative eigenvalues.
    assert!(spectrum.eigenvalues[0] < 0.0);
}

#[test]
fn relu_mlp_matches_small_step_central_differences() {
    let mut objective = mlp_objective(Activation::Relu);
    // Seeded weights (the layers' initialisation draws from burn's unseeded generator): a
    // fixed point, so a kink within the step cannot appear at an unlucky draw.
    objective
        .set_params(random(objective.dim(), 21).mul_scalar(0.3))
        .unwrap();
    let v = random(objective.dim(), 3);
    // ReLU kinks: a large step crosses kinks, so use a small step (h = 1e-6: rounding ≈ 1e-10,
    // no kink crossed for generic data); tolerance 1e-6.
    let fd = FiniteDifferenceHessian::with_step(&objective, 1e-6).unwrap();
    assert_rel_close(
        &to_vec(&objective.hvp(&v).unwrap()),
        &to_vec(&fd.apply(&v).unwrap()),
        1e-6,
        "ReLU MLP Hv vs FD",
    );
}

#[test]
fn mlp_ggn_is_psd_and_differs_from_the_hessian() {
    let objective = mlp_objective(Activation::Tanh);
    let cfg = DenseReferenceConfig::default();
    let g = dense_matrix(&objective.ggn(), cfg).unwrap();
    let h = dense_matrix(&objective.hessian(), cfg).unwrap();
    let r = dense_matrix(&objective.hessian_minus_ggn(), cfg).unwrap();
    let eg = dense_spectrum(&g);
    let top = *eg.eigenvalues.last().unwrap();
    // PSD up to rounding: eigenvalues ≥ −1e-12·λ_max.
    assert!(
        eg.eigenvalues[0] >= -1e-12 * top,
        "GGN λ_min = {} (λ_max {top})",
        eg.eigenvalues[0]
    );
    assert!(eg.asymmetry < 1e-12);
    assert!(
        (&h - &g).norm() > 1e-3 * h.norm(),
        "for a non-linear network G ≠ H"
    );
    assert!(
        (&r - (&h - &g)).norm() <= DENSE_TOL * h.norm(),
        "H − G operator = dense H − dense G"
    );
    // Gauss–Newton identity on the output layer's bias: its H and G blocks coincide, since z
    // is linear in the last bias (∇²z = 0 there).
    let bias = objective.layout().block("layers.1.bias").unwrap().range();
    let (hb, gb) = (
        h.view((bias.start, bias.start), (10, 10)).clone_owned(),
        g.view((bias.start, bias.start), (10, 10)).clone_owned(),
    );
    assert!((&hb - &gb).norm() <= 1e-12 * hb.norm());
}

/// The GGN of a tanh MLP against `G = (1/N) Σ_n J_nᵀ (diag p_n − p_n p_nᵀ) J_n` with the output
/// Jacobians `J_n = ∂z_n/∂w` taken by central finite differences of forward passes — no
/// autodiff, no GGN code: independent of the operator. Both `G v` and the dense `G` agree.
#[test]
fn mlp_ggn_equals_jt_h_j_from_finite_differences_of_the_outputs() {
    let device = Default::default();
    let model = MlpConfig::new(64, vec![5], 10)
        .with_activation(Activation::Tanh)
        .init::<B>(&device)
        .unwrap();
    let data = digits(40);
    let batch = data.batches::<B, 2>(40, &device).unwrap().remove(0);
    let mut objective = Objective::new(model, Loss::CrossEntropy, vec![batch.clone()]).unwrap();
    let p = objective.dim();
    let w0 = to_vec(&objective.params());
    let (n, k) = (40usize, 10usize);
    let outputs = |o: &Objective<B, Mlp<B>, 2>| -> Vec<f64> {
        let z = o.model().output(batch.inputs.clone(), BatchNormMode::Train);
        z.into_data().iter::<f64>().collect()
    };
    let z0 = outputs(&objective);
    // J[(example, class), parameter] by central differences, h = 1e-5 (error ~h² + ε/h ≈ 1e-10).
    let h = 1e-5;
    let mut jac = DMatrix::<f64>::zeros(n * k, p);
    for j in 0..p {
        let mut w = w0.clone();
        w[j] += h;
        objective.set_params(from_slice(&w)).unwrap();
        let plus = outputs(&objective);
        w[j] -= 2.0 * h;
        objective.set_params(from_slice(&w)).unwrap();
        let minus = outputs(&objective);
        for r in 0..n * k {
            jac[(r, j)] = (plus[r] - minus[r]) / (2.0 * h);
        }
    }
    objective.set_params(from_slice(&w0)).unwrap();
    let mut g_ref = DMatrix::<f64>::zeros(p, p);
    for e in 0..n {
        let z = &z0[e * k..(e + 1) * k];
        let zmax = z.iter().cloned().fold(f64::MIN, f64::max);
        let ez: Vec<f64> = z.iter().map(|v| (v - zmax).exp()).collect();
        let sum: f64 = ez.iter().sum();
        let prob = DVector::from_iterator(k, ez.iter().map(|v| v / sum));
        let h_out = DMatrix::from_diagonal(&prob) - &prob * prob.transpose();
        let je = jac.rows(e * k, k).clone_owned();
        g_ref += je.transpose() * h_out * je / n as f64;
    }
    let g = dense_matrix(&objective.ggn(), DenseReferenceConfig::default()).unwrap();
    let err = (&g - &g_ref).norm() / g_ref.norm();
    assert!(err < 1e-7, "GGN vs JᵀHJ from finite differences: {err}");
    let v = random(p, 21);
    let gv = to_vec(&objective.ggn().apply(&v).unwrap());
    let want = &g_ref * DVector::from_vec(to_vec(&v));
    assert_rel_close(&gv, want.as_slice(), 1e-7, "Gv vs JᵀHJ v");
}

fn from_slice(v: &[f64]) -> Tensor<B, 1> {
    curvature_core::testing::from_slice::<B>(v, &Default::default())
}

fn cnn_objective(mode: BatchNormMode) -> Objective<B, SimpleCnn<B>, 4> {
    let device = Default::default();
    let d = digits(192);
    let images =
        ClassificationData::new(d.inputs.clone(), vec![1, 8, 8], d.labels.clone(), 10).unwrap();
    let batches = images.batches::<B, 4>(64, &device).unwrap();
    let model = SimpleCnnConfig::new(1, [8, 8], vec![3, 4], 10)
        .with_activation(Activation::Tanh)
        .with_pooling(Pooling::Avg)
        .init::<B>(&device)
        .unwrap();
    // Give the running statistics values that differ from any one batch's statistics.
    for batch in batches.iter().take(2) {
        model.update_running_stats(batch.inputs.clone());
    }
    Objective::new(model, Loss::CrossEntropy, batches)
        .unwrap()
        .with_bn_mode(mode)
}

#[test]
fn batch_norm_train_and_eval_modes_give_different_correct_hessians() {
    let train = cnn_objective(BatchNormMode::Train);
    let eval = cnn_objective(BatchNormMode::Eval);
    assert_eq!(train.dim(), 27 + 6 + 108 + 8 + 16 * 10 + 10);
    let p = train.dim();
    // Two independently initialised models: give them the same parameters.
    let mut eval = eval;
    eval.set_params(train.params()).unwrap();
    for seed in [4, 5] {
        let v = random(p, seed);
        let ht = to_vec(&train.hvp(&v).unwrap());
        let he = to_vec(&eval.hvp(&v).unwrap());
        assert_rel_close(
            &ht,
            &richardson_hvp(&train, &v, 1e-3).unwrap(),
            RICHARDSON_TOL,
            "BN train-mode Hv vs FD",
        );
        assert_rel_close(
            &he,
            &richardson_hvp(&eval, &v, 1e-3).unwrap(),
            RICHARDSON_TOL,
            "BN eval-mode Hv vs FD",
        );
        let diff = testing::relative_error(&ht, &he);
        assert!(
            diff > 1e-2,
            "train and eval mode Hessians should differ, relative difference {diff:.3e}"
        );
    }
}

/// The estimator's arithmetic along given vectors against dense per-batch Hessians of an MLP
/// (ragged batches: 4 × 70 + 20): the dense side forms `Σ_i w_i ‖(H_i − H̄)u‖²` and
/// `Σ_i w_i ‖H_i u‖² − (uᵀH̄u)²` from the matrices, not from the streamed sums the code keeps.
#[test]
fn hessian_variance_matches_dense_per_batch_hessians() {
    let device = Default::default();
    let data = digits(300);
    let model = MlpConfig::new(64, vec![6], 10)
        .with_activation(Activation::Tanh)
        .init::<B>(&device)
        .unwrap();
    let batches = data.batches::<B, 2>(70, &device).unwrap();
    let objective = Objective::new(model.clone(), Loss::CrossEntropy, batches.clone()).unwrap();
    let p = objective.dim();
    let vs = [random(p, 9), random(p, 10)];
    // Dense reference: one dense Hessian per batch (the batch-mean loss), weights B_i / S.
    let mut hs = Vec::new();
    let mut mean_h = DMatrix::<f64>::zeros(p, p);
    for batch in &batches {
        let single =
            Objective::new(model.clone(), Loss::CrossEntropy, vec![batch.clone()]).unwrap();
        let h = dense_matrix(&single.hessian(), DenseReferenceConfig::default()).unwrap();
        let w = batch.len() as f64 / 300.0;
        mean_h += &h * w;
        hs.push((w, h));
    }
    let (mut unbiased, mut printed) = (Vec::new(), Vec::new());
    for v in &vs {
        let vv = to_vec(v);
        let u = DVector::from_vec(vv.iter().map(|x| x / norm(&vv)).collect());
        let hbar_u = &mean_h * &u;
        unbiased.push(
            hs.iter()
                .map(|(w, h)| w * (h * &u - &hbar_u).norm_squared())
                .sum::<f64>(),
        );
        printed.push(
            hs.iter()
                .map(|(w, h)| w * (h * &u).norm_squared())
                .sum::<f64>()
                - u.dot(&hbar_u).powi(2),
        );
    }
    for (estimator, expected) in [
        (VarianceEstimator::Unbiased, &unbiased),
        (VarianceEstimator::AsPrinted, &printed),
    ] {
        let got = hessian_variance_along(&objective, vs.to_vec(), 10_000, estimator).unwrap();
        assert_eq!((got.batches, got.examples), (5, 300));
        assert_rel_close(&got.per_vector, expected, 1e-10, "per-vector variance");
        let mean = (expected[0] + expected[1]) / 2.0;
        assert!((got.batch_variance - mean).abs() <= 1e-10 * mean);
        // Two vectors: the standard error is |a − b| / 2.
        let se = (expected[0] - expected[1]).abs() / 2.0;
        assert!((got.batch_variance_stderr.unwrap() - se).abs() <= 1e-8 * mean);
        // S / (n − 1) = 300 / 4.
        assert!(
            (got.per_example_variance.unwrap() - 75.0 * got.batch_variance).abs() <= 1e-12 * mean
        );
    }
    // The bias of the printed form is ‖H̄u‖² − (uᵀH̄u)² ≥ 0.
    assert!(printed.iter().zip(&unbiased).all(|(p, u)| p > u));
    // The sub-sample stops after max_examples (whole batches).
    let sub =
        hessian_variance_along(&objective, vs.to_vec(), 100, VarianceEstimator::Unbiased).unwrap();
    assert_eq!((sub.batches, sub.examples), (2, 140));
    // Seeded variant is deterministic; zero vectors are refused.
    let cfg = HessianVarianceConfig::new().with_seed(3);
    assert_eq!(
        hessian_variance(&objective, &cfg).unwrap(),
        hessian_variance(&objective, &cfg).unwrap()
    );
    assert!(hessian_variance(&objective, &cfg.clone().with_vectors(0)).is_err());
}

/// A layer's block of the Hessian: `Block` products equal the dense Hessian's diagonal block
/// times `v` (two vectors), the block is symmetric, and its spectrum interlaces the full one.
#[test]
fn block_operator_is_the_dense_diagonal_block() {
    let objective = mlp_objective(Activation::Tanh);
    let full = dense_matrix(&objective.hessian(), DenseReferenceConfig::default()).unwrap();
    let layout = objective.layout();
    let name = &layout.blocks()[2].name;
    let range = layout.blocks()[2].range();
    let block = Block::named(objective.hessian(), layout, name).unwrap();
    assert_eq!(block.dim(), range.len());
    let sub = full
        .view((range.start, range.start), (range.len(), range.len()))
        .into_owned();
    let u = to_vec(&random(range.len(), 3));
    for seed in [1, 2] {
        let v = random(range.len(), seed);
        let hv = to_vec(&block.apply(&v).unwrap());
        let expected = &sub * DVector::from_vec(to_vec(&v));
        assert_rel_close(&hv, expected.as_slice(), DENSE_TOL, "block product");
        let hu = to_vec(&block.apply(&random(range.len(), 3)).unwrap());
        let (uhv, vhu) = (
            u.iter().zip(&hv).map(|(a, b)| a * b).sum::<f64>(),
            to_vec(&v).iter().zip(&hu).map(|(a, b)| a * b).sum::<f64>(),
        );
        assert!(
            (uhv - vhu).abs() <= DENSE_TOL * uhv.abs().max(1.0),
            "symmetry"
        );
    }
    let (all, part) = (dense_spectrum(&full), dense_spectrum(&sub));
    assert!(part.eigenvalues[0] >= all.eigenvalues[0] - 1e-10);
    assert!(part.eigenvalues.last().unwrap() <= &(all.eigenvalues.last().unwrap() + 1e-10));
    let Err(e) = Block::named(objective.hessian(), layout, "nope") else {
        panic!("an unknown block name is an error")
    };
    assert!(
        e.to_string().contains("unknown parameter block `nope`"),
        "{e}"
    );
    assert!(e.to_string().contains(name.as_str()), "{e}");
    assert!(Block::new(objective.hessian(), 0..objective.dim() + 1).is_err());
}
