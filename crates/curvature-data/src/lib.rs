//! # curvature-data
//!
//! Datasets for curvature experiments. This release ships the embedded optdigits data (no
//! download, no files) and the in-memory [`ClassificationData`] with batching into
//! `curvature_core::Batch`es.
#![warn(missing_docs)]

mod classification;
mod error;
mod optdigits;

pub use classification::ClassificationData;
pub use error::{DataError, Result};
pub use optdigits::{OPTDIGITS_LEN, optdigits, parse_optdigits};
