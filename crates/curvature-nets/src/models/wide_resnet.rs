//! Wide residual networks (Zagoruyko & Komodakis 2016) as in the papers' code (the SWA
//! repository's `WideResNet`, after meliketoy/wide-resnet.pytorch): convolutions **with bias**,
//! dropout between the two convolutions of a block.
//!
//! WideResNet-28×10 on CIFAR-100: 36 546 980 parameters (36 536 884 without convolution
//! biases).

use crate::layers::relu;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use curvature_core::{BatchNormMode, Network};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::layers::{
    BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, ConvLowering, Dense, DenseConfig,
    global_avg_pool2d,
};

/// Configuration of [`WideResNet`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WideResNetConfig {
    /// Depth `6n + 4`.
    pub depth: usize,
    /// Widening factor `k` (stage widths 16k, 32k, 64k).
    pub widen_factor: usize,
    /// Classes.
    pub num_classes: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Biases on every convolution (the papers' code: true).
    pub conv_bias: bool,
    /// Dropout rate between the convolutions of a block (training only; 0 disables).
    pub dropout: f64,
    /// How every convolution is computed (the same function every way; [`ConvLowering`]).
    #[serde(default)]
    pub conv: ConvLowering,
}

impl WideResNetConfig {
    /// WRN-`depth`×`k` for RGB input, biased convolutions, no dropout.
    pub fn new(depth: usize, widen_factor: usize, num_classes: usize) -> Self {
        Self {
            depth,
            widen_factor,
            num_classes,
            in_channels: 3,
            conv_bias: true,
            dropout: 0.0,
            conv: ConvLowering::Auto,
        }
    }
    /// Set how every convolution is computed.
    pub fn with_conv(mut self, conv: ConvLowering) -> Self {
        self.conv = conv;
        self
    }
    /// WideResNet-28×10.
    pub fn wrn28x10(num_classes: usize) -> Self {
        Self::new(28, 10, num_classes)
    }
    /// Set conv biases.
    pub fn with_conv_bias(mut self, bias: bool) -> Self {
        self.conv_bias = bias;
        self
    }
    /// Set the dropout rate.
    pub fn with_dropout(mut self, p: f64) -> Self {
        self.dropout = p;
        self
    }

    /// A `k×k` convolution `i → o` with stride `s`, padding `k/2`, biased as configured.
    fn conv(&self, i: usize, o: usize, k: usize, s: usize) -> Conv2dConfig {
        Conv2dConfig::new([i, o], [k, k])
            .with_padding([k / 2, k / 2])
            .with_stride([s, s])
            .with_bias(self.conv_bias)
            .with_lowering(self.conv)
    }

    /// The 1×1 projection of a block whose shape changes.
    fn shortcut(&self, inplanes: usize, planes: usize, stride: usize) -> Option<Conv2dConfig> {
        (stride != 1 || inplanes != planes).then(|| self.conv(inplanes, planes, 1, stride))
    }

    /// `(input channels, planes, stride)` of every block, stage by stage (widths 16k, 32k,
    /// 64k; the first block of stages 2 and 3 halves the resolution).
    fn block_shapes(&self) -> Vec<Vec<(usize, usize, usize)>> {
        let n = self.depth.saturating_sub(4) / 6;
        let mut inplanes = 16;
        let mut stages = Vec::new();
        for (s, width) in [16, 32, 64].into_iter().enumerate() {
            let planes = width * self.widen_factor;
            let mut blocks = Vec::new();
            for b in 0..n {
                blocks.push((inplanes, planes, if s > 0 && b == 0 { 2 } else { 1 }));
                inplanes = planes;
            }
            stages.push(blocks);
        }
        stages
    }

    /// Trainable parameters of the model [`init`](Self::init) builds, from the shapes alone
    /// (no weights are allocated): WideResNet-28-10 on CIFAR-100, 36 546 980.
    pub fn num_params(&self) -> usize {
        let bn = |c: usize| BatchNormConfig::new(c).num_params();
        let blocks: usize = self
            .block_shapes()
            .into_iter()
            .flatten()
            .map(|(i, p, s)| {
                bn(i)
                    + self.conv(i, p, 3, 1).num_params()
                    + bn(p)
                    + self.conv(p, p, 3, s).num_params()
                    + self
                        .shortcut(i, p, s)
                        .as_ref()
                        .map_or(0, Conv2dConfig::num_params)
            })
            .sum();
        let out = 64 * self.widen_factor;
        self.conv(self.in_channels, 16, 3, 1).num_params()
            + blocks
            + bn(out)
            + DenseConfig::new(out, self.num_classes).num_params()
    }

