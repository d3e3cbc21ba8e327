//! Finding datasets without a path ([`locate`]), and the real Fashion-MNIST of Debian's
//! `dataset-fashion-mnist` package when it is installed.
//!
//! The real-file test skips (saying so) where the package is absent; `.ci/run` installs it
//! when it can, so in CI it runs. Its pinned numbers were computed once from the package's
//! files with Python's `gzip` and `hashlib` (independent of this crate's IDX parser):
//!
//! ```text
//! import gzip, hashlib
//! im = gzip.open("train-images-idx3-ubyte.gz").read()
//! hashlib.md5(im[16:16 + 784]).hexdigest()   # 4faf81e309af5194c477affdbefc6116
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

use curvature_data::*;
use md5::{Digest, Md5};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// A tiny IDX data set (3 training and 2 test images) under `dir`, gzipped or plain.
fn tiny_idx(dir: &Path, gzipped: bool) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n) in [("train", 3usize), ("t10k", 2)] {
        let mut images = vec![0, 0, 8, 3];
        for d in [n as u32, 28, 28] {
            images.extend(d.to_be_bytes());
        }
        images.extend((0..n * 784).map(|i| (i % 251) as u8));
        let mut labels = vec![0, 0, 8, 1];
        labels.extend((n as u32).to_be_bytes());
        labels.extend((0..n).map(|i| i as u8));
        for (name, bytes) in [("images-idx3", images), ("labels-idx1", labels)] {
            let file = format!("{prefix}-{name}-ubyte");
            if gzipped {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut e, &bytes).unwrap();
                write(dir, &format!("{file}.gz"), &e.finish().unwrap());
            } else {
                write(dir, &file, &bytes);
            }
        }
    }
}

#[test]
fn locate_takes_the_first_place_holding_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("data"), tmp.path().join("system"));
    let candidates = [first.clone(), second.clone()];
    // Nowhere: the error lists both places, the files, the Debian package and the feature.
    let e = locate_in(DownloadableDataset::FashionMnist, &candidates)
        .unwrap_err()
        .to_string();
    for part in [
        first.to_str().unwrap(),
        second.to_str().unwrap(),
        "train-images-idx3-ubyte[.gz]",
        "apt-get install dataset-fashion-mnist",
        "--features download",
    ] {
        assert!(e.contains(part), "{part} missing from: {e}");
    }
    // MNIST has no Debian package: its error does not invent one.
    let e = locate_in(DownloadableDataset::Mnist, &candidates)
        .unwrap_err()
        .to_string();
    assert!(!e.contains("apt-get"), "{e}");
    // Only the second place holds the files (gzipped, as the Debian package installs them).
    tiny_idx(&second, true);
    assert_eq!(
        locate_in(DownloadableDataset::FashionMnist, &candidates).unwrap(),
        second
    );
    // An incomplete first copy is skipped.
    std::fs::create_dir_all(&first).unwrap();
    write(&first, "train-images-idx3-ubyte", b"partial");
    assert_eq!(
        locate_in(DownloadableDataset::FashionMnist, &candidates).unwrap(),
        second
    );
    // A complete first copy (plain files) wins.
    tiny_idx(&first, false);
    let found = locate_in(DownloadableDataset::FashionMnist, &candidates).unwrap();
    assert_eq!(found, first);
    assert_eq!(load_mnist(&found, Split::Train).unwrap().len(), 3);
    // CIFAR: the directory the official archive unpacks to counts as a copy.
    let cifar = tmp.path().join("cifar");
    let unpacked = cifar.join("cifar-100-binary");
    std::fs::create_dir_all(&unpacked).unwrap();
    for f in DownloadableDataset::Cifar100.required_files() {
        write(&unpacked, f, b"");
    }
    assert_eq!(
        locate_in(DownloadableDataset::Cifar100, &[cifar]).unwrap(),
        unpacked
    );
    // The default search path: data/<name>, then the system directory.
    assert_eq!(
        DownloadableDataset::FashionMnist.search_path(),
        [
            PathBuf::from("data/fashion-mnist"),
            PathBuf::from("/usr/share/datasets/fashion-mnist")
        ]
    );
}

/// The installed copy of Debian's package, or `None` (with a line saying the test skips).
fn installed_fashion_mnist() -> Option<PathBuf> {
    let dir = Path::new(SYSTEM_DATASETS_DIR).join("fashion-mnist");
    let found = DownloadableDataset::FashionMnist.files_in(&dir);
    if found.is_none() {
        eprintln!(
            "skipped: {} lacks the Fashion-MNIST IDX files (apt-get install dataset-fashion-mnist)",
            dir.display()
        );
    }
    found
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bytes of example `i` (pixels were loaded as `p / 255`).
fn image_bytes(data: &ClassificationData, i: usize) -> Vec<u8> {
    data.inputs[i * 784..(i + 1) * 784]
        .iter()
        .map(|&x| (x * 255.0).round() as u8)
        .collect()
}

#[test]
fn real_fashion_mnist_from_the_debian_package() {
    let Some(dir) = installed_fashion_mnist() else {
        return;
    };
    let train = load_mnist(&dir, Split::Train).unwrap();
    let test = load_mnist(&dir, Split::Test).unwrap();
    for (data, n, first_md5) in [
        (&train, 60_000, "4faf81e309af5194c477affdbefc6116"),
        (&test, 10_000, "a7ccdc296871349e7823556f7ce4b918"),
    ] {
        assert_eq!(data.len(), n);
        assert_eq!(data.example_shape, [784]);
        assert_eq!(data.num_classes, 10);
        // Balanced classes (Xiao et al. 2017: 6 000 / 1 000 images per class).
        let mut counts = [0usize; 10];
        for &l in &data.labels {
            counts[l] += 1;
        }
        assert_eq!(counts, [n / 10; 10]);
        assert!(data.inputs.iter().all(|x| (0.0..=1.0).contains(x)));
        // The first image (an ankle boot, class 9) byte for byte.
        assert_eq!(data.labels[0], 9);
        assert_eq!(md5_hex(&image_bytes(data, 0)), first_md5);
    }
    // Plain (gunzipped) files load to the same data as the package's gzipped ones.
    let plain = tempfile::tempdir().unwrap();
    for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(dir.join(format!("{name}.gz"))).unwrap())
            .read_to_end(&mut bytes)
            .unwrap();
        write(plain.path(), name, &bytes);
    }
    let from_plain = load_mnist(plain.path(), Split::Test).unwrap();
    assert_eq!(from_plain.labels, test.labels);
    assert_eq!(from_plain.inputs, test.inputs);
}
