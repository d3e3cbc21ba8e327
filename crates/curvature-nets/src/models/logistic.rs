//! Softmax (multinomial logistic) regression.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::{BatchNormMode, Network};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::layers::{Dense, DenseConfig};

/// Configuration of [`LogisticRegression`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogisticRegressionConfig {
    /// Input features `d`.
    pub num_features: usize,
    /// Classes `K`.
    pub num_classes: usize,
}

impl LogisticRegressionConfig {
    /// `d → K`.
    pub fn new(num_features: usize, num_classes: usize) -> Self {
        Self {
            num_features,
            num_classes,
        }
    }
    /// MNIST shape: 784 → 10 (7 850 parameters).
    pub fn mnist() -> Self {
        Self::new(784, 10)
    }
    /// optdigits shape: 64 → 10 (650 parameters).
    pub fn optdigits() -> Self {
        Self::new(64, 10)
    }
    /// Number of parameters `K(d + 1)`.
    pub fn num_params(&self) -> usize {
        self.num_classes * (self.num_features + 1)
    }
    /// Build the model.
    ///
    /// # Errors
    /// Zero sizes.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<LogisticRegression<B>> {
        Ok(LogisticRegression {
            linear: DenseConfig::new(self.num_features, self.num_classes).init(device)?,
        })
    }
}

/// Logits `z = W x + b`; with cross-entropy this is softmax regression, whose Hessian is
/// `(1/N) Σ_i (diag(p_i) − p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ`, `x̃ = [x; 1]`, and equals its GGN.
/// Parameters: `linear.weight` `[K, d]`, `linear.bias` `[K]`.
#[derive(Module, Debug)]
pub struct LogisticRegression<B: Backend> {
    /// The linear map.
    pub linear: Dense<B>,
}

impl<B: Backend> LogisticRegression<B> {
    /// Logits `[N, K]` for inputs `[N, d]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.linear.forward(x)
    }
}

impl<B: Backend> Network<B, 2> for LogisticRegression<B> {
    fn output(&self, input: Tensor<B, 2>, _mode: BatchNormMode) -> Tensor<B, 2> {
        self.forward(input)
    }
}
