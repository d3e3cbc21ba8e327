//! # curvature-lab
//!
//! The experiment runner behind the `curvature` command: validated run configurations
//! ([`TrainConfig`]) whose keys are the command-line flags, and [`train`](fn@train)/[`resume`] with
//! per-epoch metrics, atomic checkpoints and bit-identical resumption on the CPU.
//!
//! Modules, one per command: [`train`](mod@train) (SGD, Adam/AdamW/Adam-D, KFAC and LanczosOPT with fixed
//! or RMT auto-damping and the papers' schedules; SVG and PNG plots; spectra during training; Ctrl-C
//! checkpoints), [`spectrum`](mod@spectrum) (Hessian / GGN / Hessian − GGN by Lanczos + SLQ or dense, per
//! parameter block), [`variance`](mod@variance) (Algorithm 1 of the damping paper), [`interpolate`](mod@interpolate),
//! [`sweep`](mod@sweep) and [`presets`](mod@presets) (the bundled `-mini` experiments), [`bench`](mod@bench) (timings on any burn
//! backend), [`verify`](mod@verify) (a backend's curvature and optimiser steps against NdArray's), with [`plot`](mod@plot) (+ [`raster`] for PNG) and [`progress`] shared by all. Every model of
//! `curvature-nets` (logistic regression, MLP, CNN, VGG-16, PreResNet, WideResNet) trains on
//! optdigits, Gaussian clusters, MNIST, Fashion-MNIST and CIFAR-10/100 by name; one generic
//! body per command serves them all (a model visitor over the input rank).
#![warn(missing_docs)]

pub mod backend;
pub mod bench;
pub mod config;
pub mod csv_table;
pub mod dir_lock;
mod error;
pub mod interpolate;
pub mod memory;
pub mod names;
mod optimizer;
pub mod peers;
pub mod plot;
pub mod presets;
pub mod progress;
pub mod raster;
pub mod setup;
pub mod spectrum;
pub mod sweep;
pub mod train;
pub mod variance;
pub mod verify;

pub use backend::{BackendChoice, BackendVisitor, on_backend};
pub use config::{DampingSetting, TrainConfig};
/// How convolutions are computed (`--conv`, the `conv` configuration key).
pub use curvature_nets::ConvLowering;
/// How KFAC inverts its damped factors (`--kfac-solver`, the `kfac_solver` configuration key).
pub use curvature_optim::FactorSolver;
pub use error::{LabError, Result, write_atomic};
pub use interpolate::{InterpolateRequest, LinePoint, interpolate};
pub use names::{
    AugmentKind, BackendKind, DatasetKind, Metric, OperatorKind, OptimizerKind, OutlierKind,
    Precision, ScheduleKind, SplitKind, ValidationKind,
};
pub use presets::{Preset, preset, presets};
pub use spectrum::{SpectrumRequest, SpectrumResult, measure};
pub use sweep::{SweepCell, sweep};
pub use train::{
    EpochMetrics, RunOptions, RunPaths, SpectrumRecord, resume, train, trained_backend,
};
pub use variance::{VarianceRequest, VarianceResult, measure_variance};
