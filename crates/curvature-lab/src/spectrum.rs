//! `curvature spectrum`: the Hessian, GGN or Hessian − GGN spectrum of a model at given weights
//! over a dataset — by Lanczos / SLQ with exact Hessian-vector products, or exactly (`dense`)
//! for small models.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use curvature_core::{
    BatchNormMode, CurvatureModel, DenseReferenceConfig, LanczosConfig, LinearOperator, Loss,
    Objective, SlqConfig, SpectrumConfig, dense_matrix, dense_spectrum, spectrum,
};
use curvature_nets::{load_safetensors, module_path};
use serde::Serialize;

use crate::config::TrainConfig;
use crate::error::{LabError, Result, invalid, io};
use crate::setup::{AnyModel, build_model, dataset};
use crate::train::B;

/// Operators whose spectrum can be taken.
pub const OPERATORS: [&str; 3] = ["hessian", "ggn", "hessian-minus-ggn"];

/// What to measure.
#[derive(Debug, Clone)]
pub struct SpectrumRequest {
    /// Model and data (names, sizes, seed of the split).
    pub config: TrainConfig,
    /// Weights (safetensors, PyTorch names); `None` = the seeded initialisation.
    pub weights: Option<PathBuf>,
    /// `train` or `val`.
    pub split: String,
    /// One of [`OPERATORS`].
    pub operator: String,
    /// Batch-norm mode.
    pub bn_mode: BatchNormMode,
    /// Lanczos steps `m`.
    pub steps: usize,
    /// Random start vectors `n_v`.
    pub vectors: usize,
    /// Seed of the start vectors.
    pub seed: u64,
    /// Exact eigenvalues from the dense matrix (small models).
    pub dense: bool,
    /// Examples per batch of the objective.
    pub batch_size: usize,
}

/// The result: a printable summary and its JSON form.
#[derive(Debug, Clone, Serialize)]
pub struct SpectrumResult {
    /// Human-readable summary.
    #[serde(skip)]
    pub text: String,
    /// JSON document (Lanczos: the `SpectrumSummary` fields; dense: `eigenvalues` and extremes).
    pub json: serde_json::Value,
}

#[derive(Serialize)]
struct DenseJson<'a> {
    operator: &'a str,
    num_params: usize,
    eigenvalues: &'a [f64],
    lambda_max: f64,
    lambda_min: f64,
    trace: f64,
    asymmetry: f64,
    estimators: &'a str,
}

/// Measure the spectrum described by `request`.
///
/// # Errors
/// Invalid names or sizes, unreadable weights, curvature errors (e.g. `dense` on a model too
/// large for a dense matrix).
pub fn measure(request: &SpectrumRequest) -> Result<SpectrumResult> {
    request.config.validate()?;
    if !OPERATORS.contains(&request.operator.as_str()) {
        return Err(LabError::UnknownName {
            kind: "operator",
            name: request.operator.clone(),
            valid: OPERATORS.to_vec(),
        });
    }
    if !matches!(request.split.as_str(), "train" | "val") {
        return Err(LabError::UnknownName {
            kind: "split",
            name: request.split.clone(),
            valid: vec!["train", "val"],
        });
    }
    for (field, v) in [
        ("steps", request.steps),
        ("vectors", request.vectors),
        ("batch_size", request.batch_size),
    ] {
        if v == 0 {
            return Err(invalid(field, v, "must be positive"));
        }
    }
    let device = Default::default();
    B::seed(&device, request.config.seed);
    let (train, val) = dataset(&request.config)?;
    let data = if request.split == "train" { train } else { val };
    let (d, k) = (data.example_len(), data.num_classes);
    let batches = data.batches::<B, 2>(request.batch_size.min(data.len()), &device)?;
    match build_model::<B>(&request.config, d, k, &device)? {
        AnyModel::Logistic(m) => with_model(request, m, batches),
        AnyModel::Mlp(m) => with_model(request, m, batches),
    }
}

fn with_model<M: CurvatureModel<B, 2>>(
    request: &SpectrumRequest,
    model: M,
    batches: Vec<curvature_core::Batch<B, 2>>,
) -> Result<SpectrumResult> {
    let model = match &request.weights {
        Some(path) => {
            if !path.exists() {
                return Err(io(path, "weights file not found"));
            }
            let (model, unused) = load_safetensors(model, path, &module_path)?;
            if !unused.is_empty() {
                eprintln!(
                    "warning: {} tensor(s) in {} are not used by the model: {}",
                    unused.len(),
                    path.display(),
                    unused.join(", ")
                );
            }
            model
        }
        None => model,
    };
    let objective =
        Objective::new(model, Loss::CrossEntropy, batches)?.with_bn_mode(request.bn_mode);
    match request.operator.as_str() {
        "ggn" => run(request, &objective.ggn()),
        "hessian-minus-ggn" => run(request, &objective.hessian_minus_ggn()),
        _ => run(request, &objective.hessian()),
    }
}

fn run<A: LinearOperator<B>>(request: &SpectrumRequest, op: &A) -> Result<SpectrumResult> {
    if request.dense {
        let matrix = dense_matrix(op, DenseReferenceConfig::default())?;
        let s = dense_spectrum(&matrix);
        let ev = &s.eigenvalues;
        let (lo, hi) = (ev[0], ev[ev.len() - 1]);
        let trace: f64 = ev.iter().sum();
        let json = serde_json::to_value(DenseJson {
            operator: &request.operator,
            num_params: ev.len(),
            eigenvalues: ev,
            lambda_max: hi,
            lambda_min: lo,
            trace,
            asymmetry: s.asymmetry,
            estimators: "dense: the matrix built column by column from exact products, eigendecomposed by nalgebra",
        })
        .expect("serialisable");
        let text = format!(
            "exact spectrum of the {}-dimensional {} (dense)\n  λ_max {hi:>13.6e}\n  λ_min {lo:>13.6e}\n  trace {trace:>13.6e}\n  asymmetry of the built matrix {:.1e}\n",
            ev.len(),
            request.operator,
            s.asymmetry
        );
        return Ok(SpectrumResult { text, json });
    }
    let config = SpectrumConfig::new().with_slq(
        SlqConfig::new()
            .with_num_vectors(request.vectors)
            .with_lanczos(
                LanczosConfig::new()
                    .with_steps(request.steps)
                    .with_seed(request.seed),
            ),
    );
    let summary = spectrum(op, &config)?;
    let json = serde_json::to_value(&summary).expect("serialisable");
    Ok(SpectrumResult {
        text: summary.to_string(),
        json,
    })
}
