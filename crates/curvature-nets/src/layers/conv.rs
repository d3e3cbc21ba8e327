//! 2-D convolution (burn's `conv2d` primitive, which is twice differentiable).

use burn::module::{Initializer, Module, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use curvature_core::tap::{Conv2dTap, ConvGeometry};
use serde::{Deserialize, Serialize};

use super::conv_maps::{ConvSpec, conv2d_gemm_grad, has_conv_maps};
use super::{CpuBackend, pad_zeros};
use crate::error::{Result, invalid};

/// How [`Conv2d`] computes its convolution. Every choice is the same function, with the
/// same first and second derivatives (tested against burn's `conv2d` to 1e-10 in f64); they
/// differ in speed by backend (docs/benchmarks.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ConvLowering {
    /// [`ConvLowering::Im2col`] on NdArray (whose `conv2d` primitives are direct scalar loops,
    /// an order of magnitude slower there), [`ConvLowering::GemmGrad`] on Flex (without
    /// groups), [`ConvLowering::Burn`] on every other backend.
    #[default]
    Auto,
    /// burn's `conv2d` primitive: the backend's own kernels (cubecl's on the GPU, with or
    /// without autotuning; Flex's im2col + GEMM on the CPU).
    Burn,
    /// [`im2col`] into a contiguous buffer and one matrix product (the GEMM path, at parity
    /// with PyTorch on the GPU for dense layers), built from differentiable tensor ops.
    Im2col,
    /// Custom autodiff operations that nest for Hessian-vector products (`conv_maps.rs`):
    /// the backend's `conv2d` for the output; with unit stride the input gradient as a
    /// `conv2d` with the flipped kernel and the weight gradient as one batched matrix product
    /// per kernel tap over views of the padded input (the backend's `conv_transpose2d` and
    /// chunks of [`im2col`] patches with a stride). On Flex the output and the weight
    /// gradient are one matrix product per example over its patches, examples shared between
    /// threads (`conv_patches.rs`). Flex and NdArray only, without groups
    /// (`Conv2dConfig::init` refuses it elsewhere; a hand-set grouped layer uses burn's
    /// `conv2d`).
    GemmGrad,
}

impl std::fmt::Display for ConvLowering {
    /// The name in files and on the command line: `auto`, `burn`, `im2col`, `gemm-grad`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Burn => "burn",
            Self::Im2col => "im2col",
            Self::GemmGrad => "gemm-grad",
        })
    }
}

impl ConvLowering {
    /// The lowering a layer with `groups` groups uses on backend `B`: never `Auto`, and
    /// `GemmGrad` only where its operations (`conv_maps.rs`) exist for the backend and
    /// `groups = 1` (otherwise `Burn`).
    pub fn resolve<B: Backend>(self, groups: usize) -> Self {
        let gemm_grad = || {
            if groups == 1 && has_conv_maps::<B>() {
                Self::GemmGrad
            } else {
                Self::Burn
            }
        };
        match self {
            // NdArray's `conv2d` and `conv_transpose2d` are direct loops.
            Self::Auto => match CpuBackend::of::<B>() {
                Some(CpuBackend::NdArray) => Self::Im2col,
                Some(CpuBackend::Flex) => gemm_grad(),
                None => Self::Burn,
            },
            Self::Burn => Self::Burn,
            Self::Im2col => Self::Im2col,
            Self::GemmGrad => gemm_grad(),
        }
    }
}

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
    /// How the convolution is computed (the same function every way).
    #[serde(default)]
    pub lowering: ConvLowering,
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
            lowering: ConvLowering::Auto,
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
    /// Set how the convolution is computed.
    pub fn with_lowering(mut self, lowering: ConvLowering) -> Self {
        self.lowering = lowering;
        self
    }

    /// Trainable parameters of the layer: `C_out·(C_in/groups)·k_h·k_w` (+ `C_out` with a
    /// bias).
    pub fn num_params(&self) -> usize {
        let [cin, cout] = self.channels;
        let weights = cout * (cin / self.groups.max(1)) * self.kernel_size[0] * self.kernel_size[1];
        weights + if self.bias { cout } else { 0 }
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
        if self.lowering == ConvLowering::GemmGrad
            && self.lowering.resolve::<B>(self.groups) != self.lowering
        {
            return Err(invalid(
                "Conv2dConfig",
                "lowering",
                self.lowering,
                format!(
                    "needs groups = 1 (got {}) and the Flex or NdArray backend (got {})",
                    self.groups,
                    std::any::type_name::<B>()
                ),
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
            lowering: self.lowering,
        }))
    }
}

