//! `curvature sweep`: a grid of training runs (e.g. learning rate × damping), run one after
//! the other into `OUT/<key=value,…>/`, resumable, summarised as `summary.csv`,
//! `summary.md` and a heat map `heatmap.svg` of the chosen metric (damping paper, Fig. 4).
//!
//! Re-running a sweep skips finished runs (`summary.json` present), resumes interrupted ones
//! from their checkpoint and starts the rest; a diverged run is recorded as such and the sweep
//! goes on.

use std::path::{Path, PathBuf};

use crate::config::TrainConfig;
use crate::error::{LabError, Result, invalid, io};
use crate::plot::{Heatmap, save};
use crate::train::{EpochMetrics, RunOptions, RunPaths, resume, train};

/// Metrics a sweep can tabulate and map.
pub const METRICS: [&str; 4] = ["val_accuracy", "val_loss", "train_loss", "train_accuracy"];

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
}

/// `base` with `key` set to `value` (any [`TrainConfig`] key).
///
/// # Errors
/// Unknown keys and ill-typed values.
pub fn with_key(base: &TrainConfig, key: &str, value: &serde_json::Value) -> Result<TrainConfig> {
    let mut json = serde_json::to_value(base).expect("serialisable");
    json[key] = value.clone();
    serde_json::from_value(json).map_err(|e| LabError::InvalidConfig {
        field: "grid",
        value: format!("{key} = {value}"),
        reason: if e.to_string().contains("unknown field") {
            "unknown configuration key"
        } else {
            "value of the wrong type for this key"
        },
    })
}

fn label(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
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
    metric: &str,
    options: RunOptions,
) -> Result<Vec<SweepCell>> {
    if !METRICS.contains(&metric) {
        return Err(LabError::UnknownName {
            kind: "metric",
            name: metric.into(),
            valid: METRICS.to_vec(),
        });
    }
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
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let quiet = options.progress == crate::progress::ProgressMode::Quiet;
    let mut cells = Vec::new();
    for (i, point) in points.iter().enumerate() {
        let mut config = base.clone();
        for (k, v) in point {
            config = with_key(&config, k, v)?;
        }
        config.validate()?;
        let name: String = point
            .iter()
            .map(|(k, v)| format!("{k}={}", label(v)))
            .collect::<Vec<_>>()
            .join(",");
        let dir = out.join(name.replace(['/', ' '], "_"));
        let paths = RunPaths { out: dir.clone() };
        if !quiet {
            eprintln!("[{}/{}] {name}", i + 1, points.len());
        }
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
        let (last, status) = match result {
            Ok(rows) => (rows.last().cloned(), "ok".to_string()),
            Err(e @ LabError::Diverged { .. }) => (None, format!("diverged: {e}")),
            Err(e) => return Err(e),
        };
        let lambda_max = paths.read_spectra()?.last().map(|r| r.lambda_max);
        cells.push(SweepCell {
            point: point.clone(),
            dir,
            last,
            status,
            lambda_max,
        });
    }
    write_summary(axes, &cells, out, metric)?;
    Ok(cells)
}

fn value_of(m: &EpochMetrics, metric: &str) -> f64 {
    match metric {
        "val_loss" => m.val_loss,
        "train_loss" => m.train_loss,
        "train_accuracy" => m.train_accuracy,
        _ => m.val_accuracy,
    }
}

fn write_summary(
    axes: &[(String, Vec<serde_json::Value>)],
    cells: &[SweepCell],
    out: &Path,
    metric: &str,
) -> Result<()> {
    let keys: Vec<&str> = axes.iter().map(|(k, _)| k.as_str()).collect();
    let mut csv = format!(
        "{},train_loss,train_accuracy,val_loss,val_accuracy,lambda_max,status\n",
        keys.join(",")
    );
    let mut md = format!(
        "| {} | train loss | train acc. | val loss | val acc. | λ_max |\n|{}---|---|---|---|---|\n",
        keys.join(" | "),
        "---|".repeat(keys.len())
    );
    for c in cells {
        let vals: Vec<String> = c.point.iter().map(|(_, v)| label(v)).collect();
        let lmax = c.lambda_max.map_or(String::new(), |l| format!("{l:.4e}"));
        match &c.last {
            Some(m) => {
                csv.push_str(&format!(
                    "{},{:.6},{:.6},{:.6},{:.6},{lmax},ok\n",
                    vals.join(","),
                    m.train_loss,
                    m.train_accuracy,
                    m.val_loss,
                    m.val_accuracy
                ));
                md.push_str(&format!(
                    "| {} | {:.4} | {:.2}% | {:.4} | {:.2}% | {lmax} |\n",
                    vals.join(" | "),
                    m.train_loss,
                    100.0 * m.train_accuracy,
                    m.val_loss,
                    100.0 * m.val_accuracy
                ));
            }
            None => {
                csv.push_str(&format!("{},,,,,,diverged\n", vals.join(",")));
                md.push_str(&format!("| {} | diverged | | | | |\n", vals.join(" | ")));
            }
        }
    }
    for (file, text) in [("summary.csv", csv), ("summary.md", md)] {
        let p = out.join(file);
        std::fs::write(&p, text).map_err(|e| io(&p, e))?;
    }
    // Heat map: rows = first axis, columns = second axis (one column for a 1-D grid).
    let (rows_axis, cols_axis) = (&axes[0], axes.get(1));
    let ncols = cols_axis.map_or(1, |a| a.1.len());
    let stride: usize = axes.iter().skip(1).map(|a| a.1.len()).product();
    let values: Vec<Vec<Option<f64>>> = (0..rows_axis.1.len())
        .map(|r| {
            (0..ncols)
                .map(|c| {
                    // With more than two axes, the map shows the first value of the others.
                    let per_col = stride / ncols.max(1);
                    cells
                        .get(r * stride + c * per_col)
                        .and_then(|cell| cell.last.as_ref())
                        .map(|m| value_of(m, metric))
                })
                .collect()
        })
        .collect();
    let heat = Heatmap {
        title: format!("{metric} after training"),
        x_label: cols_axis.map_or(String::new(), |a| a.0.clone()),
        y_label: rows_axis.0.clone(),
        x_ticks: cols_axis.map_or(vec![String::new()], |a| a.1.iter().map(label).collect()),
        y_ticks: rows_axis.1.iter().map(label).collect(),
        values,
        log: metric.ends_with("loss"),
    };
    save(&heat.render(), &out.join("heatmap.svg"))
}
