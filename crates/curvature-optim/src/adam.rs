//! Adam and AdamW with ε tunable over its whole useful range (1e-8 … 1e-1).

use burn::config::Config;
use burn::module::AutodiffModule;
use burn::optim::SimpleOptimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::record::Record;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Device, Tensor};

use crate::damping::{DampingCell, DampingPolicy};
use crate::error::{Result as OResult, invalid};
use crate::weight_decay::{WeightDecayMode, apply, check_decay};

/// Configuration of [`Adam`] (PyTorch `torch.optim.Adam` / `AdamW` conventions).
///
/// **Where ε enters**: `w ← w − α m̂ / (√v̂ + ε)` — outside the square root, after bias
/// correction, as in PyTorch and optax; default `ε = 1e-8`. ε is Adam's damping: a large ε
/// ("Adam-D", e.g. 5e-3 on CIFAR-100 in Granziol & Baskerville) shrinks the preconditioner
/// towards SGD with learning rate `α/ε`.
#[derive(Config, Debug)]
pub struct AdamConfig {
    /// `β₁ ∈ [0, 1)`.
    #[config(default = 0.9)]
    pub beta_1: f64,
    /// `β₂ ∈ [0, 1)`.
    #[config(default = 0.999)]
    pub beta_2: f64,
    /// `ε > 0`.
    #[config(default = 1e-8)]
    pub epsilon: f64,
    /// Weight decay `λ ≥ 0`.
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// L2 (Adam) or decoupled (AdamW).
    #[config(default = "WeightDecayMode::L2")]
    pub weight_decay_mode: WeightDecayMode,
}

/// Adam-D's default ε (damping), the damping paper's CIFAR-100 value (§6, Table 2).
pub const ADAM_D_EPSILON: f64 = 5e-3;

impl AdamConfig {
    /// AdamW: decoupled weight decay `λ`.
    pub fn adamw(weight_decay: f64) -> Self {
        Self::new()
            .with_weight_decay(weight_decay)
            .with_weight_decay_mode(WeightDecayMode::Decoupled)
    }

    /// The damping paper's "Adam-D" (Granziol & Baskerville §6, Table 2): Adam with a large
    /// ε — its damping — and otherwise Adam's update, including L2 weight decay `λ` added to the
    /// gradient (not AdamW's decoupled decay; set the mode explicitly for that). The paper's
    /// CIFAR-100 VGG-16 value is `ε = 5e-3` ([`ADAM_D_EPSILON`]).
    pub fn adam_d(epsilon: f64, weight_decay: f64) -> Self {
        Self::new()
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay)
    }

    /// Check and build the update rule.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`](crate::OptimError::InvalidConfig) for `β ∉ [0, 1)`,
    /// `ε ≤ 0` or `λ < 0`.
    pub fn build(&self) -> OResult<Adam> {
        for (field, b) in [("beta_1", self.beta_1), ("beta_2", self.beta_2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(invalid("AdamConfig", field, b, "must lie in [0, 1)"));
            }
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(invalid(
                "AdamConfig",
                "epsilon",
                self.epsilon,
                "must be positive",
            ));
        }
        check_decay("AdamConfig", self.weight_decay)?;
        Ok(Adam {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: Epsilon::Fixed(self.epsilon),
            weight_decay: self.weight_decay,
            mode: self.weight_decay_mode,
        })
    }

    /// A burn optimiser for module `M`.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn init<AB: AutodiffBackend, M: AutodiffModule<AB>>(
        &self,
    ) -> OResult<OptimizerAdaptor<Adam, M, AB>> {
        Ok(OptimizerAdaptor::from(self.build()?))
    }

    /// A burn optimiser for module `M` whose `ε` is read from `epsilon` at every step, so
    /// that a damping policy (e.g. [`RmtDamping`](crate::RmtDamping), via
    /// [`DampingCell::follow`]) sets it during training. The config's own `epsilon` is only
    /// validated.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn init_damped<AB: AutodiffBackend, M: AutodiffModule<AB>>(
        &self,
        epsilon: DampingCell,
    ) -> OResult<OptimizerAdaptor<Adam, M, AB>> {
        let mut adam = self.build()?;
        adam.epsilon = Epsilon::Shared(epsilon);
        Ok(OptimizerAdaptor::from(adam))
    }
}

/// Where Adam's `ε` comes from.
#[derive(Clone, Debug)]
enum Epsilon {
    Fixed(f64),
    Shared(DampingCell),
}

impl Epsilon {
    fn value(&self) -> f64 {
        match self {
            Epsilon::Fixed(e) => *e,
            Epsilon::Shared(cell) => cell.damping(),
        }
    }
}

/// Adam (Kingma & Ba 2015): `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `w ← w − α (m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)`.
#[derive(Clone, Debug)]
pub struct Adam {
    beta_1: f64,
    beta_2: f64,
    epsilon: Epsilon,
    weight_decay: f64,
    mode: WeightDecayMode,
}

/// Moments of one parameter tensor.
#[derive(Record, Clone)]
pub struct AdamState<B: Backend, const D: usize> {
    /// Step count `t`.
    pub time: usize,
    /// First moment `m`.
    pub moment_1: Tensor<B, D>,
    /// Second moment `v`.
    pub moment_2: Tensor<B, D>,
}

impl<B: Backend> SimpleOptimizer<B> for Adam {
    type State<const D: usize> = AdamState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        w: Tensor<B, D>,
        g: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let g = curvature_core::layout::contiguous(g);
        let (w, g) = apply(self.mode, self.weight_decay, lr, w, g);
        let (time, m, v) = match state {
            Some(s) => (
                s.time + 1,
                s.moment_1.mul_scalar(self.beta_1),
                s.moment_2.mul_scalar(self.beta_2),
            ),
            None => (1, g.zeros_like(), g.zeros_like()),
        };
        let m = m + g.clone().mul_scalar(1.0 - self.beta_1);
        let v = v + (g.clone() * g).mul_scalar(1.0 - self.beta_2);
        let c1 = 1.0 - self.beta_1.powi(time as i32);
        let c2 = 1.0 - self.beta_2.powi(time as i32);
        let denom = v
            .clone()
            .mul_scalar(1.0 / c2)
            .sqrt()
            .add_scalar(self.epsilon.value());
        let step = m.clone().mul_scalar(lr / c1) / denom;
        (
            w - step,
            Some(AdamState {
                time,
                moment_1: m,
                moment_2: v,
            }),
        )
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device<B>) -> Self::State<D> {
        AdamState {
            time: state.time,
            moment_1: state.moment_1.to_device(device),
            moment_2: state.moment_2.to_device(device),
        }
    }
}
