//! 2-D convolution (burn's `conv2d` primitive, which is twice differentiable).

use burn::module::{Initializer, Module, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// Configuration of [`Conv2d`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Conv2dConfig {
    /// `[in, out]` channels.
    pub channels: [usize; 2],
    /// Kernel `[kh, kw]`.
    pub kernel_size: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Symmetric zero padding `[ph, pw]`.
    pub padding: [usize; 2],
    /// Dilation.
    pub dilation: [usize; 2],
    /// Groups (in and out channels must be divisible by it).
    pub groups: usize,
    /// Whether to add a bias.
    pub bias: bool,
}

impl Conv2dConfig {
    /// A `kh×kw` convolution, stride 1, no padding, with bias.
    pub fn new(channels: [usize; 2], kernel_size: [usize; 2]) -> Self {
        Self {
            channels,
            kernel_size,
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            bias: true,
        }
    }
    /// Set the stride.
    pub fn with_stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }
    /// Set the padding.
    pub fn with_padding(mut self, padding: [usize; 2]) -> Self {
        self.padding = padding;
        self
    }
    /// Set the dilation.
    pub fn with_dilation(mut self, dilation: [usize; 2]) -> Self {
        self.dilation = dilation;
        self
    }
    /// Set the number of groups.
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    /// Set whether a bias is used.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Build the layer with PyTorch's default initialisation `U(−1/√fan_in, 1/√fan_in)`,
    /// `fan_in = in/groups · kh · kw`.
    ///
    /// # Errors
    /// [`NetsError::InvalidConfig`](crate::NetsError::InvalidConfig) for zero sizes or channels
    /// not divisible by `groups`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Conv2d<B>> {
        let [cin, cout] = self.channels;
        if cin == 0
            || cout == 0
            || self.kernel_size.contains(&0)
            || self.stride.contains(&0)
            || self.dilation.contains(&0)
        {
            return Err(invalid(
                "Conv2dConfig",
                "channels/kernel_size/stride/dilation",
                self,
                "must be positive",
            ));
        }
        if self.groups == 0 || cin % self.groups != 0 || cout % self.groups != 0 {
            return Err(invalid(
                "Conv2dConfig",
                "groups",
                self.groups,
                "must divide the input and output channels",
            ));
        }
        let fan_in = cin / self.groups * self.kernel_size[0] * self.kernel_size[1];
        let bound = 1.0 / (fan_in as f64).sqrt();
        let init = Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        Ok(super::materialize(Conv2d {
            weight: init.init(
                [
                    cout,
                    cin / self.groups,
                    self.kernel_size[0],
                    self.kernel_size[1],
                ],
                device,
            ),
            bias: self.bias.then(|| init.init([cout], device)),
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        }))
    }
}

/// Whether [`Conv2d`] lowers to [`im2col`] + matmul on backend `B`: on NdArray (also under
/// one or two `Autodiff` wrappers), whose `conv2d` and `conv_transpose2d` are direct loops.
fn lower_to_matmul<B: Backend>() -> bool {
    std::any::type_name::<B>().contains("burn_ndarray")
}

