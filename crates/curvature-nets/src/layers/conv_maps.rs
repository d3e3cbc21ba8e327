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
//! The three close under differentiation. For an upstream gradient `G`:
//!
//! | map                 | ∂ first argument          | ∂ second argument         |
//! |---------------------|---------------------------|---------------------------|
//! | `conv(x, W)`        | `input_grad(G, W)`        | `weight_grad(x, G)`       |
//! | `input_grad(g, W)`  | `conv(G, W)`              | `weight_grad(G, g)`       |
//! | `weight_grad(x, g)` | `input_grad(g, G)`        | `conv(x, G)`              |
//!
//! (each row follows from the two adjoint identities above). So each map is one custom
//! operation on `Autodiff<B>` whose backward calls the maps of `B` — recorded on `B`'s own
//! graph when `B` is itself an `Autodiff` backend, which is how the reverse-over-reverse
//! Hessian-vector product (`Autodiff<Autodiff<_>>`) differentiates it a second time. On a
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
//! [`conv2d_gemm_grad`] reaches these operations from code generic over any `Backend`: it
//! compares the backend's [`TypeId`] with the backends that have [`ConvMaps`] (Flex, NdArray
//! f32 and f64, each bare or under one or two `Autodiff` levels) and moves the tensors across
//! with a checked `Any` downcast (no `unsafe`), so layers and models keep a plain
//! `B: Backend` bound.

use std::any::TypeId;

use curvature_core::same_type::same_type as same;

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::conv::calculate_padding_out;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor};
use burn::tensor::{Tensor, TensorMetadata, TensorPrimitive};

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

/// The three bilinear maps of a convolution (see the module docs), on the primitives of a
/// backend.
pub(crate) trait ConvMaps: Backend {
    /// `W ⋆ x`: `[N, C, H, W] × [O, C, k_h, k_w] → [N, O, H', W']`.
    fn conv(x: FloatTensor<Self>, w: FloatTensor<Self>, spec: ConvSpec) -> FloatTensor<Self>;
    /// `Wᵀ ⋆ g`, the gradient of `⟨g, W ⋆ x⟩` in `x`, for an input of spatial size `in_hw`.
    fn input_grad(
        g: FloatTensor<Self>,
        w: FloatTensor<Self>,
        in_hw: [usize; 2],
        spec: ConvSpec,
    ) -> FloatTensor<Self>;
    /// `Σ_n g_n · im2col(x_n)ᵀ`, the gradient of `⟨g, W ⋆ x⟩` in `W`, for a `k_h×k_w` kernel.
    fn weight_grad(
        x: FloatTensor<Self>,
        g: FloatTensor<Self>,
        kernel: [usize; 2],
        spec: ConvSpec,
    ) -> FloatTensor<Self>;
}

