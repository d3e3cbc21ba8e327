//! The objective: model + loss + data (+ optional L2 term), and the primitive products every
//! curvature operator is built from.
//!
//! `L(w) = (1/N) Σ_i ℓ(h(x_i; w), y_i) + (μ/2)‖w‖²`, evaluated over **all** `N` examples of the
//! data source by accumulating `Σ_j (1/N) Σ_{i ∈ batch j} ℓ_i`, in the source's order, so
//! repeated evaluations are deterministic.
//!
//! * gradient `∇L` — one reverse pass on `Autodiff<B>`;
//! * Hessian-vector product `Hv = ∇(vᵀ∇L)` (Pearlmutter 1994) — reverse-over-reverse on
//!   `Autodiff<Autodiff<B>>`: the outer backward pass yields `∇L` as tensors that still carry
//!   the inner graph, `vᵀ∇L` is formed and the inner backward pass differentiates it;
//! * generalised Gauss–Newton product `Gv = Jᵀ H_ℓ J v` (Schraudolph 2002; Sagun et al. 2018
//!   eq. 4), `J = ∂z/∂w`: `Jv` by the double-VJP trick (differentiate `Jᵀu` with respect to
//!   a dummy `u`), `H_ℓ` analytically, `Jᵀ(·)` by one more reverse pass.
//!
//! The L2 term contributes `(μ/2)‖w‖²`, `μw`, `μv` to loss, gradient and both curvature
//! products (it is applied to every trainable parameter, as PyTorch's `weight_decay`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::batch::{Batch, BatchSource, Targets};
use crate::error::{CurvatureError, Result, invalid};
use crate::loss::Loss;
use crate::model::{Ad, Ad2, BatchNormMode, CurvatureModel, Network, Train, Train2};
use crate::params::{ParamLayout, mark_trainable};
use crate::peer_reduce::PeerReduce;
use crate::reduce::{dot, has_non_finite, scalar};

mod checks;
mod products;
mod shards;

pub(crate) use checks::{check_finite_vec, collect_grads};
use checks::{check_outputs, guarded, require_all};

/// Loss and accuracy of a model over a data source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean loss (including the L2 term, if any).
    pub loss: f64,
    /// Fraction of correctly classified examples, for classification targets.
    pub accuracy: Option<f64>,
}

/// Model + loss + data: the function whose curvature is measured (see the [module docs](self)).
///
/// `M` is the model on the plain backend `B` (for a training model on `Autodiff<B>`, pass
/// `model.valid()`); `D` is the rank of its input tensors. The curvature is taken with respect
/// to every float parameter of the model (not its running statistics), see
/// [`mark_trainable`].
pub struct Objective<B: Backend, M: CurvatureModel<B, D>, const D: usize> {
    model: Train<B, M>,
    layout: ParamLayout,
    loss: Loss,
    data: Box<dyn BatchSource<B, D>>,
    /// `N`: every example of every peer's shard.
    num_examples: usize,
    /// The data-parallel group and the shard sizes of its peers (`None`: all data is here).
    peers: Option<(Arc<dyn PeerReduce<B>>, Vec<usize>)>,
    l2: f64,
    bn_mode: BatchNormMode,
    device: B::Device,
}

impl<B: Backend, M: CurvatureModel<B, D>, const D: usize> Objective<B, M, D> {
    /// Wrap a model, a loss and a data source.
    ///
    /// # Errors
    /// [`CurvatureError::NoParameters`] for a model without trainable parameters,
    /// [`CurvatureError::InvalidData`] for a data source without examples, and
    /// [`CurvatureError::Forward`] / [`CurvatureError::InvalidBatch`] if the model cannot be
    /// evaluated on the first batch or its outputs do not match the targets.
    pub fn new(model: M, loss: Loss, data: impl BatchSource<B, D> + 'static) -> Result<Self> {
        let model = <Train<B, M> as AutodiffModule<Ad<B>>>::from_inner(mark_trainable(model));
        let layout = ParamLayout::of(&model)?;
        let num_examples = data.num_examples();
        if num_examples == 0 {
            return Err(CurvatureError::InvalidData(
                "the data source has no examples".into(),
            ));
        }
        let theta = layout.flatten(&model.valid())?;
        let (have, want) = (
            theta.dtype(),
            <B::FloatElem as burn::tensor::Element>::dtype(),
        );
        if have != want {
            // burn 0.21 keeps the float type of new tensors once per device type and process
            // (NdArray<f32> and NdArray<f64> share theirs): parameters of another type would
            // silently compute in it.
            return Err(CurvatureError::InvalidData(format!(
                "the model's parameters are {have:?} on a {want:?} backend: this process created \
                 tensors of this device type in another precision first (burn 0.21 keeps one float \
                 type per device type and process); use one precision per process, or call \
                 `burn::tensor::set_default_dtypes` before creating any tensor"
            )));
        }
        let device = theta.device();
        let objective = Self {
            model,
            layout,
            loss,
            data: Box::new(data),
            num_examples,
            peers: None,
            l2: 0.0,
            bn_mode: BatchNormMode::Train,
            device,
        };
        // Validate shapes on the first batch with a forward pass.
        let first = objective.data.first()?;
        let model0 = objective.model.valid();
        guarded(|| {
            check_outputs(
                &model0.output(first.inputs.clone(), objective.bn_mode),
                &first,
            )
        })?;
        Ok(objective)
    }

