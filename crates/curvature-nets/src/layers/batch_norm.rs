//! Batch normalisation with an explicit train / eval mode and no hidden state updates.

use burn::module::{Initializer, Module, Param, RunningState};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::BatchNormMode;
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// Configuration of [`BatchNorm`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchNormConfig {
    /// Number of channels `C` (dimension 1 of the input).
    pub num_features: usize,
    /// `ε` added to the variance (PyTorch default 1e-5).
    pub epsilon: f64,
    /// Running-statistics momentum (PyTorch default 0.1).
    pub momentum: f64,
}

impl BatchNormConfig {
    /// PyTorch defaults: `ε = 1e-5`, momentum 0.1.
    pub fn new(num_features: usize) -> Self {
        Self {
            num_features,
            epsilon: 1e-5,
            momentum: 0.1,
        }
    }

    /// Trainable parameters of the layer: `γ` and `β`, `2C` (the running statistics are not
    /// parameters).
    pub fn num_params(&self) -> usize {
        2 * self.num_features
    }

    /// Build the layer: `γ = 1`, `β = 0`, running mean 0, running variance 1.
    ///
    /// # Errors
    /// [`NetsError::InvalidConfig`](crate::NetsError::InvalidConfig) for zero features,
    /// `ε ≤ 0` or a momentum outside `[0, 1]`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<BatchNorm<B>> {
        if self.num_features == 0 {
            return Err(invalid(
                "BatchNormConfig",
                "num_features",
                0,
                "must be positive",
            ));
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(invalid(
                "BatchNormConfig",
                "epsilon",
                self.epsilon,
                "must be positive",
            ));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(invalid(
                "BatchNormConfig",
                "momentum",
                self.momentum,
                "must lie in [0, 1]",
            ));
        }
        let c = self.num_features;
        Ok(super::materialize(BatchNorm {
            weight: Initializer::Ones.init([c], device),
            bias: Initializer::Zeros.init([c], device),
            running_mean: RunningState::new(Tensor::zeros([c], device)),
            running_var: RunningState::new(Tensor::ones([c], device)),
            epsilon: self.epsilon,
            momentum: self.momentum,
        }))
    }
}

/// `y = γ (x − μ) / sqrt(σ² + ε) + β` per channel (dimension 1), for inputs `[N, C]` or
/// `[N, C, H, W]` (any rank ≥ 2).
///
/// In [`BatchNormMode::Train`] `μ, σ²` are the batch statistics (biased variance, as PyTorch
/// normalises) and are differentiated through; in [`BatchNormMode::Eval`] they are the running
/// statistics. `forward` never changes the running statistics — curvature evaluation must not
/// mutate the model — except inside [`with_running_stats`](crate::running_stats::with_running_stats),
/// which training loops use; [`BatchNorm::update_running_stats`] updates them explicitly.
///
/// On burn's Flex backend, bare or under one `Autodiff` level (a training step), training mode
/// with at least 4 values per example and channel runs as one threaded operation with a fused
/// backward (`batch_norm_on_flex.rs`); elsewhere, and for Hessian-vector products, as burn's
/// operations.
#[derive(Module, Debug)]
pub struct BatchNorm<B: Backend> {
    /// Scale `γ` `[C]` (PyTorch `weight`).
    pub weight: Param<Tensor<B, 1>>,
    /// Shift `β` `[C]` (PyTorch `bias`).
    pub bias: Param<Tensor<B, 1>>,
    /// Running mean `[C]`.
    pub running_mean: RunningState<Tensor<B, 1>>,
    /// Running (unbiased) variance `[C]`.
    pub running_var: RunningState<Tensor<B, 1>>,
    /// `ε`.
    pub epsilon: f64,
    /// Momentum of the running statistics.
    pub momentum: f64,
}

/// Per-channel mean and biased variance, each `[C]`, and the count per channel.
///
/// Computed on the free view `[N, C, R]` (`R` = the product of the remaining sizes): sums over
/// `R`, then over `N`, and the centring with the mean repeated to `[N, C, 1]`. No transposed
/// copy is made, and every elementwise product has a layout the CPU backends run as a
/// contiguous SIMD loop (a `[1, C, 1]` operand broadcast over both `N` and `R` is walked one
/// element at a time by Flex: 28 % of a CNN's profile before, docs/benchmarks.md).
fn channel_stats<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> (Tensor<B, 1>, Tensor<B, 1>, usize) {
    let t = channel_view(x);
    let [n, c, r] = t.dims();
    let count = n * r;
    let mean = t
        .clone()
        .sum_dim(2)
        .sum_dim(0)
        .mul_scalar(1.0 / count as f64);
    let centred = t - mean.clone().repeat_dim(0, n);
    let var = (centred.clone() * centred)
        .sum_dim(2)
        .sum_dim(0)
        .mul_scalar(1.0 / count as f64);
    (mean.reshape([c]), var.reshape([c]), count)
}

