//! Which of burn's CPU backends a layer runs on, for the layers that compute differently there
//! because it was measured faster (docs/benchmarks.md).

use burn::tensor::backend::Backend;

/// burn's CPU backends that some layers special-case: [`Conv2d`](super::Conv2d)'s `Auto`
/// lowering and [`Dense`](super::Dense)'s feature-major product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CpuBackend {
    /// `burn::backend::Flex`.
    Flex,
    /// `burn::backend::NdArray`, f32 or f64.
    NdArray,
}

impl CpuBackend {
    /// The CPU backend that backend `B` runs on — also under any number of `Autodiff`
    /// wrappers — or `None` for the GPU backends.
    pub(crate) fn of<B: Backend>() -> Option<Self> {
        // `Autodiff<K>`'s type name spells out `K`'s, so one look covers every level.
        let name = std::any::type_name::<B>();
        if name.contains("burn_flex") {
            Some(Self::Flex)
        } else if name.contains("burn_ndarray") {
            Some(Self::NdArray)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, NdArray};

    use super::CpuBackend;

    #[test]
    fn backends_are_recognised_under_any_autodiff_level() {
        assert_eq!(CpuBackend::of::<NdArray<f32>>(), Some(CpuBackend::NdArray));
        assert_eq!(
            CpuBackend::of::<Autodiff<Autodiff<NdArray<f64>>>>(),
            Some(CpuBackend::NdArray)
        );
        #[cfg(feature = "flex")]
        assert_eq!(
            CpuBackend::of::<Autodiff<burn::backend::Flex>>(),
            Some(CpuBackend::Flex)
        );
    }
}
