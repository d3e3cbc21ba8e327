//! Softmax regression on optdigits (P = 650): the reference problem. Every curvature operator
//! against the analytic Hessian and exact dense eigenvalues, in f64.

use burn::backend::NdArray;
use burn::tensor::Tensor;
use curvature_core::testing::{assert_rel_close, dot, from_slice, relative_error, to_vec};
use curvature_core::*;
use curvature_data::{ClassificationData, optdigits};
use curvature_nets::{LogisticRegression, LogisticRegressionConfig};
use nalgebra::DMatrix;

use crate::softmax_reference::Softmax;

type B = NdArray<f64>;

/// Exact products vs the analytic Hessian: both are f64 sums over 1 797 examples, so they
/// agree to accumulated rounding (~1e-14); 1e-10 is the bound.
const EXACT_TOL: f64 = 1e-10;
/// Symmetry ⟨u,Hv⟩ = ⟨Hu,v⟩: f64 rounding of two 650-term inner products.
const SYMMETRY_TOL: f64 = 1e-12;
/// Lanczos extremal Ritz values vs dense eigenvalues, relative to λ_max (the bound).
const LANCZOS_TOL: f64 = 1e-8;

fn setup() -> (Objective<B, LogisticRegression<B>, 2>, ClassificationData) {
    let device = Default::default();
    let data = optdigits().unwrap();
    let model = LogisticRegressionConfig::optdigits()
        .init::<B>(&device)
        .unwrap();
    // Batches of 256 (the last one smaller) exercise accumulation over uneven batches.
    let mut objective = Objective::new(
        model,
        Loss::CrossEntropy,
        data.batches::<B, 2>(256, &device).unwrap(),
    )
    .unwrap();
    // Move away from the uniform-softmax initialisation with a few gradient steps.
    for _ in 0..20 {
        let (_, g) = objective.gradient().unwrap();
        objective
            .set_params(objective.params() - g.mul_scalar(2.0))
            .unwrap();
    }
    (objective, data)
}

/// `H = (1/N) Σ_i (diag(p_i) − p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ` in the layout `[weight (K×d, row-major), bias (K)]`.
fn analytic_hessian(
    objective: &Objective<B, LogisticRegression<B>, 2>,
    data: &ClassificationData,
) -> DMatrix<f64> {
    let all: Vec<usize> = (0..data.len()).collect();
    analytic_mean_hessian(&to_vec(&objective.params()), data, &all)
}

/// Softmax regression on optdigits: 10 classes, 64 pixels.
const SOFTMAX: Softmax = Softmax {
    classes: 10,
    features: 64,
};

/// The mean over `examples` of the analytic per-example Hessians
/// `(diag(p) − p pᵀ) ⊗ x̃ x̃ᵀ`, dense.
fn analytic_mean_hessian(w: &[f64], data: &ClassificationData, examples: &[usize]) -> DMatrix<f64> {
    let (k, d) = (SOFTMAX.classes, SOFTMAX.features);
    let n = examples.len() as f64;
    let mut h = DMatrix::<f64>::zeros(SOFTMAX.params(), SOFTMAX.params());
    for &i in examples {
        let (p, x) = SOFTMAX.probabilities(w, data, i);
        for c in 0..k {
            for c2 in 0..k {
                let a_cc = if c == c2 { p[c] } else { 0.0 } - p[c] * p[c2];
                if a_cc == 0.0 {
                    continue;
                }
                for a in 0..=d {
                    let xa = a_cc * x[a] / n;
                    if xa == 0.0 {
                        continue;
                    }
                    for b in 0..=d {
                        h[(SOFTMAX.index(c, a), SOFTMAX.index(c2, b))] += xa * x[b];
                    }
                }
            }
        }
    }
    h
}

/// `‖(diag(p) − p pᵀ) ⊗ x̃ x̃ᵀ‖²_F = ‖diag(p) − p pᵀ‖²_F ‖x̃‖⁴` of example `i`.
fn analytic_per_example_frobenius2(w: &[f64], data: &ClassificationData, i: usize) -> f64 {
    let (p, x) = SOFTMAX.probabilities(w, data, i);
    let a2: f64 = (0..p.len())
        .flat_map(|c| (0..p.len()).map(move |c2| (c, c2)))
        .map(|(c, c2)| (if c == c2 { p[c] } else { 0.0 } - p[c] * p[c2]).powi(2))
        .sum();
    a2 * x.iter().map(|v| v * v).sum::<f64>().powi(2)
}

