//! `curvature spectrum`: the Hessian, GGN or Hessian − GGN spectrum of a model at given weights
//! over a dataset — by Lanczos / SLQ with exact Hessian-vector products, or exactly (`dense`)
//! for small models.

use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::backend::Backend;
use curvature_collective::PeerGroupConfig;
use curvature_core::{
    BatchNormMode, Block, CurvatureModel, DenseReferenceConfig, LanczosConfig, LinearOperator,
    Loss, Objective, OutlierRule, ParamLayout, QuadratureRun, SlqConfig, SpectralDensity,
    SpectrumConfig, SpectrumSummary, dense_matrix, dense_spectrum, spectrum,
};
use curvature_data::{AugmentedStream, ClassificationData};
use serde::Serialize;

use crate::backend::BackendChoice;
use crate::config::TrainConfig;
use crate::error::{Result, invalid, require_positive};
use crate::names::{AugmentKind, OperatorKind, SplitKind};
use crate::peers::on_peers;
use crate::plot::{StemChart, check_format, save};
use crate::progress::{Counted, Progress, ProgressMode};
use crate::setup::{INPUT_RANK, ModelVisitor, load_weights, split, with_model};

/// What to measure.
#[derive(Debug, Clone)]
pub struct SpectrumRequest {
    /// Model and data (names, sizes, seed of the split).
    pub config: TrainConfig,
    /// Weights (safetensors, PyTorch names); `None` = the seeded initialisation.
    pub weights: Option<PathBuf>,
    /// Which part of the data.
    pub split: SplitKind,
    /// The curvature operator.
    pub operator: OperatorKind,
    /// Batch-norm mode.
    pub bn_mode: BatchNormMode,
    /// Lanczos steps `m`.
    pub steps: usize,
    /// Random start vectors `n_v`.
    pub vectors: usize,
    /// How outliers above the bulk are counted.
    pub outliers: OutlierRule,
    /// Seed of the start vectors.
    pub seed: u64,
    /// Exact eigenvalues from the dense matrix (small models).
    pub dense: bool,
    /// Examples per batch of the objective.
    pub batch_size: usize,
    /// Measure over a stream of this many augmented training examples (the "true" Hessian of
    /// Granziol et al., *Towards understanding the true loss surface*, §6) instead of the plain
    /// training set: the run's `augment`, or `crop-flip` if it has none.
    pub augmented: Option<usize>,
    /// Restrict to one parameter block (e.g. `layers.0.weight`): the diagonal block of the
    /// operator, i.e. that layer's curvature.
    pub block: Option<String>,
    /// Draw the stem plot (Ritz values and weights, log y) to this `.svg` or `.png` file.
    pub plot: Option<PathBuf>,
    /// Add the Gaussian-smoothed density to the plot.
    pub smooth: bool,
    /// Progress output.
    pub progress: ProgressMode,
    /// Backend, device and precision.
    pub backend: BackendChoice,
    /// Data parallelism: the batches are shared between this many peers (threads, peer `q`
    /// on device `d + q`), each evaluates its share and one all-reduce per product sums
    /// them (`curvature_collective`). One peer: no group.
    pub peers: PeerGroupConfig,
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
    require_positive(&[
        ("steps", request.steps),
        ("vectors", request.vectors),
        ("batch_size", request.batch_size),
    ])?;
    if request.augmented.is_some() && request.split != SplitKind::Train {
        return Err(invalid(
            "augmented",
            request.split,
            "augments the training split only (use --split train)",
        ));
    }
    if request.augmented == Some(0) {
        return Err(invalid("augmented", 0, "must be positive"));
    }
    request.peers.validate()?;
    if request.peers.total_peers() > 1 && request.augmented.is_some() {
        return Err(invalid(
            "peers",
            request.peers.peers,
            "an augmented stream is drawn in one process; use --peers 1 with --augmented",
        ));
    }
    if let Some(path) = &request.plot {
        check_format(path)?;
    }
    let data = split(&request.config, request.split)?;
    let (example, k) = (data.example_shape.clone(), data.num_classes);
    let visitor = WithModel {
        request,
        data: &data,
    };
    with_model(&request.config, &request.backend, &example, k, visitor)
}

/// The spectrum of whichever backend and model the request names.
struct WithModel<'a> {
    request: &'a SpectrumRequest,
    data: &'a curvature_data::ClassificationData,
}

