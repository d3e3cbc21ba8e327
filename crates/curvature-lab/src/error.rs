//! The error type of `curvature-lab`.

use std::path::PathBuf;

/// What can go wrong in an experiment.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// An unknown name (model, dataset, optimiser, schedule).
    #[error("unknown {kind} `{name}`; valid: {}", valid.join(", "))]
    UnknownName {
        /// What was named.
        kind: &'static str,
        /// The name given.
        name: String,
        /// The valid names.
        valid: Vec<&'static str>,
    },
    /// The compute device failed (GPU driver or runtime error).
    #[error("device error: {0}")]
    Device(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {field} = {value}: {reason}")]
    InvalidConfig {
        /// The key.
        field: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A grid value or `--set` value that does not fit its configuration key (serde's message
    /// names the key and, for a name, the valid ones).
    #[error("grid or --set value {key} = {value}: {message}")]
    GridValue {
        /// The key.
        key: String,
        /// The value as JSON.
        value: String,
        /// What is wrong with it.
        message: String,
    },
    /// The output directory holds another run.
    #[error(
        "{0} already holds a run (config.json); choose another --out, add --force to overwrite, or --resume it"
    )]
    OutputExists(PathBuf),
    /// Another process is writing into the output directory.
    #[error(
        "{} is in use by another curvature process{} (it holds {}/.lock); wait for it to finish or stop it, then run again",
        dir.display(),
        holder.map_or(String::new(), |p| format!(" (pid {p})")),
        dir.display()
    )]
    InUse {
        /// The directory.
        dir: PathBuf,
        /// The holder's process id, when the lock file could be read.
        holder: Option<u32>,
    },
    /// Training diverged.
    #[error(
        "the loss became {loss}{cause} at step {step} (epoch {epoch}); {}",
        match checkpoint {
            Some(p) => format!("the last good checkpoint is kept in {} (lower --lr or raise the damping, then --resume)", p.display()),
            None => "no checkpoint had been written yet (lower --lr or raise the damping)".to_string(),
        }
    )]
    Diverged {
        /// The loss value.
        loss: f64,
        /// Why that loss counts as divergence: empty for a non-finite loss, else the blow-up
        /// rule it broke (`TrainConfig::divergence_factor`).
        cause: String,
        /// Global step.
        step: usize,
        /// Epoch.
        epoch: usize,
        /// Where the last good checkpoint is, if one was written.
        checkpoint: Option<PathBuf>,
    },
    /// The run was interrupted (Ctrl-C); a checkpoint of the last step was written.
    #[error(
        "interrupted after step {step}; a checkpoint of that step is in {}/checkpoint (continue with `curvature train --resume {}`)",
        out.display(), out.display()
    )]
    Interrupted {
        /// Steps taken.
        step: usize,
        /// The run directory.
        out: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Errors of the library crates.
    #[error(transparent)]
    Curvature(#[from] curvature_core::CurvatureError),
    /// Model errors.
    #[error(transparent)]
    Nets(#[from] curvature_nets::NetsError),
    /// Data errors.
    #[error(transparent)]
    Data(#[from] curvature_data::DataError),
    /// Optimiser errors.
    #[error(transparent)]
    Optim(#[from] curvature_optim::OptimError),
    /// A data-parallel group failed (a peer's error, a peer that stopped or timed out).
    #[error(transparent)]
    Collective(#[from] curvature_collective::CollectiveError),
}

pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> LabError {
    LabError::Io {
        path: path.into(),
        reason: e.to_string(),
    }
}

/// Write `bytes` to `path` atomically ([`curvature_nets::write_atomic`]: a unique temporary
/// file, fsynced, renamed over `path`).
///
/// # Errors
/// [`LabError::Io`] naming `path`.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    curvature_nets::write_atomic(path, bytes).map_err(|e| io(path, e))
}

/// Refuse the first of `(field, value)` that is zero ("must be positive").
pub(crate) fn require_positive(sizes: &[(&'static str, usize)]) -> Result<()> {
    match sizes.iter().find(|(_, v)| *v == 0) {
        Some(&(field, v)) => Err(invalid(field, v, "must be positive")),
        None => Ok(()),
    }
}

pub(crate) fn invalid(
    field: &'static str,
    value: impl std::fmt::Display,
    reason: &'static str,
) -> LabError {
    LabError::InvalidConfig {
        field,
        value: value.to_string(),
        reason,
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, LabError>;