fn random(seed: u64) -> Tensor<B, 1> {
    gaussian_vector::<B>(650, seed, &Default::default())
}

#[test]
fn exact_hvp_equals_the_analytic_softmax_hessian() {
    let (objective, data) = setup();
    assert_eq!(objective.dim(), 650);
    let h = analytic_hessian(&objective, &data);
    for seed in [1, 2] {
        let v = random(seed);
        let hv = to_vec(&objective.hessian().apply(&v).unwrap());
        let expected = h.clone() * nalgebra::DVector::from_vec(to_vec(&v));
        assert_rel_close(&hv, expected.as_slice(), EXACT_TOL, "Hv vs analytic H·v");
    }
    // The dense Hessian formed column by column from HVPs is the analytic one.
    let dense = dense_matrix(&objective.hessian(), DenseReferenceConfig::default()).unwrap();
    let err = (&dense - &h).norm() / h.norm();
    assert!(err <= EXACT_TOL, "dense Hessian vs analytic: {err:.3e}");
}

#[test]
fn hessian_is_symmetric_and_deterministic() {
    let (objective, _) = setup();
    let (u, v) = (random(3), random(4));
    let hessian = objective.hessian();
    let (hu, hv) = (
        to_vec(&hessian.apply(&u).unwrap()),
        to_vec(&hessian.apply(&v).unwrap()),
    );
    let (a, b) = (dot(&to_vec(&u), &hv), dot(&hu, &to_vec(&v)));
    assert!(
        (a - b).abs() <= SYMMETRY_TOL * a.abs().max(b.abs()),
        "⟨u,Hv⟩ = {a} vs ⟨Hu,v⟩ = {b}"
    );
    let again = to_vec(&hessian.apply(&v).unwrap());
    assert_eq!(hv, again, "two applications must agree bit for bit");
}

#[test]
fn ggn_equals_the_hessian_for_softmax_regression() {
    let (objective, data) = setup();
    let h = analytic_hessian(&objective, &data);
    for seed in [5, 6] {
        let v = random(seed);
        let gv = to_vec(&objective.ggn().apply(&v).unwrap());
        let expected = h.clone() * nalgebra::DVector::from_vec(to_vec(&v));
        assert_rel_close(
            &gv,
            expected.as_slice(),
            EXACT_TOL,
            "Gv vs analytic H·v (G = H for a linear model)",
        );
        let residual = to_vec(&objective.hessian_minus_ggn().apply(&v).unwrap());
        assert!(
            testing::norm(&residual) <= EXACT_TOL * testing::norm(&gv),
            "(H − G)v should vanish"
        );
    }
}

#[test]
fn lanczos_extremal_ritz_values_match_dense_eigenvalues() {
    let (objective, data) = setup();
    let eig = dense_spectrum(&analytic_hessian(&objective, &data)).eigenvalues;
    let lambda_max = *eig.last().unwrap();
    // λ_max is an isolated outlier and converges in a few dozen steps; λ_min = 0 (the null
    // space) sits next to a dense cluster of eigenvalues of order 1e-7, so it needs more steps.
    let r = lanczos(&objective.hessian(), &LanczosConfig::new().with_steps(400)).unwrap();
    eprintln!(
        "smallest dense eigenvalues {:?}; smallest Ritz values {:?}",
        &eig[..3],
        &r.ritz_values[..3]
    );
    for (k, pair) in r.top_k(5).iter().enumerate() {
        let exact = eig[eig.len() - 1 - k];
        assert!(
            (pair.value - exact).abs() <= LANCZOS_TOL * lambda_max,
            "top {k}: {} vs {exact}",
            pair.value
        );
    }
    let bottom = r.bottom_k(1)[0].value;
    assert!(
        (bottom - eig[0]).abs() <= LANCZOS_TOL * lambda_max,
        "λ_min: {bottom} vs {}",
        eig[0]
    );
    // The top Ritz vector is an eigenvector: ‖Hx − θx‖ small.
    let top = &r.top_k(1)[0];
    let x = top.vector.clone().unwrap();
    let res = to_vec(&(objective.hessian().apply(&x).unwrap() - x.clone().mul_scalar(top.value)));
    assert!(
        testing::norm(&res) <= 1e-7 * lambda_max,
        "residual {}",
        testing::norm(&res)
    );
}

