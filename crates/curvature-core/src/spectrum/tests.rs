use super::*;
use crate::lanczos::LanczosConfig;
use crate::operator::{DenseOperator, dense_spectrum};
use burn::backend::NdArray;
use nalgebra::{DMatrix, DVector};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

type B = NdArray<f64>;

fn gaussian(rows: usize, cols: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    DMatrix::from_fn(rows, cols, |_, _| rng.sample(StandardNormal))
}

/// Random orthonormal matrix (QR of a Gaussian matrix).
fn orthonormal(n: usize, seed: u64) -> DMatrix<f64> {
    gaussian(n, n, seed).qr().q()
}

/// `Q diag(values) Qᵀ` with a random orthonormal `Q`, and its operator.
fn rotated(values: Vec<f64>, seed: u64) -> (DMatrix<f64>, DenseOperator<B>) {
    let q = orthonormal(values.len(), seed);
    let a = &q * DMatrix::from_diagonal(&DVector::from_vec(values)) * q.transpose();
    let op = DenseOperator::<B>::from_nalgebra(&a, &Default::default()).unwrap();
    (a, op)
}

fn config(steps: usize, vectors: usize) -> SpectrumConfig {
    SpectrumConfig::new().with_slq(
        SlqConfig::new()
            .with_lanczos(LanczosConfig::new().with_steps(steps))
            .with_num_vectors(vectors),
    )
}

/// Spiked Wishart: `W = XᵀX/n + Σ_k s_k u_k u_kᵀ`, `X: n × p` Gaussian. The bulk follows
/// Marchenko–Pastur on `[(1 − √(p/n))², (1 + √(p/n))²] = [0.086, 2.91]` for p/n = ½; the
/// five spikes sit far above it.
#[test]
fn spiked_gram_matrix_outliers_and_bulk_mass() {
    let (p, n) = (400, 800);
    let x = gaussian(n, p, 1);
    let mut w = x.transpose() * &x / n as f64;
    let u = orthonormal(p, 2);
    let spikes = [10.0, 14.0, 18.0, 24.0, 30.0];
    for (k, s) in spikes.iter().enumerate() {
        let uk = u.column(k);
        w += *s * uk * uk.transpose();
    }
    let dense = dense_spectrum(&w);
    let op = DenseOperator::<B>::from_nalgebra(&w, &Default::default()).unwrap();
    let summary = spectrum(&op, &config(80, 8)).unwrap();
    assert!(
        summary.outlier_check.is_reliable(),
        "{:?}",
        summary.outlier_check
    );
    assert_eq!(
        summary.outliers,
        spikes.len(),
        "outliers = number of spikes; Ritz values {:?}",
        &summary.ritz_values[summary.ritz_values.len() - 8..]
    );
    // Outlier Ritz values equal the dense top eigenvalues (they converge first).
    let top_dense = &dense.eigenvalues[p - 1];
    assert!(
        (summary.lambda_max - top_dense).abs() <= 1e-8 * top_dense,
        "{} vs {top_dense}",
        summary.lambda_max
    );
    // Bulk mass: all weight below the spikes (≥ 10; the bulk ends near 2.9); each outlier
    // carries ≈ 1/P. (The fitted MP edge `bulk_edge` may sit a Tracy–Widom scale below the
    // largest bulk eigenvalue, so it does not split the nodes here.)
    let bulk_mass: f64 = summary
        .ritz_values
        .iter()
        .zip(&summary.ritz_weights)
        .filter(|(t, _)| **t < 5.0)
        .map(|(_, w)| w)
        .sum();
    let expected = 1.0 - spikes.len() as f64 / p as f64;
    // Tolerance: the outlier weights are (uᵀv)² ~ χ²₁/P; averaged over 8 vectors their sum
    // stays within 0.01 of its mean 5/P with overwhelming probability.
    assert!(
        (bulk_mass - expected).abs() < 0.01,
        "bulk mass {bulk_mass} vs {expected}"
    );
    // The bulk edge sits at the largest non-spike eigenvalue (MP edge), within 5 %.
    let edge = dense.eigenvalues[p - 1 - spikes.len()];
    assert!(
        (summary.bulk_edge - edge).abs() < 0.05 * edge,
        "bulk edge {} vs {edge}",
        summary.bulk_edge
    );
}

