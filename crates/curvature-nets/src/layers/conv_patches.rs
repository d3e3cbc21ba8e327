//! A convolution on Flex as one matrix product per example over that example's patches,
//! examples shared between the threads of the rayon pool.
//!
//! For example `n`, with `K = C·k_h·k_w` and `L = H'·W'`,
//!
//! * the output `y_n = W · P_n`, `W` the kernel as an `[O, K]` matrix and `P_n = im2col(x_n)`
//!   the `[K, L]` patch matrix: row `c·k_h·k_w + i·k_w + j` holds input channel `c` at kernel
//!   offset `(i, j)` for every output position, zero where the window reaches into the padding;
//! * the kernel's gradient `Σ_n g_n · P_nᵀ` for an output gradient `g_n` (`[O, L]`)
//!
//! (Chellapilla, Puri & Simard 2006, *High performance convolutional neural networks for
//! document processing*; PyTorch's CPU convolution is the same lowering). `conv_maps.rs` makes
//! them operations that nest for Hessian-vector products; the unit-stride input gradient is a
//! [`conv`] with the flipped kernel.
//!
//! Why not Flex's own `conv2d`: perf of the CNN's training step (docs/benchmarks.md, "A
//! convolution per example on Flex") found its few-input-channel path accumulating one kernel
//! tap at a time with 4-wide SSE (16 % of the samples) and its im2col tiles filled one element
//! at a time (13 %), and the step scaling poorly to two threads. Here each patch row is built
//! from whole runs of an input row (`copy_from_slice`, zero fills at the borders), each product
//! is one sequential call of faer's matrix product, and each example (or group of
//! [`EXAMPLES_PER_TASK`] for the kernel's gradient) is a task of its own.
//!
//! Determinism: every output element is computed by one task in an order fixed by the shapes
//! alone (the kernel's gradient: in-order sums within a task, then the tasks' sums added in
//! order), so results are bit for bit the same at every thread count (`curvature-lab`'s test
//! `flex_results_do_not_depend_on_the_thread_count` runs a batch-normalised CNN at 1, 2 and 3
//! threads).

use burn::backend::flex::FlexTensor;
use burn::tensor::DType;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::conv::output_len;
use super::conv_maps::ConvSpec;
use super::flex_f32::flex_tensor;

/// Geometry of one convolution: input `[C, H, W]` per example, kernel `[k_h, k_w]`, output
/// `[H', W']`.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    channels: usize,
    input: [usize; 2],
    kernel: [usize; 2],
    output: [usize; 2],
    spec: ConvSpec,
}

