//! Max pooling on Flex as custom autodiff operations that nest (so exact Hessian-vector
//! products still work): one pass over the input that finds each window's maximum and where it
//! is, and two linear maps for every derivative.
//!
//! Non-overlapping `k×k` max pooling is, away from ties, the *selection* `y = P_a x`:
//! `y_j = x_{a(j)}` with `a(j)` the position of window `j`'s maximum. `a` is piecewise
//! constant in `x`, so every derivative of `y` is a derivative of the linear map `P_a` with
//! `a` held fixed — and the second derivative of max pooling is zero almost everywhere, as
//! for burn's kernel and PyTorch's. The two maps are each other's adjoint:
//!
//! * `gather(x) = P_a x`: `y_j = x_{a(j)}` (input-shaped → output-shaped);
//! * `scatter(g) = P_aᵀ g`: `g_j` placed at `a(j)`, zero elsewhere (output-shaped →
//!   input-shaped).
//!
//! The backward of `gather` is `scatter` and the backward of `scatter` is `gather`; on
//! `Autodiff<B>` each is one operation whose backward calls the other map of `B`, recorded on
//! `B`'s own graph when `B` is itself an `Autodiff` backend — the construction of
//! `conv_maps.rs`, for maps that are linear instead of bilinear.
//!
//! Why: the generic [`max_pool2d`](super::max_pool2d) (a `max_dim` over columns and
//! `max_pair`s over rows, built from burn's operations) costs a scatter into a fresh
//! zero-filled tensor (burn-flex's `scatter_add`, 12 % of the CNN's training step in a
//! profile), comparisons and masked selections in every pass; here the forward is one loop over
//! the input and each derivative one loop over the output (docs/benchmarks.md, "Max pooling
//! as one pass on Flex").
//!
//! Each map splits its work between rayon's threads by planes `[H, W]` (the gather by runs of
//! outputs); every output element is computed by one thread in one way, so results do not
//! depend on the thread count.

use std::any::TypeId;
use std::sync::Arc;

use super::flex_f32::flex_tensor;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use curvature_core::same_type::same_type as same;
use rayon::prelude::*;

/// Where each window's maximum is: for output element `j` (row-major in `[N, C, H/k, W/k]`)
/// the flat row-major index `a(j)` into the input `[N, C, H, W]`.
#[derive(Debug, Clone)]
pub(crate) struct ArgMax {
    index: Arc<Vec<u32>>,
    input: [usize; 4],
    output: [usize; 4],
}

/// Max pooling and its two linear maps (module docs) on the primitives of a backend.
trait PoolMaps: Backend {
    /// `k×k` max pooling with stride `k` of `[N, C, H, W]` (`k` divides `H` and `W`), and where
    /// each maximum is: the first in row-major order within its window on ties, and a NaN
    /// anywhere in a window wins it (as in PyTorch).
    fn pool(x: FloatTensor<Self>, k: usize) -> (FloatTensor<Self>, ArgMax);
    /// `P_a x`: `y_j = x_{a(j)}`.
    fn gather(x: FloatTensor<Self>, at: &ArgMax) -> FloatTensor<Self>;
    /// `P_aᵀ g`: `g_j` at `a(j)`, zero elsewhere.
    fn scatter(g: FloatTensor<Self>, at: &ArgMax) -> FloatTensor<Self>;
}

/// Outputs per task of [`PoolMaps::gather`] on rayon's pool.
const PER_TASK: usize = 1 << 14;

fn row_major(t: &FlexTensor) -> FlexTensor {
    super::flex_f32::row_major(t, "max pooling")
}

impl PoolMaps for Flex {
    fn pool(x: FlexTensor, k: usize) -> (FlexTensor, ArgMax) {
        let x = row_major(&x);
        let dims = x.layout().shape().to_vec();
        let [n, c, h, w] = [dims[0], dims[1], dims[2], dims[3]];
        let (ho, wo) = (h / k, w / k);
        let src = x.storage::<f32>();
        let mut y = vec![0.0f32; n * c * ho * wo];
        let mut index = vec![0u32; n * c * ho * wo];
        // One task per plane `[H, W]` of the input (each writes its own outputs).
        if ho * wo > 0 {
            y.par_chunks_mut(ho * wo)
                .zip(index.par_chunks_mut(ho * wo))
                .enumerate()
                .for_each(|(plane, (y_plane, at_plane))| {
                    for (i, (y_row, at_row)) in y_plane
                        .chunks_exact_mut(wo)
                        .zip(at_plane.chunks_exact_mut(wo))
                        .enumerate()
                    {
                        let top = plane * h * w + i * k * w;
                        if k == 2 {
                            pool_rows_2x2(&src[top..top + 2 * w], top as u32, y_row, at_row);
                        } else {
                            pool_rows(&src[top..top + k * w], k, top as u32, y_row, at_row);
                        }
                    }
                });
        }
        let at = ArgMax {
            index: Arc::new(index),
            input: [n, c, h, w],
            output: [n, c, ho, wo],
        };
        (flex_tensor(y, at.output), at)
    }

