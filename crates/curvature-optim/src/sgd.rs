//! Stochastic gradient descent with momentum, Nesterov and two kinds of weight decay.

use burn::config::Config;
use burn::module::AutodiffModule;
use burn::optim::SimpleOptimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::record::Record;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Device, Tensor};

use crate::error::{Result as OResult, invalid};
use crate::weight_decay::{WeightDecayMode, apply, check_decay};

/// Configuration of [`Sgd`] (PyTorch `torch.optim.SGD` conventions, dampening 0).
#[derive(Config, Debug)]
pub struct SgdConfig {
    /// Momentum `ρ ∈ [0, 1)`.
    #[config(default = 0.0)]
    pub momentum: f64,
    /// Nesterov momentum.
    #[config(default = false)]
    pub nesterov: bool,
    /// Weight decay `λ ≥ 0`.
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// L2 or decoupled.
    #[config(default = "WeightDecayMode::L2")]
    pub weight_decay_mode: WeightDecayMode,
}

/// SGD: `g ← ∇L (+ λw)`, `z ← ρz + g`, `w ← w − α(g + ρz)` (Nesterov) or `w ← w − αz`.
/// With decoupled decay, `w ← w(1 − αλ)` first and the gradient is left alone.
#[derive(Clone, Debug)]
pub struct Sgd {
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    mode: WeightDecayMode,
}

/// Momentum buffer `z` of one parameter tensor.
#[derive(Record, Clone)]
pub struct SgdState<B: Backend, const D: usize> {
    /// The buffer.
    pub velocity: Tensor<B, D>,
}

impl SgdConfig {
    /// Check and build the update rule.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`](crate::OptimError::InvalidConfig) for `ρ ∉ [0, 1)`,
    /// `λ < 0`, or Nesterov without momentum.
    pub fn build(&self) -> OResult<Sgd> {
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(invalid(
                "SgdConfig",
                "momentum",
                self.momentum,
                "must lie in [0, 1)",
            ));
        }
        check_decay("SgdConfig", self.weight_decay)?;
        if self.nesterov && self.momentum == 0.0 {
            return Err(invalid(
                "SgdConfig",
                "nesterov",
                true,
                "needs a positive momentum",
            ));
        }
        Ok(Sgd {
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            mode: self.weight_decay_mode,
        })
    }

    /// A burn optimiser for module `M` (use with `Optimizer::step(lr, module, grads)`).
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn init<AB: AutodiffBackend, M: AutodiffModule<AB>>(
        &self,
    ) -> OResult<OptimizerAdaptor<Sgd, M, AB>> {
        Ok(OptimizerAdaptor::from(self.build()?))
    }
}

impl<B: Backend> SimpleOptimizer<B> for Sgd {
    type State<const D: usize> = SgdState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        w: Tensor<B, D>,
        g: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let g = curvature_core::layout::contiguous(g);
        let (w, g) = apply(self.mode, self.weight_decay, lr, w, g);
        if self.momentum == 0.0 {
            return (w - g.mul_scalar(lr), None);
        }
        // On Flex, one threaded pass instead of burn's operations (`sgd_on_flex.rs`; the same
        // bits).
        #[cfg(feature = "flex")]
        let (w, g, state) = match state {
            Some(s) => match crate::sgd_on_flex::momentum_step(
                [w, g, s.velocity],
                lr,
                self.momentum,
                self.nesterov,
            ) {
                Ok((w, velocity)) => return (w, Some(SgdState { velocity })),
                Err([w, g, velocity]) => (w, g, Some(SgdState { velocity })),
            },
            None => (w, g, None),
        };
        let z = match state {
            Some(s) => s.velocity.mul_scalar(self.momentum) + g.clone(),
            None => g.clone(),
        };
        let update = if self.nesterov {
            g + z.clone().mul_scalar(self.momentum)
        } else {
            z.clone()
        };
        (w - update.mul_scalar(lr), Some(SgdState { velocity: z }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device<B>) -> Self::State<D> {
        SgdState {
            velocity: state.velocity.to_device(device),
        }
    }
}