/// A known indefinite spectrum: half zeros, a sixth in [−2, −1], a third in [1, 3].
#[test]
fn degenerate_and_negative_mass_of_a_known_spectrum() {
    let p = 600;
    let values: Vec<f64> = (0..p)
        .map(|i| match i {
            i if i < 300 => 0.0,
            i if i < 400 => -2.0 + (i - 300) as f64 / 100.0,
            i => 1.0 + 2.0 * (i - 400) as f64 / 200.0,
        })
        .collect();
    let (a, op) = rotated(values, 5);
    let s = spectrum(&op, &config(60, 10)).unwrap();
    // Each vector sees mass χ²-fluctuations of order sqrt(2/P) ≈ 0.06 per group; averaged
    // over 10 vectors ≈ 0.02; tolerance 0.06 (3σ).
    assert!(
        (s.degenerate_mass - 0.5).abs() < 0.06,
        "degenerate mass {}",
        s.degenerate_mass
    );
    // The indefinite rule also takes the second-closest node, here an edge node of the
    // ±1 clusters with weight ≈ 1/m_cluster, which pulls the location off 0 slightly.
    assert!(
        s.degenerate_location.abs() < 0.02,
        "{}",
        s.degenerate_location
    );
    assert!(
        (s.negative_mass - 1.0 / 6.0).abs() < 0.06,
        "negative mass {}",
        s.negative_mass
    );
    assert!(s.negative_count > 0);
    // The extremes sit at the edges of densely packed clusters (spacing 0.01), where 60
    // steps converge to a fraction of the spacing, not to rounding.
    assert!(
        (s.lambda_min + 2.0).abs() < 1e-3 && (s.lambda_max - 2.99).abs() < 1e-3,
        "[{}, {}]",
        s.lambda_min,
        s.lambda_max
    );
    // Trace and Frobenius norm against their exact values −150 + 400 = 250 and the sum of squares.
    let exact_tr = a.trace();
    let exact_fro = a.norm();
    assert!(
        (s.trace - exact_tr).abs() < 4.0 * s.trace_stderr + 1e-9,
        "trace {} ± {:?} vs {exact_tr}",
        s.trace,
        s.trace_stderr
    );
    assert!(
        (s.frobenius - exact_fro).abs() < 0.05 * exact_fro,
        "frobenius {} vs {exact_fro}",
        s.frobenius
    );
    let json: serde_json::Value = serde_json::from_str(&s.to_json().unwrap()).unwrap();
    for key in [
        "num_params",
        "lanczos_steps",
        "ritz_values",
        "ritz_weights",
        "lambda_max",
        "lambda_min",
        "trace",
        "trace_stderr",
        "frobenius",
        "degenerate_mass",
        "negative_mass",
        "negative_count",
        "outliers",
    ] {
        assert!(json.get(key).is_some(), "JSON summary lacks `{key}`");
    }
}

