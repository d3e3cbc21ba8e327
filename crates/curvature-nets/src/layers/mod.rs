//! Twice-differentiable layers.

mod activation;
mod batch_norm;
mod conv;
mod conv_maps;
mod dense;
mod eager;
mod pool;

pub use activation::Activation;
pub use batch_norm::{BatchNorm, BatchNormConfig};
pub use conv::{Conv2d, Conv2dConfig, ConvLowering, im2col};
pub use dense::{Dense, DenseConfig};
pub(crate) use eager::materialize;
pub use pool::{avg_pool2d, flatten, global_avg_pool2d, max_pool2d};
