//! `f32` buffers of Flex tensors for the hand-written Flex kernels (pooling, batch norm).

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, TensorData};

/// `t`'s `f32` elements in row-major order over its whole buffer (a copy only if `t` is a
/// view), for `layer`'s kernel.
///
/// # Panics
/// If `t` is not `f32` (the callers check the dtype before choosing their kernel).
pub(super) fn row_major(t: &FlexTensor, layer: &str) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "{layer} on Flex runs in f32");
    t.to_contiguous()
}

/// [`row_major`] of a tensor the caller gives up: no second handle on its storage remains, so
/// unless another tensor shares it, `storage_mut` then writes it in place (no copy-on-write).
pub(super) fn owned_row_major(t: FlexTensor, layer: &str) -> FlexTensor {
    let row_major = row_major(&t, layer);
    drop(t);
    row_major
}

/// A Flex tensor of shape `dims` over `values` (row-major; no copy).
pub(super) fn flex_tensor(values: Vec<f32>, dims: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}