/// Spiked covariance (Baik, Ben Arous & Péché 2005): rows of `X` (n × p) drawn from
/// `N(0, Σ)` with `Σ = I + Σ_k (ℓ_k − 1) u_k u_kᵀ`, `W = XᵀX/n`, `q = p/n = ½`. A spike
/// separates from the Marchenko–Pastur bulk `[0.086, 2.914]` exactly when `ℓ > 1 + √q =
/// 1.707`, at `ℓ(1 + q/(ℓ − 1))`: here `ℓ = 3, 5` (outliers at 3.75 and 5.63) are above the
/// threshold and `ℓ = 1.3, 1.5` below it (they stick to the edge). The RMT rule finds two
/// outliers; the dense eigenvalues confirm where they are (independent of the rule).
#[test]
fn marchenko_pastur_rule_finds_spikes_above_the_bbp_threshold_only() {
    let (p, n) = (400, 800);
    let u = orthonormal(p, 12);
    let spikes: [f64; 4] = [3.0, 5.0, 1.3, 1.5];
    let mut sigma_half = DMatrix::<f64>::identity(p, p);
    for (k, l) in spikes.iter().enumerate() {
        let uk = u.column(k);
        sigma_half += (l.sqrt() - 1.0) * uk * uk.transpose();
    }
    let x = gaussian(n, p, 13) * &sigma_half;
    let w = x.transpose() * &x / n as f64;
    let dense = dense_spectrum(&w);
    let q: f64 = 0.5;
    let edge = (1.0 + q.sqrt()).powi(2);
    // The dense spectrum: two eigenvalues well above the edge, the third at the edge.
    let top = |k: usize| dense.eigenvalues[p - 1 - k];
    assert!(
        top(0) > 5.0 && top(1) > 3.4 && top(2) < edge + 0.15,
        "{:?}",
        (top(0), top(1), top(2))
    );
    let op = DenseOperator::<B>::from_nalgebra(&w, &Default::default()).unwrap();
    let s = spectrum(&op, &config(80, 4)).unwrap();
    assert_eq!(s.outlier_rule, OutlierRule::default());
    assert!(s.outlier_check.is_reliable(), "{:?}", s.outlier_check);
    assert_eq!(
        s.outliers,
        2,
        "spikes above BBP only; Ritz values {:?}, edge {}",
        &s.ritz_values[s.ritz_values.len() - 6..],
        s.bulk_edge
    );
    assert!(
        (s.bulk_edge - edge).abs() < 0.1 * edge,
        "fitted edge {} vs {edge}",
        s.bulk_edge
    );
    // Below the threshold only: no outliers.
    let mut sub = DMatrix::<f64>::identity(p, p);
    for k in 0..2 {
        let uk = u.column(k);
        sub += (1.4f64.sqrt() - 1.0) * uk * uk.transpose();
    }
    let x = gaussian(n, p, 14) * &sub;
    let w = x.transpose() * &x / n as f64;
    let op = DenseOperator::<B>::from_nalgebra(&w, &Default::default()).unwrap();
    let s = spectrum(&op, &config(80, 4)).unwrap();
    assert!(s.outlier_check.is_reliable(), "{:?}", s.outlier_check);
    assert_eq!(
        s.outliers, 0,
        "ℓ = 1.4 < 1.707: no outliers; edge {}",
        s.bulk_edge
    );
    // The gap rule is still available and labelled.
    let gap = spectrum(
        &op,
        &config(80, 4).with_outliers(OutlierRule::Gap { factor: 10.0 }),
    )
    .unwrap();
    assert!(gap.to_string().contains("gap rule"));
}

/// A degenerate mass split over several Ritz values: half the eigenvalues spread over
/// `[−2e-3, 2e-3]`, a sixth in `[−2, −1]`, a third in `[1, 3]`. The near-zero cluster takes
/// all nodes in `±zero_tolerance·max|θ| = ±3e-3`, so none of the split mass is counted as
/// negative; with only the two nearest nodes it would be.
#[test]
fn a_degenerate_mass_split_over_several_nodes_is_not_negative_mass() {
    let p = 600;
    let values: Vec<f64> = (0..p)
        .map(|i| match i {
            i if i < 300 => -2e-3 + 4e-3 * i as f64 / 299.0,
            i if i < 400 => -2.0 + (i - 300) as f64 / 100.0,
            i => 1.0 + 2.0 * (i - 400) as f64 / 200.0,
        })
        .collect();
    let (_, op) = rotated(values, 15);
    let s = spectrum(&op, &config(100, 4)).unwrap();
    let near_zero = s.ritz_values.iter().filter(|t| t.abs() <= 3e-3).count();
    assert!(
        near_zero >= 3 * 4,
        "the mass must be split: {near_zero} nodes near 0 over 4 runs"
    );
    assert!(
        (s.degenerate_mass - 0.5).abs() < 4.0 * s.degenerate_mass_stderr + 0.02,
        "{}",
        s.degenerate_mass
    );
    assert!(
        (s.negative_mass - 1.0 / 6.0).abs() < 4.0 * s.negative_mass_stderr + 0.02,
        "negative mass {} ± {}",
        s.negative_mass,
        s.negative_mass_stderr
    );
    // The old rule (two nearest nodes only) counts part of the split mass as negative.
    let old = spectrum(&op, &config(100, 4).with_zero_tolerance(0.0)).unwrap();
    assert!(
        old.negative_mass > s.negative_mass + 0.05,
        "{} vs {}",
        old.negative_mass,
        s.negative_mass
    );
}

