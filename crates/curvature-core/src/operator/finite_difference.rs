//! Central finite differences of gradients.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

use super::{LinearOperator, check_len};
use crate::error::{Result, invalid};
use crate::model::CurvatureModel;
use crate::objective::Objective;
use crate::reduce::{dot, scalar};

/// `Hv ≈ ‖v‖ (∇L(w + h v̂) − ∇L(w − h v̂)) / (2h)`, `v̂ = v/‖v‖` — two gradients per product.
///
/// A fallback for models containing operations that burn cannot differentiate twice (fused
/// `nn::Linear`, `MaxPool2d`, `AvgPool2d`, `adaptive_avg_pool2d`, `embedding`, …). Prefer the
/// exact [`Hessian`](super::Hessian) whenever the model allows it.
///
/// **Step.** `h` is absolute, along the unit direction `v̂`. The default
/// `h = ε^{1/3} · max(1, ‖w‖_∞)` (ε the machine epsilon of the backend's float type) balances
/// the truncation error `≈ (h²/6)‖∇³L[v̂, v̂]‖` against the rounding error `≈ ε‖∇L‖/h`:
/// `h ≈ 6·10⁻⁶` in f64, `h ≈ 5·10⁻³` in f32.
///
/// **Error.** For smooth models the relative error is `O(ε^{2/3})`: about `10⁻¹⁰–10⁻⁹` in f64
/// and `10⁻³–10⁻²` in f32 (measured: ≈5·10⁻³ on an MLP), so finite differences are only
/// trustworthy in f64. For piecewise-linear activations (ReLU, max pooling) the quotient is
/// wrong for every unit whose pre-activation changes sign within `±h`; keep `h` small (f64).
pub struct FiniteDifferenceHessian<'a, B: Backend, M: CurvatureModel<B, D>, const D: usize> {
    objective: &'a Objective<B, M, D>,
    params: Tensor<B, 1>,
    step: f64,
}

impl<'a, B: Backend, M: CurvatureModel<B, D>, const D: usize> FiniteDifferenceHessian<'a, B, M, D> {
    /// Finite differences with the default step (see the type docs).
    pub fn new(objective: &'a Objective<B, M, D>) -> Self {
        let params = objective.params();
        let w_inf = scalar(params.clone().abs().max());
        let step = machine_epsilon(params.dtype()).cbrt() * w_inf.max(1.0);
        Self {
            objective,
            params,
            step,
        }
    }

    /// Finite differences with an explicit absolute step `h > 0`.
    ///
    /// # Errors
    /// [`CurvatureError::InvalidConfig`](crate::CurvatureError::InvalidConfig) if `h` is not a
    /// positive finite number.
    pub fn with_step(objective: &'a Objective<B, M, D>, step: f64) -> Result<Self> {
        if !(step.is_finite() && step > 0.0) {
            return Err(invalid("step", step, "must be a positive finite number"));
        }
        Ok(Self {
            step,
            ..Self::new(objective)
        })
    }

    /// The step `h`.
    pub fn step(&self) -> f64 {
        self.step
    }
}

/// Machine epsilon of a float dtype.
pub(crate) fn machine_epsilon(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => f64::EPSILON,
        DType::F16 => 9.765_625e-4,
        DType::BF16 => 7.812_5e-3,
        _ => f32::EPSILON as f64,
    }
}

impl<B: Backend, M: CurvatureModel<B, D>, const D: usize> LinearOperator<B>
    for FiniteDifferenceHessian<'_, B, M, D>
{
    fn dim(&self) -> usize {
        self.objective.dim()
    }
    fn device(&self) -> B::Device {
        self.objective.device().clone()
    }
    fn apply(&self, v: &Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        check_len(v, self.dim())?;
        let norm = dot(v, v).sqrt();
        if norm == 0.0 {
            return Ok(v.zeros_like());
        }
        let dir = v.clone().mul_scalar(self.step / norm);
        let plus = self.objective.model_at(self.params.clone() + dir.clone())?;
        let minus = self.objective.model_at(self.params.clone() - dir)?;
        let (_, gp) = self.objective.gradient_of(&plus)?;
        let (_, gm) = self.objective.gradient_of(&minus)?;
        Ok((gp - gm).mul_scalar(norm / (2.0 * self.step)))
    }
}

impl<B: Backend, M: CurvatureModel<B, D>, const D: usize> Objective<B, M, D> {
    /// The Hessian by central finite differences of gradients, default step.
    pub fn finite_difference_hessian(&self) -> FiniteDifferenceHessian<'_, B, M, D> {
        FiniteDifferenceHessian::new(self)
    }
}
