//! The real file formats, written small in a temp dir, valid and broken.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use burn::backend::NdArray;
use curvature_core::BatchSource;
use curvature_data::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type B = NdArray<f32>;

fn cifar_records(n: usize, labels: usize, seed: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for r in 0..n {
        if labels == 2 {
            out.push((r % 20) as u8); // coarse
        }
        out.push((r % 10) as u8 + seed % 2);
        out.extend((0..3072).map(|p| ((p + r) % 256) as u8));
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_images(n: usize) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [n as u32, 28, 28] {
        b.extend(d.to_be_bytes());
    }
    b.extend((0..n * 784).map(|i| (i % 256) as u8));
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend((labels.len() as u32).to_be_bytes());
    b.extend(labels);
    b
}

#[test]
fn cifar10_round_trip_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = Cifar::Ten
        .load(dir.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data_batch_1.bin") && e.contains("cs.toronto.edu"),
        "{e}"
    );
    for i in 1..=5 {
        write(
            dir.path(),
            &format!("data_batch_{i}.bin"),
            &cifar_records(3, 1, 0),
        );
    }
    write(dir.path(), "test_batch.bin", &cifar_records(2, 1, 0));
    let train = Cifar::Ten.load(dir.path(), Split::Train).unwrap();
    assert_eq!(
        (
            train.len(),
            train.example_shape.as_slice(),
            train.num_classes
        ),
        (15, &[3usize, 32, 32][..], 10)
    );
    assert_eq!(train.labels[..3], [0, 1, 2]);
    assert!((train.inputs[1] - 1.0 / 255.0).abs() < 1e-7);
    assert_eq!(Cifar::Ten.load(dir.path(), Split::Test).unwrap().len(), 2);
    // Truncated: not a whole number of records.
    let mut bad = cifar_records(2, 1, 0);
    bad.pop();
    write(dir.path(), "test_batch.bin", &bad);
    let e = Cifar::Ten
        .load(dir.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test_batch.bin") && e.contains("not a whole number"),
        "{e}"
    );
    // Label out of range.
    let mut bad = cifar_records(2, 1, 0);
    bad[3073] = 12;
    write(dir.path(), "test_batch.bin", &bad);
    let e = Cifar::Ten
        .load(dir.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(e.contains("record 1: label 12"), "{e}");
}

#[test]
fn cifar100_fine_and_coarse_labels() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "train.bin", &cifar_records(25, 2, 1));
    write(dir.path(), "test.bin", &cifar_records(4, 2, 1));
    let fine = Cifar::HundredFine.load(dir.path(), Split::Train).unwrap();
    let coarse = Cifar::HundredCoarse.load(dir.path(), Split::Train).unwrap();
    assert_eq!((fine.num_classes, coarse.num_classes), (100, 20));
    assert_eq!(fine.labels[..3], [1, 2, 3]);
    assert_eq!(coarse.labels[21..24], [1, 2, 3]);
    assert_eq!(fine.inputs, coarse.inputs);
    let mut bad = cifar_records(1, 2, 0);
    bad[0] = 25;
    write(dir.path(), "test.bin", &bad);
    assert!(
        Cifar::HundredFine
            .load(dir.path(), Split::Test)
            .unwrap_err()
            .to_string()
            .contains("coarse label 25")
    );
}

#[test]
fn mnist_plain_and_gzipped_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_mnist(dir.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("train-labels-idx1-ubyte"),
        "{e}"
    );
    write(
        dir.path(),
        "train-images-idx3-ubyte.gz",
        &gz(&idx_images(3)),
    );
    write(
        dir.path(),
        "train-labels-idx1-ubyte",
        &idx_labels(&[7, 0, 9]),
    );
    let d = load_mnist(dir.path(), Split::Train).unwrap();
    assert_eq!(
        (d.len(), d.example_len(), d.labels.clone()),
        (3, 784, vec![7, 0, 9])
    );
    // Count mismatch between images and labels.
    write(dir.path(), "train-labels-idx1-ubyte", &idx_labels(&[7, 0]));
    assert!(
        load_mnist(dir.path(), Split::Train)
            .unwrap_err()
            .to_string()
            .contains("2 labels for 3 images")
    );
    // Wrong magic, wrong length, label out of range, corrupt gzip.
    let mut bad = idx_images(2);
    bad[3] = 1;
    assert!(
        parse_idx_images(&bad, "x")
            .unwrap_err()
            .to_string()
            .contains("wrong magic number")
    );
    let mut bad = idx_images(2);
    bad.truncate(100);
    assert!(
        parse_idx_images(&bad, "x")
            .unwrap_err()
            .to_string()
            .contains("header announces 2 images")
    );
    assert!(
        parse_idx_labels(&idx_labels(&[3, 10]), "y")
            .unwrap_err()
            .to_string()
            .contains("label 10 of example 1")
    );
    write(
        dir.path(),
        "t10k-images-idx3-ubyte.gz",
        b"\x1f\x8bnot really gzip",
    );
    write(dir.path(), "t10k-labels-idx1-ubyte", &idx_labels(&[1]));
    let e = load_mnist(dir.path(), Split::Test).unwrap_err().to_string();
    assert!(
        e.contains("t10k-images-idx3-ubyte.gz") && e.contains("gzip"),
        "{e}"
    );
}