/// The default configuration's error bars are honest: over 100 seeds the trace and the
/// Frobenius norm fall within one printed standard error of the exact values (dense `Tr A`,
/// `‖A‖_F`) about 68 % of the time and within three nearly always. The operator has a
/// Hessian-like spectrum: 90 % near zero, a bulk, three large outliers.
#[test]
fn default_error_bars_cover_the_exact_trace_and_frobenius_norm() {
    let p = 300;
    let values: Vec<f64> = (0..p)
        .map(|i| match i {
            i if i < 270 => 1e-3 * ((i % 7) as f64 - 3.0),
            i if i < 297 => 0.5 + (i - 270) as f64 / 27.0,
            i => 20.0 * (i - 296) as f64,
        })
        .collect();
    let (_, op) = rotated(values.clone(), 16);
    let exact_tr: f64 = values.iter().sum();
    let exact_fro = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    let (mut tr1, mut tr3, mut fr1, mut fr3) = (0, 0, 0, 0);
    let seeds = 100;
    for seed in 0..seeds {
        let mut c = SpectrumConfig::new();
        c.slq.lanczos = c.slq.lanczos.clone().with_steps(20).with_seed(seed);
        assert_eq!(c.slq.num_vectors, 4, "four vectors by default");
        let s = spectrum(&op, &c).unwrap();
        let (zt, zf) = (
            (s.trace - exact_tr).abs() / s.trace_stderr,
            (s.frobenius - exact_fro).abs() / s.frobenius_stderr,
        );
        tr1 += usize::from(zt <= 1.0);
        tr3 += usize::from(zt <= 3.0);
        fr1 += usize::from(zf <= 1.0);
        fr3 += usize::from(zf <= 3.0);
    }
    eprintln!("within 1 / 3 standard errors: trace {tr1} / {tr3}, Frobenius {fr1} / {fr3}");
    // Binomial(100, 0.68): 68 ± 4.7; accept 50..=85. Within 3 σ: ≥ 95 of 100.
    for (what, one, three) in [("trace", tr1, tr3), ("Frobenius", fr1, fr3)] {
        assert!(
            (50..=85).contains(&one),
            "{what}: {one}/100 within one standard error"
        );
        assert!(
            three >= 95,
            "{what}: {three}/100 within three standard errors"
        );
    }
    // One vector also carries an error bar, from its own Ritz decomposition.
    let mut c = SpectrumConfig::new();
    c.slq.num_vectors = 1;
    let s = spectrum(&op, &c).unwrap();
    assert!(s.trace_stderr > 0.0 && s.to_string().contains("one vector (error bars"));
}

#[test]
fn rank_bound_of_the_papers_example() {
    // Flatness §3.2 quotes 577 600 for VGG-16 on CIFAR-10 (10 classes, 13 416 neurons),
    // which is 4·10·(13 416 + 1 024): the paper counts d_x = 32·32 = 1 024 inputs.
    assert_eq!(feedforward_rank_bound(1_024, &[13_416], 10), 577_600);
    let op =
        DenseOperator::<B>::from_nalgebra(&DMatrix::identity(4, 4), &Default::default()).unwrap();
    let s = spectrum(&op, &SpectrumConfig::new())
        .unwrap()
        .with_rank_bound(1);
    assert_eq!(s.degenerate_mass_bound, Some(0.75));
    assert!(s.to_string().contains("rank bound"));
}

#[test]
fn invalid_configurations_are_rejected() {
    let op =
        DenseOperator::<B>::from_nalgebra(&DMatrix::identity(3, 3), &Default::default()).unwrap();
    assert!(
        spectrum(
            &op,
            &SpectrumConfig::new().with_outliers(OutlierRule::Gap { factor: 0.5 })
        )
        .is_err()
    );
    assert!(spectrum(&op, &SpectrumConfig::new().with_zero_tolerance(1.0)).is_err());
    assert!(
        spectrum(
            &op,
            &SpectrumConfig::new().with_slq(SlqConfig::new().with_num_vectors(0))
        )
        .is_err()
    );
}

/// The Marchenko–Pastur distribution function against the eigenvalues of sampled Wishart
/// matrices `XᵀX/n` (`X: n × p` Gaussian, `q = p/n`): the dense eigendecomposition is
/// independent of the integral. At `p = 800` the empirical distribution function is within
/// ~0.01 of the limit law (edge fluctuations are `O(p^{-2/3})`); tolerance 0.02. For `q = 2`
/// the law has an atom `1 − 1/q = ½` at 0 (rank `n`).
#[test]
fn marchenko_pastur_distribution_function_matches_sampled_wishart_matrices() {
    for (p, n, seed) in [(800, 1600, 21), (800, 400, 22)] {
        let x = gaussian(n, p, seed);
        let w = x.transpose() * &x / n as f64;
        let eig = dense_spectrum(&w).eigenvalues;
        let q = p as f64 / n as f64;
        let edge = (1.0 + q.sqrt()).powi(2);
        for k in 1..10 {
            let t = edge * k as f64 / 10.0;
            let empirical = eig.iter().filter(|e| **e <= t).count() as f64 / p as f64;
            let law = outliers::mp_cdf(1.0, q, t);
            assert!(
                (empirical - law).abs() < 0.02,
                "q = {q}, t = {t}: empirical {empirical} vs law {law}"
            );
        }
        assert_eq!(outliers::mp_cdf(1.0, q, edge), 1.0);
        assert_eq!(outliers::mp_cdf(1.0, q, -1e-9), 0.0);
    }
}

