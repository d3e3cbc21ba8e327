//! Its own test binary (process): it creates NdArray f32 tensors before f64 ones, which burn
//! 0.21 forbids silently — the float type of new tensors is kept once per device type and
//! process, so the f64 model below gets f32 parameters. `Objective::new` must refuse it rather
//! than compute an "f64" Hessian in f32 (as the `curvature` command did until 2026-12-03).

use burn::backend::NdArray;
use burn::tensor::Tensor;
use curvature_core::testing::random_classification_batch;
use curvature_core::{Loss, Objective};
use curvature_nets::MlpConfig;

#[test]
fn parameters_of_another_float_type_are_refused() {
    let device = Default::default();
    // The first NdArray tensor of the process claims f32 for the device type.
    let _ = Tensor::<NdArray<f32>, 1>::zeros([1], &device);
    let model = MlpConfig::new(4, vec![3], 2)
        .init::<NdArray<f64>>(&device)
        .unwrap();
    let batch = random_classification_batch::<NdArray<f64>, 2>([5, 4], 2, 1, &device);
    let err = Objective::new(model, Loss::CrossEntropy, vec![batch])
        .err()
        .expect("f32 parameters on an f64 backend must be refused")
        .to_string();
    assert!(
        err.contains("F32") && err.contains("one float type per device type"),
        "{err}"
    );
}