/// The patches of a convolution (PyTorch's `unfold`): `[N, C, H, W] → [N, C·kh·kw, L]`, row
/// `c·kh·kw + i·kw + j` holding input channel `c` at kernel offset `(i, j)` for each of the
/// `L = H'·W'` output positions, with zero padding, stride and dilation.
///
/// Built from zero padding, reshapes, slices and one concatenation only, so it is twice
/// differentiable on every backend (burn's `unfold4d` is a convolution with a one-hot kernel:
/// as slow as the convolution on NdArray). KFAC's convolution factors use it too.
pub fn im2col<B: Backend>(
    x: Tensor<B, 4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> Tensor<B, 3> {
    let patches = Patches::new(x, kernel, stride, padding, dilation);
    let (ho, wo) = (patches.ho, patches.wo);
    match patches.padded_width {
        None => patches.cols,
        Some(wp) => {
            let [n, rows, _] = patches.cols.dims();
            patches
                .cols
                .reshape([n, rows, ho, wp])
                .slice([0..n, 0..rows, 0..ho, 0..wo])
                .reshape([n, rows, ho * wo])
        }
    }
}

/// Output length of a convolution along one axis: `⌊(len + 2p − d(k − 1) − 1) / s⌋ + 1`.
pub(super) fn output_len(
    len: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> usize {
    (len + 2 * padding).saturating_sub(dilation * (kernel - 1) + 1) / stride + 1
}

/// The columns of a convolution, `[N, C·kh·kw, L]` as in [`im2col`], in one of two layouts.
///
/// * Unit stride (`padded_width = Some(W_p)`): `L = H'·W_p`, one column per position of the
///   **padded** width; the last `W_p − W'` columns of each output row are not output positions
///   and are dropped after the matrix product (they are ≈ 6 % more work at 32 × 32 with
///   padding 1). Every kernel offset `(i, j)` is then one contiguous range of the flattened
///   padded input `[N, C, H_p·W_p]`, starting at `i·d_h·W_p + j·d_w` — copied by NdArray in
///   long runs. The strided views of the other layout end in a length-1 axis, which NdArray
///   copies one element at a time: perf put 29 % of a small CNN's HVP there.
/// * Any stride (`padded_width = None`): `L = H'·W'`, strided views from reshaping the padded
///   input to `[N, C, H_p/s, s, W_p/s, s]`.
pub(super) struct Patches<B: Backend> {
    pub(super) cols: Tensor<B, 3>,
    pub(super) ho: usize,
    pub(super) wo: usize,
    pub(super) padded_width: Option<usize>,
}

impl<B: Backend> Patches<B> {
    pub(super) fn new(
        x: Tensor<B, 4>,
        [kh, kw]: [usize; 2],
        [sh, sw]: [usize; 2],
        [ph, pw]: [usize; 2],
        [dh, dw]: [usize; 2],
    ) -> Self {
        let [n, c, h, w] = x.dims();
        let (ho, wo) = (output_len(h, kh, sh, ph, dh), output_len(w, kw, sw, pw, dw));
        if let Some(runs) = ShiftedRuns::new(x.clone(), [kh, kw], [sh, sw], [ph, pw], [dh, dw]) {
            let views = (0..kh * kw)
                .map(|k| runs.run(k).reshape([n, c, 1, runs.len]))
                .collect();
            return Self {
                cols: Tensor::cat(views, 2).reshape([n, c * kh * kw, runs.len]),
                ho,
                wo,
                padded_width: Some(runs.padded_width),
            };
        }
        // Pad to cover every view, rounded up to a multiple of the stride.
        let extent = |len: usize, k: usize, s: usize, p: usize, d: usize, o: usize| {
            (len + 2 * p).max((k - 1) * d + (o - 1) * s + 1).div_ceil(s) * s
        };
        let (hp, wp) = (extent(h, kh, sh, ph, dh, ho), extent(w, kw, sw, pw, dw, wo));
        let offsets: Vec<(usize, usize)> = (0..kh)
            .flat_map(|i| (0..kw).map(move |j| (i * dh, j * dw)))
            .collect();
        let xp = pad_zeros(x, [(ph, hp - h - ph), (pw, wp - w - pw)]).reshape([
            n,
            c,
            hp / sh,
            sh,
            wp / sw,
            sw,
        ]);
        let views = offsets
            .iter()
            .map(|&(dy, dx)| {
                let (a, r) = (dy / sh, dy % sh);
                let (b, q) = (dx / sw, dx % sw);
                xp.clone()
                    .slice([0..n, 0..c, a..a + ho, r..r + 1, b..b + wo, q..q + 1])
                    .reshape([n, c, 1, ho * wo])
            })
            .collect();
        Self {
            cols: Tensor::cat(views, 2).reshape([n, c * kh * kw, ho * wo]),
            ho,
            wo,
            padded_width: None,
        }
    }
}

/// The unit-stride layout of [`Patches`] without the copy: the flattened padded input
/// `[N, C, (H_p + 1)·W_p]` and, for kernel offset `k = i·k_w + j`, the contiguous run of `L =
/// H'·W_p` columns that starts at `i·d_h·W_p + j·d_w` (a view). Column `y·W_p + x` of run `k`
/// is the input under kernel tap `(i, j)` at output position `(y, x)` for `x < W'`; the last
/// `W_p − W'` columns of each row are not output positions.
pub(super) struct ShiftedRuns<B: Backend> {
    flat: Tensor<B, 3>,
    starts: Vec<usize>,
    /// `L = H'·W_p`.
    pub(super) len: usize,
    /// `W_p`.
    pub(super) padded_width: usize,
}

impl<B: Backend> ShiftedRuns<B> {
    /// `None` unless the stride is 1 and the dilated kernel fits the padded input.
    pub(super) fn new(
        x: Tensor<B, 4>,
        [kh, kw]: [usize; 2],
        stride: [usize; 2],
        [ph, pw]: [usize; 2],
        [dh, dw]: [usize; 2],
    ) -> Option<Self> {
        let [n, c, h, w] = x.dims();
        let (hp, wp) = (h + 2 * ph, w + 2 * pw);
        if stride != [1, 1] || hp <= dh * (kh - 1) || wp <= dw * (kw - 1) {
            return None;
        }
        // Here H' = H_p − d_h(kh − 1): the last offset's range ends d_w(kw − 1) < W_p past
        // H_p·W_p, so one extra zero row covers it.
        let extra = usize::from(kw > 1);
        let flat = pad_zeros(x, [(ph, ph + extra), (pw, pw)]).reshape([n, c, (hp + extra) * wp]);
        let starts = (0..kh)
            .flat_map(|i| (0..kw).map(move |j| i * dh * wp + j * dw))
            .collect();
        Some(Self {
            flat,
            starts,
            len: (hp - dh * (kh - 1)) * wp,
            padded_width: wp,
        })
    }

    /// Run `k` (kernel offset `k = i·k_w + j`): `[N, C, L]`, a view of the padded input.
    pub(super) fn run(&self, k: usize) -> Tensor<B, 3> {
        let [n, c, _] = self.flat.dims();
        let start = self.starts[k];
        self.flat
            .clone()
            .slice([0..n, 0..c, start..start + self.len])
    }
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
    /// How the convolution is computed.
    #[module(skip)]
    pub lowering: ConvLowering,
}

impl<B: Backend> Conv2dTap<B> for Conv2d<B> {
    fn weight_id(&self) -> ParamId {
        self.weight.id
    }
    fn bias_id(&self) -> Option<ParamId> {
        self.bias.as_ref().map(|b| b.id)
    }
    fn geometry(&self) -> ConvGeometry {
        let [_, _, kh, kw] = self.weight.dims();
        ConvGeometry {
            kernel: [kh, kw],
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        }
    }
}

impl<B: Backend> Conv2d<B> {
    /// `[N, C_in, H, W] → [N, C_out, H', W']`.
    ///
    /// Computed as the layer's [`ConvLowering`] [resolves](ConvLowering::resolve) on `B`: by
    /// default [`im2col`] and one matrix product on NdArray (whose convolution primitives are
    /// direct scalar loops), [`ConvLowering::GemmGrad`] on Flex, and burn's `conv2d`
    /// elsewhere — exactly the same function every way, also
    /// twice differentiable (docs/benchmarks.md has the speeds).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = match self.lowering.resolve::<B>(self.groups) {
            ConvLowering::Im2col => self.forward_im2col(x.clone()),
            ConvLowering::GemmGrad => self.forward_gemm_grad(x.clone()),
            ConvLowering::Burn | ConvLowering::Auto => self.forward_burn(x.clone()),
        };
        self.tap(&x, y)
    }

    /// burn's `conv2d` primitive.
    fn forward_burn(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        conv2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            ConvOptions::new(self.stride, self.padding, self.dilation, self.groups),
        )
    }

    /// The convolution as the custom operation of `conv_maps.rs`, the bias added
    /// on the `[N, O, H'·W']` view (its gradient then sums the last axis, then the first; a
    /// `[1, O, 1, 1]` operand's sums a middle axis first). Falls back to burn's `conv2d` where
    /// [`ConvLowering::resolve`] would not choose it (groups, other backends).
    fn forward_gemm_grad(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let spec = ConvSpec {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        };
        if self.groups != 1 {
            return self.forward_burn(x);
        }
        let y = match conv2d_gemm_grad(x, self.weight.val(), spec) {
            Ok(y) => y,
            Err((x, _)) => return self.forward_burn(x),
        };
        match &self.bias {
            Some(b) => {
                let [n, o, h, w] = y.dims();
                (y.reshape([n, o, h * w]) + b.val().reshape([1, o, 1])).reshape([n, o, h, w])
            }
            None => y,
        }
    }

    /// The convolution as `W [O, C/g·kh·kw] × im2col(x)`, one matrix product per example
    /// (and group), `[1, O, C·k] × [N, C·k, L] → [N, O, L]`.
    pub fn forward_im2col(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [o, cg, kh, kw] = self.weight.dims();
        let p = Patches::new(x, [kh, kw], self.stride, self.padding, self.dilation);
        let [n, _, l] = p.cols.dims();
        let k = cg * kh * kw;
        let og = o / self.groups;
        let weight = self.weight.val().reshape([1, o, k]);
        let y = if self.groups == 1 {
            weight.matmul(p.cols)
        } else {
            Tensor::cat(
                (0..self.groups)
                    .map(|g| {
                        weight
                            .clone()
                            .slice([0..1, g * og..(g + 1) * og, 0..k])
                            .matmul(p.cols.clone().slice([0..n, g * k..(g + 1) * k, 0..l]))
                    })
                    .collect(),
                1,
            )
        };
        let y = match p.padded_width {
            Some(wp) => y
                .reshape([n, o, p.ho, wp])
                .slice([0..n, 0..o, 0..p.ho, 0..p.wo]),
            None => y.reshape([n, o, p.ho, p.wo]),
        };
        match &self.bias {
            Some(b) => y + b.val().reshape([1, o, 1, 1]),
            None => y,
        }
    }

    /// Output spatial size for an input of size `[h, w]`.
    pub fn output_size(&self, [h, w]: [usize; 2]) -> [usize; 2] {
        let [kh, kw] = [self.weight.dims()[2], self.weight.dims()[3]];
        let f = |len: usize, k: usize, i: usize| {
            output_len(len, k, self.stride[i], self.padding[i], self.dilation[i])
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

    /// im2col + matmul and the custom operation of `conv_maps` are burn's `conv2d` — forward,
    /// and the gradients with respect to input, weight and bias — for strides, padding,
    /// dilation, groups and non-square shapes.
    #[test]
    fn lowered_convolution_equals_burns_conv2d_with_gradients() {
        let dev = Default::default();
        for (cin, cout, kernel, stride, padding, dilation, groups, hw) in [
            (3, 4, [3, 3], [1, 1], [1, 1], [1, 1], 1, [8, 8]),
            (3, 5, [3, 3], [2, 2], [1, 1], [1, 1], 1, [7, 9]),
            (2, 3, [1, 1], [2, 2], [0, 0], [1, 1], 1, [6, 6]),
            (4, 6, [3, 2], [1, 2], [2, 0], [2, 1], 2, [9, 8]),
            (2, 2, [5, 5], [3, 3], [2, 2], [1, 1], 1, [11, 10]),
            // Unit stride (the padded-width layout) with dilation, groups, no padding.
            (4, 6, [3, 2], [1, 1], [2, 0], [2, 1], 2, [9, 8]),
            (2, 3, [1, 1], [1, 1], [0, 0], [1, 1], 1, [5, 7]),
            (3, 2, [2, 3], [1, 1], [0, 1], [1, 2], 1, [4, 6]),
            // Unit stride with p > d(k − 1): gemm-grad's input gradient falls back to the
            // transposed convolution.
            (2, 3, [1, 1], [1, 1], [1, 1], [1, 1], 1, [5, 6]),
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
            // Gradients of a random linear functional of the output.
            let r = Tensor::<AB, 4>::random(reference.dims(), Distribution::Default, &dev);
            let gr = (reference.clone() * r.clone()).sum().backward();
            let lowerings = [
                ("im2col", Some(layer.forward_im2col(x.clone()))),
                // The custom operation has no groups.
                (
                    "gemm-grad",
                    (groups == 1).then(|| layer.forward_gemm_grad(x.clone())),
                ),
            ];
            for (lowering, lowered) in lowerings {
                let Some(lowered) = lowered else { continue };
                let what = format!(
                    "{lowering}: k {kernel:?} s {stride:?} p {padding:?} d {dilation:?} g {groups}"
                );
                assert!(
                    max_diff(reference.clone().inner(), lowered.clone().inner()) < F64_ROUNDING,
                    "{what}: forward"
                );
                let gl = (lowered * r.clone()).sum().backward();
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
    }

    /// Both layouts of [`im2col`] (unit stride: padded width; otherwise strided views) equal
    /// burn's `unfold4d`, an independent implementation (a convolution with a one-hot kernel).
    #[test]
    fn im2col_equals_burns_unfold() {
        let dev = Default::default();
        for (kernel, stride, padding, dilation, hw) in [
            ([3, 3], [1, 1], [1, 1], [1, 1], [8, 8]),
            ([3, 2], [1, 1], [2, 0], [2, 1], [9, 8]),
            ([1, 1], [1, 1], [0, 0], [1, 1], [5, 7]),
            ([3, 3], [2, 2], [1, 1], [1, 1], [7, 9]),
            ([2, 3], [1, 2], [1, 1], [1, 1], [6, 7]),
        ] {
            let x = Tensor::<B, 4>::random([2, 3, hw[0], hw[1]], Distribution::Default, &dev);
            let ours = im2col(x.clone(), kernel, stride, padding, dilation);
            let burn = burn::tensor::module::unfold4d(
                x,
                kernel,
                burn::tensor::ops::UnfoldOptions::new(stride, padding, dilation),
            );
            let what = format!("k {kernel:?} s {stride:?} p {padding:?} d {dilation:?}");
            assert!(max_diff(ours, burn) < F64_ROUNDING, "{what}");
        }
    }

    #[test]
    fn lowerings_resolve_per_backend_and_groups() {
        use ConvLowering::{Auto, Burn, GemmGrad, Im2col};
        assert_eq!(Auto.resolve::<AB>(1), Im2col);
        assert_eq!(GemmGrad.resolve::<Autodiff<AB>>(1), GemmGrad);
        assert_eq!(GemmGrad.resolve::<AB>(2), Burn);
        assert_eq!(Burn.resolve::<AB>(1), Burn);
        #[cfg(feature = "flex")]
        {
            use burn::backend::Flex;
            assert_eq!(Auto.resolve::<Autodiff<Autodiff<Flex>>>(1), GemmGrad);
            assert_eq!(Auto.resolve::<Flex>(3), Burn);
        }
    }

    #[test]
    fn gemm_grad_with_groups_is_an_invalid_config() {
        let err = Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(2)
            .with_lowering(ConvLowering::GemmGrad)
            .init::<B>(&Default::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lowering") && err.contains("groups = 1 (got 2)"),
            "{err}"
        );
    }
}
