//! Hutchinson's trace estimator.

use burn::tensor::backend::Backend;

use crate::error::{Result, invalid};
use crate::operator::LinearOperator;
use crate::random_vector::{derive_seed, rademacher_vector};
use crate::reduce::dot;
use crate::slq::mean_stderr;

/// A trace estimate with its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceEstimate {
    /// `(1/n) Σ_s z_sᵀ A z_s`.
    pub trace: f64,
    /// Standard error of the mean over the `n` samples (`None` for one sample).
    pub stderr: Option<f64>,
    /// Number of samples `n`.
    pub samples: usize,
}

/// `Tr A ≈ (1/n) Σ_s z_sᵀ A z_s` with Rademacher `z_s` (Hutchinson 1989), which has the least
/// variance among i.i.d. probes: `Var = 2(‖A‖_F² − Σ_i A_ii²)` per sample.
///
/// # Errors
/// [`CurvatureError::InvalidConfig`](crate::CurvatureError::InvalidConfig) for `samples = 0`;
/// operator errors.
pub fn hutchinson_trace<B: Backend, A: LinearOperator<B> + ?Sized>(
    op: &A,
    samples: usize,
    seed: u64,
) -> Result<TraceEstimate> {
    if samples == 0 {
        return Err(invalid(
            "samples",
            0,
            "Hutchinson needs at least one probe vector",
        ));
    }
    let device = op.device();
    let values = (0..samples)
        .map(|s| {
            let z = rademacher_vector::<B>(op.dim(), derive_seed(seed, s as u64), &device);
            Ok(dot(&op.apply(&z)?, &z))
        })
        .collect::<Result<Vec<f64>>>()?;
    let (trace, stderr) = mean_stderr(&values);
    Ok(TraceEstimate {
        trace,
        stderr,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::DenseOperator;
    use burn::backend::NdArray;
    use nalgebra::DMatrix;

    type B = NdArray<f64>;

    #[test]
    fn exact_on_diagonal_matrices() {
        // zᵀDz = Σ d_i z_i² = Tr D for Rademacher z: every sample is exact.
        let d: Vec<f64> = (0..50).map(|i| i as f64 - 7.5).collect();
        let op = DenseOperator::<B>::from_nalgebra(
            &DMatrix::from_diagonal(&nalgebra::DVector::from_vec(d.clone())),
            &Default::default(),
        )
        .unwrap();
        let t = hutchinson_trace(&op, 3, 1).unwrap();
        assert!((t.trace - d.iter().sum::<f64>()).abs() < 1e-10);
        assert!(t.stderr.unwrap() < 1e-10);
    }

    #[test]
    fn unbiased_within_four_standard_errors() {
        let m = DMatrix::<f64>::from_fn(60, 60, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let a = &m + m.transpose();
        let op = DenseOperator::<B>::from_nalgebra(&a, &Default::default()).unwrap();
        let t = hutchinson_trace(&op, 200, 3).unwrap();
        let exact = a.trace();
        assert!(
            (t.trace - exact).abs() <= 4.0 * t.stderr.unwrap(),
            "{} vs {exact} ± {:?}",
            t.trace,
            t.stderr
        );
        assert!(hutchinson_trace(&op, 0, 0).is_err());
    }
}
