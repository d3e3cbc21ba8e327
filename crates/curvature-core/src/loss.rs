//! Losses and their second derivatives with respect to the network outputs.

use burn::tensor::Tensor;
use burn::tensor::activation;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

/// The per-example loss `ℓ(z, y)` of outputs `z ∈ R^K` against targets `y`.
///
/// The objective is always the mean `L = (1/N) Σ_i ℓ(z_i, y_i)` over all `N` examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Softmax cross-entropy `ℓ = −Σ_k y_k log softmax(z)_k` (PyTorch `CrossEntropyLoss`);
    /// output Hessian `H_ℓ = diag(p) − ppᵀ`, `p = softmax(z)`.
    CrossEntropy,
    /// Mean squared error `ℓ = (1/K) Σ_k (z_k − y_k)²` (PyTorch `MSELoss` on `[N, K]`);
    /// output Hessian `H_ℓ = (2/K) I`.
    MeanSquaredError,
}

impl Loss {
    /// `Σ_i ℓ(z_i, y_i)` over the batch (a 1-element tensor), differentiable twice.
    pub fn sum<B: Backend>(&self, outputs: Tensor<B, 2>, targets: Tensor<B, 2>) -> Tensor<B, 1> {
        match self {
            Loss::CrossEntropy => (activation::log_softmax(outputs, 1) * targets).sum().neg(),
            Loss::MeanSquaredError => {
                let k = outputs.dims()[1] as f64;
                let d = outputs - targets;
                (d.clone() * d).sum().mul_scalar(1.0 / k)
            }
        }
    }

    /// The mean loss `(1/B) Σ_{i∈batch} ℓ_i` of a training model (on an autodiff backend) on a
    /// batch held on the inner backend — the quantity whose gradient a mini-batch step takes.
    pub fn batch_mean<AB, M, const D: usize>(
        &self,
        model: &M,
        batch: &crate::Batch<AB::InnerBackend, D>,
        mode: crate::BatchNormMode,
    ) -> Tensor<AB, 1>
    where
        AB: burn::tensor::backend::AutodiffBackend,
        M: crate::Network<AB, D>,
    {
        let x = Tensor::<AB, D>::from_inner(batch.inputs.clone());
        let y = Tensor::<AB, 2>::from_inner(batch.targets.matrix().clone());
        self.sum(model.output(x, mode), y)
            .mul_scalar(1.0 / batch.len() as f64)
    }

    /// `H_ℓ(z_i) u_i` for every example (rows of `outputs` and `u`, both `[N, K]`).
    pub fn output_hessian_product<B: Backend>(
        &self,
        outputs: Tensor<B, 2>,
        u: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        match self {
            Loss::CrossEntropy => {
                let p = activation::softmax(outputs, 1);
                let pu = p.clone() * u;
                let s = pu.clone().sum_dim(1);
                pu - p * s
            }
            Loss::MeanSquaredError => {
                let k = outputs.dims()[1] as f64;
                u.mul_scalar(2.0 / k)
            }
        }
    }

    /// Name used in summaries and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::CrossEntropy => "cross_entropy",
            Loss::MeanSquaredError => "mse",
        }
    }
}
