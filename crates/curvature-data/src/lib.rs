//! # curvature-data
//!
//! Datasets for curvature experiments, all as [`ClassificationData`] (in-memory examples and
//! labels) that batch into `curvature_core::Batch`es:
//!
//! * [`optdigits`] — embedded (no download, no files), the offline default;
//! * [`Cifar`] — CIFAR-10 / CIFAR-100 (fine or coarse) from the official binary files;
//! * [`load_mnist`] — MNIST and Fashion-MNIST from IDX files, gzipped or not;
//! * [`locate`] — finds a file-based dataset without being told where: `data/<name>`, then
//!   `/usr/share/datasets/<name>` (Debian's `apt-get install dataset-fashion-mnist` installs
//!   the real Fashion-MNIST there);
//! * [`gaussian_clusters`] — Sagun et al.'s synthetic k-cluster data;
//! * [`Augmentation`] and [`AugmentedStream`] — random crop + flip, reproducible augmented
//!   streams of any length;
//! * [`ClassificationBatcher`] — burn `Dataset`/`Batcher` implementations for burn's `DataLoader`.
//!
//! Downloads are opt-in (cargo feature `download`, see [`DownloadableDataset`]): checksummed
//! and resumable; without the feature nothing touches the network.
//!
//! Loading never panics on bad files: a missing file, a wrong magic number, a truncated file
//! or a label out of range is a [`DataError`] naming the file and what is wrong.
#![warn(missing_docs)]

mod augment;
mod burn_data;
mod cifar;
mod classification;
mod clusters;
mod download;
mod error;
mod files;
mod idx;
mod locate;
mod optdigits;

pub use augment::{Augmentation, AugmentedStream};
pub use burn_data::{ClassificationBatcher, ClassificationItem};
pub use cifar::{Cifar, Split};
pub use classification::{ClassificationData, Normalization};
pub use clusters::{GaussianClustersConfig, gaussian_clusters};
#[cfg(feature = "download")]
pub use download::download;
pub use download::{DownloadableDataset, Resource, extract_cifar, md5_file, resources, verify_md5};
pub use error::{DataError, Result};
pub use idx::{load_mnist, parse_idx_images, parse_idx_labels};
pub use locate::{SYSTEM_DATASETS_DIR, locate, locate_in};
pub use optdigits::{OPTDIGITS_LEN, optdigits, parse_optdigits};
