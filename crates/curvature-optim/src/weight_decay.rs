//! How weight decay enters an update.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

/// Weight decay as an L2 term or decoupled from the gradient (Loshchilov & Hutter 2019).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDecayMode {
    /// `g ← g + λw` before the update (the gradient of `(λ/2)‖w‖²`; PyTorch `weight_decay`).
    L2,
    /// `w ← w − α λ w` applied to the weights, outside the preconditioner (PyTorch `AdamW`;
    /// *Flatness is a False Friend* eq. 18).
    Decoupled,
}

/// Check a weight-decay coefficient `λ ≥ 0` for the named configuration.
pub(crate) fn check_decay(config: &'static str, decay: f64) -> crate::error::Result<()> {
    if !(decay.is_finite() && decay >= 0.0) {
        return Err(crate::error::invalid(
            config,
            "weight_decay",
            decay,
            "must be ≥ 0",
        ));
    }
    Ok(())
}

/// Apply weight decay `λ = decay` in `mode`: returns `(w, g)` after the decay step.
pub(crate) fn apply<B: Backend, const D: usize>(
    mode: WeightDecayMode,
    decay: f64,
    lr: f64,
    w: Tensor<B, D>,
    g: Tensor<B, D>,
) -> (Tensor<B, D>, Tensor<B, D>) {
    if decay == 0.0 {
        return (w, g);
    }
    match mode {
        WeightDecayMode::L2 => {
            let g = g + w.clone().mul_scalar(decay);
            (w, g)
        }
        WeightDecayMode::Decoupled => (w.mul_scalar(1.0 - lr * decay), g),
    }
}
