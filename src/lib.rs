//! Curvature: exact Hessian-vector products, Hessian spectra and curvature-aware training on burn.
#![warn(missing_docs)]
pub use curvature_collective as collective;
pub use curvature_core as core;
pub use curvature_data as data;
pub use curvature_nets as nets;
pub use curvature_nets::nn;
/// Schedules and damping policies.
pub use curvature_optim as optim;
