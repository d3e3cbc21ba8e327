//! Softmax regression at the damping paper's size: P = 7 850 parameters over the 10 000
//! real Fashion-MNIST test images (Debian's `dataset-fashion-mnist`; the test skips, saying
//! so, where the package is absent — `.ci/run` installs it).
//!
//! The reference is independent of the code under test: the dense f64 Hessian is assembled
//! from the analytic formula `H = (1/N) Σ_n (diag(p_n) − p_n p_nᵀ) ⊗ x̃_n x̃_nᵀ` — per class
//! pair `(c, d)` the block `X̃ᵀ diag(a_cd) X̃ / N` with `a_cd,n = p_nc (δ_cd − p_nd)`, the
//! probabilities computed here in plain f64 loops, the blocks multiplied by faer — and its
//! eigenvalues come from faer's dense symmetric eigensolver. No HVP, no Lanczos.
//!
//! Checked against it: one exact HVP; λ_max from Lanczos; the trace and Frobenius norm of
//! the library's default spectrum estimate (4 Gaussian start vectors, as the CLI's
//! `curvature spectrum`), within 3 of their own printed standard errors.

use burn::backend::NdArray;
use curvature_core::testing::{from_slice, relative_error, to_vec};
use curvature_core::*;
use curvature_data::{ClassificationData, DownloadableDataset, Split, load_mnist, locate};
use curvature_nets::{LogisticRegression, LogisticRegressionConfig};
use faer::Mat;

type B = NdArray<f64>;

const K: usize = 10;
const D: usize = 784;
const P: usize = K * (D + 1);

/// Flat index of weight (class, feature) in the layout `[weight (K×d, row-major), bias (K)]`;
/// feature `D` is the bias.
fn index(class: usize, feature: usize) -> usize {
    if feature < D {
        class * D + feature
    } else {
        K * D + class
    }
}

/// The dense Hessian at flat weights `w` over every example of `data`.
fn dense_hessian(w: &[f64], data: &ClassificationData) -> Mat<f64> {
    let n = data.len();
    // X̃ (N × (D+1)) and the softmax probabilities, in plain f64.
    let x = Mat::<f64>::from_fn(n, D + 1, |i, a| {
        if a < D {
            data.inputs[i * D + a] as f64
        } else {
            1.0
        }
    });
    let probs: Vec<[f64; K]> = (0..n)
        .map(|i| {
            let z: Vec<f64> = (0..K)
                .map(|c| (0..=D).map(|a| w[index(c, a)] * x[(i, a)]).sum())
                .collect();
            let zmax = z.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = z.iter().map(|z| (z - zmax).exp()).collect();
            let s: f64 = e.iter().sum();
            std::array::from_fn(|c| e[c] / s)
        })
        .collect();
    let mut h = Mat::<f64>::zeros(P, P);
    for c in 0..K {
        for d in c..K {
            let scaled = Mat::<f64>::from_fn(n, D + 1, |i, a| {
                let p = &probs[i];
                let a_cd = p[c] * (if c == d { 1.0 } else { 0.0 } - p[d]);
                a_cd * x[(i, a)] / n as f64
            });
            let block = x.transpose() * &scaled;
            for a in 0..=D {
                for b in 0..=D {
                    let v = block[(a, b)];
                    h[(index(c, a), index(d, b))] = v;
                    h[(index(d, b), index(c, a))] = v;
                }
            }
        }
    }
    h
}

#[test]
fn full_size_logistic_hessian_against_a_dense_eigendecomposition() {
    let Ok(dir) = locate(DownloadableDataset::FashionMnist) else {
        eprintln!("skipped: no Fashion-MNIST (apt-get install dataset-fashion-mnist)");
        return;
    };
    let t0 = std::time::Instant::now();
    let data = load_mnist(&dir, Split::Test).unwrap();
    assert_eq!(data.len(), 10_000);
    let device = Default::default();
    let model: LogisticRegression<B> = LogisticRegressionConfig::mnist().init(&device).unwrap();
    let mut objective = Objective::new(
        model,
        Loss::CrossEntropy,
        data.batches::<B, 2>(2_500, &device).unwrap(),
    )
    .unwrap();
    assert_eq!(objective.dim(), P);
    // Seeded weights (burn's initialiser is not seeded here), then a few full-batch gradient
    // steps towards a fitted model.
    objective
        .set_params(gaussian_vector::<B>(P, 1, &device).mul_scalar(0.01))
        .unwrap();
    for _ in 0..3 {
        let (_, g) = objective.gradient().unwrap();
        objective
            .set_params(objective.params() - g.mul_scalar(0.5))
            .unwrap();
    }
    let w = to_vec(&objective.params());
    let h = dense_hessian(&w, &data);
    eprintln!("dense Hessian assembled at {:.1?}", t0.elapsed());
    let eig = h.self_adjoint_eigenvalues(faer::Side::Lower).unwrap();
    eprintln!("dense eigenvalues at {:.1?}", t0.elapsed());
    let lambda_max = eig[P - 1];
    let trace: f64 = (0..P).map(|i| h[(i, i)]).sum();
    let frobenius = h.norm_l2();
    let eig_trace: f64 = eig.iter().sum();
    assert!(
        (eig_trace - trace).abs() <= 1e-9 * trace,
        "{eig_trace} vs {trace}"
    );

    // One exact HVP against the dense product (also checks the parameter layout).
    let v: Vec<f64> = to_vec(&gaussian_vector::<B>(P, 7, &device));
    let hv = to_vec(
        &objective
            .hessian()
            .apply(&from_slice::<B>(&v, &device))
            .unwrap(),
    );
    let dense_hv: Vec<f64> = (0..P)
        .map(|i| (0..P).map(|j| h[(i, j)] * v[j]).sum())
        .collect();
    let err = relative_error(&hv, &dense_hv);
    assert!(err < 1e-10, "HVP vs dense: relative error {err}");

    // The library's default spectrum estimate (what `curvature spectrum` prints) with fewer
    // Lanczos steps (30 instead of 100, to keep the test short): the trace and Frobenius norm
    // are the quadrature of λ and λ², exact for every start vector once m ≥ 2, so their
    // error is the sampling error over the default number of vectors, whatever m.
    let config = SpectrumConfig::new();
    let steps = 30;
    let config = config.clone().with_slq(
        config
            .slq
            .clone()
            .with_lanczos(config.slq.lanczos.clone().with_steps(steps)),
    );
    let s = spectrum(&objective.hessian(), &config).unwrap();
    eprintln!(
        "at {:.1?}: λ_max {} (dense {lambda_max}); trace {} ± {} (dense {trace}); \
         Frobenius {} ± {} (dense {frobenius})",
        t0.elapsed(),
        s.lambda_max,
        s.trace,
        s.trace_stderr,
        s.frobenius,
        s.frobenius_stderr
    );
    assert!(
        (s.lambda_max - lambda_max).abs() <= 1e-8 * lambda_max,
        "λ_max: Lanczos {} vs dense {lambda_max}",
        s.lambda_max
    );
    assert!(s.num_vectors >= 4, "the default averages several vectors");
    assert!(
        (s.trace - trace).abs() <= 3.0 * s.trace_stderr,
        "trace {} ± {} vs dense {trace}",
        s.trace,
        s.trace_stderr
    );
    assert!(
        (s.frobenius - frobenius).abs() <= 3.0 * s.frobenius_stderr,
        "Frobenius {} ± {} vs dense {frobenius}",
        s.frobenius,
        s.frobenius_stderr
    );
}
