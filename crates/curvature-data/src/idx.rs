//! MNIST and Fashion-MNIST from IDX files (LeCun et al. 1998; Xiao et al. 2017), gzipped or not.
//!
//! Pass the directory holding `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
//! `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]` (Fashion-MNIST uses the same
//! names). Images become `[784]` examples (flattened 28×28) with values in `[0, 1]`.

use std::path::Path;

use crate::cifar::Split;
use crate::classification::ClassificationData;
use crate::error::{DataError, Result};
use crate::files::{find_plain_or_gz, read_maybe_gz};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parse an IDX3 image file: `(count, rows, cols, pixels)`.
///
/// # Errors
/// [`DataError::Format`] for a wrong magic number or a length that does not match the header.
pub fn parse_idx_images(bytes: &[u8], file: &str) -> Result<(usize, usize, usize, Vec<u8>)> {
    let fmt = |reason: String| DataError::Format {
        file: file.to_string(),
        reason,
    };
    if bytes.len() < 16 {
        return Err(fmt(format!(
            "{} bytes is shorter than the 16-byte IDX image header",
            bytes.len()
        )));
    }
    let magic = be_u32(bytes, 0);
    if magic != IMAGES_MAGIC {
        return Err(fmt(format!(
            "wrong magic number {magic:#010x}, expected {IMAGES_MAGIC:#010x} (IDX unsigned-byte images)"
        )));
    }
    let (n, rows, cols) = (
        be_u32(bytes, 4) as usize,
        be_u32(bytes, 8) as usize,
        be_u32(bytes, 12) as usize,
    );
    let expected = n
        .checked_mul(rows)
        .and_then(|x| x.checked_mul(cols))
        .and_then(|x| x.checked_add(16));
    if expected != Some(bytes.len()) {
        return Err(fmt(format!(
            "header announces {n} images of {rows}×{cols} but the file has {} bytes",
            bytes.len()
        )));
    }
    Ok((n, rows, cols, bytes[16..].to_vec()))
}

/// Parse an IDX1 label file.
///
/// # Errors
/// [`DataError::Format`] for a wrong magic number, a wrong length or a label above 9.
pub fn parse_idx_labels(bytes: &[u8], file: &str) -> Result<Vec<usize>> {
    let fmt = |reason: String| DataError::Format {
        file: file.to_string(),
        reason,
    };
    if bytes.len() < 8 {
        return Err(fmt(format!(
            "{} bytes is shorter than the 8-byte IDX label header",
            bytes.len()
        )));
    }
    let magic = be_u32(bytes, 0);
    if magic != LABELS_MAGIC {
        return Err(fmt(format!(
            "wrong magic number {magic:#010x}, expected {LABELS_MAGIC:#010x} (IDX unsigned-byte labels)"
        )));
    }
    let n = be_u32(bytes, 4) as usize;
    if n.checked_add(8) != Some(bytes.len()) {
        return Err(fmt(format!(
            "header announces {n} labels but the file has {} bytes",
            bytes.len()
        )));
    }
    bytes[8..]
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if l > 9 {
                Err(fmt(format!("label {l} of example {i} out of range 0..10")))
            } else {
                Ok(l as usize)
            }
        })
        .collect()
}

/// Load MNIST or Fashion-MNIST (same format and file names) from `dir`.
///
/// # Errors
/// [`DataError::MissingFiles`] naming the absent files; [`DataError::Format`] naming the file
/// for any inconsistency (magic numbers, lengths, labels, image/label counts).
pub fn load_mnist(dir: impl AsRef<Path>, split: Split) -> Result<ClassificationData> {
    let dir = dir.as_ref();
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let names = [
        format!("{prefix}-images-idx3-ubyte"),
        format!("{prefix}-labels-idx1-ubyte"),
    ];
    let paths: Vec<_> = names.iter().map(|n| find_plain_or_gz(dir, n)).collect();
    if paths.iter().any(Option::is_none) {
        return Err(DataError::MissingFiles {
            dataset: "MNIST/Fashion-MNIST",
            dir: dir.display().to_string(),
            missing: names
                .iter()
                .zip(&paths)
                .filter(|(_, p)| p.is_none())
                .map(|(n, _)| format!("{n}[.gz]"))
                .collect(),
            hint: "download the IDX files (yann.lecun.com/exdb/mnist or github.com/zalandoresearch/fashion-mnist) into this directory; for Fashion-MNIST, `apt-get install dataset-fashion-mnist` installs them in /usr/share/datasets/fashion-mnist",
        });
    }
    let (img_path, lbl_path) = (
        paths[0].clone().expect("checked"),
        paths[1].clone().expect("checked"),
    );
    let (n, rows, cols, pixels) =
        parse_idx_images(&read_maybe_gz(&img_path)?, &img_path.display().to_string())?;
    let labels = parse_idx_labels(&read_maybe_gz(&lbl_path)?, &lbl_path.display().to_string())?;
    if labels.len() != n {
        return Err(DataError::Format {
            file: lbl_path.display().to_string(),
            reason: format!(
                "{} labels for {n} images in {}",
                labels.len(),
                img_path.display()
            ),
        });
    }
    ClassificationData::new(
        pixels.iter().map(|&p| p as f32 / 255.0).collect(),
        vec![rows * cols],
        labels,
        10,
    )
}