#[test]
fn slq_moments_match_dense_traces() {
    let (objective, data) = setup();
    let eig = dense_spectrum(&analytic_hessian(&objective, &data)).eigenvalues;
    let p = eig.len() as f64;
    let tr1: f64 = eig.iter().sum();
    let tr2: f64 = eig.iter().map(|l| l * l).sum();
    let tr4: f64 = eig.iter().map(|l| l.powi(4)).sum();
    let nv = 20;
    let config = SlqConfig::new()
        .with_num_vectors(nv)
        .with_lanczos(LanczosConfig::new().with_steps(30));
    let (density, _) = slq(&objective.hessian(), &config).unwrap();
    // With m ≥ 2 steps the quadrature of λ and λ² is exact for each vector, so the only error
    // is the sampling error of P·vᵀAv for v uniform on the sphere:
    // Var = 2P/(P+2) · (Tr A² − (Tr A)²/P). Tolerance: 4 standard errors over n_v vectors.
    let sd =
        |t1: f64, t2: f64| (2.0 * p / (p + 2.0) * (t2 - t1 * t1 / p)).sqrt() / (nv as f64).sqrt();
    let (t1, _) = density.trace();
    let (t2, _) = density.trace_of_square();
    assert!(
        (t1 - tr1).abs() <= 4.0 * sd(tr1, tr2),
        "Tr H: SLQ {t1} vs dense {tr1} (4σ = {})",
        4.0 * sd(tr1, tr2)
    );
    assert!(
        (t2 - tr2).abs() <= 4.0 * sd(tr2, tr4),
        "Tr H²: SLQ {t2} vs dense {tr2} (4σ = {})",
        4.0 * sd(tr2, tr4)
    );
    // The summary's Hutchinson estimate is within 4 of its own standard errors.
    let s = spectrum(
        &objective.hessian(),
        &SpectrumConfig::new().with_hutchinson_samples(100),
    )
    .unwrap();
    let (th, se) = (
        s.trace_hutchinson.unwrap(),
        s.trace_hutchinson_stderr.unwrap(),
    );
    assert!(
        (th - tr1).abs() <= 4.0 * se,
        "Hutchinson {th} ± {se} vs {tr1}"
    );
    assert!((s.lambda_max - eig[eig.len() - 1]).abs() <= LANCZOS_TOL * eig[eig.len() - 1]);
    // Softmax regression has a null space (class shift invariance, constant-zero pixels) and
    // many more eigenvalues within the near-zero band |λ| ≤ zero_tolerance · λ_max (1e-3) the
    // degenerate mass measures: against the exact fraction of eigenvalues in that band.
    let band = SpectrumConfig::new().zero_tolerance * eig[eig.len() - 1];
    let zero_fraction = eig.iter().filter(|l| l.abs() <= band).count() as f64 / p;
    let null_fraction = eig
        .iter()
        .filter(|l| l.abs() < 1e-10 * eig[eig.len() - 1])
        .count() as f64
        / p;
    assert!(
        (s.degenerate_mass - zero_fraction).abs() < 0.15,
        "degenerate mass {} vs exact {zero_fraction} in the band (null space {null_fraction})",
        s.degenerate_mass
    );
}

#[test]
fn l2_term_adds_mu_times_identity() {
    let (objective, _) = setup();
    let w = objective.params();
    let mu = 0.3;
    let device = Default::default();
    let data = optdigits().unwrap();
    let mut with_l2 = Objective::new(
        objective.model(),
        Loss::CrossEntropy,
        data.batches::<B, 2>(256, &device).unwrap(),
    )
    .unwrap()
    .with_l2(mu)
    .unwrap();
    with_l2.set_params(w.clone()).unwrap();
    let v = random(7);
    let expected: Vec<f64> = to_vec(&objective.hvp(&v).unwrap())
        .iter()
        .zip(to_vec(&v))
        .map(|(h, v)| h + mu * v)
        .collect();
    assert_rel_close(
        &to_vec(&with_l2.hvp(&v).unwrap()),
        &expected,
        EXACT_TOL,
        "Hessian with L2",
    );
    let (l0, g0) = objective.gradient().unwrap();
    let (l1, g1) = with_l2.gradient().unwrap();
    let wv = to_vec(&w);
    assert!((l1 - l0 - 0.5 * mu * dot(&wv, &wv)).abs() < 1e-12 * l1.abs());
    let expected: Vec<f64> = to_vec(&g0)
        .iter()
        .zip(&wv)
        .map(|(g, w)| g + mu * w)
        .collect();
    assert_rel_close(&to_vec(&g1), &expected, 1e-12, "gradient with L2");
    assert!(
        Objective::new(
            objective.model(),
            Loss::CrossEntropy,
            data.batches::<B, 2>(256, &device).unwrap()
        )
        .unwrap()
        .with_l2(-1.0)
        .is_err()
    );
}