fn tensor<B: Backend, const D: usize>(primitive: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

fn spatial<B: Backend>(t: &FloatTensor<B>) -> [usize; 2] {
    let dims = t.shape().dims::<4>();
    [dims[2], dims[3]]
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
fn input_grad_by_backend<B: ConvMaps>(
    g: FloatTensor<B>,
    w: FloatTensor<B>,
    in_hw: [usize; 2],
    spec: ConvSpec,
) -> FloatTensor<B> {
    let kernel = spatial::<B>(&w);
    let reach: [usize; 2] = std::array::from_fn(|i| spec.dilation[i] * (kernel[i] - 1));
    if spec.stride == [1, 1] && (0..2).all(|i| spec.padding[i] <= reach[i]) {
        let flipped = B::float_flip(B::float_swap_dims(w, 0, 1), &[2, 3]);
        return B::conv(
            g,
            flipped,
            ConvSpec {
                stride: [1, 1],
                padding: std::array::from_fn(|i| reach[i] - spec.padding[i]),
                dilation: spec.dilation,
            },
        );
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
        impl ConvMaps for $backend {
            fn conv(x: FloatTensor<Self>, w: FloatTensor<Self>, spec: ConvSpec) -> FloatTensor<Self> {
                $(if let Some(y) = $conv(&x, &w, spec) {
                    return y;
                })?
                conv_by_backend::<Self>(x, w, spec)
            }
            fn input_grad(
                g: FloatTensor<Self>,
                w: FloatTensor<Self>,
                in_hw: [usize; 2],
                spec: ConvSpec,
            ) -> FloatTensor<Self> {
                input_grad_by_backend::<Self>(g, w, in_hw, spec)
            }
            fn weight_grad(
                x: FloatTensor<Self>,
                g: FloatTensor<Self>,
                kernel: [usize; 2],
                spec: ConvSpec,
            ) -> FloatTensor<Self> {
                $(if let Some(dw) = $weight_grad(&x, &g, kernel, spec) {
                    return dw;
                })?
                weight_grad_by_gemm::<Self>(x, g, kernel, spec)
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

/// One bilinear map `f(a, b)` as an autodiff operation: the state is both operands and the
/// geometry; the backward is the two partial maps of the table in the module docs.
macro_rules! bilinear_op {
    ($name:ident, |$a:ident, $b:ident, $grad:ident, $spec:ident| $da:expr, $db:expr) => {
        #[derive(Debug)]
        struct $name;

        impl<B: ConvMaps> Backward<B, 2> for $name {
            type State = (NodeId, NodeId, ConvSpec);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_a, node_b] = ops.parents;
                let $grad = grads.consume::<B>(&ops.node);
                let (state_a, state_b, $spec) = ops.state;
                let $a = checkpointer.retrieve_node_output::<FloatTensor<B>>(state_a);
                let $b = checkpointer.retrieve_node_output::<FloatTensor<B>>(state_b);
                if let Some(node) = node_a {
                    // Clones of every operand (cheap handles); the partial map uses two.
                    #[allow(unused_variables)]
                    let ($a, $b, $grad) = ($a.clone(), $b.clone(), $grad.clone());
                    grads.register::<B>(node.id, $da);
                }
                if let Some(node) = node_b {
                    grads.register::<B>(node.id, $db);
                }
            }
        }
    };
}

bilinear_op!(
    ConvOp,
    |x, w, grad, spec| B::input_grad(grad, w, spatial::<B>(&x), spec),
    B::weight_grad(x, grad, spatial::<B>(&w), spec)
);
bilinear_op!(
    InputGradOp,
    |g, w, grad, spec| B::conv(grad, w, spec),
    B::weight_grad(grad, g, spatial::<B>(&w), spec)
);
bilinear_op!(
    WeightGradOp,
    |x, g, grad, spec| B::input_grad(g, grad, spatial::<B>(&x), spec),
    B::conv(x, grad, spec)
);

/// Record `forward(a, b)` as operation `op` with parents `a` and `b`.
fn record<B, C, Op>(
    op: Op,
    a: FloatTensor<Autodiff<B, C>>,
    b: FloatTensor<Autodiff<B, C>>,
    spec: ConvSpec,
    forward: impl FnOnce(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>>
where
    B: ConvMaps,
    C: CheckpointStrategy,
    Op: Backward<B, 2, State = (NodeId, NodeId, ConvSpec)>,
{
    match op
        .prepare::<C>([a.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state_a = prep.checkpoint(&a);
            let state_b = prep.checkpoint(&b);
            prep.finish((state_a, state_b, spec), forward(a.primitive, b.primitive))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(a.primitive, b.primitive)),
    }
}

impl<B: ConvMaps, C: CheckpointStrategy> ConvMaps for Autodiff<B, C> {
    fn conv(x: FloatTensor<Self>, w: FloatTensor<Self>, spec: ConvSpec) -> FloatTensor<Self> {
        record::<B, C, _>(ConvOp, x, w, spec, |x, w| B::conv(x, w, spec))
    }
    fn input_grad(
        g: FloatTensor<Self>,
        w: FloatTensor<Self>,
        in_hw: [usize; 2],
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        record::<B, C, _>(InputGradOp, g, w, spec, |g, w| {
            B::input_grad(g, w, in_hw, spec)
        })
    }
    fn weight_grad(
        x: FloatTensor<Self>,
        g: FloatTensor<Self>,
        kernel: [usize; 2],
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        record::<B, C, _>(WeightGradOp, x, g, spec, |x, g| {
            B::weight_grad(x, g, kernel, spec)
        })
    }
}

/// `W ⋆ x` through the maps of `K` when `B` is `K`; the operands back otherwise.
fn conv_as<B: Backend, K: ConvMaps>(
    (x, w): (Tensor<B, 4>, Tensor<B, 4>),
    spec: ConvSpec,
) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>)> {
    if TypeId::of::<B>() != TypeId::of::<K>() {
        return Err((x, w));
    }
    let (x, w): (Tensor<K, 4>, Tensor<K, 4>) = (same(x), same(w));
    let y = K::conv(
        x.into_primitive().tensor(),
        w.into_primitive().tensor(),
        spec,
    );
    Ok(same(tensor::<K, 4>(y)))
}

/// [`conv_as`] for `K`, `Autodiff<K>` (a gradient) and `Autodiff<Autodiff<K>>` (a
/// Hessian-vector product).
fn conv_as_any_level<B: Backend, K: ConvMaps>(
    operands: (Tensor<B, 4>, Tensor<B, 4>),
    spec: ConvSpec,
) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>)> {
    conv_as::<B, K>(operands, spec)
        .or_else(|operands| conv_as::<B, Autodiff<K>>(operands, spec))
        .or_else(|operands| conv_as::<B, Autodiff<Autodiff<K>>>(operands, spec))
}

fn levels<K: Backend>() -> [TypeId; 3] {
    [
        TypeId::of::<K>(),
        TypeId::of::<Autodiff<K>>(),
        TypeId::of::<Autodiff<Autodiff<K>>>(),
    ]
}

/// `W ⋆ x` as the custom operation ([`ConvMaps`]) when backend `B` has it — Flex, NdArray f32
/// and f64, each bare or under one or two `Autodiff` levels — and `Err` with the operands
/// otherwise.
pub(crate) fn conv2d_gemm_grad<B: Backend>(
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    spec: ConvSpec,
) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>)> {
    let operands = (x, w);
    #[cfg(feature = "flex")]
    let operands = match conv_as_any_level::<B, burn::backend::Flex>(operands, spec) {
        Ok(y) => return Ok(y),
        Err(operands) => operands,
    };
    conv_as_any_level::<B, burn::backend::NdArray<f32>>(operands, spec)
        .or_else(|operands| conv_as_any_level::<B, burn::backend::NdArray<f64>>(operands, spec))
}

/// Whether [`conv2d_gemm_grad`] supports backend `B`.
pub(crate) fn has_conv_maps<B: Backend>() -> bool {
    let mut ids = Vec::from(levels::<burn::backend::NdArray<f32>>());
    ids.extend(levels::<burn::backend::NdArray<f64>>());
    #[cfg(feature = "flex")]
    ids.extend(levels::<burn::backend::Flex>());
    ids.contains(&TypeId::of::<B>())
}
