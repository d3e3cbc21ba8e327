//! Batch normalisation in training mode on Flex as one operation: two passes over the input
//! forward, two over the input and the output gradient backward, every pass split between
//! rayon's threads.
//!
//! For channel `c` with the `m = N·R` values `x_i` (`R` the product of the spatial sizes),
//!
//! * forward: `μ = (1/m) Σ x_i`, `σ² = (1/m) Σ (x_i − μ)²` (biased, as the normalisation
//!   uses), `x̂_i = (x_i − μ)/√(σ² + ε)`, `y_i = γ x̂_i + β` (Ioffe & Szegedy 2015, Algorithm 1);
//! * backward, for an output gradient `g` (ibid., section 3):
//!   `∂β = Σ g_i`, `∂γ = Σ g_i x̂_i`,
//!   `∂x_i = (γ/√(σ² + ε)) · (g_i − ∂β/m − x̂_i ∂γ/m)`.
//!
//! The statistics are computed plane by plane (one example's channel, `R` values that stay in
//! the cache): each plane's mean and centred sum of squares in `f32` lanes, totalled in `f64`,
//! then combined per channel in `f64` in a fixed order (Chan, Golub & LeVeque 1979:
//! `M₂ = Σ_p M₂,p + R Σ_p (μ_p − μ)²` over planes of equal size). So the input is read once for
//! the statistics, each value is centred before it is squared, and results do not depend on
//! the thread count (every plane is summed by one task in one order).
//!
//! Why: on Flex burn's operations run this layer as about a dozen single-threaded passes
//! (sums, broadcast subtractions and products, each with its own backward and gradient
//! accumulations); perf put them at a quarter of the calling thread in the CNN's training step
//! at two threads, where the other core sat idle (docs/benchmarks.md).
//!
//! This operation is used where its backward runs on bare Flex: on `Flex` itself and on
//! `Autodiff<Flex>` (a training step's gradient). Under two `Autodiff` levels (an exact
//! Hessian-vector product) the layer keeps burn's operations, which nest.

use std::any::TypeId;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use curvature_core::same_type::same_type as same;
use rayon::prelude::*;
use wide::f32x8;

use super::flex_f32::flex_tensor;

/// Values per task on rayon's pool (whole planes, at least one).
const PER_TASK: usize = 1 << 14;

/// Lanes of the `f32` vectors.
const LANES: usize = 8;

/// The batch statistics of one call, per channel: `μ`, the biased `σ²` and `1/√(σ² + ε)`.
#[derive(Debug, Clone)]
struct Moments {
    mean: Vec<f32>,
    var: Vec<f32>,
    inv_std: Vec<f32>,
}

/// Output of [`batch_norm_train_on_flex`]: `y` and the batch statistics (detached) with the
/// number of values per channel.
pub(crate) struct Normalised<B: Backend, const D: usize> {
    pub y: Tensor<B, D>,
    pub mean: Tensor<B, 1>,
    pub var: Tensor<B, 1>,
    pub count: usize,
}

/// Layout of a call: `planes = N·C` planes of `len = R` values, channel `plane % C`.
#[derive(Debug, Clone, Copy)]
struct Planes {
    channels: usize,
    count: usize,
    len: usize,
}

impl Planes {
    /// Planes per task on rayon's pool.
    fn per_task(&self) -> usize {
        (PER_TASK / self.len).max(1)
    }
}

/// `Σ f(a_i, b_i)` over 8-lane vectors, lane totals and the tail in `f64` (in one fixed order:
/// results do not depend on the machine or the thread count).
fn lane_sum(
    a: &[f32],
    b: &[f32],
    f: impl Fn(f32x8, f32x8) -> f32x8,
    tail: impl Fn(f32, f32) -> f32,
) -> f64 {
    let mut lanes = f32x8::ZERO;
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let done = a.len() - a_chunks.remainder().len();
    for (a, b) in a_chunks.zip(b_chunks) {
        lanes += f(vector(a), vector(b));
    }
    let tail = a[done..]
        .iter()
        .zip(&b[done..])
        .map(|(&a, &b)| f64::from(tail(a, b)));
    lanes.to_array().iter().map(|&v| f64::from(v)).sum::<f64>() + tail.sum::<f64>()
}

