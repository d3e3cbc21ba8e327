//! Softmax regression on optdigits (P = 650): the reference problem. Every curvature operator
//! against the analytic Hessian and exact dense eigenvalues, in f64.

use burn::backend::NdArray;
use burn::tensor::Tensor;
use curvature::core::testing::{assert_rel_close, dot, from_slice, relative_error, to_vec};
use curvature::core::*;
use curvature::data::{ClassificationData, optdigits};
use curvature::nets::{LogisticRegression, LogisticRegressionConfig};
use nalgebra::DMatrix;

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
    let (k, d) = (10, 64);
    let w = to_vec(&objective.params());
    let n = data.len();
    let p_dim = k * (d + 1);
    let idx = |class: usize, feature: usize| {
        if feature < d {
            class * d + feature
        } else {
            k * d + class
        }
    };
    let mut h = DMatrix::<f64>::zeros(p_dim, p_dim);
    for i in 0..n {
        let x: Vec<f64> = data.inputs[i * d..(i + 1) * d]
            .iter()
            .map(|&v| v as f64)
            .chain([1.0])
            .collect();
        let z: Vec<f64> = (0..k)
            .map(|c| (0..=d).map(|a| w[idx(c, a)] * x[a]).sum())
            .collect();
        let zmax = z.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = z.iter().map(|z| (z - zmax).exp()).collect();
        let s: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|e| e / s).collect();
        for c in 0..k {
            for c2 in 0..k {
                let a_cc = if c == c2 { p[c] } else { 0.0 } - p[c] * p[c2];
                if a_cc == 0.0 {
                    continue;
                }
                for a in 0..=d {
                    let xa = a_cc * x[a] / n as f64;
                    if xa == 0.0 {
                        continue;
                    }
                    for b in 0..=d {
                        h[(idx(c, a), idx(c2, b))] += xa * x[b];
                    }
                }
            }
        }
    }
    h
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
    // Softmax regression has a null space (class shift invariance, constant-zero pixels).
    let zero_fraction = eig
        .iter()
        .filter(|l| l.abs() < 1e-10 * eig[eig.len() - 1])
        .count() as f64
        / p;
    assert!(
        (s.degenerate_mass - zero_fraction).abs() < 0.15,
        "degenerate mass {} vs exact {zero_fraction}",
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
