//! Finding a file-based dataset on this machine without being told where it is.
//!
//! [`locate`] looks, in order, in
//!
//! 1. `data/<name>` under the working directory (where [`download`](crate::download) and the
//!    README put datasets), then
//! 2. `/usr/share/datasets/<name>` ([`SYSTEM_DATASETS_DIR`]), where Debian's dataset packages
//!    install them: `apt-get install dataset-fashion-mnist` puts the real Fashion-MNIST IDX
//!    files (gzipped, 60 000 + 10 000 images) in `/usr/share/datasets/fashion-mnist/`.
//!
//! A directory counts only if it holds every file the loader needs (for CIFAR, directly or in
//! the directory the official archive unpacks to). When none does, the error lists every place
//! searched and every way to get the data.

use std::path::{Path, PathBuf};

use crate::download::DownloadableDataset;
use crate::error::{DataError, Result};
use crate::files::find_plain_or_gz;

/// Where Debian's `dataset-*` packages install datasets.
pub const SYSTEM_DATASETS_DIR: &str = "/usr/share/datasets";

impl DownloadableDataset {
    /// Every file-based dataset.
    pub const ALL: [Self; 4] = [
        Self::Mnist,
        Self::FashionMnist,
        Self::Cifar10,
        Self::Cifar100,
    ];

    /// The dataset's directory name: `mnist`, `fashion-mnist`, `cifar10`, `cifar100` (the
    /// names the command line uses).
    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
            Self::Cifar10 => "cifar10",
            Self::Cifar100 => "cifar100",
        }
    }

    /// The Debian/Ubuntu package that installs the dataset under [`SYSTEM_DATASETS_DIR`], if
    /// there is one (today only Fashion-MNIST's).
    pub fn debian_package(self) -> Option<&'static str> {
        match self {
            Self::FashionMnist => Some("dataset-fashion-mnist"),
            _ => None,
        }
    }

    /// The places [`locate`] searches, in order: `data/<name>`, then
    /// `/usr/share/datasets/<name>`.
    pub fn search_path(self) -> [PathBuf; 2] {
        [
            Path::new("data").join(self.name()),
            Path::new(SYSTEM_DATASETS_DIR).join(self.name()),
        ]
    }

    /// The files the loader reads (IDX files may also be gzipped, `name.gz`); for CIFAR the
    /// training batches, then the test batch, last (the CIFAR loader splits the list there).
    pub fn required_files(self) -> &'static [&'static str] {
        match self {
            Self::Mnist | Self::FashionMnist => &[
                "train-images-idx3-ubyte",
                "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte",
            ],
            Self::Cifar10 => &[
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
                "test_batch.bin",
            ],
            Self::Cifar100 => &["train.bin", "test.bin"],
        }
    }

    /// The directory under `dir` that holds the dataset's files: `dir` itself, or for CIFAR the
    /// directory the official archive unpacks to (`cifar-10-batches-bin`, `cifar-100-binary`).
    /// `None` if neither holds all of them.
    pub fn files_in(self, dir: &Path) -> Option<PathBuf> {
        let unpacked = match self {
            Self::Mnist | Self::FashionMnist => None,
            Self::Cifar10 => Some(dir.join("cifar-10-batches-bin")),
            Self::Cifar100 => Some(dir.join("cifar-100-binary")),
        };
        let idx = matches!(self, Self::Mnist | Self::FashionMnist);
        std::iter::once(dir.to_path_buf())
            .chain(unpacked)
            .find(|d| {
                self.required_files().iter().all(|f| {
                    if idx {
                        find_plain_or_gz(d, f).is_some()
                    } else {
                        d.join(f).is_file()
                    }
                })
            })
    }
}

/// The directory to load `dataset` from: the first place of
/// [`search_path`](DownloadableDataset::search_path) (`data/<name>`, then
/// `/usr/share/datasets/<name>`) that holds all its files.
///
/// ```no_run
/// use curvature_data::{DownloadableDataset, Split, load_mnist, locate};
/// let dir = locate(DownloadableDataset::FashionMnist)?;
/// let test = load_mnist(&dir, Split::Test)?;
/// assert_eq!(test.len(), 10_000);
/// # Ok::<(), curvature_data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::NotFound`] listing the places searched, the Debian package (where there is one)
/// and the `download` feature.
pub fn locate(dataset: DownloadableDataset) -> Result<PathBuf> {
    locate_in(dataset, &dataset.search_path())
}

/// [`locate`] over explicit candidate directories, in order.
///
/// # Errors
/// [`DataError::NotFound`] as [`locate`].
pub fn locate_in(dataset: DownloadableDataset, candidates: &[PathBuf]) -> Result<PathBuf> {
    candidates
        .iter()
        .find_map(|dir| dataset.files_in(dir))
        .ok_or_else(|| {
            let mut ways = Vec::new();
            if let Some(package) = dataset.debian_package() {
                ways.push(format!(
                    "install it system-wide with `apt-get install {package}` (Debian/Ubuntu)"
                ));
            }
            ways.push(format!(
                "put the official files in {} or point `data_dir` (--data-dir) at a copy",
                Path::new("data").join(dataset.name()).display()
            ));
            ways.push(
                "or build with `--features download` and call curvature::data::download".into(),
            );
            let gz = if matches!(
                dataset,
                DownloadableDataset::Mnist | DownloadableDataset::FashionMnist
            ) {
                "[.gz]"
            } else {
                ""
            };
            DataError::NotFound {
                dataset: dataset.name(),
                needs: dataset
                    .required_files()
                    .iter()
                    .map(|f| format!("{f}{gz}"))
                    .collect(),
                searched: candidates.iter().map(|d| d.display().to_string()).collect(),
                hint: ways.join("; "),
            }
        })
}
