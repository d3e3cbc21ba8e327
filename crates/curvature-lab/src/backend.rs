//! Which burn backend a command runs on: NdArray (CPU, f32 or f64), Flex (CPU, f32; cargo
//! feature `flex`), wgpu or CUDA (f32; cargo features `wgpu` / `cuda`), named by
//! [`BackendKind`] and [`Precision`]. Every command is
//! generic over the backend; [`on_backend`] picks the concrete type at run time.

use std::fmt;

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::names::{BackendKind, Precision};

/// A backend, its device and its float precision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendChoice {
    /// NdArray, Flex, wgpu or CUDA.
    pub backend: BackendKind,
    /// Device index (wgpu: discrete GPU N; cuda: GPU N); `None` = the default device.
    pub device: Option<usize>,
    /// f32, or f64 (NdArray only).
    pub precision: Precision,
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.backend)?;
        if let Some(d) = self.device {
            write!(f, ":{d}")?;
        }
        write!(f, " {}", self.precision)
    }
}

impl BackendChoice {
    /// A backend with its device and precision (a device index on NdArray is dropped).
    ///
    /// # Errors
    /// f64 on a backend other than NdArray.
    pub fn new(backend: BackendKind, device: Option<usize>, precision: Precision) -> Result<Self> {
        if precision == Precision::F64 && !backend.has_f64() {
            return Err(f64_off_ndarray());
        }
        Ok(Self {
            backend,
            device: device.filter(|_| backend.is_gpu()),
            precision,
        })
    }

    /// Whether the device runs asynchronously (GPU): timings must synchronise.
    pub fn is_gpu(&self) -> bool {
        self.backend.is_gpu()
    }
}

/// The error for f64 on a backend that runs f32 only (every one but NdArray).
fn f64_off_ndarray() -> LabError {
    crate::error::invalid(
        "precision",
        "f64",
        "only the ndarray backend computes in f64 (flex and the GPUs run f32)",
    )
}

/// Make `E` NdArray's float type in this process, before any NdArray tensor exists.
///
/// burn 0.21 keeps the float dtype that `Tensor::from_data`, `zeros`, `random` and record loading
/// give new tensors in one registry entry per *device type* and process, set by the first NdArray
/// backend that creates a tensor — and `NdArray<f32>` and `NdArray<f64>` share the device type.
/// Without this claim an f64 run computed in f32 wherever the initial weights had been drawn on
/// `NdArray<f32>` first (measured: the dense logistic-regression Hessian of `--precision f64`
/// was asymmetric by 1.3e-7; 2e-16 with the claim).
///
/// # Errors
/// [`LabError::Device`] when this process already created NdArray tensors of the other float
/// type: one process computes on NdArray in one precision.
fn claim_ndarray_dtype<E: burn::tensor::Element>() -> Result<()> {
    use burn::tensor::{DType, FloatDType, IntDType, get_device_settings, set_default_dtypes};
    type Nd = burn::backend::NdArray;
    let device = Default::default();
    let want = match E::dtype() {
        DType::F64 => FloatDType::F64,
        _ => FloatDType::F32,
    };
    // Refused (harmlessly) when the settings already exist; they are then checked below.
    let _ = set_default_dtypes::<Nd>(&device, want, IntDType::I64);
    let have = get_device_settings::<Nd>(&device).float_dtype;
    if have != want {
        return Err(LabError::Device(format!(
            "NdArray already computes in {have:?} in this process, and burn 0.21 keeps one float \
             type per device type and process: an NdArray {want:?} computation here would \
             silently run in {have:?}; run it in a process of its own"
        )));
    }
    Ok(())
}

/// Work generic over the backend.
pub trait BackendVisitor {
    /// The result.
    type Output;
    /// Do the work on backend `BB`, device `device`.
    ///
    /// # Errors
    /// Whatever the work's errors are.
    fn visit<BB: Backend>(self, device: BB::Device) -> Result<Self::Output>;
}

#[allow(dead_code)] // unused when both GPU features are on
fn without(name: &str) -> LabError {
    LabError::Device(format!(
        "this `curvature` was built without the `{name}` backend; rebuild it with \
         `cargo build --release --features {name}`"
    ))
}

/// Whether the CUDA driver library loads, checked before cudarc tries: without it cudarc panics
/// in a device thread, far from the command line that asked for `--backend cuda`.
///
/// # Errors
/// [`LabError::Device`] naming the library and the usual causes.
#[cfg(feature = "cuda")]
fn cuda_driver_loads() -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        let loads = [c"libcuda.so.1", c"libcuda.so"].iter().any(|name| {
            // SAFETY: `name` is a NUL-terminated C string; the handle is not used again (the
            // library stays loaded, as cudarc loads it itself next).
            !unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY) }.is_null()
        });
        if !loads {
            return Err(LabError::Device(
                "--backend cuda: the CUDA driver library (libcuda.so.1) cannot be loaded on this \
                 machine: no NVIDIA GPU driver is installed, or its directory is not on \
                 LD_LIBRARY_PATH"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Run `visitor` on the chosen backend.
///
/// # Errors
/// A backend this build does not include (naming the cargo feature), and the visitor's errors.
pub fn on_backend<V: BackendVisitor>(choice: &BackendChoice, visitor: V) -> Result<V::Output> {
    match (choice.backend, choice.precision) {
        (BackendKind::Ndarray, Precision::F32) => {
            claim_ndarray_dtype::<f32>()?;
            visitor.visit::<burn::backend::NdArray<f32>>(Default::default())
        }
        (BackendKind::Ndarray, Precision::F64) => {
            claim_ndarray_dtype::<f64>()?;
            visitor.visit::<burn::backend::NdArray<f64>>(Default::default())
        }
        // `BackendChoice::new` refuses f64 on them.
        (BackendKind::Wgpu | BackendKind::Cuda | BackendKind::Flex, Precision::F64) => {
            Err(f64_off_ndarray())
        }
        #[cfg(feature = "flex")]
        (BackendKind::Flex, Precision::F32) => {
            visitor.visit::<burn::backend::Flex>(Default::default())
        }
        #[cfg(not(feature = "flex"))]
        (BackendKind::Flex, Precision::F32) => Err(without("flex")),
        #[cfg(feature = "wgpu")]
        (BackendKind::Wgpu, Precision::F32) => {
            let device = match choice.device {
                Some(n) => burn::backend::wgpu::WgpuDevice::DiscreteGpu(n),
                None => burn::backend::wgpu::WgpuDevice::DefaultDevice,
            };
            visitor.visit::<burn::backend::Wgpu<f32, i32>>(device)
        }
        #[cfg(feature = "cuda")]
        (BackendKind::Cuda, Precision::F32) => {
            cuda_driver_loads()?;
            visitor.visit::<burn::backend::Cuda<f32, i32>>(burn::backend::cuda::CudaDevice::new(
                choice.device.unwrap_or(0),
            ))
        }
        #[cfg(not(feature = "wgpu"))]
        (BackendKind::Wgpu, Precision::F32) => Err(without("wgpu")),
        #[cfg(not(feature = "cuda"))]
        (BackendKind::Cuda, Precision::F32) => Err(without("cuda")),
    }
}
