//! Drop-in replacements for burn's `nn` layers, under burn's names and configuration APIs, built
//! from twice-differentiable operations.
//!
//! burn 0.21's fused `nn::Linear`, `MaxPool2d` and `AvgPool2d` panic when differentiated twice
//! ("Can't differentiate linear_weight_backward"), so a model written with them has a gradient
//! but no exact Hessian-vector product. Changing one import line converts it:
//!
//! ```text
//! use burn::nn::{Linear, LinearConfig, Relu};        // before: gradients only
//! use curvature::nn::{Linear, LinearConfig, Relu};   // after: exact HVPs, spectra, KFAC
//! ```
//!
//! | here | burn | notes |
//! |---|---|---|
//! | [`Linear`], [`LinearConfig`] | `nn::Linear` | any input rank (leading dimensions are batch dimensions); the weight is stored `[d_out, d_in]` as PyTorch's, not burn's `[d_in, d_out]`, so burn records do not load into it |
//! | [`Conv2d`], [`Conv2dConfig`] | `nn::conv::Conv2d` | padding `Valid`, `Explicit` (symmetric) or `Same` (odd kernels, stride 1) |
//! | [`MaxPool2d`], [`AvgPool2d`] (+ `Config`) | `nn::pool::*` | non-overlapping windows only: square kernel, strides = kernel (burn's default), no padding or dilation; a remainder row/column is dropped, as burn's floor mode does |
//! | [`Relu`], [`Tanh`], [`LeakyRelu`], [`LayerNorm`], [`PaddingConfig2d`] | the same | burn's own, which are twice differentiable |
//!
//! Batch norm is not a drop-in: burn's `BatchNorm::forward(x)` picks training or evaluation mode
//! from the backend, while a curvature computation chooses it ([`BatchNormMode`] in
//! `Network::output`); use [`BatchNorm`] with `forward(x, mode)`.
//!
//! Invalid configurations panic in `init` with the reason, as burn's do; `try_init` returns the
//! error instead.
//!
//! [`BatchNormMode`]: curvature_core::BatchNormMode
//! [`BatchNorm`]: crate::BatchNorm

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

pub use burn::nn::{
    LayerNorm, LayerNormConfig, LeakyRelu, LeakyReluConfig, PaddingConfig2d, Relu, Tanh,
};

use crate::error::{Result, invalid};
use crate::layers::{avg_pool2d, max_pool2d};

/// `y = x Wᵀ + b` over the last dimension: [`Dense`](crate::Dense) under burn's name.
pub type Linear<B> = crate::Dense<B>;
/// `Conv2d` (im2col + matmul or burn's `conv2d`), as [`crate::Conv2d`].
pub type Conv2d<B> = crate::Conv2d<B>;

/// burn's `LinearConfig`: `LinearConfig::new(d_input, d_output)`, `.with_bias(bool)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinearConfig {
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
    /// Whether to add a bias (default true).
    pub bias: bool,
}

impl LinearConfig {
    /// `d_input → d_output` with bias.
    pub fn new(d_input: usize, d_output: usize) -> Self {
        Self {
            d_input,
            d_output,
            bias: true,
        }
    }
    /// Set whether a bias is used.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
    /// Build the layer (PyTorch's initialisation, `U(−1/√d_in, 1/√d_in)`).
    ///
    /// # Errors
    /// Zero sizes.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<Linear<B>> {
        crate::DenseConfig::new(self.d_input, self.d_output)
            .with_bias(self.bias)
            .init(device)
    }
    /// Build the layer, as burn's `init`.
    ///
    /// # Panics
    /// With the reason, for zero sizes ([`try_init`](Self::try_init) returns it instead).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Linear<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// burn's `Conv2dConfig`: `Conv2dConfig::new([c_in, c_out], [kh, kw])` with `with_stride`,
/// `with_padding(PaddingConfig2d)`, `with_dilation`, `with_groups`, `with_bias`.
#[derive(Debug, Clone)]
pub struct Conv2dConfig {
    /// `[in, out]` channels.
    pub channels: [usize; 2],
    /// Kernel `[kh, kw]`.
    pub kernel_size: [usize; 2],
    /// Stride (default `[1, 1]`).
    pub stride: [usize; 2],
    /// Dilation (default `[1, 1]`).
    pub dilation: [usize; 2],
    /// Groups (default 1).
    pub groups: usize,
    /// Padding (default `Valid`).
    pub padding: PaddingConfig2d,
    /// Whether to add a bias (default true).
    pub bias: bool,
}

