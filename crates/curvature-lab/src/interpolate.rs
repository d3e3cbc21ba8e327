//! `curvature interpolate`: loss and accuracy along the line `θ(α) = (1 − α) θ_A + α θ_B`
//! between two weight files (Sagun et al., *Empirical Analysis of the Hessian of
//! Over-Parametrized Neural Networks*, §4: a line between a small-batch and a large-batch
//! solution shows no barrier). Batch-norm running statistics, if any, are those of `θ_A`.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use curvature_core::{CurvatureModel, Loss, Objective};
use serde::Serialize;

use crate::backend::BackendChoice;
use crate::config::TrainConfig;
use crate::csv_table;
use crate::error::{Result, invalid, io};
use crate::plot::{LineChart, Series, save_both};
use crate::progress::{Progress, ProgressMode};
use crate::setup::{INPUT_RANK, ModelVisitor, load_weights, shaped_dataset, with_model};

/// The line to walk.
#[derive(Debug, Clone)]
pub struct InterpolateRequest {
    /// Model and data.
    pub config: TrainConfig,
    /// Weights at `α = 0`.
    pub from: PathBuf,
    /// Weights at `α = 1`.
    pub to: PathBuf,
    /// First `α`.
    pub start: f64,
    /// Last `α`.
    pub end: f64,
    /// Number of points (≥ 2).
    pub points: usize,
    /// Progress output.
    pub progress: ProgressMode,
    /// Backend, device and precision.
    pub backend: BackendChoice,
}

/// One point of the line.
#[derive(Debug, Clone, Serialize)]
pub struct LinePoint {
    /// `α`.
    pub alpha: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy.
    pub train_accuracy: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
}

/// Evaluate the line; writes `interpolation.csv`, `interpolation-loss.svg`/`.png` and
/// `interpolation-accuracy.svg`/`.png` into `out`.
///
/// # Errors
/// Invalid sizes, unreadable or mismatched weights, file errors.
pub fn interpolate(request: &InterpolateRequest, out: &Path) -> Result<Vec<LinePoint>> {
    request.config.validate()?;
    if request.points < 2 {
        return Err(invalid("points", request.points, "needs at least 2 points"));
    }
    if !(request.start.is_finite() && request.end.is_finite() && request.start < request.end) {
        return Err(invalid(
            "range",
            format!("{}:{}", request.start, request.end),
            "needs finite START < END",
        ));
    }
    let (train, val) = shaped_dataset(&request.config)?;
    let visitor = Walk {
        request,
        train: &train,
        val: &val,
    };
    let points = with_model(
        &request.config,
        &request.backend,
        &train.example_shape,
        train.num_classes,
        visitor,
    )?;
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let header = [
        "alpha",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
    ];
    let rows: Vec<Vec<String>> = std::iter::once(header.map(String::from).to_vec())
        .chain(points.iter().map(|p| {
            std::iter::once(p.alpha.to_string())
                .chain(
                    [p.train_loss, p.train_accuracy, p.val_loss, p.val_accuracy]
                        .map(|x| format!("{x:.6}")),
                )
                .collect()
        }))
        .collect();
    csv_table::write(&out.join("interpolation.csv"), &rows)?;
    let series = |name: &str, f: fn(&LinePoint) -> f64| Series {
        name: name.into(),
        points: points.iter().map(|p| (p.alpha, f(p))).collect(),
    };
    for (file, title, log_y, s) in [
        (
            "interpolation-loss",
            "loss along (1 − α) θ_A + α θ_B",
            true,
            [
                series("train", |p| p.train_loss),
                series("validation", |p| p.val_loss),
            ],
        ),
        (
            "interpolation-accuracy",
            "accuracy along (1 − α) θ_A + α θ_B",
            false,
            [
                series("train", |p| p.train_accuracy),
                series("validation", |p| p.val_accuracy),
            ],
        ),
    ] {
        let chart = LineChart {
            title: title.into(),
            x_label: "α".into(),
            y_label: if log_y { "loss" } else { "accuracy" }.into(),
            log_y,
            series: s.to_vec(),
        };
        save_both(&chart.render(), out, file)?;
    }
    Ok(points)
}

/// The walk for whichever model the request names.
struct Walk<'a> {
    request: &'a InterpolateRequest,
    train: &'a curvature_data::ClassificationData,
    val: &'a curvature_data::ClassificationData,
}

impl ModelVisitor for Walk<'_> {
    type Output = Vec<LinePoint>;
    fn visit<BB: Backend, M: CurvatureModel<BB, INPUT_RANK>>(
        self,
        model: M,
        device: &BB::Device,
    ) -> Result<Self::Output> {
        let train = self
            .train
            .batches::<BB, INPUT_RANK>(self.train.len().min(1000), device)?;
        let val = self
            .val
            .batches::<BB, INPUT_RANK>(self.val.len().min(1000), device)?;
        walk(self.request, model, train, val)
    }
}

fn walk<BB: Backend, M: CurvatureModel<BB, D>, const D: usize>(
    request: &InterpolateRequest,
    model: M,
    train: Vec<curvature_core::Batch<BB, D>>,
    val: Vec<curvature_core::Batch<BB, D>>,
) -> Result<Vec<LinePoint>> {
    let a = load_weights(model.clone(), &request.from)?;
    let b = load_weights(model, &request.to)?;
    let theta_b = Objective::new(b, Loss::CrossEntropy, val.clone())?.params();
    let mut on_train = Objective::new(a.clone(), Loss::CrossEntropy, train)?;
    let mut on_val = Objective::new(a, Loss::CrossEntropy, val)?;
    let theta_a = on_train.params();
    let direction = theta_b - theta_a.clone();
    let mut bar = Progress::new("interpolate", request.points, request.progress);
    let mut out = Vec::with_capacity(request.points);
    for i in 0..request.points {
        let alpha =
            request.start + (request.end - request.start) * i as f64 / (request.points - 1) as f64;
        let theta = theta_a.clone() + direction.clone().mul_scalar(alpha);
        on_train.set_params(theta.clone())?;
        on_val.set_params(theta)?;
        let (t, v) = (on_train.evaluate()?, on_val.evaluate()?);
        out.push(LinePoint {
            alpha,
            train_loss: t.loss,
            train_accuracy: t.accuracy.unwrap_or(0.0),
            val_loss: v.loss,
            val_accuracy: v.accuracy.unwrap_or(0.0),
        });
        bar.advance(1, &format!("α {alpha:.2}"));
    }
    bar.finish();
    Ok(out)
}