/// `x` `[N, C, …]` as the free view `[N, C, R]`, `R` the product of the remaining sizes.
fn channel_view<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, 3> {
    let dims = x.dims();
    x.reshape([dims[0], dims[1], dims[2..].iter().product::<usize>()])
}

/// `v` `[C]` as `[N, C, 1]`, repeated over the batch: an operand of the `[N, C, R]` view that
/// the CPU backends broadcast over `R` with a SIMD loop (see [`channel_stats`]). Its gradient is
/// one sum over the last dimension, whose own derivative (in the second differentiation of an
/// HVP) is again a last-dimension broadcast; a `[N, C, 1, 1]` operand of the rank-4 tensor
/// needs two sums, the first over a middle dimension, whose derivative Flex walks one element
/// at a time (measured: 5–7 % of the CNN's HVP and GGN profile, docs/benchmarks.md).
fn per_channel<B: Backend>(v: Tensor<B, 1>, n: usize) -> Tensor<B, 3> {
    let c = v.dims()[0];
    v.reshape([1, c, 1]).repeat_dim(0, n)
}

impl<B: Backend> BatchNorm<B> {
    /// Normalise `x` (`[N, C, ...]`) in the given mode.
    ///
    /// # Panics
    /// If `x.dims()[1]` differs from the number of features (a programmer error: the model's
    /// configuration is inconsistent).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>, mode: BatchNormMode) -> Tensor<B, D> {
        let c = self.weight.dims()[0];
        assert_eq!(
            x.dims()[1],
            c,
            "BatchNorm over {c} channels got an input with {} channels",
            x.dims()[1]
        );
        // On Flex, training mode as one operation (`batch_norm_on_flex.rs`) where it applies.
        #[cfg(feature = "flex")]
        let x = match mode {
            BatchNormMode::Train => match super::batch_norm_on_flex::batch_norm_train_on_flex(
                x,
                self.weight.val(),
                self.bias.val(),
                self.epsilon,
            ) {
                Ok(out) => {
                    if let Some(m) = crate::running_stats::active_momentum(self.momentum) {
                        self.update_from_stats(out.mean, out.var, out.count, m);
                    }
                    return out.y;
                }
                Err((x, _, _)) => x,
            },
            BatchNormMode::Eval => x,
        };
        let (mean, var) = match mode {
            BatchNormMode::Train => {
                let (m, v, count) = channel_stats(x.clone());
                if let Some(momentum) = crate::running_stats::active_momentum(self.momentum) {
                    // The batch statistics just computed, detached: the same numbers as
                    // `update_running_stats(x)` without a second pass over `x`.
                    self.update_from_stats(m.clone().detach(), v.clone().detach(), count, momentum);
                }
                (m, v)
            }
            BatchNormMode::Eval => (
                self.running_mean.value_sync(),
                self.running_var.value_sync(),
            ),
        };
        let scale = self.weight.val() / (var.add_scalar(self.epsilon)).sqrt();
        let shift = self.bias.val() - mean * scale.clone();
        let dims = x.dims();
        let t = channel_view(x);
        let n = dims[0];
        (t * per_channel(scale, n) + per_channel(shift, n)).reshape(dims)
    }

    /// Update the running statistics from a batch, PyTorch style:
    /// `running ← (1 − m)·running + m·batch` with the unbiased batch variance.
    pub fn update_running_stats<const D: usize>(&self, x: Tensor<B, D>) {
        let (mean, var, n) = channel_stats(x.detach());
        self.update_from_stats(mean, var, n, self.momentum);
    }

    /// `running ← (1 − m)·running + m·batch` from a batch's mean and biased variance over `n`
    /// values per channel.
    fn update_from_stats(&self, mean: Tensor<B, 1>, var: Tensor<B, 1>, n: usize, m: f64) {
        let unbiased = if n > 1 {
            var.mul_scalar(n as f64 / (n - 1) as f64)
        } else {
            var
        };
        self.running_mean
            .update(self.running_mean.value_sync().mul_scalar(1.0 - m) + mean.mul_scalar(m));
        self.running_var
            .update(self.running_var.value_sync().mul_scalar(1.0 - m) + unbiased.mul_scalar(m));
        // burn's `RunningState::update` stages the value per thread; `value()`, module
        // visitors and records read the committed one. Commit now so every reader agrees.
        self.running_mean.value_sync();
        self.running_var.value_sync();
    }
}
