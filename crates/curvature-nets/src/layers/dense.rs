//! Fully connected layer built from `matmul` (twice differentiable, unlike burn's fused
//! `nn::Linear`).

use burn::module::{Initializer, Module, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::tap::DenseTap;
use serde::{Deserialize, Serialize};

use super::CpuBackend;
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

    /// `[N, d_in] → [N, d_out]`: `y = x Wᵀ + b` — on Flex (bare or under one or two
    /// `Autodiff` levels) with the product and its two adjoints as our own operations, `gemm`
    /// calls into buffers of our own (`dense_on_flex.rs`); on NdArray computed feature-major
    /// as `y = (W xᵀ + b 1ᵀ)ᵀ` — the same numbers up to rounding.
    ///
    /// Why feature-major on NdArray (and on Flex before its own operations): written as `x Wᵀ`, the weight enters through a transpose,
    /// so autodiff hands back its gradient as the transpose of `xᵀ ∂L/∂y` — a transposed *view*
    /// that every update and every flattening had to copy first — and burn-flex's `gemm` packs
    /// the transposed weight, the largest operand, one element at a time in every forward pass
    /// (perf: 44 % of the MLP's forward). With the weight as the left factor, its gradient
    /// `∂L/∂W = (∂L/∂y)ᵀ x` comes out as a contiguous `[d_out, d_in]` matrix and what is
    /// transposed is the `N × d_in` batch. Measured on the 3072-512-512-10 MLP at batch 128,
    /// one thread, both forms in one binary (docs/benchmarks.md, "Dense layers computed
    /// feature-major"): gradient 13.3 → 9.9 ms on Flex and 53 → 36 ms on NdArray f32, SGD step
    /// 13–17 → 9 ms on Flex and 33 → 14 ms on NdArray. On the GPU backends `x Wᵀ` stays (dense
    /// layers were measured at parity with PyTorch in that form; the other is not measured
    /// there yet).
    fn forward_2d(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let y = match CpuBackend::of::<B>() {
            #[cfg(feature = "flex")]
            Some(CpuBackend::Flex) => self.on_flex(x.clone()),
            Some(_) => self.feature_major(x.clone()),
            None => self.batch_major(x.clone()),
        };
        self.tap(&x, y)
    }

    /// `x Wᵀ + b` with `x Wᵀ` as [`DenseProduct`](super::dense_on_flex::DenseProduct)'s
    /// operation; [`feature_major`](Self::feature_major) on a deeper nesting of `Autodiff`.
    #[cfg(feature = "flex")]
    fn on_flex(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        use super::bilinear::apply_any_level;
        use super::dense_on_flex::DenseProduct;
        match apply_any_level::<B, burn::backend::Flex, _, 2, 2, 2>(
            DenseProduct,
            (x, self.weight.val()),
        ) {
            Ok(y) => self.plus_bias(y),
            Err((x, _)) => self.feature_major(x),
        }
    }

    /// `x Wᵀ + b`.
    fn batch_major(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.plus_bias(x.matmul(self.weight.val().transpose()))
    }

    /// `y + 1 bᵀ` (each row plus the bias), or `y` without a bias.
    fn plus_bias(&self, y: Tensor<B, 2>) -> Tensor<B, 2> {
        match &self.bias {
            Some(b) => y + b.val().unsqueeze_dim(0),
            None => y,
        }
    }

    /// `(W xᵀ + b 1ᵀ)ᵀ`.
    fn feature_major(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let z = self.weight.val().matmul(x.transpose());
        let z = match &self.bias {
            Some(b) => z + b.val().unsqueeze_dim(1),
            None => z,
        };
        z.transpose()
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::{Tensor, TensorData};

    use super::*;

    type AB = Autodiff<NdArray<f64>>;

    /// Both forms against a dense f64 reference computed by hand from the same numbers
    /// (`y[n][o] = Σ_i x[n][i] W[o][i] + b[o]`; `∂ Σ y² / ∂W[o][i] = Σ_n 2 y[n][o] x[n][i]`),
    /// with and without a bias.
    #[test]
    fn both_forms_equal_the_dense_reference_value_and_weight_gradient() {
        let device = Default::default();
        let (n, d_in, d_out) = (4, 5, 3);
        let xs: Vec<f64> = (0..n * d_in).map(|i| (i as f64 * 0.61).sin()).collect();
        for bias in [true, false] {
            let dense = DenseConfig::new(d_in, d_out)
                .with_bias(bias)
                .init::<AB>(&device)
                .unwrap();
            let w = dense.weight.val().into_data().to_vec::<f64>().unwrap();
            let b = match &dense.bias {
                Some(b) => b.val().into_data().to_vec::<f64>().unwrap(),
                None => vec![0.0; d_out],
            };
            let y_ref: Vec<f64> = (0..n * d_out)
                .map(|k| {
                    let (r, o) = (k / d_out, k % d_out);
                    (0..d_in)
                        .map(|i| xs[r * d_in + i] * w[o * d_in + i])
                        .sum::<f64>()
                        + b[o]
                })
                .collect();
            let g_ref: Vec<f64> = (0..d_out * d_in)
                .map(|k| {
                    let (o, i) = (k / d_in, k % d_in);
                    (0..n)
                        .map(|r| 2.0 * y_ref[r * d_out + o] * xs[r * d_in + i])
                        .sum()
                })
                .collect();
            for form in [Dense::batch_major, Dense::feature_major] {
                let x = Tensor::<AB, 2>::from_data(TensorData::new(xs.clone(), [n, d_in]), &device);
                let y = form(&dense, x);
                let got = y.clone().into_data().to_vec::<f64>().unwrap();
                let grads = y.powi_scalar(2).sum().backward();
                let g = dense.weight.grad(&grads).unwrap();
                let g = g.into_data().to_vec::<f64>().unwrap();
                for (a, e) in got.iter().zip(&y_ref).chain(g.iter().zip(&g_ref)) {
                    assert!((a - e).abs() < 1e-12, "bias {bias}: {a} vs {e}");
                }
            }
        }
    }
}
