//! A convolution whose derivatives are matrix products over views of its input, as custom
//! autodiff operations that nest (so exact Hessian-vector products still work).
//!
//! A 2-D convolution `y = W ⋆ x` (no groups) is bilinear, and its derivatives are two more
//! bilinear maps. With `⟨·,·⟩` the sum of elementwise products:
//!
//! * `conv(x, W) = W ⋆ x` — `[N, C, H, W] × [O, C, k_h, k_w] → [N, O, H', W']`;
//! * `input_grad(g, W) = Wᵀ ⋆ g`, the adjoint in `x`: `⟨input_grad(g, W), x⟩ = ⟨g, conv(x, W)⟩`
//!   (a transposed convolution);
//! * `weight_grad(x, g)`, the adjoint in `W`: `⟨weight_grad(x, g), W⟩ = ⟨g, conv(x, W)⟩`, i.e.
//!   `Σ_n g_n · im2col(x_n)ᵀ`, one matrix product per example over the patches of `x`.
//!
//! These are the three maps of a [`Bilinear`] family (`f = conv`, `f_x = input_grad`,
//! `f_W = weight_grad`), so on `Autodiff<B>` each is one custom operation whose backward calls
//! the maps of `B` (`bilinear.rs`), which nests for exact Hessian-vector products. On a
//! backend without autodiff the maps are computed as (references: Chellapilla, Puri & Simard
//! 2006, *High performance convolutional neural networks for document processing*, for the
//! matrix-product form; PyTorch computes the same three):
//!
//! * `conv`: the backend's own `conv2d`;
//! * `input_grad`: with unit stride, a `conv2d` of `g` with `W` transposed in its channels and
//!   flipped in space (the backend's transposed convolution otherwise);
//! * `weight_grad`: with unit stride, one batched matrix product per kernel tap between the
//!   output gradient and a *view* of the padded input (no patch matrix); with a stride, chunks
//!   of [`im2col`](super::im2col)'s patches times the output gradient;
//! * on Flex (`f32`), `conv` and `weight_grad` by one matrix product per example over that
//!   example's patches, the examples shared between rayon's threads (`conv_patches.rs`), so
//!   the unit-stride `input_grad` too.
//!
//! Why: burn 0.21 computes a convolution's weight gradient generically, by swapping the batch
//! and channel axes of the input and of the output gradient and convolving one with the other.
//! On the Flex CPU backend those swapped tensors are copied one element at a time (its
//! strided-copy fallback) inside a convolution with a `H'×W'` kernel; perf put 20 % of the
//! CNN's gradient-and-HVP time there and another 3 % in the transposed convolution's weight
//! gradient of the second differentiation, and Flex's `conv_transpose2d` scatters its columns
//! back one element at a time (docs/benchmarks.md).
//!
//! [`conv2d_gemm_grad`] reaches these operations from code generic over any `Backend`
//! (Flex, NdArray f32 and f64, each bare or under one or two `Autodiff` levels), so layers and
//! models keep a plain `B: Backend` bound.

use burn::tensor::backend::Backend;
use burn::tensor::ops::conv::calculate_padding_out;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor};
use burn::tensor::{Shape, Tensor, TensorMetadata, TensorPrimitive};

use super::bilinear::{Bilinear, Operands, apply_any_level, is_any_level_of};
use super::conv::{Patches, ShiftedRuns};

/// Stride, zero padding and dilation of a convolution without groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvSpec {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

/// Examples per matrix product of [`weight_grad_by_gemm`] with a stride: bounds its patch
/// buffer (`16 · C·k_h·k_w · H'·W'` floats) so the allocator can reuse it instead of handing
/// out fresh, zero-filled pages per call.
const WEIGHT_GRAD_CHUNK: usize = 16;

fn tensor<B: Backend, const D: usize>(primitive: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

fn spatial<B: Backend>(t: &FloatTensor<B>) -> [usize; 2] {
    spatial_of(&t.shape())
}

/// The spatial size `[H, W]` of a shape `[N, C, H, W]` (or `[O, C, k_h, k_w]`).
fn spatial_of(shape: &Shape) -> [usize; 2] {
    let [_, _, h, w] = shape.dims::<4>();
    [h, w]
}

/// The backend's own `conv2d` (no bias, no groups).
fn conv_by_backend<B: Backend>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    spec: ConvSpec,
) -> FloatTensor<B> {
    B::conv2d(
        x,
        w,
        None,
        ConvOptions::new(spec.stride, spec.padding, spec.dilation, 1),
    )
}

