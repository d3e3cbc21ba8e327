//! Element-wise activations and their second-derivative accuracy on burn 0.21.

use burn::tensor::Tensor;
use burn::tensor::activation;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

/// An element-wise activation.
///
/// All are twice differentiable through burn's autodiff. Exactness of the resulting
/// Hessian-vector products (measured against f64 central differences, SPEC §6):
///
/// | activation | second derivative |
/// |---|---|
/// | `Relu`, `LeakyRelu`, `Identity` | exact (zero almost everywhere; kinks are not differentiated) |
/// | `Tanh`, `Softplus`, `Elu`, `Sigmoid` | exact to f64 rounding |
/// | `Gelu` | approximate: burn 0.21's `gelu` backward uses a tanh approximation (≈1e-4 relative) |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(0, x)`.
    #[default]
    Relu,
    /// `max(αx, x)`.
    LeakyRelu {
        /// Negative slope `α`.
        slope: f64,
    },
    /// `tanh x`.
    Tanh,
    /// `1/(1 + e^{−x})`, built from `exp` and `recip` (burn 0.21's own `sigmoid` is computed in
    /// f32, which would limit its second derivative to ≈1e-4 relative accuracy).
    Sigmoid,
    /// `x Φ(x)` (approximate backward in burn 0.21).
    Gelu,
    /// `log(1 + e^x)`.
    Softplus,
    /// `x` for `x > 0`, `e^x − 1` otherwise.
    Elu,
    /// `x`.
    Identity,
}

impl Activation {
    /// Apply element-wise.
    pub fn forward<B: Backend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match *self {
            Activation::Relu => relu(x),
            Activation::LeakyRelu { slope } => activation::leaky_relu(x, slope),
            Activation::Tanh => activation::tanh(x),
            Activation::Sigmoid => x.neg().exp().add_scalar(1.0).recip(),
            Activation::Gelu => activation::gelu(x),
            Activation::Softplus => activation::softplus(x, 1.0),
            Activation::Elu => {
                let pos = x.clone().greater_elem(0.0);
                let neg = x.clone().exp().sub_scalar(1.0);
                neg.mask_where(pos, x)
            }
            Activation::Identity => x,
        }
    }
}

/// `max(x, 0)` element-wise: burn's `relu`, on Flex and `Autodiff<Flex>` (a training step) as
/// one operation split between rayon's threads, bit for bit burn's (`relu_on_flex.rs`).
pub fn relu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    let x = match super::relu_on_flex::relu_on_flex(x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    activation::relu(x)
}
