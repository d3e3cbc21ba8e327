//! # curvature-optim
//!
//! Curvature-aware training on burn:
//!
//! - first-order optimisers that plug into burn's `Optimizer` — [`SgdConfig`] (momentum,
//!   Nesterov) and [`AdamConfig`] (ε tunable over 1e-8…1e-1, the "Adam-D" preset, ε from a
//!   [`DampingCell`]), with L2 or decoupled weight decay; [`IterateAveraging`] around any of
//!   them and the [`gadam`] preset; [`checked_step`] / [`observed_step`] refuse NaN losses;
//! - curvature optimisers that take a closure re-evaluating the current batch — [`Kfac`]
//!   (Kronecker-factored Fisher for `Dense`/`Conv2d` layers) and [`LanczosOpt`] (eq. 9 of the
//!   damping paper) — with burn-record state and [`StepReport`]s to [`StepObserver`]s;
//! - damping policies shared by all of them: [`FixedDamping`], [`LevenbergMarquardt`] and
//!   [`RmtDamping`] (auto-damping from the mini-batch Hessian variance, Granziol & Baskerville
//!   §7);
//! - learning-rate [`Schedule`]s: constant, step, cosine and the papers' eqs. 12, 13 and 16;
//! - one [`TrainingStep`] trait that every optimiser implements (a step on a batch under a
//!   damping policy, returning a [`StepReport`]; state save and load), and
//!   [`OptimizerConfig`] / [`AnyOptimizer`] to choose one at run time.
//!
//! See `docs/choosing-and-damping-an-optimiser.md` for guidance and measured comparisons.
#![warn(missing_docs)]

mod adam;
mod averaging;
mod checked;
pub mod damping;
pub mod data_parallel;
mod error;
pub mod kfac;
pub mod lanczos_opt;
mod observe;
mod schedule;
mod sgd;
#[cfg(feature = "flex")]
mod sgd_on_flex;
mod training_step;
mod weight_decay;

pub use adam::{ADAM_D_EPSILON, Adam, AdamConfig, AdamState};
pub use averaging::{
    AveragingSchedule, IterateAverage, IterateAverageRecord, IterateAveraging,
    IterateAveragingRecord, average_path, gadam,
};
pub use checked::checked_step;
pub use damping::{
    DampingCell, DampingPolicy, FixedDamping, LevenbergMarquardt, RmtDamping, RmtEstimate,
    curvature_lr_ratio,
};
pub use data_parallel::PeerGroup;
pub use error::{OptimError, Result};
pub use kfac::{
    DampingSplit, FactorSolver, FisherEstimate, Kfac, KfacConfig, KfacEigenRecord,
    KfacInverseRecord, KfacLayerRecord, KfacRecord, KroneckerFactors, SgdRecord,
};
pub use lanczos_opt::{LanczosOpt, LanczosOptConfig, LanczosOptRecord, NegativeCurvature};
pub use observe::{
    History, Observers, PrintEvery, StepObserver, StepReport, StepTimings, observed_step,
};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig, SgdState};
pub use training_step::{
    AnyOptimizer, FirstOrder, OptimizerConfig, StepOutcome, TrainingStep, load_record, save_record,
};
pub use weight_decay::WeightDecayMode;
