//! 2-D convolution (burn's `conv2d` primitive, which is twice differentiable).

use burn::module::{Initializer, Module, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
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
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = conv2d(
            x.clone(),
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            ConvOptions::new(self.stride, self.padding, self.dilation, self.groups),
        );
        crate::tap::conv2d(self, &x, y)
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
