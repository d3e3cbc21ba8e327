//! Pre-activation ResNets for CIFAR (He et al., *Identity Mappings in Deep Residual Networks*,
//! 2016), as in the bearpaw/pytorch-classification code used by the papers.
//!
//! Bottleneck variant: depth `9n + 2`, three stages of `n` blocks with widths 16/32/64
//! expanded ×4, convolutions without bias; PreResNet-110 (n = 12) has 1 169 972 parameters on
//! CIFAR-100 and 1 146 842 on CIFAR-10, PreResNet-164 (n = 18) 1 726 388 on CIFAR-100.
//! Basic-block variant: depth `6n + 2`, no expansion.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use curvature_core::{BatchNormMode, Network};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::layers::{
    BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Dense, DenseConfig, global_avg_pool2d,
};

/// Residual block type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResidualBlock {
    /// `BN-ReLU-conv1×1 → BN-ReLU-conv3×3 → BN-ReLU-conv1×1` (×4 expansion); depth `9n + 2`.
    Bottleneck,
    /// `BN-ReLU-conv3×3 → BN-ReLU-conv3×3`; depth `6n + 2`.
    Basic,
}

impl ResidualBlock {
    fn expansion(self) -> usize {
        match self {
            ResidualBlock::Bottleneck => 4,
            ResidualBlock::Basic => 1,
        }
    }
    fn layers_per_block(self) -> usize {
        match self {
            ResidualBlock::Bottleneck => 9,
            ResidualBlock::Basic => 6,
        }
    }
}

/// Configuration of [`PreResNet`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PreResNetConfig {
    /// Depth: `9n + 2` (bottleneck) or `6n + 2` (basic).
    pub depth: usize,
    /// Block type.
    pub block: ResidualBlock,
    /// Classes.
    pub num_classes: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Stage widths before expansion (16, 32, 64 in the papers).
    pub widths: [usize; 3],
}

impl PreResNetConfig {
    /// A bottleneck PreResNet of the given depth for RGB input.
    pub fn new(depth: usize, num_classes: usize) -> Self {
        Self {
            depth,
            block: ResidualBlock::Bottleneck,
            num_classes,
            in_channels: 3,
            widths: [16, 32, 64],
        }
    }
    /// PreResNet-110 (bottleneck, n = 12).
    pub fn preresnet110(num_classes: usize) -> Self {
        Self::new(110, num_classes)
    }
    /// PreResNet-164 (bottleneck, n = 18).
    pub fn preresnet164(num_classes: usize) -> Self {
        Self::new(164, num_classes)
    }
    /// Use basic blocks.
    pub fn with_block(mut self, block: ResidualBlock) -> Self {
        self.block = block;
        self
    }
    /// Set the stage widths.
    pub fn with_widths(mut self, widths: [usize; 3]) -> Self {
        self.widths = widths;
        self
    }

    /// Build the model.
    ///
    /// # Errors
    /// A depth not of the form `9n + 2` / `6n + 2` with `n ≥ 1`, or zero widths.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<PreResNet<B>> {
        let per = self.block.layers_per_block();
        if self.depth < per + 2 || !(self.depth - 2).is_multiple_of(per) {
            return Err(invalid(
                "PreResNetConfig",
                "depth",
                self.depth,
                format!("a {:?} PreResNet needs depth {per}n + 2, n ≥ 1", self.block),
            ));
        }
        if self.widths.contains(&0) || self.num_classes == 0 {
            return Err(invalid(
                "PreResNetConfig",
                "widths/num_classes",
                (self.widths, self.num_classes),
                "must be positive",
            ));
        }
        let n = (self.depth - 2) / per;
        let expansion = self.block.expansion();
        let mut inplanes = self.widths[0];
        let conv1 = Conv2dConfig::new([self.in_channels, inplanes], [3, 3])
            .with_padding([1, 1])
            .with_bias(false)
            .init(device)?;
        let mut stages = Vec::new();
        for (s, &planes) in self.widths.iter().enumerate() {
            let stride = if s == 0 { 1 } else { 2 };
            let mut blocks = Vec::new();
            for b in 0..n {
                blocks.push(PreActBlock::new(
                    self.block,
                    inplanes,
                    planes,
                    if b == 0 { stride } else { 1 },
                    device,
                )?);
                inplanes = planes * expansion;
            }
            stages.push(blocks);
        }
        Ok(PreResNet {
            conv1,
            stages,
            bn: BatchNormConfig::new(inplanes).init(device)?,
            fc: DenseConfig::new(inplanes, self.num_classes).init(device)?,
        })
    }
}