/// `Wᵀ ⋆ g`. With unit stride and `p ≤ d(k − 1)` on both axes it is a plain convolution of
/// `g` with the kernel transposed in its channels and flipped in space, padded by
/// `d(k − 1) − p`: `H' + 2(d(k − 1) − p) − d(k − 1) = H`. That runs on the backend's forward
/// `conv2d` (on Flex an im2col + GEMM; its `conv_transpose2d` scatters the columns back
/// element by element, one example at a time). Otherwise the backend's `conv_transpose2d`,
/// with the output padding that restores the input's size (burn's `calculate_padding_out`, as
/// its own `conv2d` backward): a transposed convolution of `H'` gives
/// `(H' − 1)·s − 2p + d(k − 1) + 1 + p_out`, and the forward convolution's floor division
/// dropped `p_out ∈ [0, s)` rows.
fn input_grad_by_backend<B: Backend>(
    g: FloatTensor<B>,
    w: FloatTensor<B>,
    in_hw: [usize; 2],
    spec: ConvSpec,
) -> FloatTensor<B>
where
    ConvSpec: Bilinear<B>,
{
    let kernel = spatial::<B>(&w);
    let reach: [usize; 2] = std::array::from_fn(|i| spec.dilation[i] * (kernel[i] - 1));
    if spec.stride == [1, 1] && (0..2).all(|i| spec.padding[i] <= reach[i]) {
        let flipped = B::float_flip(B::float_swap_dims(w, 0, 1), &[2, 3]);
        let flipped_spec = ConvSpec {
            stride: [1, 1],
            padding: std::array::from_fn(|i| reach[i] - spec.padding[i]),
            dilation: spec.dilation,
        };
        return flipped_spec.apply(g, flipped);
    }
    let out_hw = spatial::<B>(&g);
    let padding_out: [usize; 2] = std::array::from_fn(|i| {
        calculate_padding_out(
            kernel[i],
            spec.stride[i],
            spec.padding[i],
            spec.dilation[i],
            in_hw[i],
            out_hw[i],
        )
    });
    B::conv_transpose2d(
        g,
        w,
        None,
        ConvTransposeOptions::new(spec.stride, spec.padding, padding_out, spec.dilation, 1),
    )
}

/// `Σ_n g_n · im2col(x_n)ᵀ`: `[N, C, H, W] × [N, O, H', W'] → [O, C, k_h, k_w]`.
///
/// With unit stride, kernel tap `(i, j)` sees a contiguous run of the flattened padded input
/// ([`ShiftedRuns`]), so its slice of the weight gradient is `Σ_n g_n · run_n(i, j)ᵀ`, a batched
/// matrix product of the output gradient (zero-padded to the padded width, `[N, O, H'·W_p]`)
/// with a *view* `[N, H'·W_p, C]` — no patch matrix is built (building one, nine times the
/// input, cost more than the products). Other strides: the patches of [`Patches`], in chunks
/// of [`WEIGHT_GRAD_CHUNK`] examples, each one batched matrix product.
fn weight_grad_by_gemm<B: Backend>(
    x: FloatTensor<B>,
    g: FloatTensor<B>,
    [kh, kw]: [usize; 2],
    spec: ConvSpec,
) -> FloatTensor<B> {
    let x = tensor::<B, 4>(x);
    let g = tensor::<B, 4>(g);
    let [n, c, h, w] = x.dims();
    let [_, o, ho, wo] = g.dims();
    if let Some(runs) = ShiftedRuns::new(
        x.clone(),
        [kh, kw],
        spec.stride,
        spec.padding,
        spec.dilation,
    ) {
        let g =
            super::pad_zeros(g, [(0, 0), (0, runs.padded_width - wo)]).reshape([n, o, runs.len]);
        let taps = (0..kh * kw)
            .map(|k| {
                g.clone()
                    .matmul(runs.run(k).swap_dims(1, 2))
                    .sum_dim(0)
                    .reshape([o, c, 1])
            })
            .collect();
        return Tensor::cat(taps, 2)
            .reshape([o, c, kh, kw])
            .into_primitive()
            .tensor();
    }
    let mut sum: Option<Tensor<B, 3>> = None;
    for start in (0..n).step_by(WEIGHT_GRAD_CHUNK) {
        let end = (start + WEIGHT_GRAD_CHUNK).min(n);
        let patches = Patches::new(
            x.clone().slice([start..end, 0..c, 0..h, 0..w]),
            [kh, kw],
            spec.stride,
            spec.padding,
            spec.dilation,
        );
        let [m, _, l] = patches.cols.dims();
        let part = g
            .clone()
            .slice([start..end, 0..o, 0..ho, 0..wo])
            .reshape([m, o, l])
            .matmul(patches.cols.swap_dims(1, 2))
            .sum_dim(0);
        sum = Some(match sum {
            Some(s) => s + part,
            None => part,
        });
    }
    sum.expect("a convolution's input has at least one example")
        .reshape([o, c, kh, kw])
        .into_primitive()
        .tensor()
}

