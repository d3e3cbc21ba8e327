//! # curvature-core
//!
//! The Hessian of the loss as a first-class object for [burn](https://burn.dev) models:
//!
//! * [`ParamLayout`] — flat parameter vectors for any burn `Module`;
//! * [`Objective`] — model + loss + data, evaluated over all the data by accumulation;
//! * [`LinearOperator`]s — the exact [`Hessian`] (reverse-over-reverse), the [`Ggn`],
//!   [`HessianMinusGgn`], [`FiniteDifferenceHessian`], [`DenseOperator`], [`Shifted`], [`Scaled`];
//! * [`lanczos()`] with full re-orthogonalisation, [`slq()`] spectral densities, [`hutchinson_trace`],
//!   [`spectrum()`] summaries with every statistic of the papers;
//! * [`hessian_variance`] (eq. 15 of the RMT damping paper, unbiased, with its standard error;
//!   Algorithm 1 as printed by name);
//! * dense f64 references ([`dense_matrix`], [`dense_spectrum`]) for testing;
//! * data parallelism: an objective over one shard of the data whose products are summed
//!   across peers by a [`PeerReduce`] ([`Objective::with_peers`]).
//!
//! ```no_run
//! use curvature_core::{BatchNormMode, Batch, Loss, Network, Objective, SpectrumConfig, spectrum};
//! # fn run<B: burn::tensor::backend::Backend, M: curvature_core::CurvatureModel<B, 2>>(
//! #     model: M, batches: Vec<Batch<B, 2>>) -> curvature_core::Result<()> {
//! let objective = Objective::new(model, Loss::CrossEntropy, batches)?;
//! let summary = spectrum(&objective.hessian(), &SpectrumConfig::new())?;
//! println!("{summary}");
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod batch;
mod error;
pub mod hutchinson;
pub mod lanczos;
pub mod layout;
pub mod loss;
pub mod model;
pub mod module_path;
pub mod objective;
pub mod operator;
pub mod params;
pub mod peer_reduce;
pub mod random_vector;
pub mod reduce;
pub mod same_type;
pub mod slq;
pub mod spectrum;
pub mod tap;
#[cfg(feature = "testing")]
pub mod testing;
pub mod variance;

pub use batch::{Batch, BatchSource, BatchStream, Targets};
pub use error::{CurvatureError, Result, panic_message};
pub use hutchinson::{TraceEstimate, hutchinson_trace};
pub use lanczos::{
    BreakdownPolicy, Eigenpair, LanczosConfig, LanczosDecomposition, lanczos, lanczos_from,
};
pub use loss::Loss;
pub use model::{Ad, Ad2, BatchNormMode, CurvatureModel, Network, Train, Train2};
pub use module_path::ModulePath;
pub use objective::{Evaluation, Objective};
pub use operator::{
    Block, DenseOperator, DenseReferenceConfig, DenseSpectrum, FiniteDifferenceHessian, Ggn,
    Hessian, HessianMinusGgn, LinearOperator, Scaled, Shifted, dense_matrix, dense_spectrum,
};
pub use params::{ParamBlock, ParamLayout, mark_trainable};
pub use peer_reduce::PeerReduce;
pub use random_vector::{derive_seed, gaussian_vector, rademacher_vector};
pub use slq::{QuadratureRun, SlqConfig, SpectralDensity, slq};
pub use spectrum::{
    Definiteness, OutlierCheck, OutlierRule, SpectrumConfig, SpectrumSummary,
    feedforward_rank_bound, spectrum, sphere_stderr,
};
pub use variance::{
    HessianVariance, HessianVarianceConfig, VarianceEstimator, hessian_variance,
    hessian_variance_along,
};