/// Spectra with no Marchenko–Pastur bulk — a power-law tail `λ_i = i⁻²` and a zero-loss-like
/// one (90 % of the eigenvalues below 1e-7, an exponentially decaying tail from 1e-3) — are
/// flagged: the fitted law leaves the quadrature's Chebyshev–Markov–Stieltjes brackets by far
/// more than the allowance (measured 0.81 and 0.91 against 0.12), and the printout says the
/// count is unreliable. A pure Wishart matrix (no spikes) is consistent (measured 0.03 against
/// 0.16); the spiked ones are checked in the tests above.
#[test]
fn a_bulk_that_is_not_marchenko_pastur_is_flagged() {
    let x = gaussian(800, 400, 1);
    let w = x.transpose() * &x / 800.0;
    let op = DenseOperator::<B>::from_nalgebra(&w, &Default::default()).unwrap();
    let s = spectrum(&op, &config(80, 4)).unwrap();
    let check = s.outlier_check;
    assert!(
        check.is_reliable() && check.bulk_misfit.is_some_and(|m| m < 0.1),
        "{check:?}"
    );
    assert!(!s.to_string().contains("unreliable"), "{s}");
    let power_law: Vec<f64> = (1..=1000).map(|i| (i as f64).powf(-2.0)).collect();
    let zero_loss: Vec<f64> = (1..=1000)
        .map(|i| match i {
            i if i <= 900 => 1e-7 * i as f64 / 900.0,
            i => 1e-3 * (-(i as f64 - 900.0) / 10.0).exp(),
        })
        .collect();
    for (name, values, seed) in [("power law", power_law, 3), ("zero loss", zero_loss, 4)] {
        let (_, op) = rotated(values, seed);
        let s = spectrum(&op, &config(80, 4)).unwrap();
        let check = s.outlier_check;
        assert!(
            !check.is_reliable() && check.bulk_misfit.is_some_and(|m| m > 0.5),
            "{name}: {check:?}"
        );
        assert!(
            s.to_string().contains("not Marchenko–Pastur"),
            "{name}: {s}"
        );
        assert!(s.to_json().unwrap().contains("\"bulk_misfit\""));
    }
}

/// "Outliers" that are a second continuum, not single eigenvalues: 400 eigenvalues spread over
/// `[1, 2]` and 200 over `[50, 60]`. The gap rule takes the heavier cluster as the bulk and
/// counts the Ritz values of the lighter one as outliers; they carry the mass of ≈ 200
/// eigenvalues (`P·Σρ`, known by construction), far above the χ² quantile for their count, so
/// the check flags them. Five planted spikes above a uniform bulk pass it: they carry ≈ 5.
#[test]
fn outliers_that_carry_the_mass_of_many_eigenvalues_are_flagged() {
    let gap = OutlierRule::Gap { factor: 10.0 };
    let two_clusters: Vec<f64> = (0..600)
        .map(|i| match i {
            i if i < 400 => 1.0 + i as f64 / 400.0,
            i => 50.0 + 10.0 * (i - 400) as f64 / 200.0,
        })
        .collect();
    let (_, op) = rotated(two_clusters, 31);
    let s = spectrum(&op, &config(60, 4).with_outliers(gap)).unwrap();
    let check = s.outlier_check;
    assert!(s.outliers > 0, "{s}");
    assert!(
        (check.eigenvalues_above - 200.0).abs() < 30.0 && !check.is_reliable(),
        "{check:?}"
    );
    assert_eq!(check.bulk_misfit, None, "the gap rule fits no law");
    assert!(s.to_string().contains("mass of"), "{s}");

    let spiked: Vec<f64> = (0..600)
        .map(|i| match i {
            i if i < 595 => 1.0 + i as f64 / 595.0,
            i => 20.0 + 5.0 * (i - 595) as f64,
        })
        .collect();
    let (_, op) = rotated(spiked, 32);
    let s = spectrum(&op, &config(60, 4).with_outliers(gap)).unwrap();
    assert_eq!(s.outliers, 5, "{s}");
    assert!(s.outlier_check.is_reliable(), "{:?}", s.outlier_check);
}