impl Conv2dConfig {
    /// A `kh×kw` convolution, stride 1, no padding, with bias.
    pub fn new(channels: [usize; 2], kernel_size: [usize; 2]) -> Self {
        Self {
            channels,
            kernel_size,
            stride: [1, 1],
            dilation: [1, 1],
            groups: 1,
            padding: PaddingConfig2d::Valid,
            bias: true,
        }
    }
    /// Set the stride.
    pub fn with_stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }
    /// Set the padding.
    pub fn with_padding(mut self, padding: PaddingConfig2d) -> Self {
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

    /// Symmetric padding `[ph, pw]`.
    fn symmetric_padding(&self) -> Result<[usize; 2]> {
        match self.padding {
            PaddingConfig2d::Valid => Ok([0, 0]),
            PaddingConfig2d::Explicit(top, left, bottom, right)
                if top == bottom && left == right =>
            {
                Ok([top, left])
            }
            PaddingConfig2d::Same
                if self.stride == [1, 1] && self.kernel_size.iter().all(|k| k % 2 == 1) =>
            {
                Ok(std::array::from_fn(|i| {
                    self.dilation[i] * (self.kernel_size[i] - 1) / 2
                }))
            }
            ref p => Err(invalid(
                "Conv2dConfig",
                "padding",
                format!("{p:?}"),
                "only Valid, symmetric Explicit and Same (odd kernels, stride 1) are supported",
            )),
        }
    }

    /// Build the layer (PyTorch's initialisation).
    ///
    /// # Errors
    /// Zero sizes, channels not divisible by `groups`, unsupported padding.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<Conv2d<B>> {
        crate::Conv2dConfig::new(self.channels, self.kernel_size)
            .with_stride(self.stride)
            .with_padding(self.symmetric_padding()?)
            .with_dilation(self.dilation)
            .with_groups(self.groups)
            .with_bias(self.bias)
            .init(device)
    }
    /// Build the layer, as burn's `init`.
    ///
    /// # Panics
    /// With the reason ([`try_init`](Self::try_init) returns it instead).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Conv2d<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Configuration of a non-overlapping pooling layer, burn's `MaxPool2dConfig` (`MAX = true`)
/// and `AvgPool2dConfig` (`MAX = false`): `new([k, k])`, `with_strides`, `with_padding`,
/// `with_dilation`.
#[derive(Debug, Clone)]
pub struct Pool2dConfig<const MAX: bool> {
    /// Window `[k, k]`.
    pub kernel_size: [usize; 2],
    /// Strides (default: the kernel size, as burn's).
    pub strides: [usize; 2],
    /// Padding (default `Valid`).
    pub padding: PaddingConfig2d,
    /// Dilation (default `[1, 1]`).
    pub dilation: [usize; 2],
}

/// burn's `MaxPool2dConfig`.
pub type MaxPool2dConfig = Pool2dConfig<true>;
/// burn's `AvgPool2dConfig`.
pub type AvgPool2dConfig = Pool2dConfig<false>;
/// burn's `MaxPool2d`.
pub type MaxPool2d = Pool2d;
/// burn's `AvgPool2d`.
pub type AvgPool2d = Pool2d;

impl<const MAX: bool> Pool2dConfig<MAX> {
    /// Pooling over `kernel_size` windows with strides equal to it.
    pub fn new(kernel_size: [usize; 2]) -> Self {
        Self {
            kernel_size,
            strides: kernel_size,
            padding: PaddingConfig2d::Valid,
            dilation: [1, 1],
        }
    }
    /// Set the strides.
    pub fn with_strides(mut self, strides: [usize; 2]) -> Self {
        self.strides = strides;
        self
    }
    /// Set the padding.
    pub fn with_padding(mut self, padding: PaddingConfig2d) -> Self {
        self.padding = padding;
        self
    }
    /// Set the dilation.
    pub fn with_dilation(mut self, dilation: [usize; 2]) -> Self {
        self.dilation = dilation;
        self
    }
    /// Build the layer.
    ///
    /// # Errors
    /// Anything but square, non-overlapping windows without padding or dilation: burn's
    /// overlapping pooling cannot be differentiated twice and has no twice-differentiable
    /// equivalent here.
    pub fn try_init(&self) -> Result<Pool2d> {
        let [kh, kw] = self.kernel_size;
        let supported = kh == kw
            && kh > 0
            && self.strides == self.kernel_size
            && matches!(self.padding, PaddingConfig2d::Valid)
            && self.dilation == [1, 1];
        if !supported {
            return Err(invalid(
                if MAX {
                    "MaxPool2dConfig"
                } else {
                    "AvgPool2dConfig"
                },
                "kernel_size/strides/padding/dilation",
                format!("{self:?}"),
                "only square, non-overlapping windows (strides = kernel size) without padding or dilation can be differentiated twice",
            ));
        }
        Ok(Pool2d { max: MAX, k: kh })
    }
    /// Build the layer, as burn's `init`.
    ///
    /// # Panics
    /// With the reason ([`try_init`](Self::try_init) returns it instead).
    pub fn init(&self) -> Pool2d {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Non-overlapping `k×k` max or average pooling (no parameters).
#[derive(Module, Debug, Clone)]
pub struct Pool2d {
    /// Max (true) or average (false).
    max: bool,
    /// Window and stride.
    k: usize,
}

impl Pool2d {
    /// `[N, C, H, W] → [N, C, ⌊H/k⌋, ⌊W/k⌋]`; a remainder is dropped, as burn's floor mode.
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let (h2, w2) = (h / self.k * self.k, w / self.k * self.k);
        let x = if (h2, w2) == (h, w) {
            x
        } else {
            x.slice([0..n, 0..c, 0..h2, 0..w2])
        };
        if self.max {
            max_pool2d(x, self.k)
        } else {
            avg_pool2d(x, self.k)
        }
    }
}