/// A pre-activation residual block (bottleneck or basic).
#[derive(Module, Debug)]
pub struct PreActBlock<B: Backend> {
    /// BN before the first convolution.
    pub bn1: BatchNorm<B>,
    /// First convolution (1×1 bottleneck, 3×3 basic).
    pub conv1: Conv2d<B>,
    /// BN before the second convolution.
    pub bn2: BatchNorm<B>,
    /// Second convolution (3×3, carries the stride in the bottleneck).
    pub conv2: Conv2d<B>,
    /// BN before the third convolution (bottleneck only).
    pub bn3: Option<BatchNorm<B>>,
    /// Third, expanding 1×1 convolution (bottleneck only).
    pub conv3: Option<Conv2d<B>>,
    /// 1×1 projection of the input when the shape changes.
    pub downsample: Option<Conv2d<B>>,
}

impl<B: Backend> PreActBlock<B> {
    fn new(
        kind: ResidualBlock,
        inplanes: usize,
        planes: usize,
        stride: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let out = planes * kind.expansion();
        let conv = |i: usize, o: usize, k: usize, s: usize| {
            Conv2dConfig::new([i, o], [k, k])
                .with_padding([k / 2, k / 2])
                .with_stride([s, s])
                .with_bias(false)
                .init(device)
        };
        let downsample = if stride != 1 || inplanes != out {
            Some(conv(inplanes, out, 1, stride)?)
        } else {
            None
        };
        Ok(match kind {
            ResidualBlock::Bottleneck => Self {
                bn1: BatchNormConfig::new(inplanes).init(device)?,
                conv1: conv(inplanes, planes, 1, 1)?,
                bn2: BatchNormConfig::new(planes).init(device)?,
                conv2: conv(planes, planes, 3, stride)?,
                bn3: Some(BatchNormConfig::new(planes).init(device)?),
                conv3: Some(conv(planes, out, 1, 1)?),
                downsample,
            },
            ResidualBlock::Basic => Self {
                bn1: BatchNormConfig::new(inplanes).init(device)?,
                conv1: conv(inplanes, planes, 3, stride)?,
                bn2: BatchNormConfig::new(planes).init(device)?,
                conv2: conv(planes, planes, 3, 1)?,
                bn3: None,
                conv3: None,
                downsample,
            },
        })
    }

    /// `F(x) + shortcut(x)`.
    pub fn forward(&self, x: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 4> {
        let mut h = self.conv1.forward(relu(self.bn1.forward(x.clone(), mode)));
        h = self.conv2.forward(relu(self.bn2.forward(h, mode)));
        if let (Some(bn3), Some(conv3)) = (&self.bn3, &self.conv3) {
            h = conv3.forward(relu(bn3.forward(h, mode)));
        }
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x),
            None => x,
        };
        h + shortcut
    }
}

/// PreResNet: `conv → stages → BN → ReLU → global average pool → dense`.
#[derive(Module, Debug)]
pub struct PreResNet<B: Backend> {
    /// Stem convolution.
    pub conv1: Conv2d<B>,
    /// Three stages of blocks.
    pub stages: Vec<Vec<PreActBlock<B>>>,
    /// Final batch norm.
    pub bn: BatchNorm<B>,
    /// Classifier.
    pub fc: Dense<B>,
}

impl<B: Backend> PreResNet<B> {
    /// Logits `[N, C]`.
    pub fn forward(&self, x: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 2> {
        let mut h = self.conv1.forward(x);
        for block in self.stages.iter().flatten() {
            h = block.forward(h, mode);
        }
        self.fc
            .forward(global_avg_pool2d(relu(self.bn.forward(h, mode))))
    }
}

impl<B: Backend> Network<B, 4> for PreResNet<B> {
    fn output(&self, input: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 2> {
        self.forward(input, mode)
    }
}
