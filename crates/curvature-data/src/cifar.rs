//! CIFAR-10 and CIFAR-100 from the official binary distribution (Krizhevsky 2009).
//!
//! Download `cifar-10-binary.tar.gz` / `cifar-100-binary.tar.gz` from
//! <https://www.cs.toronto.edu/~kriz/cifar.html>, unpack, and pass the directory that holds
//! the `.bin` files (`cifar-10-batches-bin/` or `cifar-100-binary/`).
//!
//! * CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin` (train), `test_batch.bin`; each record
//!   is 1 label byte (0–9) and 3 072 pixel bytes (1 024 red, 1 024 green, 1 024 blue, row-major).
//! * CIFAR-100: `train.bin`, `test.bin`; each record is a coarse label (0–19), a fine label
//!   (0–99) and 3 072 pixel bytes.
//!
//! Images become `[3, 32, 32]` examples with values in `[0, 1]`.

use std::path::Path;

use crate::classification::ClassificationData;
use crate::download::DownloadableDataset;
use crate::error::{DataError, Result};
use crate::files::{read_file, require_files};

/// Which CIFAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar {
    /// CIFAR-10.
    Ten,
    /// CIFAR-100 with its 100 fine labels.
    HundredFine,
    /// CIFAR-100 with its 20 coarse (superclass) labels.
    HundredCoarse,
}

/// Training or test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

const PIXELS: usize = 3 * 32 * 32;

impl Cifar {
    /// The binary archive's files of `split`: every file the dataset requires but the last
    /// (the training batches), or the last (the test batch). One list serves the loader and
    /// [`DownloadableDataset::required_files`] (which `locate` checks).
    fn files(self, split: Split) -> &'static [&'static str] {
        let dataset = match self {
            Cifar::Ten => DownloadableDataset::Cifar10,
            Cifar::HundredFine | Cifar::HundredCoarse => DownloadableDataset::Cifar100,
        };
        let (test, train) = dataset
            .required_files()
            .split_last()
            .expect("a CIFAR archive has files");
        match split {
            Split::Train => train,
            Split::Test => std::slice::from_ref(test),
        }
    }
    /// Number of classes.
    pub fn num_classes(self) -> usize {
        match self {
            Cifar::Ten => 10,
            Cifar::HundredFine => 100,
            Cifar::HundredCoarse => 20,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Cifar::Ten => "CIFAR-10",
            _ => "CIFAR-100",
        }
    }

    /// Load a split from `dir`.
    ///
    /// # Errors
    /// [`DataError::MissingFiles`] naming the absent files and where to get them;
    /// [`DataError::Format`] naming the file for a length that is not a whole number of records
    /// or a label out of range; [`DataError::Io`].
    pub fn load(self, dir: impl AsRef<Path>, split: Split) -> Result<ClassificationData> {
        let dir = dir.as_ref();
        let files = self.files(split);
        require_files(
            self.name(),
            dir,
            files,
            "download the binary version from https://www.cs.toronto.edu/~kriz/cifar.html and pass the unpacked directory",
        )?;
        let (label_bytes, label_at) = match self {
            Cifar::Ten => (1, 0),
            Cifar::HundredCoarse => (2, 0),
            Cifar::HundredFine => (2, 1),
        };
        let record = label_bytes + PIXELS;
        let (mut inputs, mut labels) = (Vec::new(), Vec::new());
        for name in files {
            let path = dir.join(name);
            let bytes = read_file(&path)?;
            let fmt = |reason: String| DataError::Format {
                file: path.display().to_string(),
                reason,
            };
            if bytes.is_empty() || bytes.len() % record != 0 {
                return Err(fmt(format!(
                    "{} bytes is not a whole number of {record}-byte {} records",
                    bytes.len(),
                    self.name()
                )));
            }
            for (r, rec) in bytes.chunks_exact(record).enumerate() {
                let label = rec[label_at] as usize;
                if label >= self.num_classes() {
                    return Err(fmt(format!(
                        "record {r}: label {label} out of range 0..{}",
                        self.num_classes()
                    )));
                }
                if self != Cifar::Ten && rec[0] >= 20 {
                    return Err(fmt(format!(
                        "record {r}: coarse label {} out of range 0..20",
                        rec[0]
                    )));
                }
                labels.push(label);
                inputs.extend(rec[label_bytes..].iter().map(|&p| p as f32 / 255.0));
            }
        }
        ClassificationData::new(inputs, vec![3, 32, 32], labels, self.num_classes())
    }
}