#[test]
fn finite_differences_are_within_their_documented_error() {
    let (objective, _) = setup();
    let v = random(8);
    let exact = to_vec(&objective.hvp(&v).unwrap());
    // Default step in f64: relative error O(ε^{2/3}) ≈ 1e-10–1e-9 for smooth models.
    let fd = objective.finite_difference_hessian();
    assert!(
        fd.step() > 1e-6 && fd.step() < 1e-4,
        "default f64 step {}",
        fd.step()
    );
    let e = relative_error(&to_vec(&fd.apply(&v).unwrap()), &exact);
    assert!(e < 1e-8, "FD (default step) relative error {e:.3e}");
    // A large step is dominated by truncation error O(h²).
    let coarse = FiniteDifferenceHessian::with_step(&objective, 0.5).unwrap();
    assert!(relative_error(&to_vec(&coarse.apply(&v).unwrap()), &exact) > 1e-6);
    assert!(FiniteDifferenceHessian::with_step(&objective, -1.0).is_err());
}

#[test]
fn dense_reference_refuses_large_operators() {
    let (objective, _) = setup();
    let e = dense_matrix(&objective.hessian(), DenseReferenceConfig { max_dim: 100 }).unwrap_err();
    assert!(
        matches!(
            e,
            CurvatureError::TooLarge {
                dim: 650,
                limit: 100
            }
        ),
        "{e}"
    );
}

#[test]
fn vectors_of_the_wrong_length_are_rejected() {
    let (objective, _) = setup();
    let short = from_slice::<B>(&[1.0; 649], &Default::default());
    for result in [
        objective.hessian().apply(&short),
        objective.ggn().apply(&short),
        objective.finite_difference_hessian().apply(&short),
    ] {
        assert!(matches!(
            result,
            Err(CurvatureError::DimensionMismatch {
                expected: 650,
                got: 649,
                ..
            })
        ));
    }
}

