//! `curvature sweep`: a grid of training runs (e.g. learning rate × damping), run one after
//! the other into `OUT/<key=value,…>/`, resumable, summarised as `summary.csv`,
//! `summary.md` and figures, each as SVG and PNG (see [`figures`]): a heat map of the chosen
//! metric (`heatmap`), heat maps of the training and validation error's distance from the best
//! setting's (`heatmap-{train,val}-error-gap`, the damping paper's Fig. 4) and the training
//! curves of every setting (`curves-{train,val}-error`, its Figs. 5–6).
//!
//! A `seed` axis makes the other points replicated experiments: `summary-over-seeds.csv`/`.md`
//! give the mean ± sample standard deviation of every final metric and λ_max per setting of the
//! other axes, and the figures show the mean.
//!
//! Re-running a sweep skips finished runs (`summary.json` present), resumes interrupted ones
//! from their checkpoint and starts the rest; a diverged run is recorded as such and the sweep
//! goes on. A second sweep (or run) started on the same directory while one is writing is
//! refused ([`crate::dir_lock`]).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::TrainConfig;
use crate::csv_table;
use crate::dir_lock::DirLock;
use crate::error::{LabError, Result, invalid, io, write_atomic};
use crate::names::Metric;
use crate::plot::{Heatmap, LineChart, Series, save_both};
use crate::train::{EpochMetrics, RunOptions, RunPaths, resume, train};

mod figures;
mod grid;
mod summary;

pub use grid::{label, override_axis, with_key};
pub use summary::write_summary;
use summary::{Axis, Column, SEED, finished_values, mean_std, value_of};

/// One cell of the grid.
#[derive(Debug, Clone)]
pub struct SweepCell {
    /// `(key, value)` of each grid axis.
    pub point: Vec<(String, serde_json::Value)>,
    /// The run directory.
    pub dir: PathBuf,
    /// Final metrics (`None`: diverged).
    pub last: Option<EpochMetrics>,
    /// `ok` or the divergence message.
    pub status: String,
    /// λ_max of the last Hessian spectrum recorded during the run (`spectrum_every`).
    pub lambda_max: Option<f64>,
    /// Every epoch's metrics, as `metrics.csv` holds them (up to the divergence, for a run
    /// that diverged).
    pub history: Vec<EpochMetrics>,
}

/// Run the grid `axes` over `base` into `out`.
///
/// # Errors
/// Invalid grids or metrics, errors of the runs other than divergence (an interrupt stops the
/// sweep; running it again continues).
pub fn sweep(
    base: &TrainConfig,
    axes: &[(String, Vec<serde_json::Value>)],
    out: &Path,
    metric: Metric,
    options: RunOptions,
) -> Result<Vec<SweepCell>> {
    if axes.is_empty() || axes.iter().any(|(_, v)| v.is_empty()) {
        return Err(invalid(
            "grid",
            "(empty)",
            "give at least one key with values",
        ));
    }
    // Every point of the grid, first axis slowest.
    let mut points: Vec<Vec<(String, serde_json::Value)>> = vec![vec![]];
    for (key, values) in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((key.clone(), v.clone()));
                    q
                })
            })
            .collect();
    }
    let names: Vec<String> = points
        .iter()
        .map(|point| {
            point
                .iter()
                .map(|(k, v)| format!("{k}={}", label(k, v)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    if let Some(i) = (1..names.len()).find(|&i| names[..i].contains(&names[i])) {
        return Err(invalid(
            "grid",
            &names[i],
            "two grid points have the same label (give table values a distinct `name`)",
        ));
    }
    // Every point's configuration is read and validated before anything runs: a typo in the
    // last point must not surface after hours of runs.
    let configs = points
        .iter()
        .map(|point| {
            point
                .iter()
                .try_fold(base.clone(), |c, (k, v)| with_key(&c, k, v))
        })
        .collect::<Result<Vec<_>>>()?;
    for config in &configs {
        config.validate()?;
    }
    // One sweep at a time writes into `out` (its runs lock their own directories).
    let _lock = DirLock::acquire(out)?;
    let quiet = options.progress == crate::progress::ProgressMode::Quiet;
    let mut cells = Vec::new();
    for (i, ((point, name), config)) in points.iter().zip(&names).zip(configs).enumerate() {
        let dir = out.join(name.replace(['/', ' '], "_"));
        let paths = RunPaths { out: dir.clone() };
        if !quiet {
            eprintln!("[{}/{}] {name}", i + 1, points.len());
        }
        // A directory of this grid point holding a run of another configuration (the preset or
        // a --set changed since) is not silently reused.
        if paths.config().exists() && TrainConfig::from_file(&paths.config())? != config {
            return Err(io(
                paths.config(),
                "holds a run of another configuration than this grid point (the preset or a \
                 --set changed since it ran); choose another --out or delete that run",
            ));
        }
        paths.recover_checkpoint()?;
        let result = if paths.summary().exists() {
            if !quiet {
                eprintln!(
                    "    already finished: reusing its metrics ({})",
                    dir.display()
                );
            }
            Ok(paths.read_metrics()?)
        } else if paths.checkpoint().join("state.json").exists() {
            resume(&dir, options.clone())
        } else {
            train(
                &config,
                &dir,
                RunOptions {
                    force: true,
                    ..options.clone()
                },
            )
        };
        // A diverged run's epochs before the divergence are on record only in its files.
        let (history, last, status) = match result {
            Ok(rows) => {
                let last = rows.last().cloned();
                (rows, last, "ok".to_string())
            }
            Err(e @ LabError::Diverged { .. }) => {
                (paths.read_metrics()?, None, format!("diverged: {e}"))
            }
            Err(e) => return Err(e),
        };
        let lambda_max = paths.read_spectra()?.last().map(|r| r.lambda_max);
        cells.push(SweepCell {
            point: point.clone(),
            dir,
            last,
            status,
            lambda_max,
            history,
        });
    }
    write_summary(axes, &cells, out, metric)?;
    Ok(cells)
}
