//! Opt-in downloads of the public datasets, for users who are online: checksummed (MD5 of the
//! official files), resumable (an interrupted download continues from its `.part` file with an
//! HTTP range request) and atomic (a file appears under its final name only once verified).
//!
//! Only [`download`] needs the network and the `download` cargo feature; checksum verification
//! and archive extraction are always available (and tested offline). Nothing in the library's
//! defaults or tests downloads anything.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use md5::{Digest, Md5};

use crate::cifar::Cifar;
use crate::error::{DataError, Result};

/// A public file: where to get it and its MD5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// URL of the official file.
    pub url: &'static str,
    /// File name.
    pub file: &'static str,
    /// Official MD5 (hex).
    pub md5: &'static str,
}

/// The official archives and files of each dataset.
pub fn resources(dataset: DownloadableDataset) -> &'static [Resource] {
    const CIFAR10: &[Resource] = &[Resource {
        url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        file: "cifar-10-binary.tar.gz",
        md5: "c32a1d4ab5d03f1284b67883e8d87530",
    }];
    const CIFAR100: &[Resource] = &[Resource {
        url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        file: "cifar-100-binary.tar.gz",
        md5: "03b5dce01913d631647c71ecec9e9cb8",
    }];
    const MNIST: &[Resource] = &[
        Resource {
            url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
            file: "train-images-idx3-ubyte.gz",
            md5: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        },
        Resource {
            url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
            file: "train-labels-idx1-ubyte.gz",
            md5: "d53e105ee54ea40749a09fcbcd1e9432",
        },
        Resource {
            url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
            file: "t10k-images-idx3-ubyte.gz",
            md5: "9fb629c4189551a2d022fa330f9573f3",
        },
        Resource {
            url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
            file: "t10k-labels-idx1-ubyte.gz",
            md5: "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ];
    const FASHION: &[Resource] = &[
        Resource {
            url: "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/train-images-idx3-ubyte.gz",
            file: "train-images-idx3-ubyte.gz",
            md5: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        },
        Resource {
            url: "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/train-labels-idx1-ubyte.gz",
            file: "train-labels-idx1-ubyte.gz",
            md5: "25c81989df183df01b3e8a0aad5dffbe",
        },
        Resource {
            url: "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/t10k-images-idx3-ubyte.gz",
            file: "t10k-images-idx3-ubyte.gz",
            md5: "bef4ecab320f06d8554ea6380940ec79",
        },
        Resource {
            url: "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/t10k-labels-idx1-ubyte.gz",
            file: "t10k-labels-idx1-ubyte.gz",
            md5: "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ];
    match dataset {
        DownloadableDataset::Cifar10 => CIFAR10,
        DownloadableDataset::Cifar100 => CIFAR100,
        DownloadableDataset::Mnist => MNIST,
        DownloadableDataset::FashionMnist => FASHION,
    }
}

/// The datasets [`download`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadableDataset {
    /// CIFAR-10, binary version.
    Cifar10,
    /// CIFAR-100, binary version.
    Cifar100,
    /// MNIST.
    Mnist,
    /// Fashion-MNIST.
    FashionMnist,
}

/// MD5 of a file, hex.
///
/// # Errors
/// [`DataError::Io`].
pub fn md5_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|source| DataError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Check a file against its expected MD5.
///
/// # Errors
/// [`DataError::Format`] naming the file and both checksums on a mismatch.
pub fn verify_md5(path: &Path, expected: &str) -> Result<()> {
    let got = md5_file(path)?;
    if got != expected.to_ascii_lowercase() {
        return Err(DataError::Format {
            file: path.display().to_string(),
            reason: format!("MD5 {got} does not match the official {expected}"),
        });
    }
    Ok(())
}

/// Extract the CIFAR `.bin` files of an official `cifar-*-binary.tar.gz` into `dir` and return
/// the directory holding them. Only the expected regular files are written (no other paths
/// from the archive are trusted).
///
/// # Errors
/// [`DataError::Format`] for a corrupt archive or one that lacks an expected file;
/// [`DataError::Io`].
pub fn extract_cifar(archive: &Path, kind: Cifar, dir: &Path) -> Result<PathBuf> {
    let (sub, dataset) = match kind {
        Cifar::Ten => ("cifar-10-batches-bin", DownloadableDataset::Cifar10),
        _ => ("cifar-100-binary", DownloadableDataset::Cifar100),
    };
    let files = dataset.required_files();
    let out = dir.join(sub);
    std::fs::create_dir_all(&out).map_err(|source| DataError::Io {
        path: out.display().to_string(),
        source,
    })?;
    let bad = |reason: String| DataError::Format {
        file: archive.display().to_string(),
        reason,
    };
    let f = std::fs::File::open(archive).map_err(|source| DataError::Io {
        path: archive.display().to_string(),
        source,
    })?;
    let mut tar = tar::Archive::new(GzDecoder::new(f));
    let mut found = Vec::new();
    for entry in tar
        .entries()
        .map_err(|e| bad(format!("not a tar.gz archive: {e}")))?
    {
        let mut entry = entry.map_err(|e| bad(format!("corrupt archive: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(format!("corrupt entry name: {e}")))?
            .into_owned();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if !entry.header().entry_type().is_file() || !files.contains(&name.as_str()) {
            continue;
        }
        let target = out.join(&name);
        let tmp = out.join(format!("{name}.part"));
        let mut w = std::fs::File::create(&tmp).map_err(|source| DataError::Io {
            path: tmp.display().to_string(),
            source,
        })?;
        std::io::copy(&mut entry, &mut w).map_err(|e| bad(format!("reading {name}: {e}")))?;
        std::fs::rename(&tmp, &target).map_err(|source| DataError::Io {
            path: target.display().to_string(),
            source,
        })?;
        found.push(name);
    }
    if let Some(missing) = files.iter().find(|f| !found.iter().any(|g| g == *f)) {
        return Err(bad(format!("the archive lacks {missing}")));
    }
    Ok(out)
}

/// Download a dataset into `dir` (skipping files already present with the right checksum),
/// resuming interrupted downloads, and return the directory to load it from
/// ([`Cifar::load`] or [`load_mnist`](crate::load_mnist)).
///
/// # Errors
/// [`DataError::Io`] for network or file errors (naming the URL or file), and
/// [`DataError::Format`] for a checksum mismatch (the bad file is removed).
#[cfg(feature = "download")]
pub fn download(dataset: DownloadableDataset, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|source| DataError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    for r in resources(dataset) {
        fetch(r, dir)?;
    }
    match dataset {
        DownloadableDataset::Cifar10 => {
            extract_cifar(&dir.join(resources(dataset)[0].file), Cifar::Ten, dir)
        }
        DownloadableDataset::Cifar100 => extract_cifar(
            &dir.join(resources(dataset)[0].file),
            Cifar::HundredFine,
            dir,
        ),
        DownloadableDataset::Mnist | DownloadableDataset::FashionMnist => Ok(dir.to_path_buf()),
    }
}

#[cfg(feature = "download")]
fn fetch(r: &Resource, dir: &Path) -> Result<()> {
    use std::io::Write;
    let target = dir.join(r.file);
    if target.is_file() && verify_md5(&target, r.md5).is_ok() {
        return Ok(());
    }
    let part = dir.join(format!("{}.part", r.file));
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let io = |source: std::io::Error| DataError::Io {
        path: r.url.to_string(),
        source,
    };
    let mut request = ureq::get(r.url);
    if have > 0 {
        request = request.set("Range", &format!("bytes={have}-"));
    }
    let response = request
        .call()
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let resumed = response.status() == 206;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(&part)
        .map_err(|source| DataError::Io {
            path: part.display().to_string(),
            source,
        })?;
    eprintln!(
        "downloading {} ({}){}",
        r.url,
        r.file,
        if resumed {
            format!(", resuming at {have} bytes")
        } else {
            String::new()
        }
    );
    let mut reader = response.into_reader();
    std::io::copy(&mut reader, &mut file).map_err(io)?;
    file.flush().map_err(io)?;
    drop(file);
    if let Err(e) = verify_md5(&part, r.md5) {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, &target).map_err(|source| DataError::Io {
        path: target.display().to_string(),
        source,
    })
}