    /// Add the L2 term `(μ/2)‖w‖²` to the objective.
    ///
    /// # Errors
    /// [`CurvatureError::InvalidConfig`] if `mu` is negative or not finite.
    pub fn with_l2(mut self, mu: f64) -> Result<Self> {
        if !(mu.is_finite() && mu >= 0.0) {
            return Err(invalid("l2", mu, "must be finite and ≥ 0"));
        }
        self.l2 = mu;
        Ok(self)
    }

    /// Evaluate batch norm in train (batch statistics) or eval (running statistics) mode.
    pub fn with_bn_mode(mut self, mode: BatchNormMode) -> Self {
        self.bn_mode = mode;
        self
    }

    /// Number of trainable parameters `P`.
    pub fn dim(&self) -> usize {
        self.layout.dim()
    }
    /// The flat-parameter layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }
    /// The loss.
    pub fn loss(&self) -> Loss {
        self.loss
    }
    /// The L2 coefficient `μ`.
    pub fn l2(&self) -> f64 {
        self.l2
    }
    /// The batch-norm mode.
    pub fn bn_mode(&self) -> BatchNormMode {
        self.bn_mode
    }
    /// Number of examples `N` (over all peers' shards, see [`with_peers`](Self::with_peers)).
    pub fn num_examples(&self) -> usize {
        self.num_examples
    }
    /// The device the parameters live on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }
    /// The model (plain backend) at the current parameters.
    pub fn model(&self) -> M {
        self.model.valid()
    }
    /// The current parameters as a flat vector `w`.
    pub fn params(&self) -> Tensor<B, 1> {
        self.layout
            .flatten(&self.model.valid())
            .expect("layout was built from this model")
    }

    /// Move the objective to new parameters `w`.
    ///
    /// # Errors
    /// [`CurvatureError::DimensionMismatch`] if `theta` does not have length `P`,
    /// [`CurvatureError::NonFinite`] if it holds NaN or ±∞.
    pub fn set_params(&mut self, theta: Tensor<B, 1>) -> Result<()> {
        check_finite_vec(&theta, "parameter vector")?;
        self.model = self.layout.load(self.model.clone(), theta)?;
        Ok(())
    }

    /// Visit every batch, converting a panic inside the model's forward pass (for example
    /// mismatched shapes deep in burn) into [`CurvatureError::Forward`].
    pub fn for_each_batch(&self, f: &mut dyn FnMut(&Batch<B, D>) -> Result<()>) -> Result<()> {
        self.data.try_for_each(&mut |batch| guarded(|| f(batch)))
    }

    /// Loss (and accuracy for classification) over all data, forward passes only.
    ///
    /// # Errors
    /// Forward failures, shape mismatches and a non-finite loss.
    pub fn evaluate(&self) -> Result<Evaluation> {
        let model = self.model.valid();
        let (mut loss, mut correct, mut classes) = (0.0, 0usize, true);
        self.for_each_batch(&mut |batch| {
            let z = model.output(batch.inputs.clone(), self.bn_mode);
            check_outputs(&z, batch)?;
            loss += scalar(self.loss.sum(z.clone(), batch.targets.matrix().clone()));
            match &batch.targets {
                Targets::Classes { labels, .. } => {
                    let pred = z.argmax(1).into_data();
                    correct += pred
                        .iter::<i64>()
                        .zip(labels)
                        .filter(|(p, l)| *p as usize == **l)
                        .count();
                }
                Targets::Values(_) => classes = false,
            }
            Ok(())
        })?;
        let (loss, correct, classes) = self.reduce_evaluation(loss, correct, classes)?;
        let loss = loss / self.num_examples as f64 + self.l2_value();
        if !loss.is_finite() {
            return Err(CurvatureError::NonFinite("loss".into()));
        }
        Ok(Evaluation {
            loss,
            accuracy: classes.then(|| correct as f64 / self.num_examples as f64),
        })
    }

    /// Loss `L(w)` and gradient `∇L(w)` over all data.
    ///
    /// # Errors
    /// Forward failures, shape mismatches, a non-finite loss or gradient, and parameters the
    /// loss does not depend on ([`CurvatureError::MissingGradient`]).
    pub fn gradient(&self) -> Result<(f64, Tensor<B, 1>)> {
        self.gradient_of(&self.model)
    }

    pub(crate) fn gradient_of(&self, model: &Train<B, M>) -> Result<(f64, Tensor<B, 1>)> {
        let (value, grad) =
            self.sum_over_batches(|batch, scale| self.batch_gradient_scaled(model, batch, scale))?;
        self.finish_gradient(value, grad, || self.layout.flatten(&model.valid()))
    }

