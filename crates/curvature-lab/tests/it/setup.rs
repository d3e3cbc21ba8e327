//! `curvature_lab::setup`.

use curvature_lab::setup::*;
use curvature_lab::{DatasetKind, TrainConfig, ValidationKind};

#[test]
fn model_names_parse_and_unknown_ones_list_the_valid_patterns() {
    assert_eq!(
        ModelSpec::parse("wrn-28-10").unwrap(),
        ModelSpec::WideResNet {
            depth: 28,
            widen: 10
        }
    );
    assert_eq!(
        ModelSpec::parse("preresnet-110").unwrap(),
        ModelSpec::PreResNet { depth: 110 }
    );
    assert_eq!(
        ModelSpec::parse("vgg16-bn").unwrap(),
        ModelSpec::Vgg16 { batch_norm: true }
    );
    for bad in [
        "wrn-28",
        "wrn-x-10",
        "preresnet-",
        "resnet50",
        "preresnet-0",
    ] {
        let e = ModelSpec::parse(bad).unwrap_err().to_string();
        assert!(e.contains(&format!("unknown model `{bad}`")), "{e}");
        assert!(e.contains("wrn-<depth>-<k>"), "{e}");
    }
}

/// Every model takes `[C, H, W]` examples (the dense ones flatten them): images keep their
/// shape, vectors become `[d, 1, 1]`, and convolutional models refuse vectors.
#[test]
fn optdigits_is_an_image_for_every_model_and_vectors_are_d_by_1_by_1() {
    let mut c = TrainConfig {
        model: "cnn".into(),
        ..Default::default()
    };
    let (train, val) = shaped_dataset(&c).unwrap();
    assert_eq!(
        (train.example_shape.clone(), val.len()),
        (vec![1, 8, 8], 297)
    );
    c.model = "mlp".into();
    assert_eq!(shaped_dataset(&c).unwrap().0.example_shape, vec![1, 8, 8]);
    c.data = DatasetKind::Clusters;
    assert_eq!(shaped_dataset(&c).unwrap().0.example_shape, vec![100, 1, 1]);
    c.model = "cnn".into();
    let e = shaped_dataset(&c).unwrap_err().to_string();
    assert!(e.contains("need image data"), "{e}");
}

#[test]
fn a_directory_without_the_files_names_them() {
    let dir = tempfile::tempdir().unwrap();
    for (data, file) in [
        (DatasetKind::Mnist, "train-images-idx3-ubyte"),
        (DatasetKind::Cifar10, "data_batch_1.bin"),
        (DatasetKind::Cifar100, "train.bin"),
    ] {
        let c = TrainConfig {
            data,
            data_dir: Some(dir.path().into()),
            ..Default::default()
        };
        let e = dataset(&c).unwrap_err().to_string();
        assert!(
            e.contains(file) && e.contains(&dir.path().display().to_string()),
            "{data}: {e}"
        );
    }
}

/// A tiny MNIST-format data set: `n_train` and `n_test` images whose first pixel is their
/// index (training) or 200 + index (test), labels `index % 10`.
fn tiny_mnist(dir: &std::path::Path, n_train: usize, n_test: usize) {
    for (prefix, n, offset) in [("train", n_train, 0), ("t10k", n_test, 200)] {
        let mut images = vec![0, 0, 8, 3];
        for d in [n as u32, 28, 28] {
            images.extend(d.to_be_bytes());
        }
        for i in 0..n {
            images.push((offset + i) as u8);
            images.extend(std::iter::repeat_n(0u8, 783));
        }
        let mut labels = vec![0, 0, 8, 1];
        labels.extend((n as u32).to_be_bytes());
        labels.extend((0..n).map(|i| (i % 10) as u8));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
}

#[test]
fn validation_comes_from_the_test_split_or_is_held_out_of_the_training_split() {
    let dir = tempfile::tempdir().unwrap();
    tiny_mnist(dir.path(), 50, 20);
    let first_pixels = |d: &curvature_data::ClassificationData| -> Vec<u32> {
        (0..d.len())
            .map(|i| (d.inputs[i * 784] * 255.0).round() as u32)
            .collect()
    };
    let base = TrainConfig {
        data: DatasetKind::FashionMnist,
        data_dir: Some(dir.path().into()),
        val_size: 10,
        ..Default::default()
    };
    // auto: the official test split (first pixels 200…219), every training image kept.
    let (train, val) = dataset(&base).unwrap();
    assert_eq!((train.len(), val.len()), (50, 20));
    assert!(first_pixels(&val).iter().all(|&p| p >= 200));
    // held-out: 10 seeded training images validate, 40 train, no test image anywhere, no
    // image in both; train_size then subsamples the rest.
    let held = TrainConfig {
        validation: ValidationKind::HeldOut,
        train_size: Some(30),
        ..base.clone()
    };
    let (train, val) = dataset(&held).unwrap();
    assert_eq!((train.len(), val.len()), (30, 10));
    let (t, v) = (first_pixels(&train), first_pixels(&val));
    assert!(t.iter().chain(&v).all(|&p| p < 50), "{t:?} {v:?}");
    assert!(t.iter().all(|p| !v.contains(p)), "{t:?} {v:?}");
    // Seeded: the same split again, another with another seed.
    assert_eq!(first_pixels(&dataset(&held).unwrap().1), v);
    let other = TrainConfig { seed: 1, ..held };
    assert_ne!(first_pixels(&dataset(&other).unwrap().1), v);
    // A held-out part as large as the training split is refused.
    let e = dataset(&TrainConfig {
        validation: ValidationKind::HeldOut,
        val_size: 50,
        ..base
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("val_size"), "{e}");
}

/// `classes = k` keeps the examples with labels below k in both splits, before the held-out
/// split and the subsets. The tiny set's labels are `index % 10`, so the counts are known:
/// 50 training images hold 5 of each class, 20 test images 2 of each.
#[test]
fn classes_keep_the_first_k_before_any_split() {
    let dir = tempfile::tempdir().unwrap();
    tiny_mnist(dir.path(), 50, 20);
    let three = TrainConfig {
        data: DatasetKind::Mnist,
        data_dir: Some(dir.path().into()),
        classes: Some(3),
        ..Default::default()
    };
    let (train, val) = dataset(&three).unwrap();
    assert_eq!((train.len(), val.len()), (15, 6));
    assert_eq!((train.num_classes, val.num_classes), (3, 3));
    assert!(train.labels.iter().chain(&val.labels).all(|&l| l < 3));
    // Held out of the 15 kept training images, not of all 50.
    let held = TrainConfig {
        validation: ValidationKind::HeldOut,
        val_size: 5,
        ..three.clone()
    };
    let (train, val) = dataset(&held).unwrap();
    assert_eq!((train.len(), val.len()), (10, 5));
    assert!(train.labels.iter().chain(&val.labels).all(|&l| l < 3));
    let e = dataset(&TrainConfig {
        classes: Some(11),
        ..three
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("classes") && e.contains("num_classes"), "{e}");
}
