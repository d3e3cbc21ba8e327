//! Device reductions read back to the host, shared by every crate of the workspace: scalars,
//! inner products, finiteness checks and host copies, all as f64 whatever the backend's float,
//! and the relative error of two host vectors.

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};

/// The value of a one-element tensor, as f64.
pub fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_scalar().elem::<f64>()
}

/// `⟨a, b⟩`, reduced on the device and returned as f64.
pub fn dot<B: Backend>(a: &Tensor<B, 1>, b: &Tensor<B, 1>) -> f64 {
    scalar((a.clone() * b.clone()).sum())
}

/// Whether a tensor holds NaN or ±∞ (one device reduction each, no host copy).
pub fn has_non_finite<B: Backend, const D: usize>(t: &Tensor<B, D>) -> bool {
    t.clone().is_nan().any().into_scalar().elem::<bool>()
        || t.clone().is_inf().any().into_scalar().elem::<bool>()
}

/// Copy a tensor of any rank to the host as f64, in row-major order.
pub fn to_host<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Vec<f64> {
    t.to_data().iter::<f64>().collect()
}

/// `‖a − b‖ / ‖b‖` (`‖a − b‖` when `b = 0`); infinite for vectors of different lengths, NaN if
/// either holds a NaN.
///
/// ```
/// use curvature_core::reduce::relative_error;
/// assert_eq!(relative_error(&[0.0, 4.0], &[0.0, 5.0]), 0.2);
/// assert_eq!(relative_error(&[3.0, 4.0], &[0.0, 0.0]), 5.0);
/// assert_eq!(relative_error(&[1.0], &[1.0, 2.0]), f64::INFINITY);
/// assert!(relative_error(&[f64::NAN], &[1.0]).is_nan());
/// ```
pub fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let nb = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if nb == 0.0 { diff } else { diff / nb }
}
