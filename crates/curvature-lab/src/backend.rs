//! Which burn backend a command runs on: NdArray (CPU, f32 or f64), wgpu or CUDA (f32; cargo
//! features `wgpu` / `cuda`). Every command is generic over the backend; [`on_backend`] picks
//! the concrete type at run time.

use std::fmt;

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};

/// Backend names.
pub const BACKENDS: [&str; 3] = ["ndarray", "wgpu", "cuda"];

/// A backend, its device and its float precision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendChoice {
    /// `ndarray`, `wgpu` or `cuda`.
    pub name: String,
    /// Device index (wgpu: discrete GPU N; cuda: GPU N); `None` = the default device.
    pub device: Option<usize>,
    /// Use f64 (NdArray only).
    pub f64: bool,
}

impl Default for BackendChoice {
    fn default() -> Self {
        Self {
            name: "ndarray".into(),
            device: None,
            f64: false,
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some(d) = self.device {
            write!(f, ":{d}")?;
        }
        write!(f, " {}", if self.f64 { "f64" } else { "f32" })
    }
}

impl BackendChoice {
    /// Parse `--backend`, `--device` and `--precision`.
    ///
    /// # Errors
    /// Unknown backend or precision names; f64 on a GPU backend.
    pub fn new(name: &str, device: Option<usize>, precision: &str) -> Result<Self> {
        if !BACKENDS.contains(&name) {
            return Err(LabError::UnknownName {
                kind: "backend",
                name: name.to_string(),
                valid: BACKENDS.to_vec(),
            });
        }
        let f64 = match precision {
            "f32" => false,
            "f64" => true,
            other => {
                return Err(LabError::UnknownName {
                    kind: "precision",
                    name: other.to_string(),
                    valid: vec!["f32", "f64"],
                });
            }
        };
        if f64 && name != "ndarray" {
            return Err(crate::error::invalid(
                "precision",
                "f64",
                "only the ndarray backend computes in f64 (GPUs run f32)",
            ));
        }
        Ok(Self {
            name: name.to_string(),
            device: device.filter(|_| name != "ndarray"),
            f64,
        })
    }

    /// Whether the device runs asynchronously (GPU): timings must synchronise.
    pub fn is_gpu(&self) -> bool {
        self.name != "ndarray"
    }
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

/// Run `visitor` on the chosen backend.
///
/// # Errors
/// A backend this build does not include (naming the cargo feature), and the visitor's errors.
pub fn on_backend<V: BackendVisitor>(choice: &BackendChoice, visitor: V) -> Result<V::Output> {
    match (choice.name.as_str(), choice.f64) {
        ("ndarray", false) => visitor.visit::<burn::backend::NdArray<f32>>(Default::default()),
        ("ndarray", true) => visitor.visit::<burn::backend::NdArray<f64>>(Default::default()),
        #[cfg(feature = "wgpu")]
        ("wgpu", _) => {
            let device = match choice.device {
                Some(n) => burn::backend::wgpu::WgpuDevice::DiscreteGpu(n),
                None => burn::backend::wgpu::WgpuDevice::DefaultDevice,
            };
            visitor.visit::<burn::backend::Wgpu<f32, i32>>(device)
        }
        #[cfg(feature = "cuda")]
        ("cuda", _) => visitor.visit::<burn::backend::Cuda<f32, i32>>(
            burn::backend::cuda::CudaDevice::new(choice.device.unwrap_or(0)),
        ),
        #[cfg(not(feature = "wgpu"))]
        ("wgpu", _) => Err(without("wgpu")),
        #[cfg(not(feature = "cuda"))]
        ("cuda", _) => Err(without("cuda")),
        (other, _) => Err(LabError::UnknownName {
            kind: "backend",
            name: other.to_string(),
            valid: BACKENDS.to_vec(),
        }),
    }
}