    /// Add the L2 term to a loss and gradient and check both are finite.
    fn finish_gradient(
        &self,
        mut value: f64,
        mut grad: Tensor<B, 1>,
        params: impl FnOnce() -> Result<Tensor<B, 1>>,
    ) -> Result<(f64, Tensor<B, 1>)> {
        if self.l2 > 0.0 {
            let w = params()?;
            value += self.l2_penalty(&w);
            grad = grad + w.mul_scalar(self.l2);
        }
        if !value.is_finite() {
            return Err(CurvatureError::NonFinite("loss".into()));
        }
        check_finite_vec(&grad, "gradient")?;
        Ok((value, grad))
    }

    /// `Σ_batches f(batch, 1/N)`, for the pair (value, vector) that each batch contributes,
    /// summed over the peers' shards when the objective is sharded (one all-reduce).
    fn sum_over_batches(
        &self,
        f: impl Fn(&Batch<B, D>, f64) -> Result<(f64, Tensor<B, 1>)>,
    ) -> Result<(f64, Tensor<B, 1>)> {
        let scale = 1.0 / self.num_examples as f64;
        let (mut value, mut acc) = (0.0, None::<Tensor<B, 1>>);
        self.for_each_batch(&mut |batch| {
            let (v, t) = f(batch, scale)?;
            value += v;
            acc = Some(match acc.take() {
                Some(a) => a + t,
                None => t,
            });
            Ok(())
        })?;
        self.reduce_pair(value, acc.expect("the data source has examples"))
    }

    /// Loss and gradient of one batch's **mean** loss (plus the L2 term): the stochastic
    /// gradient of a mini-batch step.
    ///
    /// # Errors
    /// As [`gradient`](Self::gradient).
    pub fn batch_gradient(&self, batch: &Batch<B, D>) -> Result<(f64, Tensor<B, 1>)> {
        let (value, grad) =
            guarded(|| self.batch_gradient_scaled(&self.model, batch, 1.0 / batch.len() as f64))?;
        self.finish_gradient(value, grad, || Ok(self.params()))
    }

    /// The model with parameters `theta` (used by finite differences).
    pub(crate) fn model_at(&self, theta: Tensor<B, 1>) -> Result<Train<B, M>> {
        self.layout.load(self.model.clone(), theta)
    }

    /// Exact Hessian-vector product `Hv` over all data (see [`Hessian`](crate::Hessian)).
    ///
    /// # Errors
    /// As [`gradient`](Self::gradient), plus [`CurvatureError::DimensionMismatch`] for a `v`
    /// of the wrong length.
    pub fn hvp(&self, v: &Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        self.layout.check(v, "vector v")?;
        let (_, hv) =
            self.sum_over_batches(|batch, scale| self.batch_hvp_scaled(batch, v, scale))?;
        let hv = self.add_l2(hv, v);
        check_finite_vec(&hv, "Hessian-vector product")?;
        Ok(hv)
    }

    /// Hessian-vector product of one batch's **mean** loss, `H_B v` with
    /// `H_B = ∇²[(1/B) Σ_{i∈batch} ℓ_i + (μ/2)‖w‖²]` — the mini-batch Hessians of the damping
    /// paper's Algorithm 1. Returns the batch's mean loss too.
    ///
    /// # Errors
    /// As [`hvp`](Self::hvp).
    pub fn batch_hvp(&self, batch: &Batch<B, D>, v: &Tensor<B, 1>) -> Result<(f64, Tensor<B, 1>)> {
        self.layout.check(v, "vector v")?;
        let (value, hv) = guarded(|| self.batch_hvp_scaled(batch, v, 1.0 / batch.len() as f64))?;
        let hv = self.add_l2(hv, v);
        check_finite_vec(&hv, "Hessian-vector product")?;
        Ok((value + self.l2_value(), hv))
    }

    /// Exact generalised Gauss–Newton product `Gv = Jᵀ H_ℓ J v (+ μv)` over all data (see
    /// [`Ggn`](crate::Ggn)).
    ///
    /// # Errors
    /// As [`hvp`](Self::hvp).
    pub fn ggn_vp(&self, v: &Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        self.layout.check(v, "vector v")?;
        let (_, gv) = self
            .sum_over_batches(|batch, scale| Ok((0.0, self.batch_ggn_scaled(batch, v, scale)?)))?;
        let gv = self.add_l2(gv, v);
        check_finite_vec(&gv, "GGN-vector product")?;
        Ok(gv)
    }

    fn add_l2(&self, hv: Tensor<B, 1>, v: &Tensor<B, 1>) -> Tensor<B, 1> {
        if self.l2 > 0.0 {
            hv + v.clone().mul_scalar(self.l2)
        } else {
            hv
        }
    }

    fn l2_value(&self) -> f64 {
        if self.l2 > 0.0 {
            self.l2_penalty(&self.params())
        } else {
            0.0
        }
    }

    /// `(μ/2)‖w‖²`.
    fn l2_penalty(&self, w: &Tensor<B, 1>) -> f64 {
        0.5 * self.l2 * dot(w, w)
    }
}