    /// Build the model.
    ///
    /// # Errors
    /// A depth not of the form `6n + 4`, zero sizes, or dropout outside `[0, 1)`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<WideResNet<B>> {
        if self.depth < 10 || !(self.depth - 4).is_multiple_of(6) {
            return Err(invalid(
                "WideResNetConfig",
                "depth",
                self.depth,
                "needs depth 6n + 4, n ≥ 1",
            ));
        }
        if self.widen_factor == 0 || self.num_classes == 0 {
            return Err(invalid(
                "WideResNetConfig",
                "widen_factor/num_classes",
                (self.widen_factor, self.num_classes),
                "must be positive",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(invalid(
                "WideResNetConfig",
                "dropout",
                self.dropout,
                "must lie in [0, 1)",
            ));
        }
        let conv1 = self.conv(self.in_channels, 16, 3, 1).init(device)?;
        let mut stages = Vec::new();
        for stage in self.block_shapes() {
            let mut blocks = Vec::new();
            for (inplanes, planes, stride) in stage {
                blocks.push(WideBlock {
                    bn1: BatchNormConfig::new(inplanes).init(device)?,
                    conv1: self.conv(inplanes, planes, 3, 1).init(device)?,
                    bn2: BatchNormConfig::new(planes).init(device)?,
                    conv2: self.conv(planes, planes, 3, stride).init(device)?,
                    shortcut: self
                        .shortcut(inplanes, planes, stride)
                        .map(|c| c.init(device))
                        .transpose()?,
                });
            }
            stages.push(blocks);
        }
        let inplanes = 64 * self.widen_factor;
        Ok(WideResNet {
            conv1,
            stages,
            bn: BatchNormConfig::new(inplanes).init(device)?,
            fc: DenseConfig::new(inplanes, self.num_classes).init(device)?,
            dropout: self.dropout,
        })
    }
}

/// `BN-ReLU-conv3×3 → (dropout) → BN-ReLU-conv3×3(stride)` + shortcut.
#[derive(Module, Debug)]
pub struct WideBlock<B: Backend> {
    /// First BN.
    pub bn1: BatchNorm<B>,
    /// First convolution.
    pub conv1: Conv2d<B>,
    /// Second BN.
    pub bn2: BatchNorm<B>,
    /// Second convolution (carries the stride).
    pub conv2: Conv2d<B>,
    /// 1×1 projection when the shape changes.
    pub shortcut: Option<Conv2d<B>>,
}

impl<B: Backend> WideBlock<B> {
    fn forward(&self, x: Tensor<B, 4>, mode: BatchNormMode, dropout: f64) -> Tensor<B, 4> {
        let mut h = self.conv1.forward(relu(self.bn1.forward(x.clone(), mode)));
        if dropout > 0.0 {
            let keep = h.random_like(Distribution::Bernoulli(1.0 - dropout));
            h = h * keep.mul_scalar(1.0 / (1.0 - dropout));
        }
        h = self.conv2.forward(relu(self.bn2.forward(h, mode)));
        h + match &self.shortcut {
            Some(s) => s.forward(x),
            None => x,
        }
    }
}

/// WideResNet: `conv → stages → BN → ReLU → global average pool → dense`.
#[derive(Module, Debug)]
pub struct WideResNet<B: Backend> {
    /// Stem convolution.
    pub conv1: Conv2d<B>,
    /// Three stages.
    pub stages: Vec<Vec<WideBlock<B>>>,
    /// Final batch norm.
    pub bn: BatchNorm<B>,
    /// Classifier.
    pub fc: Dense<B>,
    /// Dropout rate used by [`WideResNet::forward_train`].
    pub dropout: f64,
}

impl<B: Backend> WideResNet<B> {
    /// Deterministic logits `[N, C]` (no dropout) — what curvature is computed from.
    pub fn forward(&self, x: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 2> {
        self.forward_with(x, mode, 0.0)
    }

    /// Logits with dropout at the configured rate (a stochastic function: for training only).
    pub fn forward_train(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_with(x, BatchNormMode::Train, self.dropout)
    }

    fn forward_with(&self, x: Tensor<B, 4>, mode: BatchNormMode, dropout: f64) -> Tensor<B, 2> {
        let mut h = self.conv1.forward(x);
        for block in self.stages.iter().flatten() {
            h = block.forward(h, mode, dropout);
        }
        self.fc
            .forward(global_avg_pool2d(relu(self.bn.forward(h, mode))))
    }
}

impl<B: Backend> Network<B, 4> for WideResNet<B> {
    fn output(&self, input: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 2> {
        self.forward(input, mode)
    }
}