/// The maps on a backend without autodiff: the convolution `$conv` (the backend's own
/// `conv2d` by default), the input gradient by [`input_grad_by_backend`] and the weight
/// gradient by [`weight_grad_by_gemm`].
macro_rules! base_conv_maps {
    ($backend:ty $(, $conv:expr, $weight_grad:expr)?) => {
        impl Bilinear<$backend> for ConvSpec {
            fn apply(self, x: FloatTensor<$backend>, w: FloatTensor<$backend>) -> FloatTensor<$backend> {
                $(if let Some(y) = $conv(&x, &w, self) {
                    return y;
                })?
                conv_by_backend::<$backend>(x, w, self)
            }
            fn adjoint_x(
                self,
                g: FloatTensor<$backend>,
                w: FloatTensor<$backend>,
                x_shape: &Shape,
            ) -> FloatTensor<$backend> {
                input_grad_by_backend::<$backend>(g, w, spatial_of(x_shape), self)
            }
            fn adjoint_w(
                self,
                x: FloatTensor<$backend>,
                g: FloatTensor<$backend>,
                w_shape: &Shape,
            ) -> FloatTensor<$backend> {
                let kernel = spatial_of(w_shape);
                $(if let Some(dw) = $weight_grad(&x, &g, kernel, self) {
                    return dw;
                })?
                weight_grad_by_gemm::<$backend>(x, g, kernel, self)
            }
        }
    };
}

base_conv_maps!(burn::backend::NdArray<f32>);
base_conv_maps!(burn::backend::NdArray<f64>);
// On Flex the convolution (and so the unit-stride input gradient) is one matrix product per
// example over its patches (`conv_patches.rs`).
#[cfg(feature = "flex")]
base_conv_maps!(
    burn::backend::Flex,
    super::conv_patches::conv,
    super::conv_patches::weight_grad
);

/// `W ⋆ x` as the custom operations of this module when backend `B` has them — Flex, NdArray
/// f32 and f64, each bare or under one or two `Autodiff` levels — and `Err` with the operands
/// otherwise.
pub(crate) fn conv2d_gemm_grad<B: Backend>(
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    spec: ConvSpec,
) -> Result<Tensor<B, 4>, Operands<B, 4, 4>> {
    let operands = (x, w);
    #[cfg(feature = "flex")]
    let operands = match apply_any_level::<B, burn::backend::Flex, _, 4, 4, 4>(spec, operands) {
        Ok(y) => return Ok(y),
        Err(operands) => operands,
    };
    apply_any_level::<B, burn::backend::NdArray<f32>, _, 4, 4, 4>(spec, operands).or_else(
        |operands| apply_any_level::<B, burn::backend::NdArray<f64>, _, 4, 4, 4>(spec, operands),
    )
}

/// Whether [`conv2d_gemm_grad`] supports backend `B`.
pub(crate) fn has_conv_maps<B: Backend>() -> bool {
    #[cfg(feature = "flex")]
    if is_any_level_of::<B, burn::backend::Flex>() {
        return true;
    }
    is_any_level_of::<B, burn::backend::NdArray<f32>>()
        || is_any_level_of::<B, burn::backend::NdArray<f64>>()
}