/// The Hessian variance against dense analytic Hessians (independent: per-example Hessians
/// `(diag(p) − p pᵀ) ⊗ x̃ x̃ᵀ` formed in f64 from the softmax, not from autodiff):
/// * averaged over many vectors, the unbiased estimator matches `P⁻¹ Σ_i w_i ‖H_i − H̄‖²_F` of
///   the dense batch Hessians within its Monte-Carlo error, and its printed standard error is
///   the exact one of the uniform-sphere average, `sqrt(2(μ₂ − μ₁²)/((P + 2) n_v))` for
///   `A = Σ_i w_i (H_i − H̄)²`;
/// * a sub-sample in one batch, or the same batch repeated, gives 0 to round-off;
/// * over random partitions into batches of 25 and of 100, the per-example variance
///   `V_batch · S/(n − 1)` matches `s²/P = (S − 1)⁻¹ P⁻¹ Σ_j ‖h_j − H̄‖²_F`: the `1/B − 1/S`
///   scaling holds.
#[test]
fn hessian_variance_matches_the_analytic_batch_and_per_example_variance() {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let device = Default::default();
    let (trained, data) = setup();
    let w = to_vec(&trained.params());
    let s = 400;
    let sub = data.take(s);
    let p_dim = 650;
    let objective_on = |batches| {
        let model = LogisticRegressionConfig::optdigits()
            .init::<B>(&device)
            .unwrap();
        let mut o = Objective::new(model, Loss::CrossEntropy, batches).unwrap();
        o.set_params(trained.params()).unwrap();
        o
    };

    // One partition, batches of 64 (6 × 64 + 16: a ragged last batch).
    let objective = objective_on(sub.batches::<B, 2>(64, &device).unwrap());
    let all: Vec<usize> = (0..s).collect();
    let mean = analytic_mean_hessian(&w, &sub, &all);
    let mut a = DMatrix::<f64>::zeros(p_dim, p_dim);
    let mut exact = 0.0;
    for chunk in all.chunks(64) {
        let x = analytic_mean_hessian(&w, &sub, chunk) - &mean;
        let weight = chunk.len() as f64 / s as f64;
        exact += weight * x.norm_squared() / p_dim as f64;
        a += weight * &x * &x;
    }
    let n_v = 100;
    let got = hessian_variance(
        &objective,
        &HessianVarianceConfig::new().with_vectors(n_v).with_seed(11),
    )
    .unwrap();
    let se = got.batch_variance_stderr.unwrap();
    eprintln!("V_batch {} ± {se} vs dense {exact}", got.batch_variance);
    assert!(
        (got.batch_variance - exact).abs() <= 4.0 * se,
        "V_batch {} ± {se} vs dense {exact}",
        got.batch_variance
    );
    assert!(
        se < 0.1 * exact,
        "the test must be able to fail: se {se} vs {exact}"
    );
    let (mu1, mu2) = (a.trace() / p_dim as f64, a.norm_squared() / p_dim as f64);
    let exact_se = (2.0 * (mu2 - mu1 * mu1) / ((p_dim + 2) as f64 * n_v as f64)).sqrt();
    assert!((mu1 - exact).abs() <= 1e-12 * exact);
    // The sample standard error of 100 draws is within ±30 % of the true one (its own
    // relative spread is ≈ 1/√(2·99) ≈ 7 %, times the kurtosis of vᵀAv).
    assert!(
        (se / exact_se - 1.0).abs() < 0.3,
        "printed standard error {se} vs exact {exact_se}"
    );
    // S/(n − 1) with n = 7 batches.
    assert!(
        (got.per_example_variance.unwrap() - got.batch_variance * 400.0 / 6.0).abs()
            <= 1e-12 * exact * 100.0
    );

    // No noise: one batch, or one batch repeated three times.
    let whole = sub.batches::<B, 2>(s, &device).unwrap();
    let one =
        hessian_variance(&objective_on(whole.clone()), &HessianVarianceConfig::new()).unwrap();
    assert_eq!(one.batch_variance, 0.0);
    assert_eq!(one.per_example_variance, None);
    let printed = hessian_variance(
        &objective_on(whole.clone()),
        &HessianVarianceConfig::new().with_estimator(VarianceEstimator::AsPrinted),
    )
    .unwrap();
    assert!(
        printed.batch_variance > 1e3 * exact * f64::EPSILON,
        "Algorithm 1 as printed is biased"
    );
    let repeated = vec![whole[0].clone(), whole[0].clone(), whole[0].clone()];
    let same = hessian_variance(&objective_on(repeated), &HessianVarianceConfig::new()).unwrap();
    assert!(
        same.batch_variance.abs() <= 1e-12 * same.mean_squared_norm,
        "identical batches: {} (Σ w‖H_i v‖² = {})",
        same.batch_variance,
        same.mean_squared_norm
    );

    // Per-example variance s²/P from the per-example Frobenius norms: Σ_j ‖h_j − H̄‖² =
    // Σ_j ‖h_j‖² − S ‖H̄‖².
    let sum_h2: f64 = (0..s)
        .map(|i| analytic_per_example_frobenius2(&w, &sub, i))
        .sum();
    let s2 = (sum_h2 - s as f64 * mean.norm_squared()) / ((s - 1) as f64 * p_dim as f64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for batch in [25, 100] {
        let estimates: Vec<f64> = (0..16)
            .map(|r| {
                let mut order: Vec<usize> = (0..s).collect();
                order.shuffle(&mut rng);
                let o = objective_on(sub.select(&order).batches::<B, 2>(batch, &device).unwrap());
                let config = HessianVarianceConfig::new().with_vectors(20).with_seed(r);
                hessian_variance(&o, &config)
                    .unwrap()
                    .per_example_variance
                    .unwrap()
            })
            .collect();
        let m = estimates.iter().sum::<f64>() / 16.0;
        let sd = (estimates.iter().map(|e| (e - m).powi(2)).sum::<f64>() / 15.0).sqrt();
        let se = sd / 4.0;
        eprintln!("batches of {batch}: per-example {m} ± {se} vs s²/P {s2}");
        assert!(
            (m - s2).abs() <= 4.0 * se,
            "batches of {batch}: per-example variance {m} ± {se} vs analytic s²/P = {s2}"
        );
        // Small enough to catch S/n in place of S/(n − 1) (25 % at batches of 100).
        assert!(
            se < 0.06 * s2,
            "batches of {batch}: se {se} too large to test against {s2}"
        );
    }
}
