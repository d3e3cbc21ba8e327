//! The error type of `curvature-optim`.

/// Invalid optimiser configurations and failed curvature estimates.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A configuration value is out of range.
    #[error("invalid {config}: {field} = {value}: {reason}")]
    InvalidConfig {
        /// The configuration type.
        config: &'static str,
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The loss of a step was NaN or infinite: the step was not applied.
    #[error(
        "non-finite loss {0}: the step was not applied (lower the learning rate or raise the damping)"
    )]
    NonFiniteLoss(f64),
    /// Inputs to a step that cannot be used (mismatched shapes, a NaN factor, a bad record).
    #[error("{0}")]
    InvalidInput(String),
    /// A state file (an optimiser's state, a checkpoint's record) could not be written or read,
    /// or holds the state of another optimiser or model.
    #[error("{}: {message}", path.display())]
    Record {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A curvature computation failed.
    #[error(transparent)]
    Curvature(#[from] curvature_core::CurvatureError),
}

pub(crate) fn invalid(
    config: &'static str,
    field: &'static str,
    value: impl std::fmt::Display,
    reason: &'static str,
) -> OptimError {
    OptimError::InvalidConfig {
        config,
        field,
        value: value.to_string(),
        reason,
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, OptimError>;
