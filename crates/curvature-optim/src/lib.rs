//! # curvature-optim
//!
//! Building blocks of curvature-aware training (this release): first-order optimisers that
//! plug into burn's `Optimizer` ([`SgdConfig`], [`AdamConfig`] with ε tunable and the
//! "Adam-D" preset, L2 or decoupled weight decay), learning-rate [`Schedule`]s
//! (constant, step, cosine and the papers' eqs. 12, 13 and 16) and damping policies
//! ([`FixedDamping`], [`LevenbergMarquardt`], [`RmtDamping`] learned from the Hessian
//! variance). [`LanczosOpt`] (eq. 9) takes the objective as its closure. [`IterateAveraging`] wraps any of them
//! ([`gadam`] = AdamW + averaging). KFAC and step observers are to come.
#![warn(missing_docs)]

mod adam;
mod averaging;
mod checked;
mod damping;
mod error;
mod kfac;
mod lanczos_opt;
mod observe;
mod schedule;
mod sgd;
mod weight_decay;

pub use adam::{Adam, AdamConfig, AdamState};
pub use averaging::{AveragingSchedule, IterateAveraging, IterateAveragingRecord, gadam};
pub use checked::checked_step;
pub use damping::{
    DampingCell, DampingPolicy, FixedDamping, LevenbergMarquardt, RmtDamping, curvature_lr_ratio,
};
pub use error::{OptimError, Result};
pub use kfac::{
    DampingSplit, FisherEstimate, Kfac, KfacConfig, KfacEigenRecord, KfacLayerRecord, KfacRecord,
    KroneckerFactors, SgdRecord,
};
pub use lanczos_opt::{LanczosOpt, LanczosOptConfig, LanczosOptRecord, NegativeCurvature};
pub use observe::{
    History, Observers, PrintEvery, StepObserver, StepReport, StepTimings, observed_step,
};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig, SgdState};
pub use weight_decay::WeightDecayMode;