fn vector(chunk: &[f32]) -> f32x8 {
    f32x8::new(chunk.try_into().expect("a chunk of LANES values"))
}

/// `Σ a_i`.
fn sum(a: &[f32]) -> f64 {
    lane_sum(a, a, |a, _| a, |a, _| a)
}

/// `Σ (a_i − shift)²`.
fn centred_squares(a: &[f32], shift: f32) -> f64 {
    let s = f32x8::splat(shift);
    lane_sum(
        a,
        a,
        |a, _| (a - s) * (a - s),
        |a, _| (a - shift) * (a - shift),
    )
}

/// `Σ g_i (x_i − shift)`.
fn centred_dot(g: &[f32], x: &[f32], shift: f32) -> f64 {
    let s = f32x8::splat(shift);
    lane_sum(g, x, |g, x| g * (x - s), |g, x| g * (x - shift))
}

/// `out_i = b·(x_i − shift) + d`, plus `a·out_i` (what `out` held) when `a` is `Some`, in
/// 8-lane vectors.
fn affine(out: &mut [f32], x: &[f32], a: Option<f32>, [b, d, shift]: [f32; 3]) {
    let [vb, vd, vs] = [b, d, shift].map(f32x8::splat);
    let mut out_chunks = out.chunks_exact_mut(LANES);
    match a {
        None => {
            for (out, x) in (&mut out_chunks).zip(x.chunks_exact(LANES)) {
                out.copy_from_slice(&(vb * (vector(x) - vs) + vd).to_array());
            }
        }
        Some(a) => {
            let va = f32x8::splat(a);
            for (out, x) in (&mut out_chunks).zip(x.chunks_exact(LANES)) {
                let v = va * vector(out) + (vb * (vector(x) - vs) + vd);
                out.copy_from_slice(&v.to_array());
            }
        }
    }
    let done = x.len() - out_chunks.into_remainder().len();
    for (out, &x) in out[done..].iter_mut().zip(&x[done..]) {
        let v = b * (x - shift) + d;
        *out = a.map_or(v, |a| a * *out + v);
    }
}

/// The mean and the centred sum of squares of one plane.
fn plane_moments(plane: &[f32]) -> (f64, f64) {
    let mean = sum(plane) / plane.len() as f64;
    // Centred on the rounded mean, then corrected to the exact one (`Σ (x − μ) = 0`).
    let offset = mean - f64::from(mean as f32);
    let m2 = centred_squares(plane, mean as f32);
    (mean, m2 - plane.len() as f64 * offset * offset)
}

/// `f(plane, values)` for every plane of `x`, split between rayon's threads.
fn per_plane<T: Send>(
    x: &[f32],
    at: Planes,
    f: impl Fn(usize, &[f32]) -> T + Sync + Send,
) -> Vec<T> {
    let per_task: Vec<Vec<T>> = x
        .par_chunks(at.len * at.per_task())
        .enumerate()
        .map(|(task, planes)| {
            let first = task * at.per_task();
            planes
                .chunks_exact(at.len)
                .enumerate()
                .map(|(i, p)| f(first + i, p))
                .collect()
        })
        .collect();
    per_task.into_iter().flatten().collect()
}

/// `f(plane, x_p, out_p)` for every plane `p` of `x` and `out`, split between rayon's threads.
fn map_planes(
    out: &mut [f32],
    x: &[f32],
    at: Planes,
    f: impl Fn(usize, &[f32], &mut [f32]) + Sync + Send,
) {
    let step = at.len * at.per_task();
    out.par_chunks_mut(step)
        .zip(x.par_chunks(step))
        .enumerate()
        .for_each(|(task, (out, x))| {
            let first = task * at.per_task();
            for (i, (out, x)) in out
                .chunks_exact_mut(at.len)
                .zip(x.chunks_exact(at.len))
                .enumerate()
            {
                f(first + i, x, out);
            }
        });
}

