//! Tensors in the standard (row-major, contiguous) layout.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// `t` in the standard contiguous layout: one copy if it is a strided view, none otherwise.
///
/// Why: a parameter used through a transpose — an `[out, in]` weight in `x Wᵀ`, as a user's
/// own layer may write it (curvature-nets' `Dense` computes `(W xᵀ)ᵀ` instead, whose weight
/// gradient is contiguous) — gets its gradient as the transpose of a matrix product, i.e. a
/// transposed *view*.
/// burn's Flex backend runs every elementwise operation on such a view through its strided
/// fallback (an index iterator per element) instead of its SIMD kernels, and copies it into the
/// standard layout one element at a time (docs/benchmarks.md, "AVX-512 matrix products and
/// gradients of transposed weights"). So an optimiser's update and the flattening of a gradient copy it first, once:
/// on Flex, a transposed `f32` matrix is transposed in cache-sized blocks; anywhere else a
/// reshape to one axis and back (burn 0.21 has no `contiguous` operation) — free on a
/// contiguous tensor, a copy of a strided one on Flex, NdArray and the GPU backends.
pub fn contiguous<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    let t = match flex::transposed_matrix(t) {
        Ok(copy) => return copy,
        Err(t) => t,
    };
    let dims = t.dims();
    t.reshape([dims.iter().product::<usize>()]).reshape(dims)
}

#[cfg(feature = "flex")]
mod flex {
    use std::any::TypeId;

    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::tensor::backend::Backend;
    use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};

    use crate::same_type::same_type as same;

    /// Edge of the square blocks of the transposition (two 32×32 `f32` tiles: 8 KiB).
    const BLOCK: usize = 32;

    /// The contiguous copy of `t` when it is a Flex `f32` matrix stored transposed (strides
    /// `[1, rows]` over a whole buffer); `t` back otherwise.
    pub(super) fn transposed_matrix<B: Backend, const D: usize>(
        t: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, Tensor<B, D>> {
        if D != 2 || TypeId::of::<B>() != TypeId::of::<Flex>() {
            return Err(t);
        }
        let t: Tensor<Flex, D> = same(t);
        let [rows, cols] = [t.dims()[0], t.dims()[1]];
        let primitive: FlexTensor = t.clone().into_primitive().tensor();
        let layout = primitive.layout();
        let transposed = primitive.dtype() == DType::F32
            && layout.strides() == [1, rows as isize]
            && layout.start_offset() == 0
            && primitive.bytes().len() == rows * cols * 4
            && rows > 1
            && cols > 1;
        if !transposed {
            return Err(same(t));
        }
        // The buffer holds the `[cols, rows]` matrix row by row: `src[c·rows + r] = t[r, c]`.
        let src = primitive.storage::<f32>();
        let mut dst = vec![0.0f32; rows * cols];
        for r0 in (0..rows).step_by(BLOCK) {
            for c0 in (0..cols).step_by(BLOCK) {
                for r in r0..(r0 + BLOCK).min(rows) {
                    let row = &mut dst[r * cols..(r + 1) * cols];
                    for (c, out) in row
                        .iter_mut()
                        .enumerate()
                        .take((c0 + BLOCK).min(cols))
                        .skip(c0)
                    {
                        *out = src[c * rows + r];
                    }
                }
            }
        }
        let copy = FlexTensor::from_data(TensorData::new(dst, [rows, cols]));
        let copy = Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(copy));
        Ok(same(copy))
    }
}
