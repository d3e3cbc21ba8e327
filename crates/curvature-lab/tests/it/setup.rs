//! `curvature_lab::setup`.

use curvature_lab::setup::*;
use curvature_lab::{DatasetKind, TrainConfig};

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
