//! A network chosen at run time: one type for every model family.
//!
//! Code generic over the network (training loops, spectra, benchmarks) is compiled once per
//! network *type*, at three autodiff depths and for every backend. A program that picks its
//! network from a name (the `curvature` command, a sweep) would otherwise compile that code
//! once for each of the seven model families; with [`AnyModel`] it compiles it once, and each
//! forward pass costs one `match`.
//!
//! [`AnyModel`] takes images `[N, C, H, W]` whatever the family: logistic regression and the
//! MLP see them flattened to `[N, C·H·W]` (vectors that are not images enter as
//! `[N, d, 1, 1]`), exactly as they would see `[N, d]` on their own.
//!
//! It is a burn enum module. Parameter paths do not include the variant: an
//! `AnyModel::PreResNet` holding a `PreResNet` names its tensors exactly as the `PreResNet`
//! does (`conv1.weight`, `layer1.0.bn1.weight`, ...), because the path builders of this
//! workspace ([`curvature_core::ModulePath`]) treat enum containers as transparent. Records
//! (burn's checkpoint format) do record the variant.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::{BatchNormMode, Network};

use crate::models::{AllCnn, LogisticRegression, Mlp, PreResNet, SimpleCnn, Vgg, WideResNet};

/// Any network of this crate, on inputs `[N, C, H, W]`.
#[derive(Module, Debug)]
pub enum AnyModel<B: Backend> {
    /// Multinomial logistic regression (on the flattened input).
    Logistic(LogisticRegression<B>),
    /// A multilayer perceptron (on the flattened input).
    Mlp(Mlp<B>),
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

impl<B: Backend> Network<B, 4> for AnyModel<B> {
    fn output(&self, input: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 2> {
        match self {
            Self::Logistic(net) => net.output(input.flatten(1, 3), mode),
            Self::Mlp(net) => net.output(input.flatten(1, 3), mode),
            Self::Cnn(net) => net.output(input, mode),
            Self::AllCnn(net) => net.output(input, mode),
            Self::Vgg(net) => net.output(input, mode),
            Self::PreResNet(net) => net.output(input, mode),
            Self::WideResNet(net) => net.output(input, mode),
        }
    }
}

macro_rules! any_model_from {
    ($($variant:ident ($net:ident)),*) => {$(
        impl<B: Backend> From<$net<B>> for AnyModel<B> {
            fn from(net: $net<B>) -> Self {
                Self::$variant(net)
            }
        }
    )*};
}

any_model_from!(
    Logistic(LogisticRegression),
    Mlp(Mlp),
    Cnn(SimpleCnn),
    AllCnn(AllCnn),
    Vgg(Vgg),
    PreResNet(PreResNet),
    WideResNet(WideResNet)
);
