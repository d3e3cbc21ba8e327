//! A stack of convolutions, each optionally followed by batch norm over its output channels —
//! the feature extractor of VGG and of the simple CNN — built from its configurations, or
//! counted from them.

use burn::tensor::backend::Backend;

use crate::error::Result;
use crate::layers::{BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig};

/// The batch norms after `convs` (none without `batch_norm`).
fn norm_configs(convs: &[Conv2dConfig], batch_norm: bool) -> Vec<BatchNormConfig> {
    match batch_norm {
        true => convs
            .iter()
            .map(|c| BatchNormConfig::new(c.channels[1]))
            .collect(),
        false => Vec::new(),
    }
}

/// Convolutions and the batch norms after them.
pub(super) type ConvStack<B> = (Vec<Conv2d<B>>, Vec<BatchNorm<B>>);

/// The convolutions `convs` and their batch norms.
pub(super) fn init<B: Backend>(
    convs: &[Conv2dConfig],
    batch_norm: bool,
    device: &B::Device,
) -> Result<ConvStack<B>> {
    Ok((
        convs
            .iter()
            .map(|c| c.init(device))
            .collect::<Result<_>>()?,
        norm_configs(convs, batch_norm)
            .iter()
            .map(|c| c.init(device))
            .collect::<Result<_>>()?,
    ))
}

/// Trainable parameters of what [`init`] builds.
pub(super) fn num_params(convs: &[Conv2dConfig], batch_norm: bool) -> usize {
    convs.iter().map(Conv2dConfig::num_params).sum::<usize>()
        + norm_configs(convs, batch_norm)
            .iter()
            .map(BatchNormConfig::num_params)
            .sum::<usize>()
}
