//! Multi-layer perceptron.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::{BatchNormMode, Network};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::layers::{Activation, Dense, DenseConfig};

/// Configuration of [`Mlp`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MlpConfig {
    /// Input features.
    pub num_features: usize,
    /// Hidden widths, first to last.
    pub hidden: Vec<usize>,
    /// Outputs (classes).
    pub num_classes: usize,
    /// Activation after every hidden layer.
    pub activation: Activation,
}

impl MlpConfig {
    /// `d → hidden… → K` with ReLU.
    pub fn new(num_features: usize, hidden: Vec<usize>, num_classes: usize) -> Self {
        Self {
            num_features,
            hidden,
            num_classes,
            activation: Activation::Relu,
        }
    }
    /// Set the activation.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }
    /// The flatness paper's MNIST MLP: 784 → 100 → 10, 79 510 parameters. (The paper states
    /// 9 960, which does not match any one-hidden-layer MLP of width 100 on 784 inputs:
    /// 784·100 + 100 + 100·10 + 10 = 79 510.)
    pub fn mnist() -> Self {
        Self::new(784, vec![100], 10)
    }
    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        let mut sizes = vec![self.num_features];
        sizes.extend(&self.hidden);
        sizes.push(self.num_classes);
        sizes.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }
    /// Build the model.
    ///
    /// # Errors
    /// Zero sizes.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Mlp<B>> {
        if let Some(i) = self.hidden.iter().position(|&h| h == 0) {
            return Err(invalid(
                "MlpConfig",
                "hidden",
                &self.hidden,
                format!("hidden layer {i} has width 0"),
            ));
        }
        let mut sizes = vec![self.num_features];
        sizes.extend(&self.hidden);
        sizes.push(self.num_classes);
        let layers = sizes
            .windows(2)
            .map(|w| DenseConfig::new(w[0], w[1]).init(device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Mlp {
            layers,
            activation: self.activation,
        })
    }
}

/// `z = W_L σ(… σ(W_1 x + b_1) …) + b_L`. Parameters `layers.{i}.weight`, `layers.{i}.bias`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// The dense layers.
    pub layers: Vec<Dense<B>>,
    /// The hidden activation.
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> Mlp<B> {
    /// Outputs `[N, K]` for inputs `[N, d]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(x, |h, (i, layer)| {
            let z = layer.forward(h);
            if i < last {
                self.activation.forward(z)
            } else {
                z
            }
        })
    }
}

impl<B: Backend> Network<B, 2> for Mlp<B> {
    fn output(&self, input: Tensor<B, 2>, _mode: BatchNormMode) -> Tensor<B, 2> {
        self.forward(input)
    }
}
