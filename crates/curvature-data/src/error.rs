//! The error type of `curvature-data`.

/// Everything that can go wrong loading or batching data.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Expected files are missing from a dataset directory.
    #[error("{dataset}: {dir} lacks {missing:?}; {hint}")]
    MissingFiles {
        /// The dataset.
        dataset: &'static str,
        /// The directory searched.
        dir: String,
        /// The files not found.
        missing: Vec<String>,
        /// Where to get them.
        hint: &'static str,
    },
    /// A dataset was found in none of the places searched (see `locate`).
    #[error(
        "{dataset}: not found in {} (a copy is a directory with {}); {hint}",
        searched.join(" or "),
        needs.join(", ")
    )]
    NotFound {
        /// The dataset's name.
        dataset: &'static str,
        /// The files a copy holds.
        needs: Vec<String>,
        /// The directories searched, in order.
        searched: Vec<String>,
        /// The ways to get it.
        hint: String,
    },
    /// The content of a file is malformed.
    #[error("{file}: {reason}")]
    Format {
        /// The file (or embedded resource).
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// An argument is out of range.
    #[error("invalid argument {name} = {value}: {reason}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// Building a batch failed.
    #[error(transparent)]
    Batch(#[from] curvature_core::CurvatureError),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, DataError>;
