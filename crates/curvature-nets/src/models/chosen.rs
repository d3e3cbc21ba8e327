//! Networks chosen at run time: one type per input rank.
//!
//! Code generic over the network (training loops, spectra, benchmarks) is compiled once per
//! network *type*, at three autodiff depths and for every backend. A program that picks its
//! network from a name (the `curvature` command, a sweep) would otherwise compile that code
//! once for each of the six model families; with [`VectorModel`] and [`ImageModel`] it
//! compiles it twice, and each forward pass costs one `match`.
//!
//! Both are burn enum modules. Parameter paths do not include the variant: an
//! `ImageModel::PreResNet` holding a `PreResNet` names its tensors exactly as the `PreResNet`
//! does (`conv1.weight`, `layer1.0.bn1.weight`, ...), because the path builders of this
//! workspace ([`curvature_core::ModulePath`]) treat enum containers as transparent. Records
//! (burn's checkpoint format) do record the variant.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::{BatchNormMode, Network};

use crate::models::{AllCnn, LogisticRegression, Mlp, PreResNet, SimpleCnn, Vgg, WideResNet};

/// A network on flat inputs `[N, d]`: logistic regression or an MLP.
#[derive(Module, Debug)]
pub enum VectorModel<B: Backend> {
    /// Multinomial logistic regression.
    Logistic(LogisticRegression<B>),
    /// A multilayer perceptron.
    Mlp(Mlp<B>),
}

impl<B: Backend> Network<B, 2> for VectorModel<B> {
    fn output(&self, input: Tensor<B, 2>, mode: BatchNormMode) -> Tensor<B, 2> {
        match self {
            Self::Logistic(net) => net.output(input, mode),
            Self::Mlp(net) => net.output(input, mode),
        }
    }
}

/// A network on images `[N, C, H, W]`: the simple CNN, All-CNN, VGG, a pre-activation ResNet
/// or a wide ResNet.
#[derive(Module, Debug)]
pub enum ImageModel<B: Backend> {
    /// `[conv → BN → act → pool] × L → dense`.
    Cnn(SimpleCnn<B>),
    /// All-CNN-C.
    AllCnn(AllCnn<B>),
    /// VGG (with or without batch norm).
    Vgg(Vgg<B>),
    /// A pre-activation ResNet.
    PreResNet(PreResNet<B>),
    /// A wide ResNet.
    WideResNet(WideResNet<B>),
}

impl<B: Backend> Network<B, 4> for ImageModel<B> {
    fn output(&self, input: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 2> {
        match self {
            Self::Cnn(net) => net.output(input, mode),
            Self::AllCnn(net) => net.output(input, mode),
            Self::Vgg(net) => net.output(input, mode),
            Self::PreResNet(net) => net.output(input, mode),
            Self::WideResNet(net) => net.output(input, mode),
        }
    }
}

macro_rules! chosen_from {
    ($chosen:ident :: $variant:ident ($net:ident)) => {
        impl<B: Backend> From<$net<B>> for $chosen<B> {
            fn from(net: $net<B>) -> Self {
                Self::$variant(net)
            }
        }
    };
}

chosen_from!(VectorModel::Logistic(LogisticRegression));
chosen_from!(VectorModel::Mlp(Mlp));
chosen_from!(ImageModel::Cnn(SimpleCnn));
chosen_from!(ImageModel::AllCnn(AllCnn));
chosen_from!(ImageModel::Vgg(Vgg));
chosen_from!(ImageModel::PreResNet(PreResNet));
chosen_from!(ImageModel::WideResNet(WideResNet));
