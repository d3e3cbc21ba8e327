//! A guarded optimiser step: refuse to apply an update computed from a non-finite loss or
//! gradient, instead of silently writing NaNs into the model.

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use curvature_core::PeerReduce;

use crate::data_parallel::all_reduce_step;
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
    checked_step_in(None, optimizer, lr, module, loss)
}

/// [`checked_step`], or with `group = Some((group, n))` as one peer of a data-parallel group
/// whose share of the batch has `n` examples: the gradient and loss are made the global
/// batch's ([`all_reduce_step`](crate::data_parallel)) before the check, so that a non-finite
/// loss is refused by every peer together (the sum is non-finite everywhere) and no peer is
/// left waiting for another. The returned loss is the global batch's.
pub(crate) fn checked_step_in<B, M, O>(
    group: Option<(&dyn PeerReduce<B::InnerBackend>, usize)>,
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
    if group.is_none() && !value.is_finite() {
        return Err((module, OptimError::NonFiniteLoss(value)));
    }
    let grads = GradientsParams::from_grads(loss.backward(), &module);
    let (grads, value) = match group {
        None => (grads, value),
        Some((group, examples)) => {
            match all_reduce_step(group, &module, grads, Vec::new(), value, examples) {
                Ok(global) if global.loss.is_finite() => (global.grads, global.loss),
                Ok(global) => return Err((module, OptimError::NonFiniteLoss(global.loss))),
                Err(e) => return Err((module, e)),
            }
        }
    };
    Ok((optimizer.step(lr, module, grads), value))
}
