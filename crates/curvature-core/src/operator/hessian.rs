//! The exact Hessian of an objective.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::LinearOperator;
use crate::error::Result;
use crate::model::CurvatureModel;
use crate::objective::Objective;

/// The exact Hessian `H = ∇²L(w)` of an [`Objective`] at its current parameters.
///
/// `Hv = ∇(vᵀ∇L)` (Pearlmutter, *Fast exact multiplication by the Hessian*, 1994), computed
/// by reverse-over-reverse differentiation on `Autodiff<Autodiff<B>>` and accumulated over all
/// batches: `Hv = Σ_j (1/N) ∇²(Σ_{i∈j} ℓ_i) v (+ μv)`. Exact up to floating-point rounding;
/// costs about two gradients and O(P) memory beyond the model's activations.
///
/// Accuracy caveats inherited from burn 0.21: its `sigmoid`/`silu` are evaluated in f32 and
/// `gelu`'s backward uses a tanh approximation, so models calling them get approximate
/// second derivatives (the activations of `curvature-nets` document their accuracy; its
/// sigmoid is built from exact primitives).
pub struct Hessian<'a, B: Backend, M: CurvatureModel<B, D>, const D: usize> {
    objective: &'a Objective<B, M, D>,
}

impl<'a, B: Backend, M: CurvatureModel<B, D>, const D: usize> Hessian<'a, B, M, D> {
    /// The Hessian of `objective`.
    pub fn new(objective: &'a Objective<B, M, D>) -> Self {
        Self { objective }
    }
}

impl<B: Backend, M: CurvatureModel<B, D>, const D: usize> LinearOperator<B>
    for Hessian<'_, B, M, D>
{
    fn dim(&self) -> usize {
        self.objective.dim()
    }
    fn device(&self) -> B::Device {
        self.objective.device().clone()
    }
    fn apply(&self, v: &Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        self.objective.hvp(v)
    }
}

impl<B: Backend, M: CurvatureModel<B, D>, const D: usize> Objective<B, M, D> {
    /// The exact Hessian as a [`LinearOperator`].
    pub fn hessian(&self) -> Hessian<'_, B, M, D> {
        Hessian::new(self)
    }
}
