//! Bad input gets a specific error — never a panic deep in burn, never silently wrong numbers.

use burn::backend::NdArray;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use curvature_core::testing::{from_slice, to_vec};
use curvature_core::*;
use curvature_data::optdigits;
use curvature_nets::{Dense, DenseConfig, LogisticRegressionConfig, MlpConfig};

type B = NdArray<f64>;

fn device() -> burn::backend::ndarray::NdArrayDevice {
    Default::default()
}

fn inputs(n: usize, d: usize, value: f64) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(vec![value; n * d], [n, d]), &device())
}

#[test]
fn malformed_batches_are_rejected() {
    let e = Batch::<B, 2>::classification(inputs(3, 4, 0.5), &[0, 1], 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 labels for 3 inputs"), "{e}");
    let e = Batch::<B, 2>::classification(inputs(2, 4, 0.5), &[0, 7], 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 7") && e.contains("out of range"), "{e}");
    let e = Batch::<B, 2>::classification(inputs(2, 4, f64::NAN), &[0, 1], 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("NaN"), "{e}");
    let e = Batch::<B, 2>::regression(inputs(2, 4, 0.5), inputs(3, 1, 0.0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 target rows for 2 inputs"), "{e}");
}

#[test]
fn objective_construction_checks_data_and_shapes() {
    let model = LogisticRegressionConfig::new(4, 3)
        .init::<B>(&device())
        .unwrap();
    let e = Objective::new(model.clone(), Loss::CrossEntropy, Vec::<Batch<B, 2>>::new())
        .err()
        .unwrap();
    assert!(matches!(e, CurvatureError::InvalidData(_)), "{e}");
    // Targets with 5 classes for a 3-output model: a shape error, not silent broadcasting.
    let batch = Batch::classification(inputs(2, 4, 0.5), &[0, 4], 5).unwrap();
    let e = Objective::new(model.clone(), Loss::CrossEntropy, vec![batch])
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("model outputs have shape [2, 3] but the targets need [2, 5]"),
        "{e}"
    );
    // Inputs with 6 features for a 4-feature model: burn panics inside matmul; we report it.
    let batch = Batch::classification(inputs(2, 6, 0.5), &[0, 1], 3).unwrap();
    let e = Objective::new(model, Loss::CrossEntropy, vec![batch])
        .err()
        .unwrap();
    assert!(matches!(e, CurvatureError::Forward(_)), "{e}");
}

#[test]
fn non_finite_values_are_reported() {
    let model = LogisticRegressionConfig::new(4, 2)
        .init::<B>(&device())
        .unwrap();
    let batch = Batch::regression(inputs(2, 4, 1.0), inputs(2, 2, 0.0)).unwrap();
    let mut objective = Objective::new(model, Loss::MeanSquaredError, vec![batch]).unwrap();
    let p = objective.dim();
    assert!(matches!(
        objective.set_params(from_slice(&vec![f64::NAN; p], &device())),
        Err(CurvatureError::NonFinite(_))
    ));
    assert!(matches!(
        objective.set_params(from_slice(&vec![0.0; p + 1], &device())),
        Err(CurvatureError::DimensionMismatch { .. })
    ));
    // Parameters so large that the squared error overflows.
    objective
        .set_params(from_slice(&vec![1e200; p], &device()))
        .unwrap();
    let e = objective.gradient().unwrap_err();
    assert!(
        matches!(e, CurvatureError::NonFinite(ref what) if what == "loss"),
        "{e}"
    );
    // (The Hessian of a linear model under MSE does not depend on the parameters, so Hv stays
    // finite and correct here.)
    assert!(objective.hvp(&from_slice(&vec![1.0; p], &device())).is_ok());
}

#[test]
fn batch_streams_must_deliver_what_they_announce() {
    let model = LogisticRegressionConfig::optdigits()
        .init::<B>(&device())
        .unwrap();
    let data = optdigits().unwrap().take(100);
    let batches = data.batches::<B, 2>(50, &device()).unwrap();
    let stream = BatchStream::new(100, move || batches.clone().into_iter().map(Ok));
    let objective = Objective::new(model.clone(), Loss::CrossEntropy, stream).unwrap();
    let fixed = Objective::new(
        model.clone(),
        Loss::CrossEntropy,
        data.batches::<B, 2>(50, &device()).unwrap(),
    )
    .unwrap();
    let v = gaussian_vector::<B>(650, 1, &device());
    assert_eq!(
        to_vec(&objective.hvp(&v).unwrap()),
        to_vec(&fixed.hvp(&v).unwrap()),
        "stream and fixed batches agree"
    );
    let batches = data.batches::<B, 2>(50, &device()).unwrap();
    let short = BatchStream::new(150, move || batches.clone().into_iter().map(Ok));
    let e = Objective::new(model, Loss::CrossEntropy, short)
        .unwrap()
        .gradient()
        .unwrap_err()
        .to_string();
    assert!(e.contains("announced 150 examples but yielded 100"), "{e}");
}

/// A model with a parameter the loss never uses.
#[derive(Module, Debug)]
struct WithUnused<B: Backend> {
    used: Dense<B>,
    unused: Dense<B>,
}

impl<B: Backend> Network<B, 2> for WithUnused<B> {
    fn output(&self, input: Tensor<B, 2>, _mode: BatchNormMode) -> Tensor<B, 2> {
        self.used.forward(input)
    }
}

#[test]
fn parameters_without_gradient_are_an_error_not_zero() {
    let model = WithUnused {
        used: DenseConfig::new(4, 2).init::<B>(&device()).unwrap(),
        unused: DenseConfig::new(3, 3).init(&device()).unwrap(),
    };
    let batch = Batch::classification(inputs(2, 4, 0.5), &[0, 1], 2).unwrap();
    let objective = Objective::new(model, Loss::CrossEntropy, vec![batch]).unwrap();
    let e = objective.gradient().unwrap_err().to_string();
    assert!(e.contains("`unused.weight` received no gradient"), "{e}");
    assert!(
        objective
            .hvp(&gaussian_vector(objective.dim(), 0, &device()))
            .is_err()
    );
}

#[test]
fn layout_names_offsets_and_round_trip() {
    let model = MlpConfig::new(5, vec![4, 3], 2)
        .init::<B>(&device())
        .unwrap();
    let batch = Batch::classification(inputs(2, 5, 0.5), &[0, 1], 2).unwrap();
    let mut objective = Objective::new(model.clone(), Loss::CrossEntropy, vec![batch]).unwrap();
    let layout = objective.layout();
    let names: Vec<&str> = layout.blocks().iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "layers.0.weight",
            "layers.0.bias",
            "layers.1.weight",
            "layers.1.bias",
            "layers.2.weight",
            "layers.2.bias"
        ]
    );
    let w1 = layout.block("layers.1.weight").unwrap();
    assert_eq!(
        (w1.shape.as_slice(), w1.offset, w1.len),
        (&[3usize, 4][..], 5 * 4 + 4, 12)
    );
    assert_eq!(layout.dim(), 24 + 15 + 8);
    // flatten ∘ load = identity, and the flat vector is PyTorch's row-major `weight [out, in]`.
    let theta = objective.params();
    let w0 = model.layers[0]
        .weight
        .val()
        .into_data()
        .iter::<f64>()
        .collect::<Vec<_>>();
    assert_eq!(&to_vec(&theta)[..20], &w0[..]);
    let shifted = theta.clone().add_scalar(1.0);
    objective.set_params(shifted.clone()).unwrap();
    assert_eq!(to_vec(&objective.params()), to_vec(&shifted));
    let parts = objective.layout().split(&shifted).unwrap();
    assert_eq!(parts.len(), 6);
    assert_eq!(parts[3].dims(), [3]);
}
