//! `curvature variance`: the Hessian variance of Granziol & Baskerville (Algorithm 1, eq. 15)
//! at given weights and the optimal damping it implies.
//!
//! With mini-batch Hessians `H_i` of batch size `B` and a unit Gaussian `v`,
//! `σ² = mean_i ‖H_i v‖² − (mean_i vᵀH_i v)²`; the optimal damping of a preconditioned step is
//! `δ* = P⁻¹ Tr X² ≈ σ²` (eq. 15). The batch variance relates to the per-example one by
//! `σ²_B = σ²_1 (1/B − 1/N)` for `N` examples, reported as `per_example_variance`.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use curvature_core::{
    BatchNormMode, CurvatureModel, HessianVarianceConfig, Loss, Objective, hessian_variance,
};
use serde::Serialize;

use crate::backend::BackendChoice;
use crate::config::TrainConfig;
use crate::error::{Result, require_positive};
use crate::setup::{ModelVisitor, load_weights, split, with_model};

/// What to measure.
#[derive(Debug, Clone)]
pub struct VarianceRequest {
    /// Model and data.
    pub config: TrainConfig,
    /// Weights (safetensors); `None` = the seeded initialisation.
    pub weights: Option<PathBuf>,
    /// `train` or `val`.
    pub split: String,
    /// Mini-batch size `B` of the `H_i` (128 in the paper).
    pub batch_size: usize,
    /// Sub-sample size `S` (10 000 in the paper).
    pub max_examples: usize,
    /// Batch-norm mode.
    pub bn_mode: BatchNormMode,
    /// Seed of `v`.
    pub seed: u64,
    /// Backend, device and precision.
    pub backend: BackendChoice,
}

/// The result (serialised as the JSON of `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct VarianceResult {
    /// `σ²` of the batch Hessians.
    pub variance: f64,
    /// `vᵀH̄v`.
    pub mean_quadratic_form: f64,
    /// `mean ‖H_i v‖²`.
    pub mean_squared_norm: f64,
    /// Batches `n`.
    pub batches: usize,
    /// Examples used `S`.
    pub examples: usize,
    /// Batch size `B`.
    pub batch_size: usize,
    /// `δ* ≈ σ²` (eq. 15).
    pub optimal_damping: f64,
    /// `σ² / (1/B − 1/N)` (`null` when `B ≥ N`).
    pub per_example_variance: Option<f64>,
}

impl std::fmt::Display for VarianceResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "Hessian variance over {} batches of {} ({} examples), Algorithm 1",
            self.batches, self.batch_size, self.examples
        )?;
        writeln!(f, "  σ²                    {:>13.6e}", self.variance)?;
        writeln!(
            f,
            "  vᵀH̄v                  {:>13.6e}",
            self.mean_quadratic_form
        )?;
        writeln!(
            f,
            "  mean ‖H_i v‖²         {:>13.6e}",
            self.mean_squared_norm
        )?;
        if let Some(p) = self.per_example_variance {
            writeln!(f, "  per-example variance  {p:>13.6e}   σ² / (1/B − 1/N)")?;
        }
        writeln!(
            f,
            "  optimal damping δ*    {:>13.6e}   ≈ σ² (eq. 15)",
            self.optimal_damping
        )
    }
}

/// Measure the Hessian variance described by `request`.
///
/// # Errors
/// Invalid names or sizes, unreadable weights, curvature errors.
pub fn measure_variance(request: &VarianceRequest) -> Result<VarianceResult> {
    request.config.validate()?;
    require_positive(&[
        ("batch_size", request.batch_size),
        ("max_examples", request.max_examples),
    ])?;
    let data = split(&request.config, &request.split)?;
    let n = data.len();
    let batch = request.batch_size.min(n);
    let visitor = WithModel {
        request,
        data: data.take(request.max_examples),
        batch,
    };
    let v = with_model(
        &request.config,
        &request.backend,
        &data.example_shape,
        data.num_classes,
        visitor,
    )?;
    let factor = 1.0 / batch as f64 - 1.0 / n as f64;
    Ok(VarianceResult {
        variance: v.variance,
        mean_quadratic_form: v.mean_quadratic_form,
        mean_squared_norm: v.mean_squared_norm,
        batches: v.batches,
        examples: v.examples,
        batch_size: batch,
        optimal_damping: v.variance,
        per_example_variance: (factor > 0.0).then(|| v.variance / factor),
    })
}

/// Algorithm 1 on whichever model the request names.
struct WithModel<'a> {
    request: &'a VarianceRequest,
    data: curvature_data::ClassificationData,
    batch: usize,
}

impl ModelVisitor for WithModel<'_> {
    type Output = curvature_core::HessianVariance;
    fn visit<BB: Backend, M: CurvatureModel<BB, D>, const D: usize>(
        self,
        model: M,
        device: &BB::Device,
    ) -> Result<Self::Output> {
        let request = self.request;
        let batches = self.data.batches::<BB, D>(self.batch, device)?;
        let model = match &request.weights {
            Some(p) => load_weights(model, p)?,
            None => model,
        };
        let config = HessianVarianceConfig::new()
            .with_max_examples(request.max_examples)
            .with_seed(request.seed);
        let o = Objective::new(model, Loss::CrossEntropy, batches)?.with_bn_mode(request.bn_mode);
        Ok(hessian_variance(&o, &config)?)
    }
}
