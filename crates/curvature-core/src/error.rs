//! The error type of `curvature-core`.

/// Everything that can go wrong in `curvature-core`.
///
/// Bad input is reported with what was expected and what was found; nothing in this crate
/// silently returns wrong numbers.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CurvatureError {
    /// A vector or matrix has the wrong length / shape.
    #[error("dimension mismatch for {what}: expected {expected}, got {got}")]
    DimensionMismatch {
        /// What was being checked.
        what: String,
        /// The expected size.
        expected: usize,
        /// The size found.
        got: usize,
    },
    /// A configuration value is out of its valid range.
    #[error("invalid configuration: {field} = {value}: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// Its value, formatted.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A loss, gradient or curvature product contains NaN or ±∞.
    #[error("non-finite value in {0}")]
    NonFinite(String),
    /// A batch is malformed (inconsistent lengths, labels out of range, non-finite inputs).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// The data source yielded no examples, or not the number it announced.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// A parameter block name that the layout does not have.
    #[error("unknown parameter block `{name}`; valid: {}", valid.join(", "))]
    UnknownBlock {
        /// The name given.
        name: String,
        /// The layout's block names.
        valid: Vec<String>,
    },
    /// The model has no trainable float parameters.
    #[error("the model has no trainable parameters")]
    NoParameters,
    /// A trainable parameter received no gradient: the loss does not depend on it, or the
    /// autodiff graph was already consumed.
    #[error("parameter `{0}` received no gradient (is it used in the forward pass?)")]
    MissingGradient(String),
    /// The model's forward pass failed (for example an input of the wrong shape).
    #[error("the model's forward pass failed: {0}")]
    Forward(String),
    /// The model uses a burn operation whose backward pass cannot itself be differentiated
    /// (burn 0.21's fused `nn::Linear`, `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d`,
    /// `Embedding`, `interpolate`, deformable convolution), so its exact Hessian-vector product
    /// does not exist. Gradients still work.
    #[error(
        "the model uses `{module}`, whose backward pass burn cannot differentiate again (\"{operation}\"), so it has no exact Hessian-vector product: {replacement}"
    )]
    NotTwiceDifferentiable {
        /// burn's panic message: the operation.
        operation: String,
        /// The burn module (or function) that uses it.
        module: &'static str,
        /// What to use instead.
        replacement: &'static str,
    },
    /// A dense reference was requested for an operator that is too large.
    #[error(
        "dense reference refused: dimension {dim} exceeds the limit {limit} (raise `max_dim` if you really want a {dim}×{dim} matrix)"
    )]
    TooLarge {
        /// Operator dimension.
        dim: usize,
        /// Configured limit.
        limit: usize,
    },
    /// A collective operation between data-parallel peers failed: a peer stopped with an
    /// error, never joined, or did not answer within the time-out (see
    /// [`PeerReduce`](crate::PeerReduce)).
    #[error("data-parallel peers: {0}")]
    Peer(String),
    /// Serialisation of a summary failed.
    #[error("serialisation failed: {0}")]
    Serde(#[from] serde_json::Error),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, CurvatureError>;

pub(crate) fn invalid(
    field: &'static str,
    value: impl std::fmt::Display,
    reason: &'static str,
) -> CurvatureError {
    CurvatureError::InvalidConfig {
        field,
        value: value.to_string(),
        reason,
    }
}

/// The message of a caught panic's payload (`panic!("…")` carries a `&str` or a `String`),
/// or `"unknown panic"`.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}
