//! # curvature-optim
//!
//! Building blocks of curvature-aware training (this release): learning-rate [`Schedule`]s
//! (constant, step, cosine and the papers' eqs. 12, 13 and 16) and damping policies
//! ([`FixedDamping`], [`LevenbergMarquardt`], [`RmtDamping`] learned from the Hessian
//! variance). The optimisers themselves (SGD, Adam-D, KFAC, LanczosOPT) are to come.
#![warn(missing_docs)]

mod damping;
mod error;
mod schedule;

pub use damping::{
    DampingPolicy, FixedDamping, LevenbergMarquardt, RmtDamping, curvature_lr_ratio,
};
pub use error::{OptimError, Result};
pub use schedule::Schedule;
