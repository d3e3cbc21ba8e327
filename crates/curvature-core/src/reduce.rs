//! Device reductions read back to the host, shared by every crate of the workspace: scalars,
//! inner products, finiteness checks and host copies, all as f64 whatever the backend's float,
//! and the relative error of two host vectors.

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};

/// The value of a one-element tensor, as f64.
pub fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_scalar().elem::<f64>()
}

/// `⟨a, b⟩`, reduced on the device in a fixed order ([`sum_in_fixed_order`]) and returned
/// as f64.
pub fn dot<B: Backend>(a: &Tensor<B, 1>, b: &Tensor<B, 1>) -> f64 {
    scalar(sum_in_fixed_order(a.clone() * b.clone()))
}

/// Vectors at least this long are summed in [`FIXED_ORDER_CHUNK`]-element pieces. burn's Flex
/// backend, built with threads, sums a contiguous f32 tensor of `2²² = 4 194 304` elements or
/// more with rayon's `par_chunks(..).sum()`, whose reduction tree follows the thread count and
/// work stealing: the same 5 M-element dot product came out different at 1 and 2 threads.
pub const FIXED_ORDER_FROM: usize = 1 << 22;

/// The piece length of [`sum_in_fixed_order`]: `2²¹`, half of [`FIXED_ORDER_FROM`], so every
/// piece takes a backend's sequential path.
pub const FIXED_ORDER_CHUNK: usize = 1 << 21;

/// `Σᵢ tᵢ` over every element of `t`, with an order of additions that depends on the length alone — never on threads.
///
/// Shorter than [`FIXED_ORDER_FROM`]: the backend's own `sum` (sequential on every CPU
/// backend at that length). Longer: the sums of consecutive [`FIXED_ORDER_CHUNK`]-element
/// slices, added left to right. The result is then the same whatever the size of the thread
/// pool, on the CPU backends whose per-piece sum is sequential (NdArray, Flex); slices and
/// sums are differentiable, so it also serves inside an autodiff graph. Lanczos' dot products
/// on VGG-16 (P = 15.2 M) are this long, and their bits decide every later iteration.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use curvature_core::reduce::{scalar, sum_in_fixed_order};
/// let t = Tensor::<NdArray<f64>, 1>::ones([5_000_000], &Default::default());
/// assert_eq!(scalar(sum_in_fixed_order(t)), 5e6);
/// ```
pub fn sum_in_fixed_order<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, 1> {
    let n = t.shape().num_elements();
    if n < FIXED_ORDER_FROM {
        return t.sum();
    }
    let t: Tensor<B, 1> = t.reshape([n]);
    (0..n)
        .step_by(FIXED_ORDER_CHUNK)
        .map(|start| {
            t.clone()
                .slice(start..(start + FIXED_ORDER_CHUNK).min(n))
                .sum()
        })
        .reduce(|a, b| a + b)
        .expect("n ≥ FIXED_ORDER_FROM > 0")
}

/// Whether a tensor holds NaN or ±∞: one device reduction each, no host copy; on Flex (`f32`,
/// contiguous) one pass over its memory, testing each element's exponent bits (all ones:
/// NaN or ±∞) — the two reductions allocated two boolean tensors and cost 30 % of the
/// calling thread's time in a two-thread MLP gradient (docs/benchmarks.md).
pub fn has_non_finite<B: Backend, const D: usize>(t: &Tensor<B, D>) -> bool {
    #[cfg(feature = "flex")]
    if let Some(found) = flex::has_non_finite(t) {
        return found;
    }
    t.clone().is_nan().any().into_scalar().elem::<bool>()
        || t.clone().is_inf().any().into_scalar().elem::<bool>()
}

#[cfg(feature = "flex")]
mod flex {
    use std::any::TypeId;

    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::tensor::backend::Backend;
    use burn::tensor::{DType, Tensor};

    use crate::same_type::same_type as same;

    /// The exponent bits of an `f32`: all set for NaN and ±∞ only.
    const EXPONENT: u32 = 0x7f80_0000;

    /// [`has_non_finite`](super::has_non_finite) for a contiguous Flex `f32` tensor; `None`
    /// for any other.
    pub(super) fn has_non_finite<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Option<bool> {
        if TypeId::of::<B>() != TypeId::of::<Flex>() {
            return None;
        }
        let t: Tensor<Flex, D> = same(t.clone());
        let primitive: FlexTensor = t.into_primitive().tensor();
        if primitive.dtype() != DType::F32 {
            return None;
        }
        let (start, end) = primitive.layout().contiguous_offsets()?;
        let values = &primitive.storage::<f32>()[start..end];
        // Blocks of a fixed length with a branch-free test inside, so the test vectorises and
        // the scan still stops at the first block that has one.
        Some(values.chunks(4096).any(|block| {
            block.iter().fold(false, |found, v| {
                found | (v.to_bits() & EXPONENT == EXPONENT)
            })
        }))
    }
}

