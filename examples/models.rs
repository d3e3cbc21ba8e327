//! Print every bundled model with its trainable-parameter count as measured by the code,
//! beside the number the papers report.
//!
//! ```text
//! cargo run --release --example models
//! ```
use anyhow::Result;
use burn::backend::{Autodiff, NdArray};
use burn::module::{HasAutodiffModule, Module};
use curvature::core::ParamLayout;
use curvature::nets::*;

type B = NdArray<f32>;

fn count<M: Module<B> + HasAutodiffModule<Autodiff<B>>>(model: &M) -> Result<usize> {
    Ok(ParamLayout::of_model(model)?.dim())
}

fn main() -> Result<()> {
    let d = Default::default();
    let rows: Vec<(&str, usize, &str)> = vec![
        (
            "logistic regression, MNIST 784→10",
            count(&LogisticRegressionConfig::mnist().init::<B>(&d)?)?,
            "7 850",
        ),
        (
            "MLP 784-100-10, MNIST",
            count(&MlpConfig::mnist().init::<B>(&d)?)?,
            "9 960 (sic; see docs/models.md)",
        ),
        (
            "VGG-16, CIFAR-100",
            count(&VggConfig::vgg16(100, false).init::<B>(&d)?)?,
            "15 291 300",
        ),
        (
            "VGG-16-BN, CIFAR-100",
            count(&VggConfig::vgg16(100, true).init::<B>(&d)?)?,
            "VGG-16 + 2 per BN channel",
        ),
        (
            "VGG-16, CIFAR-10",
            count(&VggConfig::vgg16(10, false).init::<B>(&d)?)?,
            "–",
        ),
        (
            "PreResNet-110, CIFAR-100",
            count(&PreResNetConfig::preresnet110(100).init::<B>(&d)?)?,
            "1 169 972",
        ),
        (
            "PreResNet-110, CIFAR-10",
            count(&PreResNetConfig::preresnet110(10).init::<B>(&d)?)?,
            "1 146 842",
        ),
        (
            "PreResNet-164, CIFAR-100",
            count(&PreResNetConfig::preresnet164(100).init::<B>(&d)?)?,
            "1 726 388",
        ),
        (
            "WideResNet-28×10, CIFAR-100",
            count(&WideResNetConfig::wrn28x10(100).init::<B>(&d)?)?,
            "36 546 980",
        ),
        (
            "WideResNet-28×10 without conv bias",
            count(
                &WideResNetConfig::wrn28x10(100)
                    .with_conv_bias(false)
                    .init::<B>(&d)?,
            )?,
            "36 536 884",
        ),
        (
            "9-layer CNN (All-CNN-C), CIFAR-100",
            count(&AllCnnConfig::new(100).init::<B>(&d)?)?,
            "1 387 108",
        ),
    ];
    println!("| model | parameters (measured) | paper |\n|---|---:|---|");
    for (name, n, paper) in rows {
        println!("| {name} | {n} | {paper} |");
    }
    Ok(())
}
