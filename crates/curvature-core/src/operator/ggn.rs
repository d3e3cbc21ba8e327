//! The generalised Gauss–Newton matrix and the Hessian's residual term.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::LinearOperator;
use crate::error::Result;
use crate::model::CurvatureModel;
use crate::objective::Objective;

/// The generalised Gauss–Newton matrix `G = (1/N) Σ_i J_iᵀ H_ℓ(z_i) J_i (+ μI)`.
///
/// `J_i = ∂z_i/∂w` is the Jacobian of the network outputs and `H_ℓ` the Hessian of the loss
/// with respect to the outputs (`diag(p) − ppᵀ` for softmax cross-entropy, `(2/K)I` for MSE),
/// so `G` is positive semi-definite. It is the first term of the decomposition
/// `H = G + (1/N) Σ_i Σ_k (∂ℓ/∂z_ik) ∇²z_ik` (Sagun et al., *Empirical Analysis of the Hessian
/// of Over-Parametrized Neural Networks*, 2018, eq. 4; Schraudolph 2002). For a model linear
/// in its parameters (softmax regression) `G = H`.
///
/// `Gv` is exact: `Jv` by the double-VJP trick on `Autodiff<Autodiff<B>>`, `H_ℓ(Jv)`
/// analytically, `Jᵀ(·)` by one more reverse pass — about three gradients per product.
pub struct Ggn<'a, B: Backend, M: CurvatureModel<B, D>, const D: usize> {
    objective: &'a Objective<B, M, D>,
}

impl<'a, B: Backend, M: CurvatureModel<B, D>, const D: usize> Ggn<'a, B, M, D> {
    /// The GGN of `objective`.
    pub fn new(objective: &'a Objective<B, M, D>) -> Self {
        Self { objective }
    }
}

impl<B: Backend, M: CurvatureModel<B, D>, const D: usize> LinearOperator<B> for Ggn<'_, B, M, D> {
    fn dim(&self) -> usize {
        self.objective.dim()
    }
    fn device(&self) -> B::Device {
        self.objective.device().clone()
    }
    fn apply(&self, v: &Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        self.objective.ggn_vp(v)
    }
}

/// `H − G`: the residual term `(1/N) Σ_i Σ_k (∂ℓ/∂z_ik) ∇²z_ik` of Sagun et al. eq. 4, which
/// carries the negative curvature and vanishes as the residuals `∂ℓ/∂z` go to zero.
pub struct HessianMinusGgn<'a, B: Backend, M: CurvatureModel<B, D>, const D: usize> {
    objective: &'a Objective<B, M, D>,
}

impl<'a, B: Backend, M: CurvatureModel<B, D>, const D: usize> HessianMinusGgn<'a, B, M, D> {
    /// `H − G` of `objective`.
    pub fn new(objective: &'a Objective<B, M, D>) -> Self {
        Self { objective }
    }
}

impl<B: Backend, M: CurvatureModel<B, D>, const D: usize> LinearOperator<B>
    for HessianMinusGgn<'_, B, M, D>
{
    fn dim(&self) -> usize {
        self.objective.dim()
    }
    fn device(&self) -> B::Device {
        self.objective.device().clone()
    }
    fn apply(&self, v: &Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        Ok(self.objective.hvp(v)? - self.objective.ggn_vp(v)?)
    }
}

impl<B: Backend, M: CurvatureModel<B, D>, const D: usize> Objective<B, M, D> {
    /// The generalised Gauss–Newton matrix as a [`LinearOperator`].
    pub fn ggn(&self) -> Ggn<'_, B, M, D> {
        Ggn::new(self)
    }
    /// `H − G` as a [`LinearOperator`].
    pub fn hessian_minus_ggn(&self) -> HessianMinusGgn<'_, B, M, D> {
        HessianMinusGgn::new(self)
    }
}
