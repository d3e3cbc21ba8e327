//! A small convolutional network for tests, examples and benchmarks.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::{BatchNormMode, Network};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::layers::{
    Activation, BatchNorm, Conv2d, Conv2dConfig, ConvLowering, Dense, DenseConfig, avg_pool2d,
    flatten, max_pool2d,
};

/// Pooling after each convolutional block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// 2×2 max pooling.
    #[default]
    Max,
    /// 2×2 average pooling.
    Avg,
}

/// Configuration of [`SimpleCnn`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SimpleCnnConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Input `[H, W]`; each must be divisible by `2^blocks`.
    pub image_size: [usize; 2],
    /// Output channels of each 3×3 convolution block.
    pub channels: Vec<usize>,
    /// Classes.
    pub num_classes: usize,
    /// Batch norm after each convolution (convolutions then have no bias).
    pub batch_norm: bool,
    /// Pooling.
    pub pooling: Pooling,
    /// Activation.
    pub activation: Activation,
    /// How every convolution is computed (the same function every way; [`ConvLowering`]).
    #[serde(default)]
    pub conv: ConvLowering,
}

impl SimpleCnnConfig {
    /// Blocks of conv 3×3 (padding 1) → (batch norm) → activation → 2×2 pool, then a dense classifier.
    pub fn new(
        in_channels: usize,
        image_size: [usize; 2],
        channels: Vec<usize>,
        num_classes: usize,
    ) -> Self {
        Self {
            in_channels,
            image_size,
            channels,
            num_classes,
            batch_norm: true,
            pooling: Pooling::Max,
            activation: Activation::Relu,
            conv: ConvLowering::Auto,
        }
    }
    /// Set how every convolution is computed.
    pub fn with_conv(mut self, conv: ConvLowering) -> Self {
        self.conv = conv;
        self
    }
    /// Set batch norm on/off.
    pub fn with_batch_norm(mut self, on: bool) -> Self {
        self.batch_norm = on;
        self
    }
    /// Set the pooling.
    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = pooling;
        self
    }
    /// Set the activation.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }
    /// The 3×3 convolutions (padding 1; no bias before a batch norm).
    fn conv_configs(&self) -> Vec<Conv2dConfig> {
        let mut cin = self.in_channels;
        let mut convs = Vec::new();
        for &cout in &self.channels {
            convs.push(
                Conv2dConfig::new([cin, cout], [3, 3])
                    .with_padding([1, 1])
                    .with_bias(!self.batch_norm)
                    .with_lowering(self.conv),
            );
            cin = cout;
        }
        convs
    }

    /// The classifier after the flattened last feature map.
    fn classifier_config(&self) -> DenseConfig {
        let f = 1usize << self.channels.len();
        let c = self.channels.last().copied().unwrap_or(self.in_channels);
        let features = c * (self.image_size[0] / f) * (self.image_size[1] / f);
        DenseConfig::new(features, self.num_classes)
    }

    /// Trainable parameters of the model [`init`](Self::init) builds, from the shapes alone
    /// (no weights are allocated).
    pub fn num_params(&self) -> usize {
        super::conv_stack::num_params(&self.conv_configs(), self.batch_norm)
            + self.classifier_config().num_params()
    }

    /// Build the model.
    ///
    /// # Errors
    /// No blocks, zero sizes, or an image size not divisible by `2^blocks`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<SimpleCnn<B>> {
        if self.channels.is_empty() {
            return Err(invalid(
                "SimpleCnnConfig",
                "channels",
                &self.channels,
                "needs at least one block",
            ));
        }
        let f = 1usize << self.channels.len();
        if self.image_size.iter().any(|&s| s == 0 || s % f != 0) {
            return Err(invalid(
                "SimpleCnnConfig",
                "image_size",
                self.image_size,
                format!(
                    "must be positive multiples of 2^{} = {f} for {} pooling blocks",
                    self.channels.len(),
                    self.channels.len()
                ),
            ));
        }
        let (convs, norms) =
            super::conv_stack::init(&self.conv_configs(), self.batch_norm, device)?;
        Ok(SimpleCnn {
            convs,
            norms,
            classifier: self.classifier_config().init(device)?,
            pooling: self.pooling,
            activation: self.activation,
        })
    }
}

/// `[conv → BN → act → pool] × L → flatten → dense`.
#[derive(Module, Debug)]
pub struct SimpleCnn<B: Backend> {
    /// Convolutions.
    pub convs: Vec<Conv2d<B>>,
    /// Batch norms (empty when disabled).
    pub norms: Vec<BatchNorm<B>>,
    /// Classifier.
    pub classifier: Dense<B>,
    /// Pooling kind.
    #[module(skip)]
    pub pooling: Pooling,
    /// Activation.
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> SimpleCnn<B> {
    /// Logits `[N, K]` for images `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 2> {
        let mut h = x;
        for (i, conv) in self.convs.iter().enumerate() {
            h = conv.forward(h);
            if let Some(bn) = self.norms.get(i) {
                h = bn.forward(h, mode);
            }
            h = self.activation.forward(h);
            h = match self.pooling {
                Pooling::Max => max_pool2d(h, 2),
                Pooling::Avg => avg_pool2d(h, 2),
            };
        }
        self.classifier.forward(flatten(h))
    }

    /// Update every batch norm's running statistics with one forward pass over `x`.
    pub fn update_running_stats(&self, x: Tensor<B, 4>) {
        crate::running_stats::with_running_stats(
            crate::running_stats::StatsUpdate::Momentum,
            || self.forward(x, BatchNormMode::Train),
        );
    }
}

impl<B: Backend> Network<B, 4> for SimpleCnn<B> {
    fn output(&self, input: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 2> {
        self.forward(input, mode)
    }
}
