//! Pre-activation ResNets for CIFAR (He et al., *Identity Mappings in Deep Residual Networks*,
//! 2016), as in the bearpaw/pytorch-classification code used by the papers.
//!
//! Bottleneck variant: depth `9n + 2`, three stages of `n` blocks with widths 16/32/64
//! expanded ×4, convolutions without bias; PreResNet-110 (n = 12) has 1 169 972 parameters on
//! CIFAR-100 and 1 146 842 on CIFAR-10, PreResNet-164 (n = 18) 1 726 388 on CIFAR-100.
//! Basic-block variant: depth `6n + 2`, no expansion.

use crate::layers::relu;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::{BatchNormMode, Network};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::layers::{
    BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, ConvLowering, Dense, DenseConfig,
    global_avg_pool2d,
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
    /// How every convolution is computed (the same function every way; [`ConvLowering`]).
    #[serde(default)]
    pub conv: ConvLowering,
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
            conv: ConvLowering::Auto,
        }
    }
    /// Set how every convolution is computed.
    pub fn with_conv(mut self, conv: ConvLowering) -> Self {
        self.conv = conv;
        self
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

    /// The first convolution: 3×3, no bias.
    fn stem(&self) -> Conv2dConfig {
        Conv2dConfig::new([self.in_channels, self.widths[0]], [3, 3])
            .with_padding([1, 1])
            .with_bias(false)
            .with_lowering(self.conv)
    }

    /// `(input channels, planes, stride)` of every block, stage by stage.
    fn block_shapes(&self) -> Vec<Vec<(usize, usize, usize)>> {
        let n = self.depth.saturating_sub(2) / self.block.layers_per_block();
        let mut inplanes = self.widths[0];
        let mut stages = Vec::new();
        for (s, &planes) in self.widths.iter().enumerate() {
            let stride = if s == 0 { 1 } else { 2 };
            let mut blocks = Vec::new();
            for b in 0..n {
                blocks.push((inplanes, planes, if b == 0 { stride } else { 1 }));
                inplanes = planes * self.block.expansion();
            }
            stages.push(blocks);
        }
        stages
    }

    /// Trainable parameters of the model [`init`](Self::init) builds, from the shapes alone
    /// (no weights are allocated): PreResNet-110 on CIFAR-100, 1 169 972.
    pub fn num_params(&self) -> usize {
        let out = self.widths[2] * self.block.expansion();
        let blocks: usize = self
            .block_shapes()
            .into_iter()
            .flatten()
            .map(|(inplanes, planes, stride)| {
                let (layers, downsample) =
                    block_plan(self.block, inplanes, planes, stride, self.conv);
                layers
                    .iter()
                    .map(|(c, conv)| BatchNormConfig::new(*c).num_params() + conv.num_params())
                    .sum::<usize>()
                    + downsample.as_ref().map_or(0, Conv2dConfig::num_params)
            })
            .sum();
        self.stem().num_params()
            + blocks
            + BatchNormConfig::new(out).num_params()
            + DenseConfig::new(out, self.num_classes).num_params()
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
        let conv1 = self.stem().init(device)?;
        let stages = self
            .block_shapes()
            .into_iter()
            .map(|stage| {
                stage
                    .into_iter()
                    .map(|(inplanes, planes, stride)| {
                        PreActBlock::new(self.block, inplanes, planes, stride, self.conv, device)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let inplanes = self.widths[2] * self.block.expansion();
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

/// The layers of a block, in order: each convolution with the channels of the batch norm
/// before it (two for a basic block, three for a bottleneck; no biases), and the 1×1
/// projection of the input when the shape changes.
fn block_plan(
    kind: ResidualBlock,
    inplanes: usize,
    planes: usize,
    stride: usize,
    lowering: ConvLowering,
) -> (Vec<(usize, Conv2dConfig)>, Option<Conv2dConfig>) {
    let out = planes * kind.expansion();
    let conv = |i: usize, o: usize, k: usize, s: usize| {
        Conv2dConfig::new([i, o], [k, k])
            .with_padding([k / 2, k / 2])
            .with_stride([s, s])
            .with_bias(false)
            .with_lowering(lowering)
    };
    let layers = match kind {
        ResidualBlock::Bottleneck => vec![
            (inplanes, conv(inplanes, planes, 1, 1)),
            (planes, conv(planes, planes, 3, stride)),
            (planes, conv(planes, out, 1, 1)),
        ],
        ResidualBlock::Basic => vec![
            (inplanes, conv(inplanes, planes, 3, stride)),
            (planes, conv(planes, planes, 3, 1)),
        ],
    };
    let downsample = (stride != 1 || inplanes != out).then(|| conv(inplanes, out, 1, stride));
    (layers, downsample)
}

impl<B: Backend> PreActBlock<B> {
    fn new(
        kind: ResidualBlock,
        inplanes: usize,
        planes: usize,
        stride: usize,
        lowering: ConvLowering,
        device: &B::Device,
    ) -> Result<Self> {
        let (layers, downsample) = block_plan(kind, inplanes, planes, stride, lowering);
        // The projection first: the order in which the weights are drawn from the seed.
        let downsample = downsample.map(|c| c.init(device)).transpose()?;
        let mut layers = layers
            .iter()
            .map(|(c, conv)| Ok((BatchNormConfig::new(*c).init(device)?, conv.init(device)?)))
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        let mut next = || layers.next().expect("a block has two or three layers");
        let ((bn1, conv1), (bn2, conv2)) = (next(), next());
        let (bn3, conv3) = layers.next().unzip();
        Ok(Self {
            bn1,
            conv1,
            bn2,
            conv2,
            bn3,
            conv3,
            downsample,
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