fn row_major(t: &FlexTensor) -> FlexTensor {
    super::flex_f32::row_major(t, "batch norm")
}

fn values(t: &FlexTensor) -> Vec<f32> {
    row_major(t).storage::<f32>().to_vec()
}

/// Forward on Flex: `y` and the statistics.
fn forward(x: &FlexTensor, gamma: &[f32], beta: &[f32], epsilon: f64) -> (FlexTensor, Moments) {
    let dims = x.layout().shape().to_vec();
    let x = row_major(x);
    let x = x.storage::<f32>();
    let at = planes(&dims);
    let (c, n) = (at.channels, x.len() / (at.channels * at.len));
    let moments = per_plane(x, at, |_, p| plane_moments(p));
    let mut stats = Moments {
        mean: Vec::with_capacity(c),
        var: Vec::with_capacity(c),
        inv_std: Vec::with_capacity(c),
    };
    for ch in 0..c {
        let of_channel = || (0..n).map(|e| moments[e * c + ch]);
        let mean = of_channel().map(|(mu, _)| mu).sum::<f64>() / n as f64;
        let m2 = of_channel()
            .map(|(mu, m2)| m2 + at.len as f64 * (mu - mean) * (mu - mean))
            .sum::<f64>();
        let var = m2 / at.count as f64;
        stats.mean.push(mean as f32);
        stats.var.push(var as f32);
        stats.inv_std.push((1.0 / (var + epsilon).sqrt()) as f32);
    }
    let scale: Vec<f32> = (0..c).map(|ch| gamma[ch] * stats.inv_std[ch]).collect();
    let mut y = vec![0.0f32; x.len()];
    map_planes(&mut y, x, at, |p, x, y| {
        let ch = p % c;
        affine(y, x, None, [scale[ch], beta[ch], stats.mean[ch]]);
    });
    (flex_tensor(y, dims), stats)
}

/// Backward on Flex: `(∂x, ∂γ, ∂β)` for the output gradient `g`.
fn backward(
    x: &FlexTensor,
    g: FlexTensor,
    gamma: &[f32],
    stats: &Moments,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let dims = x.layout().shape().to_vec();
    // Unless another tensor shares its storage, `storage_mut` below writes `g` in place.
    let mut g = super::flex_f32::owned_row_major(g, "batch norm");
    let x = row_major(x);
    let x = x.storage::<f32>();
    let at = planes(&dims);
    let (c, n) = (at.channels, x.len() / (at.channels * at.len));
    // Per plane: `Σ g (x − μ)` and `Σ g`.
    let partial = per_plane(g.storage::<f32>(), at, |p, gp| {
        let xp = &x[p * at.len..(p + 1) * at.len];
        (centred_dot(gp, xp, stats.mean[p % c]), sum(gp))
    });
    let mut d_gamma = Vec::with_capacity(c);
    let mut d_beta = Vec::with_capacity(c);
    // `∂x = a·g + b·(x − μ) + d` per channel.
    let mut coefficients = Vec::with_capacity(c);
    let m = at.count as f64;
    for ch in 0..c {
        let (centred, sum) = (0..n)
            .map(|e| partial[e * c + ch])
            .fold((0.0, 0.0), |s, v| (s.0 + v.0, s.1 + v.1));
        let inv_std = f64::from(stats.inv_std[ch]);
        let dg = centred * inv_std;
        d_gamma.push(dg as f32);
        d_beta.push(sum as f32);
        let a = f64::from(gamma[ch]) * inv_std;
        coefficients.push((
            a as f32,
            (-a * inv_std * dg / m) as f32,
            (-a * sum / m) as f32,
        ));
    }
    // In place of `g` (copied first only if another tensor shares its storage).
    map_planes(g.storage_mut::<f32>(), x, at, |p, x, g| {
        let ch = p % c;
        let (a, b, d) = coefficients[ch];
        affine(g, x, Some(a), [b, d, stats.mean[ch]]);
    });
    (
        g,
        flex_tensor(d_gamma, vec![c]),
        flex_tensor(d_beta, vec![c]),
    )
}