/// The patches of a convolution (PyTorch's `unfold`): `[N, C, H, W] → [N, C·kh·kw, L]`, row
/// `c·kh·kw + i·kw + j` holding input channel `c` at kernel offset `(i, j)` for each of the
/// `L = H'·W'` output positions, with zero padding, stride and dilation.
///
/// Built from zero padding, reshapes and plain slices only — strided views come from
/// reshaping the padded input to `[N, C, H/s, s, W/s, s]` — so it is twice differentiable on
/// every backend (burn's `unfold4d` is a convolution with a one-hot kernel: as slow as the
/// convolution on NdArray). KFAC's convolution factors use it too.
pub fn im2col<B: Backend>(
    x: Tensor<B, 4>,
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
    [dh, dw]: [usize; 2],
) -> Tensor<B, 3> {
    let [n, c, h, w] = x.dims();
    let out = |len: usize, k: usize, s: usize, p: usize, d: usize| {
        (len + 2 * p).saturating_sub(d * (k - 1) + 1) / s + 1
    };
    let (ho, wo) = (out(h, kh, sh, ph, dh), out(w, kw, sw, pw, dw));
    // Pad to cover every view, rounded up to a multiple of the stride.
    let extent = |len: usize, k: usize, s: usize, p: usize, d: usize, o: usize| {
        (len + 2 * p).max((k - 1) * d + (o - 1) * s + 1).div_ceil(s) * s
    };
    let (hp, wp) = (extent(h, kh, sh, ph, dh, ho), extent(w, kw, sw, pw, dw, wo));
    let xp = x
        .pad(
            [(ph, hp - h - ph), (pw, wp - w - pw)],
            PadMode::Constant(0.0),
        )
        .reshape([n, c, hp / sh, sh, wp / sw, sw]);
    let views = (0..kh)
        .flat_map(|i| (0..kw).map(move |j| (i * dh, j * dw)))
        .map(|(dy, dx)| {
            let (a, r) = (dy / sh, dy % sh);
            let (b, q) = (dx / sw, dx % sw);
            xp.clone()
                .slice([0..n, 0..c, a..a + ho, r..r + 1, b..b + wo, q..q + 1])
                .reshape([n, c, 1, ho * wo])
        })
        .collect();
    Tensor::cat(views, 2).reshape([n, c * kh * kw, ho * wo])
}

/// 2-D convolution with weight `[out, in/groups, kh, kw]` (PyTorch layout).
#[derive(Module, Debug)]
pub struct Conv2d<B: Backend> {
    /// Weight `[out, in/groups, kh, kw]`.
    pub weight: Param<Tensor<B, 4>>,
    /// Bias `[out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// Stride.
    pub stride: [usize; 2],
    /// Zero padding.
    pub padding: [usize; 2],
    /// Dilation.
    pub dilation: [usize; 2],
    /// Groups.
    pub groups: usize,
}

