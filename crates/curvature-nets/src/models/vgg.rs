//! VGG-16 for CIFAR (Simonyan & Zisserman 2014, CIFAR variant of the SWA / Gadam code).

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::{BatchNormMode, Network};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::layers::{
    BatchNorm, Conv2d, Conv2dConfig, ConvLowering, Dense, DenseConfig, flatten, max_pool2d,
};

/// One entry of a VGG feature configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VggLayer {
    /// 3×3 convolution (padding 1) with this many output channels, then (BN), ReLU.
    Conv(usize),
    /// 2×2 max pooling.
    Pool,
}

/// Configuration of [`Vgg`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VggConfig {
    /// Feature layers.
    pub layers: Vec<VggLayer>,
    /// Input channels.
    pub in_channels: usize,
    /// Input `[H, W]`.
    pub image_size: [usize; 2],
    /// Width of the two hidden classifier layers.
    pub classifier_width: usize,
    /// Classes.
    pub num_classes: usize,
    /// Batch norm after every convolution (VGG-16-BN).
    pub batch_norm: bool,
    /// How every convolution is computed (the same function every way; [`ConvLowering`]).
    #[serde(default)]
    pub conv: ConvLowering,
}

impl VggConfig {
    /// VGG-16 for 32×32 RGB input: 13 convolutions
    /// `64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M` and the classifier
    /// `512 → 512 → 512 → C`. Without batch norm on CIFAR-100: 15 291 300 parameters.
    pub fn vgg16(num_classes: usize, batch_norm: bool) -> Self {
        use VggLayer::{Conv, Pool};
        let layers = vec![
            Conv(64),
            Conv(64),
            Pool,
            Conv(128),
            Conv(128),
            Pool,
            Conv(256),
            Conv(256),
            Conv(256),
            Pool,
            Conv(512),
            Conv(512),
            Conv(512),
            Pool,
            Conv(512),
            Conv(512),
            Conv(512),
            Pool,
        ];
        Self {
            layers,
            in_channels: 3,
            image_size: [32, 32],
            classifier_width: 512,
            num_classes,
            batch_norm,
            conv: ConvLowering::Auto,
        }
    }

    /// Set how every convolution is computed.
    pub fn with_conv(mut self, conv: ConvLowering) -> Self {
        self.conv = conv;
        self
    }

    /// The convolutions `init` builds: 3×3, padding 1, with bias.
    fn conv_configs(&self) -> Vec<Conv2dConfig> {
        let mut c = self.in_channels;
        let mut convs = Vec::new();
        for layer in &self.layers {
            if let VggLayer::Conv(out) = *layer {
                convs.push(
                    Conv2dConfig::new([c, out], [3, 3])
                        .with_padding([1, 1])
                        .with_lowering(self.conv),
                );
                c = out;
            }
        }
        convs
    }

    /// The three classifier layers `init` builds, after the flattened last feature map.
    fn classifier_configs(&self) -> [DenseConfig; 3] {
        let f = 1usize << self.layers.iter().filter(|l| **l == VggLayer::Pool).count();
        let c = self
            .conv_configs()
            .last()
            .map_or(self.in_channels, |c| c.channels[1]);
        let features = c * (self.image_size[0] / f) * (self.image_size[1] / f);
        let w = self.classifier_width;
        [
            DenseConfig::new(features, w),
            DenseConfig::new(w, w),
            DenseConfig::new(w, self.num_classes),
        ]
    }

    /// Trainable parameters of the model [`init`](Self::init) builds, from the shapes alone
    /// (no weights are allocated): VGG-16 on CIFAR-100, 15 291 300.
    pub fn num_params(&self) -> usize {
        super::conv_stack::num_params(&self.conv_configs(), self.batch_norm)
            + self
                .classifier_configs()
                .iter()
                .map(DenseConfig::num_params)
                .sum::<usize>()
    }

    /// Build the model.
    ///
    /// # Errors
    /// No convolution, zero widths, or an image not divisible by `2^pools`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Vgg<B>> {
        let pools = self.layers.iter().filter(|l| **l == VggLayer::Pool).count();
        let f = 1usize << pools;
        if self.image_size.iter().any(|&s| s == 0 || s % f != 0) {
            return Err(invalid(
                "VggConfig",
                "image_size",
                self.image_size,
                format!("must be multiples of 2^{pools}"),
            ));
        }
        let convs = self.conv_configs();
        if convs.is_empty() {
            return Err(invalid(
                "VggConfig",
                "layers",
                &self.layers,
                "needs at least one convolution",
            ));
        }
        let (convs, norms) = super::conv_stack::init(&convs, self.batch_norm, device)?;
        Ok(Vgg {
            convs,
            norms,
            classifier: self
                .classifier_configs()
                .iter()
                .map(|c| c.init(device))
                .collect::<Result<_>>()?,
            layers: self.layers.clone(),
        })
    }
}

/// VGG: `[conv → (BN) → ReLU | max pool]*` → flatten → `dense → ReLU → dense → ReLU → dense`.
///
/// PyTorch names: `convs.{i}.weight/bias`, `norms.{i}.*`, `classifier.{0,1,2}.weight/bias`.
#[derive(Module, Debug)]
pub struct Vgg<B: Backend> {
    /// Convolutions in order.
    pub convs: Vec<Conv2d<B>>,
    /// Batch norms (empty without BN).
    pub norms: Vec<BatchNorm<B>>,
    /// Classifier layers.
    pub classifier: Vec<Dense<B>>,
    /// The feature configuration.
    #[module(skip)]
    pub layers: Vec<VggLayer>,
}

impl<B: Backend> Vgg<B> {
    /// Logits `[N, C]`.
    pub fn forward(&self, x: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 2> {
        let mut h = x;
        let mut i = 0;
        for layer in &self.layers {
            h = match layer {
                VggLayer::Conv(_) => {
                    let mut y = self.convs[i].forward(h);
                    if let Some(bn) = self.norms.get(i) {
                        y = bn.forward(y, mode);
                    }
                    i += 1;
                    crate::layers::relu(y)
                }
                VggLayer::Pool => max_pool2d(h, 2),
            };
        }
        let relu = crate::layers::relu;
        let z = relu(self.classifier[0].forward(flatten(h)));
        let z = relu(self.classifier[1].forward(z));
        self.classifier[2].forward(z)
    }
}

impl<B: Backend> Network<B, 4> for Vgg<B> {
    fn output(&self, input: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 2> {
        self.forward(input, mode)
    }
}
