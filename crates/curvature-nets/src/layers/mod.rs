//! Twice-differentiable layers.

mod activation;
mod batch_norm;
#[cfg(feature = "flex")]
mod batch_norm_on_flex;
mod bilinear;
mod conv;
mod conv_maps;
#[cfg(feature = "flex")]
mod conv_patches;
mod cpu_backend;
mod dense;
#[cfg(feature = "flex")]
mod dense_on_flex;
mod eager;
#[cfg(feature = "flex")]
mod flex_f32;
mod pool;
#[cfg(feature = "flex")]
mod pool_maps;
#[cfg(feature = "flex")]
mod relu_on_flex;
mod zero_pad;

pub use activation::{Activation, relu};
pub use batch_norm::{BatchNorm, BatchNormConfig};
pub use conv::{Conv2d, Conv2dConfig, ConvLowering, im2col};
pub(crate) use cpu_backend::CpuBackend;
pub use dense::{Dense, DenseConfig};
pub(crate) use eager::materialize;
pub use pool::{avg_pool2d, flatten, global_avg_pool2d, max_pool2d};
pub(crate) use zero_pad::pad_zeros;