impl<B: Backend> Conv2d<B> {
    /// `[N, C_in, H, W] → [N, C_out, H', W']`.
    ///
    /// On NdArray, whose convolution primitives are direct scalar loops, the convolution is
    /// lowered to [`im2col`] and one matrix product (exactly the same function, also twice
    /// differentiable, and an order of magnitude faster there: see docs/benchmarks.md); other
    /// backends use burn's `conv2d` (GEMM kernels on the GPU).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = if lower_to_matmul::<B>() {
            self.forward_im2col(x.clone())
        } else {
            conv2d(
                x.clone(),
                self.weight.val(),
                self.bias.as_ref().map(|b| b.val()),
                ConvOptions::new(self.stride, self.padding, self.dilation, self.groups),
            )
        };
        crate::tap::conv2d(self, &x, y)
    }

    /// The convolution as `W [O, C/g·kh·kw] × im2col(x)`, group by group.
    pub fn forward_im2col(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let [o, cg, kh, kw] = self.weight.dims();
        let [ho, wo] = self.output_size([h, w]);
        let cols = im2col(x, [kh, kw], self.stride, self.padding, self.dilation);
        let [_, _, l] = cols.dims();
        let k = kh * kw;
        let og = o / self.groups;
        // [N, C·k, L] → [C·k, N·L]: one GEMM per group.
        let cols = cols.swap_dims(0, 1).reshape([c * k, n * l]);
        let weight = self.weight.val().reshape([o, cg * k]);
        let y = if self.groups == 1 {
            weight.matmul(cols)
        } else {
            Tensor::cat(
                (0..self.groups)
                    .map(|g| {
                        weight
                            .clone()
                            .slice([g * og..(g + 1) * og, 0..cg * k])
                            .matmul(cols.clone().slice([g * cg * k..(g + 1) * cg * k, 0..n * l]))
                    })
                    .collect(),
                0,
            )
        };
        let y = y.reshape([o, n, ho, wo]).swap_dims(0, 1);
        match &self.bias {
            Some(b) => y + b.val().reshape([1, o, 1, 1]),
            None => y,
        }
    }

    /// Output spatial size for an input of size `[h, w]`.
    pub fn output_size(&self, [h, w]: [usize; 2]) -> [usize; 2] {
        let [kh, kw] = [self.weight.dims()[2], self.weight.dims()[3]];
        let f = |n: usize, k: usize, i: usize| {
            (n + 2 * self.padding[i]).saturating_sub(self.dilation[i] * (k - 1) + 1)
                / self.stride[i]
                + 1
        };
        [f(h, kh, 0), f(w, kw, 1)]
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Distribution;

    use super::*;

    type B = NdArray<f64>;
    type AB = Autodiff<B>;

    /// The same sums in another order, in f64.
    const F64_ROUNDING: f64 = 1e-10;

    fn max_diff<const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f64 {
        assert_eq!(a.dims(), b.dims());
        (a - b).abs().max().into_scalar()
    }

    /// im2col + matmul is burn's `conv2d` — forward, and the gradients with respect to input,
    /// weight and bias — for strides, padding, dilation, groups and non-square shapes.
    #[test]
    fn lowered_convolution_equals_burns_conv2d_with_gradients() {
        let dev = Default::default();
        for (cin, cout, kernel, stride, padding, dilation, groups, hw) in [
            (3, 4, [3, 3], [1, 1], [1, 1], [1, 1], 1, [8, 8]),
            (3, 5, [3, 3], [2, 2], [1, 1], [1, 1], 1, [7, 9]),
            (2, 3, [1, 1], [2, 2], [0, 0], [1, 1], 1, [6, 6]),
            (4, 6, [3, 2], [1, 2], [2, 0], [2, 1], 2, [9, 8]),
            (2, 2, [5, 5], [3, 3], [2, 2], [1, 1], 1, [11, 10]),
        ] {
            let layer = Conv2dConfig::new([cin, cout], kernel)
                .with_stride(stride)
                .with_padding(padding)
                .with_dilation(dilation)
                .with_groups(groups)
                .init::<AB>(&dev)
                .unwrap();
            let x = Tensor::<AB, 4>::random(
                [2, cin, hw[0], hw[1]],
                Distribution::Normal(0.0, 1.0),
                &dev,
            )
            .require_grad();
            let reference = conv2d(
                x.clone(),
                layer.weight.val(),
                layer.bias.as_ref().map(|b| b.val()),
                ConvOptions::new(stride, padding, dilation, groups),
            );
            let lowered = layer.forward_im2col(x.clone());
            let what = format!("k {kernel:?} s {stride:?} p {padding:?} d {dilation:?} g {groups}");
            assert!(
                max_diff(reference.clone().inner(), lowered.clone().inner()) < F64_ROUNDING,
                "{what}: forward"
            );
            // Gradients of a random linear functional of the output.
            let r = Tensor::<AB, 4>::random(reference.dims(), Distribution::Default, &dev);
            let gr = (reference * r.clone()).sum().backward();
            let gl = (lowered * r).sum().backward();
            let pairs = [
                (x.grad(&gr).unwrap(), x.grad(&gl).unwrap(), "∂x"),
                (
                    layer.weight.val().grad(&gr).unwrap(),
                    layer.weight.val().grad(&gl).unwrap(),
                    "∂W",
                ),
            ];
            for (a, b, name) in pairs {
                assert!(max_diff(a, b) < F64_ROUNDING, "{what}: {name}");
            }
            let bias = layer.bias.as_ref().unwrap().val();
            assert!(
                max_diff(bias.grad(&gr).unwrap(), bias.grad(&gl).unwrap()) < F64_ROUNDING,
                "{what}: ∂b"
            );
        }
    }

    #[test]
    fn the_layer_lowers_on_ndarray_only() {
        assert!(lower_to_matmul::<NdArray<f32>>());
        assert!(lower_to_matmul::<Autodiff<Autodiff<NdArray<f64>>>>());
    }
}
