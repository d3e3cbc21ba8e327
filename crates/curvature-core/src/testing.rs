//! Helpers for numerical tests of curvature code: host copies and relative errors.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// Copy a 1-D tensor to the host as f64.
pub fn to_vec<B: Backend>(t: &Tensor<B, 1>) -> Vec<f64> {
    crate::reduce::to_host(t)
}

/// Upload an f64 slice as a 1-D tensor.
pub fn from_slice<B: Backend>(v: &[f64], device: &B::Device) -> Tensor<B, 1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

/// Euclidean norm.
pub fn norm(a: &[f64]) -> f64 {
    a.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Inner product.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `‖a − b‖ / ‖b‖` (`‖a − b‖` when `b = 0`).
///
/// # Panics
/// If the lengths differ.
pub fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(
        a.len(),
        b.len(),
        "relative_error of vectors of different lengths"
    );
    crate::reduce::relative_error(a, b)
}

/// Assert `relative_error(actual, expected) ≤ tol`, printing the error on failure.
///
/// # Panics
/// If the error exceeds `tol`.
#[track_caller]
pub fn assert_rel_close(actual: &[f64], expected: &[f64], tol: f64, what: &str) {
    let e = relative_error(actual, expected);
    assert!(e <= tol, "{what}: relative error {e:.3e} exceeds {tol:.1e}");
}

/// A high-accuracy finite-difference reference for `Hv`: Richardson extrapolation of central
/// differences, `(4 D(h/2) − D(h)) / 3`, whose truncation error is `O(h⁴)`. In f64 with
/// `h ≈ 1e-3` it reaches ≈1e-10 relative on smooth models — an independent check of exact HVPs.
///
/// # Errors
/// Errors of the objective's gradient.
pub fn richardson_hvp<B: Backend, M: crate::CurvatureModel<B, D>, const D: usize>(
    objective: &crate::Objective<B, M, D>,
    v: &Tensor<B, 1>,
    step: f64,
) -> crate::Result<Vec<f64>> {
    use crate::LinearOperator;
    let d1 = to_vec(&crate::FiniteDifferenceHessian::with_step(objective, step)?.apply(v)?);
    let d2 = to_vec(&crate::FiniteDifferenceHessian::with_step(objective, step / 2.0)?.apply(v)?);
    Ok(d2
        .iter()
        .zip(&d1)
        .map(|(a, b)| (4.0 * a - b) / 3.0)
        .collect())
}

/// A classification batch with seeded standard-normal inputs of the given shape and labels
/// `i mod classes`.
///
/// # Panics
/// If `classes` is 0 or the shape has a zero dimension.
pub fn random_classification_batch<B: Backend, const D: usize>(
    shape: [usize; D],
    classes: usize,
    seed: u64,
    device: &B::Device,
) -> crate::Batch<B, D> {
    let n: usize = shape.iter().product();
    let x = to_vec(&crate::gaussian_vector::<B>(n, seed, device));
    let labels: Vec<usize> = (0..shape[0]).map(|i| i % classes).collect();
    crate::Batch::classification(
        Tensor::from_data(TensorData::new(x, shape), device),
        &labels,
        classes,
    )
    .expect("a well-formed random batch")
}

/// The wgpu device for tests that compare wgpu with NdArray, or `None` (with a message) when
/// no adapter exists on this machine: such a test cannot compare a backend that does not
/// exist, and returns without checking anything. Except in CI: with `CI=true` and Mesa's
/// software Vulkan driver lavapipe installed (`/usr/share/vulkan/icd.d/lvp_icd*`), a missing
/// adapter panics, so the wgpu tests cannot pass vacuously there.
///
/// # Panics
/// As above, and when the probe computes `1 + 2` wrongly.
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> Option<burn::backend::wgpu::WgpuDevice> {
    use burn::backend::wgpu::WgpuDevice;
    use std::sync::OnceLock;
    static PROBE: OnceLock<bool> = OnceLock::new();
    let ok = *PROBE.get_or_init(|| {
        let probe = std::panic::catch_unwind(|| {
            Tensor::<burn::backend::Wgpu<f32, i32>, 1>::from_floats(
                [1.0, 2.0],
                &WgpuDevice::DefaultDevice,
            )
            .sum()
            .into_scalar()
        });
        match probe {
            Ok(3.0) => true,
            Ok(s) => panic!("wgpu computed 1 + 2 = {s}"),
            Err(_) => false,
        }
    });
    if !ok {
        let lavapipe = std::fs::read_dir("/usr/share/vulkan/icd.d").is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("lvp_icd"))
        });
        assert!(
            !(lavapipe && std::env::var("CI").is_ok_and(|v| v == "true")),
            "CI=true and lavapipe is installed (/usr/share/vulkan/icd.d/lvp_icd*), but wgpu \
             found no adapter: the wgpu tests would check nothing"
        );
        eprintln!(
            "SKIPPED: no wgpu adapter on this machine; install a Vulkan driver (Debian: \
             `apt-get install mesa-vulkan-drivers` for the software driver lavapipe)"
        );
    }
    ok.then_some(WgpuDevice::DefaultDevice)
}