/// Mutating bytes of valid files (flips, truncations, extensions) never panics: every outcome
/// is a dataset or a specific error.
#[test]
fn fuzzed_files_never_panic() {
    let mut rng = StdRng::seed_from_u64(7);
    let images = idx_images(2);
    let labels = idx_labels(&[1, 2]);
    let cifar = cifar_records(2, 2, 0);
    let dir = tempfile::tempdir().unwrap();
    for round in 0..300 {
        let mut mutate = |bytes: &[u8]| {
            let mut b = bytes.to_vec();
            match round % 3 {
                0 => {
                    for _ in 0..rng.random_range(1..8) {
                        let i = rng.random_range(0..b.len());
                        b[i] = rng.random();
                    }
                }
                1 => b.truncate(rng.random_range(0..b.len())),
                _ => b.extend((0..rng.random_range(1..50)).map(|_| rng.random::<u8>())),
            }
            b
        };
        let _ = parse_idx_images(&mutate(&images), "fuzz");
        let _ = parse_idx_labels(&mutate(&labels), "fuzz");
        write(dir.path(), "train.bin", &mutate(&cifar));
        let _ = Cifar::HundredFine.load(dir.path(), Split::Train);
        let _ = parse_optdigits(&mutate(&gz(b"0,0,0\n")), "fuzz");
    }
}

#[test]
fn gaussian_clusters_are_normalised_and_seeded() {
    let cfg = GaussianClustersConfig::new(5, 40);
    let d = gaussian_clusters(&cfg).unwrap();
    assert_eq!((d.len(), d.example_len(), d.num_classes), (200, 100, 5));
    let n = d.inputs.len() as f64;
    let mean = d.inputs.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = d
        .inputs
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(
        mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5,
        "mean {mean} var {var}"
    );
    assert_eq!(gaussian_clusters(&cfg).unwrap(), d);
    assert_ne!(
        gaussian_clusters(&GaussianClustersConfig {
            seed: 1,
            ..cfg.clone()
        })
        .unwrap(),
        d
    );
    assert!(gaussian_clusters(&GaussianClustersConfig::new(0, 3)).is_err());
}