fn planes(dims: &[usize]) -> Planes {
    let len = dims[2..].iter().product();
    Planes {
        channels: dims[1],
        count: dims[0] * len,
        len,
    }
}

/// The operation on `Autodiff<Flex>`: parents `x`, `γ`, `β`; its state is what the backward
/// reads.
#[derive(Debug)]
struct BatchNormOp;

impl Backward<Flex, 3> for BatchNormOp {
    type State = (FlexTensor, Vec<f32>, Moments);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        let (x, gamma, stats) = ops.state;
        let (dx, d_gamma, d_beta) = backward(&x, g, &gamma, &stats);
        for (node, grad) in [(node_x, dx), (node_gamma, d_gamma), (node_beta, d_beta)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

fn float<const D: usize>(t: Tensor<Flex, D>) -> FlexTensor {
    t.into_primitive().tensor()
}

fn flex<const D: usize>(t: FlexTensor) -> Tensor<Flex, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// Batch normalisation in training mode by the operation of this module when `B` is `Flex`
/// or `Autodiff<Flex>`, the tensor is `f32` of rank 3 or more with at least 4 values per plane
/// (`N·C` planes), and no count is zero; the operands back otherwise.
#[allow(clippy::type_complexity)]
pub(crate) fn batch_norm_train_on_flex<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Result<Normalised<B, D>, (Tensor<B, D>, Tensor<B, 1>, Tensor<B, 1>)> {
    let dims = x.dims();
    if D < 3
        || x.dtype() != DType::F32
        || dims.contains(&0)
        || dims[2..].iter().product::<usize>() < 4
    {
        return Err((x, gamma, beta));
    }
    let count = dims[0] * dims[2..].iter().product::<usize>();
    let stats_of = |stats: &Moments| {
        let c = stats.mean.len();
        (
            flex::<1>(flex_tensor(stats.mean.clone(), vec![c])),
            flex::<1>(flex_tensor(stats.var.clone(), vec![c])),
        )
    };
    if TypeId::of::<B>() == TypeId::of::<Flex>() {
        let (x, gamma, beta): (Tensor<Flex, D>, Tensor<Flex, 1>, Tensor<Flex, 1>) =
            (same(x), same(gamma), same(beta));
        let (y, stats) = forward(
            &float(x),
            &values(&float(gamma)),
            &values(&float(beta)),
            epsilon,
        );
        let (mean, var) = stats_of(&stats);
        return Ok(Normalised {
            y: same(flex::<D>(y)),
            mean: same(mean),
            var: same(var),
            count,
        });
    }
    if TypeId::of::<B>() == TypeId::of::<Autodiff<Flex>>() {
        type A = Autodiff<Flex>;
        let (x, gamma, beta): (Tensor<A, D>, Tensor<A, 1>, Tensor<A, 1>) =
            (same(x), same(gamma), same(beta));
        let (x, gamma, beta) = (
            x.into_primitive().tensor(),
            gamma.into_primitive().tensor(),
            beta.into_primitive().tensor(),
        );
        let gamma_values = values(&gamma.primitive);
        let (y, stats) = forward(
            &x.primitive,
            &gamma_values,
            &values(&beta.primitive),
            epsilon,
        );
        let (mean, var) = stats_of(&stats);
        let y = match BatchNormOp
            .prepare::<burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>([
                x.node.clone(),
                gamma.node.clone(),
                beta.node.clone(),
            ])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x.primitive, gamma_values, stats), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        return Ok(Normalised {
            y: same(Tensor::<A, D>::from_primitive(TensorPrimitive::Float(y))),
            mean: same(Tensor::<A, 1>::from_inner(mean)),
            var: same(Tensor::<A, 1>::from_inner(var)),
            count,
        });
    }
    Err((x, gamma, beta))
}
