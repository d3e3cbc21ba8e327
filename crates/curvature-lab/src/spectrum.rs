//! `curvature spectrum`: the Hessian, GGN or Hessian − GGN spectrum of a model at given weights
//! over a dataset — by Lanczos / SLQ with exact Hessian-vector products, or exactly (`dense`)
//! for small models.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use curvature_core::{
    BatchNormMode, Block, CurvatureModel, DenseReferenceConfig, LanczosConfig, LinearOperator,
    Loss, Objective, ParamLayout, QuadratureRun, SlqConfig, SpectralDensity, SpectrumConfig,
    SpectrumSummary, dense_matrix, dense_spectrum, spectrum,
};
use serde::Serialize;

use crate::config::TrainConfig;
use crate::error::{LabError, Result, require_positive};
use crate::plot::{StemChart, save};
use crate::progress::{Counted, Progress, ProgressMode};
use crate::setup::{AnyModel, build_model, load_weights, split};
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
    /// Restrict to one parameter block (e.g. `layers.0.weight`): the diagonal block of the
    /// operator, i.e. that layer's curvature.
    pub block: Option<String>,
    /// Draw the stem plot (Ritz values and weights, log y) to this `.svg` file.
    pub plot: Option<PathBuf>,
    /// Add the Gaussian-smoothed density to the plot.
    pub smooth: bool,
    /// Progress output.
    pub progress: ProgressMode,
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
    require_positive(&[
        ("steps", request.steps),
        ("vectors", request.vectors),
        ("batch_size", request.batch_size),
    ])?;
    let device = Default::default();
    B::seed(&device, request.config.seed);
    let data = split(&request.config, &request.split)?;
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
        Some(path) => load_weights(model, path)?,
        None => model,
    };
    let objective =
        Objective::new(model, Loss::CrossEntropy, batches)?.with_bn_mode(request.bn_mode);
    let layout = objective.layout();
    match request.operator.as_str() {
        "ggn" => pick_block(request, layout, objective.ggn()),
        "hessian-minus-ggn" => pick_block(request, layout, objective.hessian_minus_ggn()),
        _ => pick_block(request, layout, objective.hessian()),
    }
}

fn pick_block<A: LinearOperator<B>>(
    request: &SpectrumRequest,
    layout: &ParamLayout,
    op: A,
) -> Result<SpectrumResult> {
    let result = match &request.block {
        Some(name) => run(request, &Block::named(op, layout, name)?)?,
        None => run(request, &op)?,
    };
    if let Some(path) = &request.plot {
        let what = match &request.block {
            Some(b) => format!("{} block `{b}`", request.operator),
            None => request.operator.clone(),
        };
        let title = if request.dense {
            format!("{what}: exact eigenvalues (each of weight 1/P)")
        } else {
            format!(
                "{what}: Lanczos, m = {}, n_v = {}",
                request.steps, request.vectors
            )
        };
        save(&result.stems(&title, request.smooth).render(), path)?;
    }
    Ok(result)
}

/// Lanczos / SLQ summary of `op` with `steps` steps from `vectors` seeded start vectors,
/// showing progress (one unit per operator product).
///
/// # Errors
/// Curvature errors.
pub fn lanczos_summary<A: LinearOperator<B>>(
    op: &A,
    steps: usize,
    vectors: usize,
    seed: u64,
    progress: ProgressMode,
) -> Result<SpectrumSummary> {
    let config = SpectrumConfig::new().with_slq(
        SlqConfig::new().with_num_vectors(vectors).with_lanczos(
            LanczosConfig::new()
                .with_steps(steps.min(op.dim()))
                .with_seed(seed),
        ),
    );
    let counted = Counted {
        inner: op,
        progress: Progress::new("lanczos", steps.min(op.dim()) * vectors, progress).into(),
    };
    let summary = spectrum(&counted, &config)?;
    counted.progress.borrow_mut().finish();
    Ok(summary)
}

/// The single-vector stem plot of `(values, weights)` (the papers' spectral plots), with the
/// Gaussian-smoothed density (kernel width 1 % of the range) when `smooth`.
pub fn stem_chart(values: &[f64], weights: &[f64], title: &str, smooth: bool) -> StemChart {
    let density = smooth.then(|| {
        let d = SpectralDensity {
            dim: values.len(),
            runs: vec![QuadratureRun {
                nodes: values.to_vec(),
                weights: weights.to_vec(),
            }],
        };
        let (lo, hi) = (
            values.iter().copied().fold(f64::INFINITY, f64::min),
            values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let sigma = ((hi - lo) / 100.0).max(1e-12);
        let grid = d.grid(400, sigma);
        let p = d.smoothed(&grid, sigma).unwrap_or_default();
        // Density × kernel width: comparable in height with the stems' weights.
        grid.into_iter()
            .zip(p)
            .map(|(x, y)| (x, y * sigma))
            .collect()
    });
    StemChart {
        title: title.into(),
        x_label: "eigenvalue".into(),
        stems: values
            .iter()
            .copied()
            .zip(weights.iter().copied())
            .collect(),
        density,
    }
}

impl SpectrumResult {
    /// The stem chart of this result: Ritz values and weights (Lanczos) or the exact
    /// eigenvalues with weight `1/P` each (dense).
    pub fn stems(&self, title: &str, smooth: bool) -> StemChart {
        let nums = |key: &str| -> Vec<f64> {
            self.json[key]
                .as_array()
                .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
                .unwrap_or_default()
        };
        let (values, weights) = if self.json.get("eigenvalues").is_some() {
            let ev = nums("eigenvalues");
            let w = vec![1.0 / ev.len().max(1) as f64; ev.len()];
            (ev, w)
        } else {
            (nums("ritz_values"), nums("ritz_weights"))
        };
        stem_chart(&values, &weights, title, smooth)
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
            "exact spectrum of the {}-dimensional {}{} (dense)\n  λ_max {hi:>13.6e}\n  λ_min {lo:>13.6e}\n  trace {trace:>13.6e}\n  asymmetry of the built matrix {:.1e}\n",
            ev.len(),
            request.operator,
            request
                .block
                .as_ref()
                .map_or(String::new(), |b| format!(" block `{b}`")),
            s.asymmetry
        );
        return Ok(SpectrumResult { text, json });
    }
    let summary = lanczos_summary(
        op,
        request.steps,
        request.vectors,
        request.seed,
        request.progress,
    )?;
    let json = serde_json::to_value(&summary).expect("serialisable");
    Ok(SpectrumResult {
        text: summary.to_string(),
        json,
    })
}
