//! Fully connected layer built from `matmul` (twice differentiable, unlike burn's fused
//! `nn::Linear`).

use burn::module::{Initializer, Module, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::tap::DenseTap;
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// Configuration of [`Dense`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DenseConfig {
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
    /// Whether to add a bias.
    pub bias: bool,
}

impl DenseConfig {
    /// `d_input → d_output` with bias.
    pub fn new(d_input: usize, d_output: usize) -> Self {
        Self {
            d_input,
            d_output,
            bias: true,
        }
    }
    /// Set whether a bias is used.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Trainable parameters of the layer: `d_in·d_out` (+ `d_out` with a bias).
    pub fn num_params(&self) -> usize {
        self.d_input * self.d_output + if self.bias { self.d_output } else { 0 }
    }

    /// Build the layer with PyTorch's default initialisation, `U(−1/√d_in, 1/√d_in)` for
    /// weight and bias.
    ///
    /// # Errors
    /// [`NetsError::InvalidConfig`](crate::NetsError::InvalidConfig) for zero sizes.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Dense<B>> {
        if self.d_input == 0 || self.d_output == 0 {
            return Err(invalid(
                "DenseConfig",
                "d_input/d_output",
                (self.d_input, self.d_output),
                "sizes must be positive",
            ));
        }
        let bound = 1.0 / (self.d_input as f64).sqrt();
        let init = Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        Ok(super::materialize(Dense {
            weight: init.init([self.d_output, self.d_input], device),
            bias: self.bias.then(|| init.init([self.d_output], device)),
        }))
    }
}

/// `y = x Wᵀ + b` with `W: [d_out, d_in]` — PyTorch's `nn.Linear` layout, so flat parameter
/// vectors and safetensors files match PyTorch's exactly.
#[derive(Module, Debug)]
pub struct Dense<B: Backend> {
    /// Weight `[d_output, d_input]`.
    pub weight: Param<Tensor<B, 2>>,
    /// Bias `[d_output]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> DenseTap<B> for Dense<B> {
    fn weight_id(&self) -> ParamId {
        self.weight.id
    }
    fn bias_id(&self) -> Option<ParamId> {
        self.bias.as_ref().map(|b| b.id)
    }
}

impl<B: Backend> Dense<B> {
    /// `[..., d_in] → [..., d_out]` (burn's `nn::Linear` convention: every leading dimension is
    /// a batch dimension).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        if D == 2 {
            // The rank is a type parameter only: a free cast, no reshape in the graph.
            let y = self.forward_2d(Tensor::from_primitive(x.into_primitive()));
            return Tensor::from_primitive(y.into_primitive());
        }
        let dims = x.dims();
        let d_in = dims[D - 1];
        let rows = x.shape().num_elements() / d_in.max(1);
        let mut out = dims;
        out[D - 1] = self.weight.dims()[0];
        self.forward_2d(x.reshape([rows, d_in])).reshape(out)
    }

    /// `[N, d_in] → [N, d_out]`.
    fn forward_2d(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let y = x.clone().matmul(self.weight.val().transpose());
        let y = match &self.bias {
            Some(b) => y + b.val().unsqueeze_dim(0),
            None => y,
        };
        self.tap(&x, y)
    }
}
