//! A diagonal block `A_bb` of an operator: the curvature of one layer's parameters with the
//! rest held fixed (per-layer spectra).

use std::ops::Range;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{LinearOperator, check_len};
use crate::error::{CurvatureError, Result, invalid};
use crate::params::ParamLayout;

/// `A_bb = Eᵀ A E` for the coordinates `b` of one block (`E` embeds `R^{|b|}` into `R^P` by
/// zero padding): `v ↦ (A [0, …, v, …, 0])_b`, one product of `A` per application.
///
/// Its spectrum is the curvature of the block's parameters alone (e.g. one layer's weights),
/// as used for per-layer Hessian spectra. By Cauchy interlacing its eigenvalues lie within
/// `[λ_min(A), λ_max(A)]`.
#[derive(Debug, Clone)]
pub struct Block<A> {
    /// The full operator.
    pub op: A,
    /// The block's coordinates in the flat parameter vector.
    pub range: Range<usize>,
}

impl<A> Block<A> {
    /// The block `range` of `op`.
    ///
    /// # Errors
    /// An empty range, or one that does not fit in `op`'s dimension.
    pub fn new<B: Backend>(op: A, range: Range<usize>) -> Result<Self>
    where
        A: LinearOperator<B>,
    {
        if range.is_empty() || range.end > op.dim() {
            return Err(invalid(
                "range",
                format!("{range:?}"),
                "must be a non-empty range inside the operator's dimension",
            ));
        }
        Ok(Self { op, range })
    }

    /// The block of the parameter named `name` in `layout` (a dotted path such as
    /// `features.0.weight`, see [`ParamLayout::blocks`]).
    ///
    /// # Errors
    /// An unknown name (the message lists the valid ones).
    pub fn named<B: Backend>(op: A, layout: &ParamLayout, name: &str) -> Result<Self>
    where
        A: LinearOperator<B>,
    {
        match layout.block(name) {
            Some(b) => Self::new(op, b.range()),
            None => Err(CurvatureError::UnknownBlock {
                name: name.to_string(),
                valid: layout.blocks().iter().map(|b| b.name.clone()).collect(),
            }),
        }
    }
}

impl<B: Backend, A: LinearOperator<B>> LinearOperator<B> for Block<A> {
    fn dim(&self) -> usize {
        self.range.len()
    }
    fn device(&self) -> B::Device {
        self.op.device()
    }
    fn apply(&self, v: &Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        check_len(v, self.dim())?;
        let full = Tensor::<B, 1>::zeros([self.op.dim()], &v.device())
            .slice_assign([self.range.clone()], v.clone());
        Ok(self.op.apply(&full)?.slice([self.range.clone()]))
    }
}
