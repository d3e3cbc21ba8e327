//! # curvature-lab
//!
//! The experiment runner behind the `curvature` command: validated run configurations
//! ([`TrainConfig`]) whose keys are the command-line flags, and [`train`]/[`resume`] with
//! per-epoch metrics, atomic checkpoints and bit-identical resumption on the CPU.
//!
//! This release covers `curvature train` and `curvature spectrum` for the 2-D-input models
//! (logistic regression, MLP) on the offline datasets (optdigits, Gaussian clusters): training
//! with SGD, Adam/AdamW/Adam-D and KFAC, fixed or RMT auto-damping and the papers' schedules;
//! Hessian / GGN / Hessian − GGN spectra by Lanczos + SLQ or exactly (dense). Sweeps, presets,
//! plots, the variance and interpolation commands and the CIFAR models are the next steps of the
//! CLI work item.
#![warn(missing_docs)]

pub mod bench;
pub mod config;
mod error;
pub mod interpolate;
pub mod plot;
pub mod presets;
pub mod progress;
mod setup;
pub mod spectrum;
pub mod sweep;
pub mod train;
pub mod variance;

pub use config::{DampingSetting, TrainConfig};
pub use error::{LabError, Result};
pub use interpolate::{InterpolateRequest, LinePoint, interpolate};
pub use presets::{Preset, preset, presets};
pub use spectrum::{SpectrumRequest, SpectrumResult, measure};
pub use sweep::{SweepCell, sweep};
pub use train::{EpochMetrics, RunOptions, RunPaths, resume, train};
pub use variance::{VarianceRequest, VarianceResult, measure_variance};
