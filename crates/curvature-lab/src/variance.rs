//! `curvature variance`: the Hessian variance of Granziol & Baskerville (eq. 15) at given
//! weights, its standard error, the per-example variance and the optimal damping it implies for
//! a training batch size.
//!
//! The estimator is [`curvature_core::hessian_variance`] (unbiased by default; Algorithm 1 as
//! printed on request): on `n` batches of the estimation size `B_est` covering a sub-sample of
//! `S` examples, `V_batch = P⁻¹ Tr Σ_i w_i (H_i − H̄)²` averaged over random unit vectors; the
//! per-example variance `s²/P = V_batch · S/(n − 1)`; and `δ* = (s²/P)(1/B − 1/N)` for training
//! batches of `B` drawn from the `N` examples of the split.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use curvature_collective::PeerGroupConfig;
use curvature_core::{
    BatchNormMode, CurvatureModel, HessianVariance, HessianVarianceConfig, Loss, Objective,
    VarianceEstimator, hessian_variance,
};
use serde::Serialize;

use crate::backend::BackendChoice;
use crate::config::TrainConfig;
use crate::error::{Result, require_positive};
use crate::names::SplitKind;
use crate::peers::{DataParallel, on_peers};
use crate::setup::{INPUT_RANK, ModelVisitor, load_weights, split, with_model};

/// What to measure.
#[derive(Debug, Clone)]
pub struct VarianceRequest {
    /// Model and data.
    pub config: TrainConfig,
    /// Weights (safetensors); `None` = the seeded initialisation.
    pub weights: Option<PathBuf>,
    /// `train` or `val`.
    pub split: SplitKind,
    /// Mini-batch size `B_est` of the `H_i` (128 in the paper).
    pub batch_size: usize,
    /// Sub-sample size `S` (10 000 in the paper).
    pub max_examples: usize,
    /// Random unit vectors averaged (≥ 2 for a standard error).
    pub vectors: usize,
    /// The single-vector estimator.
    pub estimator: VarianceEstimator,
    /// Training batch size `B` the damping `δ*` is reported for.
    pub train_batch_size: usize,
    /// Batch-norm mode.
    pub bn_mode: BatchNormMode,
    /// Seed of the vectors.
    pub seed: u64,
    /// Backend, device and precision.
    pub backend: BackendChoice,
    /// Data parallelism: the estimation batches shared between this many peers, their
    /// accumulators merged across them ([`curvature_core::hessian_variance`]).
    pub peers: PeerGroupConfig,
}

/// The result (serialised as the JSON of `--json`: the fields of [`HessianVariance`] and those
/// below).
#[derive(Debug, Clone, Serialize)]
pub struct VarianceResult {
    /// The estimate.
    #[serde(flatten)]
    pub variance: HessianVariance,
    /// Estimation batch size `B_est`.
    pub batch_size: usize,
    /// What the estimator computes.
    pub estimator_description: &'static str,
    /// Training batch size `B` of `optimal_damping`.
    pub train_batch_size: usize,
    /// Examples `N` of the split (the training population of `optimal_damping`).
    pub population: usize,
    /// `δ* = (s²/P)(1/B − 1/N)` (eq. 15 for training batches of `B`; `null` for one batch).
    pub optimal_damping: Option<f64>,
    /// Its standard error over the vectors.
    pub optimal_damping_stderr: Option<f64>,
    /// What the peers did (`null`: one peer).
    pub data_parallel: Option<DataParallel>,
}

/// `value ± error`, or why there is no error bar.
fn with_error(value: f64, error: Option<f64>) -> String {
    match error {
        Some(e) => format!("{value:>13.6e} ± {e:.2e}"),
        None => format!("{value:>13.6e} (one vector: no error bar)"),
    }
}

impl std::fmt::Display for VarianceResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = &self.variance;
        writeln!(
            f,
            "Hessian variance over {} batch(es) of {} ({} examples), {} random vector(s)",
            v.batches,
            self.batch_size,
            v.examples,
            v.vectors()
        )?;
        writeln!(f, "  estimator             {}", self.estimator_description)?;
        writeln!(
            f,
            "  batch variance        {}   P⁻¹ Tr Σ w_i (H_i − H̄)², batches of {}",
            with_error(v.batch_variance, v.batch_variance_stderr),
            self.batch_size
        )?;
        match v.per_example_variance {
            Some(p) => writeln!(
                f,
                "  per-example variance  {}   × S/(n − 1)",
                with_error(p, v.per_example_variance_stderr)
            )?,
            None => writeln!(
                f,
                "  per-example variance  not estimable from a single batch (use a smaller --batch-size)"
            )?,
        }
        writeln!(
            f,
            "  vᵀH̄v                  {:>13.6e}",
            v.mean_quadratic_form
        )?;
        writeln!(f, "  Σ w_i ‖H_i v‖²        {:>13.6e}", v.mean_squared_norm)?;
        match self.optimal_damping {
            Some(d) => writeln!(
                f,
                "  optimal damping δ*    {}   eq. 15 for training batches of {} from {} examples: (s²/P)(1/B − 1/N)",
                with_error(d, self.optimal_damping_stderr),
                self.train_batch_size,
                self.population
            ),
            None => writeln!(
                f,
                "  optimal damping δ*    not estimable from a single batch"
            ),
        }?;
        match &self.data_parallel {
            Some(group) => write!(f, "{}", group.line()),
            None => Ok(()),
        }
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
        ("vectors", request.vectors),
        ("train_batch_size", request.train_batch_size),
    ])?;
    request.peers.validate()?;
    let data = split(&request.config, request.split)?;
    let n = data.len();
    let batch = request.batch_size.min(n);
    let visitor = WithModel {
        request,
        data: data.take(request.max_examples),
        batch,
    };
    let (v, data_parallel) = with_model(
        &request.config,
        &request.backend,
        &data.example_shape,
        data.num_classes,
        visitor,
    )?;
    Ok(VarianceResult {
        optimal_damping: v.damping_for(request.train_batch_size, Some(n)),
        optimal_damping_stderr: v.damping_stderr_for(request.train_batch_size, Some(n)),
        estimator_description: v.estimator.description(),
        variance: v,
        batch_size: batch,
        train_batch_size: request.train_batch_size,
        population: n,
        data_parallel,
    })
}

/// The Hessian variance of whichever model the request names.
struct WithModel<'a> {
    request: &'a VarianceRequest,
    data: curvature_data::ClassificationData,
    batch: usize,
}

impl ModelVisitor for WithModel<'_> {
    type Output = (HessianVariance, Option<DataParallel>);
    fn visit<BB: Backend, M: CurvatureModel<BB, INPUT_RANK>>(
        self,
        model: M,
        device: &BB::Device,
    ) -> Result<Self::Output> {
        let request = self.request;
        let model = match &request.weights {
            Some(p) => load_weights(model, p)?,
            None => model,
        };
        let config = HessianVarianceConfig::new()
            .with_max_examples(request.max_examples)
            .with_vectors(request.vectors)
            .with_estimator(request.estimator)
            .with_seed(request.seed);
        if request.peers.total_peers() > 1 {
            let (v, group) = on_peers(
                &request.peers,
                &self.data,
                self.batch,
                model,
                device,
                request.bn_mode,
                |_, objective| Ok(hessian_variance(&objective, &config)?),
            )?;
            return Ok((v, Some(group)));
        }
        let batches = self.data.batches::<BB, INPUT_RANK>(self.batch, device)?;
        let o = Objective::new(model, Loss::CrossEntropy, batches)?.with_bn_mode(request.bn_mode);
        Ok((hessian_variance(&o, &config)?, None))
    }
}
