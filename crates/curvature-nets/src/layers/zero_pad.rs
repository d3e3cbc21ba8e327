//! Zero padding of images by concatenation.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// `x: [N, C, H, W]` with `top`/`bottom` zero rows and `left`/`right` zero columns:
/// `[N, C, top + H + bottom, left + W + right]`, the same tensor as burn's
/// `x.pad([(top, bottom), (left, right)], PadMode::Constant(0.0))`.
///
/// Built as concatenations with blocks of zeros — one copy of the data per padded dimension,
/// whose derivative is a slice — instead of burn's constant padding, which fills the whole
/// padded tensor, copies it once more when it writes `x` into it (burn-flex's `slice_assign`)
/// and whose derivative is that slice assignment again. The convolution paths (`Patches`,
/// `ShiftedRuns` and the weight gradient of `conv_maps`) pad through here
/// (docs/benchmarks.md, "Zero padding by concatenation").
pub(crate) fn pad_zeros<B: Backend>(
    x: Tensor<B, 4>,
    [(top, bottom), (left, right)]: [(usize, usize); 2],
) -> Tensor<B, 4> {
    let x = pad_dim(x, 3, left, right);
    pad_dim(x, 2, top, bottom)
}

/// `before` and `after` zero slices around `x` along `dim`.
fn pad_dim<B: Backend>(x: Tensor<B, 4>, dim: usize, before: usize, after: usize) -> Tensor<B, 4> {
    if before + after == 0 {
        return x;
    }
    let zeros = |len: usize| {
        let mut dims = x.dims();
        dims[dim] = len;
        Tensor::zeros(dims, &x.device())
    };
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(zeros(before));
    }
    let after = (after > 0).then(|| zeros(after));
    parts.push(x);
    parts.extend(after);
    Tensor::cat(parts, dim)
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::ops::PadMode;
    use burn::tensor::{Distribution, Tensor};

    use super::pad_zeros;

    type AB = Autodiff<NdArray<f64>>;

    /// Against burn's constant padding, an independent implementation (a filled tensor and a
    /// slice assignment): values, and the gradient of a weighted sum (whose exact value is the
    /// weights' interior, so a misplaced element changes it).
    #[test]
    fn equals_burns_constant_padding_with_its_gradient() {
        let device = Default::default();
        for pads in [
            [(1, 1), (1, 1)],
            [(0, 0), (0, 2)],
            [(2, 3), (0, 1)],
            [(0, 0), (0, 0)],
        ] {
            let x = Tensor::<AB, 4>::random([2, 3, 4, 5], Distribution::Default, &device)
                .require_grad();
            let [(t, b), (l, r)] = pads;
            let weights = Tensor::<AB, 4>::random(
                [2, 3, 4 + t + b, 5 + l + r],
                Distribution::Default,
                &device,
            );
            let ours = pad_zeros(x.clone(), pads);
            let burns = x.clone().pad(pads, PadMode::Constant(0.0));
            let diff = (ours.clone() - burns.clone()).abs().max().into_scalar();
            assert_eq!(diff, 0.0, "{pads:?}");
            let g_ours = x.grad(&(ours * weights.clone()).sum().backward()).unwrap();
            let g_burn = x.grad(&(burns * weights).sum().backward()).unwrap();
            let diff = (g_ours - g_burn).abs().max().into_scalar();
            assert_eq!(diff, 0.0, "{pads:?}");
        }
    }
}