/// A vector on `device` from host values (the inverse of [`to_host`]; the backend's float
/// type, so f32 backends round them).
pub fn from_host<B: Backend>(values: Vec<f64>, device: &B::Device) -> Tensor<B, 1> {
    let n = values.len();
    Tensor::from_data(burn::tensor::TensorData::new(values, [n]), device)
}

/// Copy a tensor of any rank to the host as f64, in row-major order.
pub fn to_host<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Vec<f64> {
    t.to_data().iter::<f64>().collect()
}

/// `‖a − b‖ / ‖b‖` (`‖a − b‖` when `b = 0`); infinite for vectors of different lengths, NaN if
/// either holds a NaN.
///
/// ```
/// use curvature_core::reduce::relative_error;
/// assert_eq!(relative_error(&[0.0, 4.0], &[0.0, 5.0]), 0.2);
/// assert_eq!(relative_error(&[3.0, 4.0], &[0.0, 0.0]), 5.0);
/// assert_eq!(relative_error(&[1.0], &[1.0, 2.0]), f64::INFINITY);
/// assert!(relative_error(&[f64::NAN], &[1.0]).is_nan());
/// ```
pub fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let nb = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if nb == 0.0 { diff } else { diff / nb }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::TensorData;

    type F = NdArray<f64>;

    /// Values whose host sum in f64 is the independent reference: a length that is no multiple
    /// of the piece, so the last piece is short.
    fn values() -> Vec<f64> {
        let n = FIXED_ORDER_FROM + FIXED_ORDER_CHUNK / 2 + 123;
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f64 * 1e-3 - 0.4)
            .collect()
    }

    #[test]
    fn long_sums_equal_the_host_sum_and_short_ones_the_backends() {
        let v = values();
        let reference: f64 = v.iter().sum();
        let t =
            Tensor::<F, 1>::from_data(TensorData::new(v.clone(), [v.len()]), &Default::default());
        let ours = scalar(sum_in_fixed_order(t.clone()));
        assert!(
            (ours - reference).abs() <= 1e-9 * reference.abs(),
            "{ours} vs {reference}"
        );
        // Any rank: a [2, n/2] view of the same numbers.
        let m = v.len() / 2 * 2;
        let r2: Tensor<F, 2> = t.clone().slice(0..m).reshape([2, m / 2]);
        let host2: f64 = v[..m].iter().sum();
        assert!((scalar(sum_in_fixed_order(r2)) - host2).abs() <= 1e-9 * host2.abs());
        let short = t.slice(0..1000);
        assert_eq!(
            scalar(sum_in_fixed_order(short.clone())),
            scalar(short.sum())
        );
    }

    /// The pieces are slices: inside an autodiff graph the gradient of the sum is all ones.
    #[test]
    fn its_gradient_is_all_ones() {
        let n = FIXED_ORDER_FROM + 5;
        let x = Tensor::<Autodiff<F>, 1>::ones([n], &Default::default()).require_grad();
        let grads = sum_in_fixed_order(x.clone() * 2.0).backward();
        let g = x.grad(&grads).unwrap();
        assert_eq!(g.dims(), [n]);
        assert_eq!(scalar(g.clone().min()), 2.0);
        assert_eq!(scalar(g.max()), 2.0);
    }

    /// The finiteness check against Rust's own `f32::is_finite` on the host (independent of both
    /// of the check's paths): NaN, +∞ and −∞ at the first, a middle and the last element of
    /// vectors around the scan's block length; the largest finite number, subnormals and −0 are
    /// finite; a transposed (non-contiguous) Flex matrix takes the generic path.
    #[cfg(feature = "flex")]
    #[test]
    fn the_finiteness_check_on_flex_agrees_with_the_host() {
        use burn::backend::Flex;
        let device = Default::default();
        let finite = [f32::MAX, -f32::MAX, f32::MIN_POSITIVE / 8.0, -0.0, 1.5];
        for len in [1, 7, 4095, 4096, 4097, 3 * 4096 + 5] {
            let base: Vec<f32> = (0..len).map(|i| finite[i % finite.len()]).collect();
            let mut cases = vec![base.clone()];
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                for at in [0, len / 2, len - 1] {
                    let mut v = base.clone();
                    v[at] = bad;
                    cases.push(v);
                }
            }
            for v in cases {
                let want = v.iter().any(|x| !x.is_finite());
                let t = Tensor::<Flex, 1>::from_data(TensorData::new(v.clone(), [len]), &device);
                assert_eq!(has_non_finite(&t), want, "length {len}");
                let m: Tensor<Flex, 2> = t.reshape([1, len]).transpose();
                assert_eq!(has_non_finite(&m), want, "length {len}, transposed");
            }
        }
    }
}
