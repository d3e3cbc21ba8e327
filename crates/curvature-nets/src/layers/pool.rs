//! Pooling built from reshapes and reductions (burn's `MaxPool2d`, `AvgPool2d` and
//! `adaptive_avg_pool2d` cannot be differentiated twice, SPEC §6).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// `[N, C, H, W]` of `x`, after checking that `k×k` windows tile `H × W`.
fn tiled_dims<B: Backend>(x: &Tensor<B, 4>, k: usize) -> [usize; 4] {
    let [n, c, h, w] = x.dims();
    assert!(
        k > 0 && h % k == 0 && w % k == 0,
        "non-overlapping {k}×{k} pooling needs the spatial size {h}×{w} to be a multiple of {k}"
    );
    [n, c, h, w]
}

fn windows<B: Backend>(x: Tensor<B, 4>, k: usize) -> Tensor<B, 6> {
    let [n, c, h, w] = tiled_dims(&x, k);
    x.reshape([n, c, h / k, k, w / k, k])
}

/// Non-overlapping `k×k` max pooling (stride `k`), `[N, C, H, W] → [N, C, H/k, W/k]`.
///
/// `y[n, c, i, j] = max_{0 ≤ a, b < k} x[n, c, k·i + a, k·j + b]`, in two stages chosen for
/// speed (both exact; the gradient of each is the indicator of its arg-max):
/// 1. the maximum over each run of `k` neighbours in a row, a `max_dim` on the free 2-D view
///    `[N·C·H·W/k, k]` — its backward is burn's scatter of the gradient to the arg-max, which
///    backends run fastest on two dimensions (burn-flex's N-D scatter costs a division per
///    dimension per element);
/// 2. the maximum over the `k` rows of each window, `max_pair` of `k` slices (each row a
///    contiguous run) of the view `[N·C·H/k, k·W/k]` — elementwise comparisons and selections,
///    no scatter at all.
///
/// This took burn-flex's N-D scatter from 16.5 % to under 2 % of the CNN's profile (with the
/// batch norm change of the same day: CNN gradient 1.38×, exact HVP 1.41× faster;
/// docs/benchmarks.md, "Max pooling without an N-D scatter"). On Flex (`f32`, bare or under one
/// or two `Autodiff` levels) the layer goes further: one pass finds each window's maximum and
/// its position, and every derivative is a selection or placement by those positions, as
/// custom autodiff operations that nest (`pool_maps.rs`). Ties go to the first element
/// (row-major within the window), as burn's fused kernel, `max_dim` and PyTorch break them
/// (both paths tested against burn's kernel); the second derivative of `max` is zero almost
/// everywhere, so the Hessian is exact away from ties.
///
/// # Panics
/// If `H` or `W` is not a multiple of `k` (model configurations check this when built).
pub fn max_pool2d<B: Backend>(x: Tensor<B, 4>, k: usize) -> Tensor<B, 4> {
    let [n, c, h, w] = tiled_dims(&x, k);
    #[cfg(feature = "flex")]
    let x = match super::pool_maps::max_pool2d_on_flex(x, k) {
        Ok(y) => return y,
        Err(x) => x,
    };
    let (rows, cols) = (n * c * h / k, w / k);
    let across_columns = x
        .reshape([rows * k * cols, k])
        .max_dim(1)
        .reshape([rows, k * cols]);
    let row = |a: usize| {
        across_columns
            .clone()
            .slice([0..rows, a * cols..(a + 1) * cols])
    };
    (1..k)
        .fold(row(0), |m, a| m.max_pair(row(a)))
        .reshape([n, c, h / k, w / k])
}

/// Non-overlapping `k×k` average pooling (stride `k`).
///
/// # Panics
/// If `H` or `W` is not a multiple of `k`.
pub fn avg_pool2d<B: Backend>(x: Tensor<B, 4>, k: usize) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    windows(x, k)
        .mean_dim(5)
        .mean_dim(3)
        .reshape([n, c, h / k, w / k])
}

/// Global average pooling `[N, C, H, W] → [N, C]`.
pub fn global_avg_pool2d<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
}

/// Flatten `[N, C, H, W] → [N, C·H·W]` (row-major, as PyTorch's `flatten(1)`).
pub fn flatten<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c * h * w])
}
