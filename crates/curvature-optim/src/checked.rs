//! A guarded optimiser step: refuse to apply an update computed from a non-finite loss or
//! gradient, instead of silently writing NaNs into the model.

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use crate::error::OptimError;

/// Compute gradients of `loss` and apply one step of `optimizer`, unless the loss is NaN/±∞
/// (the model is returned untouched together with the error). Returns the stepped model and
/// the loss value (read from the device once).
///
/// # Errors
/// [`OptimError::NonFiniteLoss`] with the loss value.
pub fn checked_step<B, M, O>(
    optimizer: &mut O,
    lr: f64,
    module: M,
    loss: Tensor<B, 1>,
) -> std::result::Result<(M, f64), (M, OptimError)>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let value = curvature_core::reduce::scalar(loss.clone());
    if !value.is_finite() {
        return Err((module, OptimError::NonFiniteLoss(value)));
    }
    let grads = GradientsParams::from_grads(loss.backward(), &module);
    Ok((optimizer.step(lr, module, grads), value))
}