impl ModelVisitor for WithModel<'_> {
    type Output = SpectrumResult;
    fn visit<BB: Backend, M: CurvatureModel<BB, INPUT_RANK>>(
        self,
        model: M,
        device: &BB::Device,
    ) -> Result<SpectrumResult> {
        let (request, data) = (self.request, self.data);
        let model = match &request.weights {
            Some(path) => load_weights(model, path)?,
            None => model,
        };
        if request.peers.total_peers() > 1 {
            return sharded(request, data, model, device);
        }
        let objective = match request.augmented {
            Some(len) => {
                let side = data
                    .example_shape
                    .iter()
                    .skip(1)
                    .copied()
                    .min()
                    .unwrap_or(0);
                let kind = match request.config.augment {
                    AugmentKind::None => AugmentKind::CropFlip,
                    other => other,
                };
                let augmentation = kind.for_side(side).expect("not AugmentKind::None");
                let stream = AugmentedStream::<BB>::new(
                    Arc::new(data.clone()),
                    augmentation,
                    len,
                    request.batch_size,
                    request.seed,
                    device,
                )?;
                Objective::new(model, Loss::CrossEntropy, stream)?
            }
            None => {
                let batches =
                    data.batches::<BB, INPUT_RANK>(request.batch_size.min(data.len()), device)?;
                Objective::new(model, Loss::CrossEntropy, batches)?
            }
        };
        operators(request, objective.with_bn_mode(request.bn_mode))
    }
}

/// The spectrum on `request.peers` peers ([`on_peers`]): every peer runs the same Lanczos on
/// the sharded operator; peer 0 reports (and shows progress, and draws the plot).
fn sharded<BB: Backend, M: CurvatureModel<BB, INPUT_RANK>>(
    request: &SpectrumRequest,
    data: &ClassificationData,
    model: M,
    device: &BB::Device,
) -> Result<SpectrumResult> {
    let quiet = SpectrumRequest {
        plot: None,
        progress: ProgressMode::Quiet,
        ..request.clone()
    };
    let (mut result, group) = on_peers(
        &request.peers,
        data,
        request.batch_size,
        model,
        device,
        request.bn_mode,
        |rank, objective| operators(if rank == 0 { request } else { &quiet }, objective),
    )?;
    if !result.text.ends_with('\n') {
        result.text.push('\n');
    }
    result.text.push_str(&group.line());
    if let Some(fields) = result.json.as_object_mut() {
        fields.insert(
            "data_parallel".into(),
            serde_json::to_value(&group).expect("serialisable"),
        );
    }
    Ok(result)
}

/// The requested operator (and block) of `objective`, measured.
fn operators<BB: Backend, M: CurvatureModel<BB, INPUT_RANK>>(
    request: &SpectrumRequest,
    objective: Objective<BB, M, INPUT_RANK>,
) -> Result<SpectrumResult> {
    let layout = objective.layout();
    match request.operator {
        OperatorKind::Hessian => pick_block(request, layout, objective.hessian()),
        OperatorKind::Ggn => pick_block(request, layout, objective.ggn()),
        OperatorKind::HessianMinusGgn => pick_block(request, layout, objective.hessian_minus_ggn()),
    }
}

fn pick_block<BB: Backend, A: LinearOperator<BB>>(
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
            None => request.operator.to_string(),
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
pub fn lanczos_summary<BB: Backend, A: LinearOperator<BB>>(
    op: &A,
    steps: usize,
    vectors: usize,
    seed: u64,
    outliers: OutlierRule,
    progress: ProgressMode,
) -> Result<SpectrumSummary> {
    let config = SpectrumConfig::new().with_outliers(outliers).with_slq(
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
                residuals: Vec::new(),
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

fn run<BB: Backend, A: LinearOperator<BB>>(
    request: &SpectrumRequest,
    op: &A,
) -> Result<SpectrumResult> {
    if request.dense {
        let matrix = dense_matrix(op, DenseReferenceConfig::default())?;
        let s = dense_spectrum(&matrix);
        let ev = &s.eigenvalues;
        let (lo, hi) = (ev[0], ev[ev.len() - 1]);
        let trace: f64 = ev.iter().sum();
        let json = serde_json::to_value(DenseJson {
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
        return Ok(SpectrumResult {
            text,
            json: with_provenance(json, request),
        });
    }
    let summary = lanczos_summary(
        op,
        request.steps,
        request.vectors,
        request.seed,
        request.outliers,
        request.progress,
    )?;
    let json = serde_json::to_value(&summary).expect("serialisable");
    Ok(SpectrumResult {
        text: summary.to_string(),
        json: with_provenance(json, request),
    })
}

/// What was measured, beside the numbers: the operator, the split, the batch-norm mode and
/// the parameter block (`null`: all), so that a JSON file says which spectrum it holds.
fn with_provenance(mut json: serde_json::Value, request: &SpectrumRequest) -> serde_json::Value {
    if let Some(fields) = json.as_object_mut() {
        for (key, value) in [
            ("operator", serde_json::to_value(request.operator)),
            ("split", serde_json::to_value(request.split)),
            ("bn_mode", serde_json::to_value(request.bn_mode)),
            ("block", serde_json::to_value(&request.block)),
        ] {
            fields.insert(key.to_owned(), value.expect("serialisable"));
        }
    }
    json
}
