//! # curvature-nets
//!
//! Layers and models whose loss can be differentiated **twice** by burn 0.21, so that
//! `curvature-core` computes exact Hessian-vector products for them. burn's fused `nn::Linear`,
//! `MaxPool2d`, `AvgPool2d` and `adaptive_avg_pool2d` panic when differentiated twice; the
//! layers here are built from primitives that are not (SPEC §6), and every layer and model is
//! tested against f64 central differences.
//!
//! Parameter tensors use PyTorch's names and layouts (`weight [out, in]` for dense layers,
//! `[out, in/groups, kh, kw]` for convolutions, batch norm `weight`/`bias`/`running_*`), so
//! flat parameter vectors follow the order of PyTorch's `module.parameters()`.
#![warn(missing_docs)]

mod error;
pub mod layers;
pub mod models;
pub mod nn;
pub mod running_stats;
/// Layer taps for KFAC (moved to `curvature-core`; re-exported here).
pub use curvature_core::tap;
pub mod torch_names;
pub mod weights;

pub use error::{NetsError, Result};
pub use layers::{
    Activation, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, ConvLowering, Dense, DenseConfig,
    im2col,
};
pub use models::*;
pub use running_stats::{StatsUpdate, recompute_running_stats, with_running_stats};
pub use weights::{load_safetensors, module_path, save_safetensors, write_atomic};
