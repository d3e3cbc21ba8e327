//! Pooling built from reshapes and reductions (burn's `MaxPool2d`, `AvgPool2d` and
//! `adaptive_avg_pool2d` cannot be differentiated twice, SPEC §6).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

fn windows<B: Backend>(x: Tensor<B, 4>, k: usize) -> Tensor<B, 6> {
    let [n, c, h, w] = x.dims();
    assert!(
        k > 0 && h % k == 0 && w % k == 0,
        "non-overlapping {k}×{k} pooling needs the spatial size {h}×{w} to be a multiple of {k}"
    );
    x.reshape([n, c, h / k, k, w / k, k])
}

/// Non-overlapping `k×k` max pooling (stride `k`), `[N, C, H, W] → [N, C, H/k, W/k]`.
///
/// Ties are broken by burn's `max_dim`; the second derivative of `max` is zero almost
/// everywhere, so the Hessian is exact away from ties.
///
/// # Panics
/// If `H` or `W` is not a multiple of `k` (model configurations check this when built).
pub fn max_pool2d<B: Backend>(x: Tensor<B, 4>, k: usize) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    windows(x, k)
        .max_dim(5)
        .max_dim(3)
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
