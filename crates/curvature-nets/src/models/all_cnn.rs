//! The 9-layer CNN of *Flatness is a False Friend*: All-CNN-C (Springenberg et al., *Striving
//! for Simplicity: The All Convolutional Net*, 2015).
//!
//! The paper gives only "9 layer convolutional neural network … parameter count 1,387,108" on
//! CIFAR-100. All-CNN-C with biases and a 100-class head has exactly that count:
//!
//! | layer | shape | parameters |
//! |---|---|---:|
//! | conv 3×3, 3→96, pad 1 | 32×32 | 2 688 |
//! | conv 3×3, 96→96, pad 1 | 32×32 | 83 040 |
//! | conv 3×3, 96→96, pad 1, stride 2 | 16×16 | 83 040 |
//! | conv 3×3, 96→192, pad 1 | 16×16 | 166 080 |
//! | conv 3×3, 192→192, pad 1 | 16×16 | 331 968 |
//! | conv 3×3, 192→192, pad 1, stride 2 | 8×8 | 331 968 |
//! | conv 3×3, 192→192, valid | 6×6 | 331 968 |
//! | conv 1×1, 192→192 | 6×6 | 37 056 |
//! | conv 1×1, 192→C | 6×6 | 19 300 (C = 100) |
//! | global average pooling | C | – |
//!
//! total 1 387 108. ReLU after every convolution but the last. Batch norm after the first
//! eight convolutions is available as an option (not part of the count).

use crate::layers::relu;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::{BatchNormMode, Network};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::layers::{
    BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, ConvLowering, global_avg_pool2d,
};

/// Configuration of [`AllCnn`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AllCnnConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Widths of the two stages (96 and 192 in the paper).
    pub widths: [usize; 2],
    /// Classes.
    pub num_classes: usize,
    /// Batch norm after the first eight convolutions.
    pub batch_norm: bool,
    /// How every convolution is computed (the same function every way; [`ConvLowering`]).
    #[serde(default)]
    pub conv: ConvLowering,
}

impl AllCnnConfig {
    /// The paper's network for RGB input (1 387 108 parameters for 100 classes).
    pub fn new(num_classes: usize) -> Self {
        Self {
            in_channels: 3,
            widths: [96, 192],
            num_classes,
            batch_norm: false,
            conv: ConvLowering::Auto,
        }
    }
    /// Set how every convolution is computed.
    pub fn with_conv(mut self, conv: ConvLowering) -> Self {
        self.conv = conv;
        self
    }

    /// The nine convolutions.
    fn conv_configs(&self) -> Vec<Conv2dConfig> {
        let [a, b] = self.widths;
        let c3 = |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding([1, 1]);
        [
            c3(self.in_channels, a),
            c3(a, a),
            c3(a, a).with_stride([2, 2]),
            c3(a, b),
            c3(b, b),
            c3(b, b).with_stride([2, 2]),
            Conv2dConfig::new([b, b], [3, 3]),
            Conv2dConfig::new([b, b], [1, 1]),
            Conv2dConfig::new([b, self.num_classes], [1, 1]),
        ]
        .into_iter()
        .map(|c| c.with_lowering(self.conv))
        .collect()
    }

    /// The batch norms after the first eight convolutions (none without `batch_norm`).
    fn norm_configs(&self) -> Vec<BatchNormConfig> {
        match self.batch_norm {
            true => self.conv_configs()[..8]
                .iter()
                .map(|c| BatchNormConfig::new(c.channels[1]))
                .collect(),
            false => Vec::new(),
        }
    }

    /// Trainable parameters of the model [`init`](Self::init) builds, from the shapes alone
    /// (no weights are allocated): 1 387 108 for 100 classes without batch norm.
    pub fn num_params(&self) -> usize {
        self.conv_configs()
            .iter()
            .map(Conv2dConfig::num_params)
            .chain(self.norm_configs().iter().map(BatchNormConfig::num_params))
            .sum()
    }

    /// Build the model.
    ///
    /// # Errors
    /// Zero sizes.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<AllCnn<B>> {
        let [a, b] = self.widths;
        if a == 0 || b == 0 || self.num_classes == 0 {
            return Err(invalid(
                "AllCnnConfig",
                "widths/num_classes",
                (self.widths, self.num_classes),
                "must be positive",
            ));
        }
        let convs = self
            .conv_configs()
            .iter()
            .map(|c| c.init(device))
            .collect::<Result<Vec<_>>>()?;
        let norms = self
            .norm_configs()
            .iter()
            .map(|c| c.init(device))
            .collect::<Result<Vec<_>>>()?;
        Ok(AllCnn { convs, norms })
    }
}

/// All-CNN-C. Input `[N, C, H, W]` with `H, W ≥ 12` (32 for CIFAR).
#[derive(Module, Debug)]
pub struct AllCnn<B: Backend> {
    /// The nine convolutions.
    pub convs: Vec<Conv2d<B>>,
    /// Batch norms after the first eight (empty when disabled).
    pub norms: Vec<BatchNorm<B>>,
}

impl<B: Backend> AllCnn<B> {
    /// Logits `[N, C]`.
    pub fn forward(&self, x: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 2> {
        let last = self.convs.len() - 1;
        let mut h = x;
        for (i, conv) in self.convs.iter().enumerate() {
            h = conv.forward(h);
            if i < last {
                if let Some(bn) = self.norms.get(i) {
                    h = bn.forward(h, mode);
                }
                h = relu(h);
            }
        }
        global_avg_pool2d(h)
    }
}

impl<B: Backend> Network<B, 4> for AllCnn<B> {
    fn output(&self, input: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 2> {
        self.forward(input, mode)
    }
}
