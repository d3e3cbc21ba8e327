//! The error type of `curvature-nets`.

/// Invalid layer or model configurations.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NetsError {
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
        reason: String,
    },
    /// Reading or writing a weight file failed.
    #[error("{path}: {reason}")]
    Weights {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The data source failed (e.g. while recomputing batch-norm statistics).
    #[error(transparent)]
    Data(#[from] curvature_core::CurvatureError),
}

pub(crate) fn invalid(
    config: &'static str,
    field: &'static str,
    value: impl std::fmt::Debug,
    reason: impl Into<String>,
) -> NetsError {
    NetsError::InvalidConfig {
        config,
        field,
        value: format!("{value:?}"),
        reason: reason.into(),
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, NetsError>;