impl Geometry {
    /// Rows of the patch matrix: `K = C·k_h·k_w`.
    fn rows(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    /// Columns of the patch matrix: `L = H'·W'`.
    fn cols(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// `im2col(x)` of one example `x` (`[C, H, W]`, row-major) into `patch` (`[K, L]`,
    /// row-major).
    fn im2col(&self, x: &[f32], patch: &mut [f32]) {
        let [h, w] = self.input;
        let [kh, kw] = self.kernel;
        let [ho, wo] = self.output;
        let [sh, sw] = self.spec.stride;
        let [ph, pw] = self.spec.padding;
        let [dh, dw] = self.spec.dilation;
        let mut rows = patch.chunks_exact_mut(ho * wo);
        for plane in x.chunks_exact(h * w) {
            for i in 0..kh {
                for j in 0..kw {
                    let row = rows.next().expect("K rows");
                    // Input column of output column `ox`: `ox·s_w + off`.
                    let off = (j * dw) as isize - pw as isize;
                    for (oy, out) in row.chunks_exact_mut(wo).enumerate() {
                        let iy = (oy * sh + i * dh) as isize - ph as isize;
                        if iy < 0 || iy >= h as isize {
                            out.fill(0.0);
                            continue;
                        }
                        let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                        if sw == 1 {
                            // Output columns `lo..hi` read inside the row, one run.
                            let lo = (-off).clamp(0, wo as isize) as usize;
                            let hi = (w as isize - off).clamp(lo as isize, wo as isize) as usize;
                            out[..lo].fill(0.0);
                            let start = (lo as isize + off) as usize;
                            out[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
                            out[hi..].fill(0.0);
                        } else {
                            for (ox, v) in out.iter_mut().enumerate() {
                                let ix = (ox * sw) as isize + off;
                                *v = if ix < 0 || ix >= w as isize {
                                    0.0
                                } else {
                                    src[ix as usize]
                                };
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Examples per task of [`weight_grad`]: each task sums its examples' products in order, and
/// the tasks' sums are added in order, so the result does not depend on the thread count.
const EXAMPLES_PER_TASK: usize = 8;

/// The number of examples `N` of an `f32` input `[N, C, H, W]` and the geometry of its
/// convolution with a `k_h×k_w` kernel. `None` for other dtypes, empty tensors, zero strides or
/// dilations, or a kernel larger than the padded input.
fn geometry(x: &FlexTensor, kernel: [usize; 2], spec: ConvSpec) -> Option<(usize, Geometry)> {
    if x.dtype() != DType::F32
        || kernel.contains(&0)
        || spec.stride.contains(&0)
        || spec.dilation.contains(&0)
    {
        return None;
    }
    let [n, c, h, w] = dims4(x)?;
    let fits =
        |i: usize, len: usize| len + 2 * spec.padding[i] > spec.dilation[i] * (kernel[i] - 1);
    if n * c * h * w == 0 || !fits(0, h) || !fits(1, w) {
        return None;
    }
    let out = |i: usize, len: usize| {
        output_len(
            len,
            kernel[i],
            spec.stride[i],
            spec.padding[i],
            spec.dilation[i],
        )
    };
    let output = [out(0, h), out(1, w)];
    Some((
        n,
        Geometry {
            channels: c,
            input: [h, w],
            kernel,
            output,
            spec,
        },
    ))
}

fn dims4(t: &FlexTensor) -> Option<[usize; 4]> {
    <[usize; 4]>::try_from(t.layout().shape().to_vec()).ok()
}

/// `W ⋆ x` for an `f32` input `[N, C, H, W]` and kernel `[O, C, k_h, k_w]` (no groups, no
/// bias): `[N, O, H', W']`, one task per example. `None` for other dtypes, a channel mismatch,
/// empty tensors or a kernel larger than the padded input (the caller falls back to Flex's
/// `conv2d`, which reports the errors).
pub(super) fn conv(x: &FlexTensor, w: &FlexTensor, spec: ConvSpec) -> Option<FlexTensor> {
    let [o, c, kh, kw] = dims4(w)?;
    let (n, geometry) = geometry(x, [kh, kw], spec)?;
    if w.dtype() != DType::F32 || c != geometry.channels || o == 0 {
        return None;
    }
    let (k, l) = (geometry.rows(), geometry.cols());
    let (x, w) = (x.to_contiguous(), w.to_contiguous());
    let (x, w) = (x.storage::<f32>(), w.storage::<f32>());
    let weight = MatRef::from_row_major_slice(w, o, k);
    let mut y = vec![0.0f32; n * o * l];
    y.par_chunks_mut(o * l)
        .zip(x.par_chunks(x.len() / n))
        .for_each_init(
            || vec![0.0f32; k * l],
            |patch, (y_n, x_n)| {
                geometry.im2col(x_n, patch);
                matmul(
                    MatMut::from_row_major_slice_mut(y_n, o, l),
                    Accum::Replace,
                    weight,
                    MatRef::from_row_major_slice(patch, k, l),
                    1.0f32,
                    Par::Seq,
                );
            },
        );
    let [ho, wo] = geometry.output;
    Some(flex_tensor(y, [n, o, ho, wo]))
}

/// `Σ_n g_n · P_nᵀ`, the gradient of `⟨g, W ⋆ x⟩` in the kernel `W`, for an `f32` input
/// `[N, C, H, W]` and output gradient `[N, O, H', W']`: `[O, C, k_h, k_w]`. Tasks of
/// [`EXAMPLES_PER_TASK`] examples. `None` where [`conv`] would be, or when `g` does not have
/// the output's shape.
pub(super) fn weight_grad(
    x: &FlexTensor,
    g: &FlexTensor,
    kernel: [usize; 2],
    spec: ConvSpec,
) -> Option<FlexTensor> {
    let (n, geometry) = geometry(x, kernel, spec)?;
    let [gn, o, gh, gw] = dims4(g)?;
    if g.dtype() != DType::F32 || gn != n || [gh, gw] != geometry.output || o == 0 {
        return None;
    }
    let (k, l) = (geometry.rows(), geometry.cols());
    let (x, g) = (x.to_contiguous(), g.to_contiguous());
    let (x, g) = (x.storage::<f32>(), g.storage::<f32>());
    let per_example = x.len() / n;
    let partial_sums: Vec<Vec<f32>> = x
        .par_chunks(EXAMPLES_PER_TASK * per_example)
        .zip(g.par_chunks(EXAMPLES_PER_TASK * o * l))
        .map(|(xs, gs)| {
            let mut sum = vec![0.0f32; o * k];
            let mut patch = vec![0.0f32; k * l];
            for (x_n, g_n) in xs.chunks_exact(per_example).zip(gs.chunks_exact(o * l)) {
                geometry.im2col(x_n, &mut patch);
                matmul(
                    MatMut::from_row_major_slice_mut(&mut sum, o, k),
                    Accum::Add,
                    MatRef::from_row_major_slice(g_n, o, l),
                    MatRef::from_row_major_slice(&patch, k, l).transpose(),
                    1.0f32,
                    Par::Seq,
                );
            }
            sum
        })
        .collect();
    let mut parts = partial_sums.into_iter();
    let mut total = parts.next().expect("at least one example");
    for part in parts {
        total.iter_mut().zip(&part).for_each(|(t, p)| *t += p);
    }
    Some(flex_tensor(
        total,
        [o, geometry.channels, kernel[0], kernel[1]],
    ))
}