    fn gather(x: FlexTensor, at: &ArgMax) -> FlexTensor {
        let x = row_major(&x);
        let src = x.storage::<f32>();
        let y = at
            .index
            .par_iter()
            .with_min_len(PER_TASK)
            .map(|&i| src[i as usize])
            .collect();
        flex_tensor(y, at.output)
    }

    fn scatter(g: FlexTensor, at: &ArgMax) -> FlexTensor {
        let g = row_major(&g);
        let mut dx = vec![0.0f32; at.input.iter().product()];
        let [_, _, h, w] = at.input;
        let [_, _, ho, wo] = at.output;
        // One task per plane: a plane's maxima lie in its own input plane.
        if h * w > 0 && ho * wo > 0 {
            dx.par_chunks_mut(h * w)
                .zip(at.index.par_chunks(ho * wo))
                .zip(g.storage::<f32>().par_chunks(ho * wo))
                .enumerate()
                .for_each(|(plane, ((dx_plane, at_plane), g_plane))| {
                    let top = plane * h * w;
                    for (&i, &v) in at_plane.iter().zip(g_plane) {
                        dx_plane[i as usize - top] += v;
                    }
                });
        }
        flex_tensor(dx, at.input)
    }
}

/// [`better_mask`] as a `bool`.
#[inline(always)]
fn better(v: f32, max: f32) -> bool {
    better_mask(v, max) != 0
}

/// One row of `k×k` windows: `rows` are the `k` input rows `[k, W]` (flat index of their first
/// element `top`), `y` and `at` the `W/k` maxima and their flat indices.
fn pool_rows(rows: &[f32], k: usize, top: u32, y: &mut [f32], at: &mut [u32]) {
    let w = rows.len() / k;
    for (j, (max, at)) in y.iter_mut().zip(at.iter_mut()).enumerate() {
        (*max, *at) = (rows[j * k], top + (j * k) as u32);
        for a in 0..k {
            for b in 0..k {
                let cell = a * w + j * k + b;
                let v = rows[cell];
                let replace = better(v, *max);
                *max = if replace { v } else { *max };
                *at = if replace { top + cell as u32 } else { *at };
            }
        }
    }
}

/// All ones if `b`, else zero: a lane mask for [`pick`].
#[inline(always)]
fn mask(b: bool) -> u32 {
    0u32.wrapping_sub(u32::from(b))
}

/// `a` where `m` is all ones, `b` where it is zero, on the bits: no branch.
#[inline(always)]
fn pick(m: u32, a: f32, b: f32) -> f32 {
    f32::from_bits((m & a.to_bits()) | (!m & b.to_bits()))
}

/// Whether `v` replaces `max` as a window's maximum — larger, or a NaN replacing a number (ties
/// keep the earlier element) — as a lane mask, all ones or zero (`v != v` is `v.is_nan()`).
/// Branch-free, so the loops that use it vectorise.
#[inline(always)]
#[allow(clippy::eq_op)]
fn better_mask(v: f32, max: f32) -> u32 {
    mask(v > max) | (mask(v != v) & mask(max == max))
}

/// [`pool_rows`] for `k = 2`, the common case: the four elements of each window compared in a
/// fixed tree (left/right within each row, then top/bottom), with every choice a bit mask
/// instead of a branch so that LLVM vectorises the loop (a stand-alone benchmark of 2 M
/// elements: 3.1 ms with `if`/`else` choices, 0.7 ms with masks, the same outputs).
fn pool_rows_2x2(rows: &[f32], top: u32, y: &mut [f32], at: &mut [u32]) {
    let w = rows.len() / 2;
    let n = y.len();
    let (upper, lower) = rows.split_at(w);
    let (upper, lower, at) = (&upper[..2 * n], &lower[..2 * n], &mut at[..n]);
    for j in 0..n {
        let (u0, u1) = (upper[2 * j], upper[2 * j + 1]);
        let (l0, l1) = (lower[2 * j], lower[2 * j + 1]);
        let (right_u, right_l) = (better_mask(u1, u0), better_mask(l1, l0));
        let (mu, ml) = (pick(right_u, u1, u0), pick(right_l, l1, l0));
        let down = better_mask(ml, mu);
        y[j] = pick(down, ml, mu);
        let column = (down & right_l) | (!down & right_u);
        at[j] = top + (2 * j) as u32 + (column & 1) + (down & w as u32);
    }
}

