//! safetensors round trips with PyTorch names and layouts.

use burn::backend::NdArray;
use burn::module::Module;
use burn::tensor::Tensor;
use curvature_core::BatchNormMode;
use curvature_nets::*;

type B = NdArray<f32>;

fn values<M: Module<B>>(m: &M) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.safetensors");
    save_safetensors(m, &p, &module_path).unwrap();
    std::fs::read(&p)
        .unwrap()
        .iter()
        .map(|&b| b as f32)
        .collect()
}

#[test]
fn round_trip_preserves_parameters_running_stats_and_outputs() {
    let device = Default::default();
    let cfg = SimpleCnnConfig::new(3, [8, 8], vec![4, 6], 5);
    let model = cfg.init::<B>(&device).unwrap();
    let x = Tensor::<B, 4>::ones([2, 3, 8, 8], &device);
    model.update_running_stats(x.clone().mul_scalar(0.3));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.safetensors");
    save_safetensors(&model, &path, &module_path).unwrap();
    let (loaded, unused) =
        load_safetensors(cfg.init::<B>(&device).unwrap(), &path, &module_path).unwrap();
    assert!(unused.is_empty(), "{unused:?}");
    for mode in [BatchNormMode::Train, BatchNormMode::Eval] {
        let a: Vec<f32> = model.forward(x.clone(), mode).into_data().to_vec().unwrap();
        let b: Vec<f32> = loaded
            .forward(x.clone(), mode)
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(a, b, "{mode:?} outputs after a round trip");
    }
    assert_eq!(values(&model), values(&loaded));
}

#[test]
fn names_and_layouts_are_pytorchs() {
    let device = Default::default();
    let model = MlpConfig::new(3, vec![2], 4).init::<B>(&device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.safetensors");
    // Map to the names of a PyTorch nn.Sequential(Linear, ReLU, Linear): indices 0 and 2.
    let to_torch = |name: &str| name.replace("layers.0.", "0.").replace("layers.1.", "2.");
    save_safetensors(&model, &path, &to_torch).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(names, ["0.bias", "0.weight", "2.bias", "2.weight"]);
    assert_eq!(
        st.tensor("0.weight").unwrap().shape(),
        [2, 3],
        "Linear weight is [out, in]"
    );
    let (loaded, _) = load_safetensors(
        MlpConfig::new(3, vec![2], 4).init::<B>(&device).unwrap(),
        &path,
        &to_torch,
    )
    .unwrap();
    let w: Vec<f32> = loaded.layers[1].weight.val().into_data().to_vec().unwrap();
    let w0: Vec<f32> = model.layers[1].weight.val().into_data().to_vec().unwrap();
    assert_eq!(w, w0);
}

#[test]
fn bad_files_give_specific_errors() {
    let device = Default::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    save_safetensors(
        &MlpConfig::new(3, vec![2], 4).init::<B>(&device).unwrap(),
        &path,
        &module_path,
    )
    .unwrap();
    let wrong_shape = MlpConfig::new(3, vec![5], 4).init::<B>(&device).unwrap();
    let e = load_safetensors(wrong_shape, &path, &module_path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.safetensors") && e.contains("layers.0.weight") && e.contains("[2, 3]"),
        "{e}"
    );
    let deeper = MlpConfig::new(3, vec![2, 4], 4).init::<B>(&device).unwrap();
    let e = load_safetensors(deeper, &path, &module_path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no tensor `layers.2.weight`"), "{e}");
    std::fs::write(&path, b"garbage").unwrap();
    let e = load_safetensors(
        MlpConfig::new(3, vec![2], 4).init::<B>(&device).unwrap(),
        &path,
        &module_path,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a safetensors file"), "{e}");
    let e = load_safetensors(
        MlpConfig::new(3, vec![2], 4).init::<B>(&device).unwrap(),
        dir.path().join("absent.safetensors"),
        &module_path,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("absent.safetensors"), "{e}");
}

#[test]
fn reference_repository_names_round_trip() {
    let device = Default::default();
    let cfg = VggConfig {
        layers: vec![
            VggLayer::Conv(3),
            VggLayer::Pool,
            VggLayer::Conv(4),
            VggLayer::Pool,
        ],
        in_channels: 3,
        image_size: [8, 8],
        classifier_width: 5,
        num_classes: 2,
        batch_norm: true,
        conv: ConvLowering::Auto,
    };
    let model = cfg.init::<B>(&device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vgg.safetensors");
    save_safetensors(&model, &path, &torch_names::vgg(&cfg)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let names = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap()
        .names()
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    for expected in [
        "features.0.weight",
        "features.1.running_mean",
        "features.4.weight",
        "classifier.1.weight",
        "classifier.6.bias",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    let (loaded, unused) = load_safetensors(
        cfg.init::<B>(&device).unwrap(),
        &path,
        &torch_names::vgg(&cfg),
    )
    .unwrap();
    assert!(unused.is_empty());
    let x = Tensor::<B, 4>::ones([1, 3, 8, 8], &device);
    let a: Vec<f32> = model
        .forward(x.clone(), BatchNormMode::Eval)
        .into_data()
        .to_vec()
        .unwrap();
    let b: Vec<f32> = loaded
        .forward(x, BatchNormMode::Eval)
        .into_data()
        .to_vec()
        .unwrap();
    assert_eq!(a, b);
}
