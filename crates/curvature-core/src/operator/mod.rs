//! Symmetric linear operators `A: R^P → R^P` given only by their action `v ↦ Av`.
//!
//! Lanczos, SLQ, Hutchinson and the dense references take any [`LinearOperator`]: the exact
//! [`Hessian`], the [`Ggn`], [`HessianMinusGgn`], [`FiniteDifferenceHessian`], a
//! [`DenseOperator`], their [`Scaled`] / [`Shifted`] combinations and diagonal [`Block`]s (after curvlinops'
//! `_base.py`).

mod block;
mod combination;
mod dense;
mod finite_difference;
mod ggn;
mod hessian;

pub use block::Block;
pub use combination::{Scaled, Shifted};
pub use dense::{DenseOperator, DenseReferenceConfig, DenseSpectrum, dense_matrix, dense_spectrum};
pub use finite_difference::FiniteDifferenceHessian;
pub use ggn::{Ggn, HessianMinusGgn};
pub use hessian::Hessian;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::error::Result;

/// A linear operator on flat vectors living on the device of backend `B`.
pub trait LinearOperator<B: Backend> {
    /// The dimension `P`.
    fn dim(&self) -> usize;
    /// The device vectors live on.
    fn device(&self) -> B::Device;
    /// `A v` for a vector of length `P`.
    ///
    /// # Errors
    /// Implementations report a wrong length with
    /// [`CurvatureError::DimensionMismatch`](crate::CurvatureError::DimensionMismatch) and a
    /// non-finite result with [`CurvatureError::NonFinite`](crate::CurvatureError::NonFinite).
    fn apply(&self, v: &Tensor<B, 1>) -> Result<Tensor<B, 1>>;
}

impl<B: Backend, T: LinearOperator<B> + ?Sized> LinearOperator<B> for &T {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn device(&self) -> B::Device {
        (**self).device()
    }
    fn apply(&self, v: &Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        (**self).apply(v)
    }
}

impl<B: Backend, T: LinearOperator<B> + ?Sized> LinearOperator<B> for Box<T> {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn device(&self) -> B::Device {
        (**self).device()
    }
    fn apply(&self, v: &Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        (**self).apply(v)
    }
}

pub(crate) fn check_len<B: Backend>(v: &Tensor<B, 1>, dim: usize) -> Result<()> {
    let got = v.dims()[0];
    if got != dim {
        return Err(crate::CurvatureError::DimensionMismatch {
            what: "vector v".into(),
            expected: dim,
            got,
        });
    }
    Ok(())
}