/// One of the two maps, as the kind of an autodiff operation.
#[derive(Debug, Clone, Copy)]
enum Selection {
    /// `P_a`.
    Gather,
    /// `P_aᵀ`.
    Scatter,
}

impl Selection {
    fn apply<B: PoolMaps>(self, t: FloatTensor<B>, at: &ArgMax) -> FloatTensor<B> {
        match self {
            Self::Gather => B::gather(t, at),
            Self::Scatter => B::scatter(t, at),
        }
    }

    /// The map's adjoint: its backward.
    fn adjoint(self) -> Self {
        match self {
            Self::Gather => Self::Scatter,
            Self::Scatter => Self::Gather,
        }
    }
}

/// A [`Selection`] as an autodiff operation: its backward is the adjoint map.
#[derive(Debug)]
struct SelectionOp(Selection);

impl<B: PoolMaps> Backward<B, 1> for SelectionOp {
    type State = ArgMax;

    fn backward(self, ops: Ops<ArgMax, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = parent {
            let grad = self.0.adjoint().apply::<B>(grad, &ops.state);
            grads.register::<B>(node.id, grad);
        }
    }
}

/// Record `forward(x)` as the operation of `selection` with parent `x` and the arg-max as its
/// state.
fn record<B: PoolMaps, C: CheckpointStrategy>(
    selection: Selection,
    x: FloatTensor<Autodiff<B, C>>,
    forward: impl FnOnce(FloatTensor<B>) -> (FloatTensor<B>, ArgMax),
) -> (FloatTensor<Autodiff<B, C>>, ArgMax) {
    let prep = SelectionOp(selection)
        .prepare::<C>([x.node.clone()])
        .compute_bound()
        .stateful();
    let (y, at) = forward(x.primitive);
    let y = match prep {
        OpsKind::Tracked(prep) => prep.finish(at.clone(), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    (y, at)
}

impl<B: PoolMaps, C: CheckpointStrategy> PoolMaps for Autodiff<B, C> {
    fn pool(x: FloatTensor<Self>, k: usize) -> (FloatTensor<Self>, ArgMax) {
        record::<B, C>(Selection::Gather, x, |x| B::pool(x, k))
    }

    fn gather(x: FloatTensor<Self>, at: &ArgMax) -> FloatTensor<Self> {
        record::<B, C>(Selection::Gather, x, |x| (B::gather(x, at), at.clone())).0
    }

    fn scatter(g: FloatTensor<Self>, at: &ArgMax) -> FloatTensor<Self> {
        record::<B, C>(Selection::Scatter, g, |g| (B::scatter(g, at), at.clone())).0
    }
}

/// `k×k` max pooling through the maps of `K` when `B` is `K`; `x` back otherwise.
fn pool_as<B: Backend, K: PoolMaps>(
    x: Tensor<B, 4>,
    k: usize,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if TypeId::of::<B>() != TypeId::of::<K>() {
        return Err(x);
    }
    let x: Tensor<K, 4> = same(x);
    let (y, _) = K::pool(x.into_primitive().tensor(), k);
    Ok(same(Tensor::<K, 4>::from_primitive(
        TensorPrimitive::Float(y),
    )))
}

/// `k×k` max pooling (stride `k`, `k` dividing `H` and `W`) by the operations of this module
/// when `B` is Flex bare or under one or two `Autodiff` levels, the tensor is `f32`, not empty,
/// and its indices fit in `u32`; `x` back otherwise.
pub(crate) fn max_pool2d_on_flex<B: Backend>(
    x: Tensor<B, 4>,
    k: usize,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let elements = x.shape().num_elements();
    if x.dtype() != DType::F32 || elements == 0 || elements > u32::MAX as usize {
        return Err(x);
    }
    pool_as::<B, Flex>(x, k)
        .or_else(|x| pool_as::<B, Autodiff<Flex>>(x, k))
        .or_else(|x| pool_as::<B, Autodiff<Autodiff<Flex>>>(x, k))
}