#[test]
fn augmentation_crop_flip_and_reproducible_streams() {
    let img: Vec<f32> = (0..2 * 3 * 3).map(|v| v as f32 + 1.0).collect();
    let mut rng = StdRng::seed_from_u64(0);
    let mut out = Vec::new();
    Augmentation {
        pad: 0,
        flip: false,
    }
    .apply(&img, [2, 3, 3], &mut rng, &mut out);
    assert_eq!(out, img, "no padding, no flip: identity");
    // Every output is a shifted (zero-filled) and possibly mirrored copy: values come from the
    // image or are 0, and the mass never exceeds the original's.
    for seed in 0..50 {
        let mut out = Vec::new();
        Augmentation::cifar().apply(&img, [2, 3, 3], &mut StdRng::seed_from_u64(seed), &mut out);
        assert!(out.iter().all(|v| *v == 0.0 || img.contains(v)));
    }
    let data = Arc::new(
        ClassificationData::new(
            vec![0.5; 10 * 3 * 8 * 8],
            vec![3, 8, 8],
            (0..10).map(|i| i % 3).collect(),
            3,
        )
        .unwrap(),
    );
    let stream = AugmentedStream::<B>::new(
        data.clone(),
        Augmentation::cifar(),
        25,
        4,
        9,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(stream.num_examples(), 25);
    let a: Vec<f32> = stream
        .batch(8)
        .unwrap()
        .inputs
        .into_data()
        .to_vec()
        .unwrap();
    let b: Vec<f32> = stream
        .batch(8)
        .unwrap()
        .inputs
        .into_data()
        .to_vec()
        .unwrap();
    assert_eq!(a, b, "same position, same seed: same batch");
    let mut count = 0;
    stream
        .try_for_each(&mut |batch| {
            count += batch.len();
            Ok(())
        })
        .unwrap();
    assert_eq!(count, 25);
    assert!(stream.batch(25).is_err(), "past the end");
    let normalized =
        AugmentedStream::<B>::new(data, Augmentation::cifar(), 4, 4, 9, &Default::default())
            .unwrap();
    assert!(
        normalized
            .with_normalization(vec![0.5; 3], vec![0.0; 3])
            .is_err()
    );
}

#[test]
fn split_and_channel_normalisation() {
    let mut d = optdigits().unwrap();
    let (train, test) = d.split(297, 3).unwrap();
    assert_eq!((train.len(), test.len()), (1500, 297));
    assert!(d.split(0, 0).is_err() && d.split(1797, 0).is_err());
    let (mean, std) = d.channel_stats();
    d.normalize(&mean, &std).unwrap();
    let (m2, s2) = d.channel_stats();
    assert!(m2[0].abs() < 1e-5 && (s2[0] - 1.0).abs() < 1e-4);
    assert!(d.batches::<B, 2>(0, &Default::default()).is_err());
    assert!(
        d.batches::<B, 4>(10, &Default::default()).is_err(),
        "rank must match the example shape"
    );
}

/// The first k classes: hand-made labels, so the kept examples and their order are known.
#[test]
fn first_classes_keeps_labels_below_k_in_order() {
    let inputs: Vec<f32> = (0..6).map(|i| i as f32).collect();
    let d = ClassificationData::new(inputs, vec![1], vec![2, 0, 3, 1, 0, 2], 4).unwrap();
    let two = d.first_classes(2).unwrap();
    assert_eq!(two.labels, vec![0, 1, 0]);
    assert_eq!(two.inputs, vec![1.0, 3.0, 4.0]);
    assert_eq!(two.num_classes, 2);
    assert_eq!(d.first_classes(4).unwrap(), d);
    for k in [0, 1, 5] {
        let e = d.first_classes(k).unwrap_err().to_string();
        assert!(
            e.contains("classes") && e.contains("2..=num_classes"),
            "{e}"
        );
    }
}

#[test]
fn feeds_burns_dataloader() {
    use burn::data::dataloader::DataLoaderBuilder;
    let data = optdigits().unwrap().take(100);
    let loader = DataLoaderBuilder::<B, _, _>::new(ClassificationBatcher::<2>::new(&data))
        .batch_size(32)
        .shuffle(1)
        .build(data.clone());
    let mut seen = 0;
    for batch in loader.iter() {
        assert_eq!(batch.inputs.dims()[1], 64);
        seen += batch.len();
    }
    assert_eq!(seen, 100);
    let images =
        ClassificationData::new(vec![0.5; 4 * 3 * 8 * 8], vec![3, 8, 8], vec![0, 1, 2, 0], 3)
            .unwrap();
    let batcher =
        ClassificationBatcher::<4>::new(&images).with_augmentation(Augmentation::cifar(), 3);
    let items = (0..4)
        .map(|i| burn::data::dataset::Dataset::get(&images, i).unwrap())
        .collect();
    let batch: curvature_core::Batch<B, 4> =
        burn::data::dataloader::batcher::Batcher::batch(&batcher, items, &Default::default());
    assert_eq!(batch.inputs.dims(), [4, 3, 8, 8]);
}

#[test]
fn checksums_and_archive_extraction_offline() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("abc.txt");
    std::fs::write(&f, b"abc").unwrap();
    assert_eq!(md5_file(&f).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
    assert!(verify_md5(&f, "900150983CD24FB0D6963F7D28E17F72").is_ok());
    let e = verify_md5(&f, "00000000000000000000000000000000")
        .unwrap_err()
        .to_string();
    assert!(e.contains("abc.txt") && e.contains("does not match"), "{e}");
    // A CIFAR-100 style archive with the two expected members and one unexpected path.
    let archive = dir.path().join("cifar-100-binary.tar.gz");
    {
        let gzw = flate2::write::GzEncoder::new(
            std::fs::File::create(&archive).unwrap(),
            flate2::Compression::fast(),
        );
        let mut builder = tar::Builder::new(gzw);
        for (name, records) in [
            ("cifar-100-binary/train.bin", 3),
            ("cifar-100-binary/test.bin", 2),
            ("cifar-100-binary/notes.txt", 0),
        ] {
            let data = if records > 0 {
                cifar_records(records, 2, 0)
            } else {
                b"hello".to_vec()
            };
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, data.as_slice())
                .unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
    }
    let out = extract_cifar(&archive, Cifar::HundredFine, dir.path()).unwrap();
    assert_eq!(
        Cifar::HundredFine.load(&out, Split::Train).unwrap().len(),
        3
    );
    assert!(
        !out.join("notes.txt").exists(),
        "only the expected members are written"
    );
    let e = extract_cifar(&archive, Cifar::Ten, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("lacks data_batch_1.bin"), "{e}");
    assert_eq!(resources(DownloadableDataset::Mnist).len(), 4);
}
