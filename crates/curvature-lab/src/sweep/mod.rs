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

/// `base` with `key` set to `value` (any [`TrainConfig`] key). A table value sets several
/// keys together — one grid point of unequal settings, e.g. SGD and Gadam each with its own
/// learning rate: `optimizer = [{ optimizer = "sgd", lr = 0.05 }, { optimizer = "gadam",
/// lr = 0.003 }]`; its optional `name` entry only labels the point (see [`label`]).
///
/// # Errors
/// Unknown keys and ill-typed values.
pub fn with_key(base: &TrainConfig, key: &str, value: &serde_json::Value) -> Result<TrainConfig> {
    let mut json = serde_json::to_value(base).expect("serialisable");
    match value {
        serde_json::Value::Object(keys) => {
            for (k, v) in keys.iter().filter(|(k, _)| k.as_str() != "name") {
                json[k] = v.clone();
            }
        }
        v => json[key] = v.clone(),
    }
    serde_json::from_value(json).map_err(|e| LabError::GridValue {
        key: key.to_string(),
        value: value.to_string(),
        message: if e.to_string().contains("unknown field") {
            format!("unknown configuration key ({e})")
        } else {
            e.to_string()
        },
    })
}

/// Set grid axis `key` of `axes` to `given` (`--grid KEY=V1,V2,…`), adding the axis if it is
/// new. A given value that is the label (see [`label`]) of one of the axis' table values
/// selects that value with all its settings — `--grid run=kfac-auto` runs the preset's
/// `{ name = "kfac-auto", optimizer = "kfac", damping = "auto", … }` entry; any other value
/// replaces the axis' values as it is.
///
/// # Errors
/// A value that names none of the axis' table values when `key` is not a configuration key
/// (so that it could only have named an entry); the error lists the entries.
pub fn override_axis(
    axes: &mut Vec<(String, Vec<serde_json::Value>)>,
    base: &TrainConfig,
    key: &str,
    given: Vec<serde_json::Value>,
) -> Result<()> {
    let Some(axis) = axes.iter_mut().find(|(k, _)| k == key) else {
        axes.push((key.to_string(), given));
        return Ok(());
    };
    let entries: Vec<&serde_json::Value> = axis.1.iter().filter(|v| v.is_object()).collect();
    let is_config_key = serde_json::to_value(base)
        .expect("serialisable")
        .get(key)
        .is_some();
    let values = given
        .into_iter()
        .map(|value| {
            let name = label(key, &value);
            match entries.iter().find(|e| label(key, e) == name) {
                Some(entry) => Ok((*entry).clone()),
                None if is_config_key || entries.is_empty() => Ok(value),
                None => Err(LabError::GridValue {
                    key: key.to_string(),
                    value: value.to_string(),
                    message: format!(
                        "names none of the axis' entries ({})",
                        entries
                            .iter()
                            .map(|e| label(key, e))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    axis.1 = values;
    Ok(())
}

/// How a value of grid axis `key` is written in directory names and tables: a table value by
/// its `name` entry, else its entry for `key`, else all its entries.
pub fn label(key: &str, v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(m) => match m.get("name").or_else(|| m.get(key)) {
            Some(own) => label(key, own),
            None => m
                .iter()
                .map(|(k, x)| format!("{k}={}", label(k, x)))
                .collect::<Vec<_>>()
                .join(";"),
        },
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
        let (last, status) = match result {
            Ok(rows) => (rows.last().cloned(), "ok".to_string()),
            Err(e @ LabError::Diverged { .. }) => (None, format!("diverged: {e}")),
            Err(e) => return Err(e),
        };
        let lambda_max = paths.read_spectra()?.last().map(|r| r.lambda_max);
        let history = if paths.metrics().exists() {
            paths.read_metrics()?
        } else {
            Vec::new()
        };
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

fn value_of(m: &EpochMetrics, metric: Metric) -> f64 {
    match metric {
        Metric::ValAccuracy => m.val_accuracy,
        Metric::ValLoss => m.val_loss,
        Metric::TrainLoss => m.train_loss,
        Metric::TrainAccuracy => m.train_accuracy,
    }
}

/// A column of the summary over seeds: a final metric, or λ_max of the last spectrum.
#[derive(Debug, Clone, Copy)]
enum Column {
    Metric(Metric),
    LambdaMax,
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Metric(m) => m.fmt(f),
            Self::LambdaMax => f.write_str("lambda_max"),
        }
    }
}

/// Write `summary.csv`, `summary.md`, the heat map of `metric` and, with a `seed` axis,
/// `summary-over-seeds.{csv,md}` (mean ± sample standard deviation per setting) for `cells`.
///
/// # Errors
/// File errors.
pub fn write_summary(
    axes: &[(String, Vec<serde_json::Value>)],
    cells: &[SweepCell],
    out: &Path,
    metric: Metric,
) -> Result<()> {
    let keys: Vec<&str> = axes.iter().map(|(k, _)| k.as_str()).collect();
    let mut csv: Vec<Vec<String>> = vec![
        keys.iter()
            .map(|k| k.to_string())
            .chain(
                [
                    "train_loss",
                    "train_accuracy",
                    "val_loss",
                    "val_accuracy",
                    "lambda_max",
                    "status",
                ]
                .map(String::from),
            )
            .collect(),
    ];
    let mut md = format!(
        "| {} | train loss | train acc. | val loss | val acc. | λ_max |\n|{}---|---|---|---|---|\n",
        keys.join(" | "),
        "---|".repeat(keys.len())
    );
    for c in cells {
        let vals: Vec<String> = c.point.iter().map(|(k, v)| label(k, v)).collect();
        let lmax = c.lambda_max.map_or(String::new(), |l| format!("{l:.4e}"));
        match &c.last {
            Some(m) => {
                csv.push(
                    vals.iter()
                        .cloned()
                        .chain(
                            [m.train_loss, m.train_accuracy, m.val_loss, m.val_accuracy]
                                .map(|x| format!("{x:.6}")),
                        )
                        .chain([lmax.clone(), "ok".into()])
                        .collect(),
                );
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
                csv.push(
                    vals.iter()
                        .cloned()
                        .chain(std::iter::repeat_n(String::new(), 5))
                        .chain(["diverged".into()])
                        .collect(),
                );
                md.push_str(&format!("| {} | diverged | | | | |\n", vals.join(" | ")));
            }
        }
    }
    write_tables(out, "summary", &csv, &md)?;
    // With a seed axis, every other grid point is summarised over its seeds and the figures
    // show the mean; without one, they show the runs themselves.
    let groups = over_seeds(axes, cells);
    let (map_axes, settings): (Vec<&Axis>, Vec<Vec<&SweepCell>>) = match &groups {
        Some(groups) => {
            write_seed_summary(axes, groups, out)?;
            (
                axes.iter().filter(|(k, _)| k != SEED).collect(),
                groups.iter().map(|g| g.runs.clone()).collect(),
            )
        }
        None => (
            axes.iter().collect(),
            cells.iter().map(|c| vec![c]).collect(),
        ),
    };
    let seeds = groups
        .as_ref()
        .map(|g| g.first().map_or(0, |g| g.runs.len()));
    figures::write_figures(&map_axes, &settings, seeds, out, metric)
}

/// A grid axis: a key and its values.
type Axis = (String, Vec<serde_json::Value>);

/// The grid key whose values are replicates rather than settings.
const SEED: &str = "seed";

/// The runs of one setting of the non-seed axes, one per seed.
struct SeedGroup<'a> {
    /// Values of the other axes.
    point: Vec<(String, serde_json::Value)>,
    runs: Vec<&'a SweepCell>,
}

/// Mean and sample standard deviation (n − 1; 0 for one value) of `values`, `None` if empty.
fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((mean, var.sqrt()))
}

/// `column` of the runs among `runs` that finished.
fn finished_values(runs: &[&SweepCell], column: Column) -> Vec<f64> {
    runs.iter()
        .filter_map(|c| match column {
            Column::LambdaMax => c.last.as_ref().and(c.lambda_max),
            Column::Metric(m) => c.last.as_ref().map(|last| value_of(last, m)),
        })
        .collect()
}

impl SeedGroup<'_> {
    /// `metric` (or `lambda_max`) of the runs that finished.
    fn values(&self, column: Column) -> Vec<f64> {
        finished_values(&self.runs, column)
    }
}

/// Group the cells by the values of every axis but `seed`, in grid order; `None` when the grid
/// has no seed axis with two or more values, or no other axis.
fn over_seeds<'a>(
    axes: &[(String, Vec<serde_json::Value>)],
    cells: &'a [SweepCell],
) -> Option<Vec<SeedGroup<'a>>> {
    let seeds = axes.iter().find(|(k, _)| k == SEED)?;
    if seeds.1.len() < 2 || axes.len() < 2 {
        return None;
    }
    let mut groups: Vec<SeedGroup<'a>> = Vec::new();
    for cell in cells {
        let point: Vec<_> = cell
            .point
            .iter()
            .filter(|(k, _)| k != SEED)
            .cloned()
            .collect();
        match groups.iter_mut().find(|g| g.point == point) {
            Some(g) => g.runs.push(cell),
            None => groups.push(SeedGroup {
                point,
                runs: vec![cell],
            }),
        }
    }
    Some(groups)
}

/// `summary-over-seeds.csv` and `.md`: per setting of the other axes, how many seeds finished
/// and the mean ± sample standard deviation of the final metrics and λ_max over them.
fn write_seed_summary(
    axes: &[(String, Vec<serde_json::Value>)],
    groups: &[SeedGroup<'_>],
    out: &Path,
) -> Result<()> {
    const COLUMNS: [Column; 5] = [
        Column::Metric(Metric::TrainLoss),
        Column::Metric(Metric::TrainAccuracy),
        Column::Metric(Metric::ValLoss),
        Column::Metric(Metric::ValAccuracy),
        Column::LambdaMax,
    ];
    let keys: Vec<&str> = axes
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| *k != SEED)
        .collect();
    let mut header: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    header.extend(["seeds".into(), "finished".into()]);
    for c in COLUMNS {
        header.extend([format!("{c}_mean"), format!("{c}_std")]);
    }
    let mut csv = vec![header];
    let mut md = format!(
        "| {} | finished | train loss | train acc. | val loss | val acc. | λ_max |\n|{}---|---|---|---|---|---|\n",
        keys.join(" | "),
        "---|".repeat(keys.len())
    );
    for g in groups {
        let vals: Vec<String> = g.point.iter().map(|(k, v)| label(k, v)).collect();
        let finished = g.values(Column::Metric(Metric::ValLoss)).len();
        let mut row = vals.clone();
        row.extend([g.runs.len().to_string(), finished.to_string()]);
        let mut cells = Vec::new();
        for c in COLUMNS {
            let stats = mean_std(&g.values(c));
            row.extend(match stats {
                Some((m, s)) => [format!("{m:.6}"), format!("{s:.6}")],
                None => [String::new(), String::new()],
            });
            cells.push(match stats {
                None => String::new(),
                Some((m, s))
                    if matches!(
                        c,
                        Column::Metric(Metric::TrainAccuracy | Metric::ValAccuracy)
                    ) =>
                {
                    format!("{:.2} ± {:.2} %", 100.0 * m, 100.0 * s)
                }
                Some((m, s)) => format!("{m:.4} ± {s:.4}"),
            });
        }
        csv.push(row);
        md.push_str(&format!(
            "| {} | {finished}/{} | {} |\n",
            vals.join(" | "),
            g.runs.len(),
            cells.join(" | ")
        ));
    }
    write_tables(out, "summary-over-seeds", &csv, &md)
}

/// `out/stem.csv` (the `csv` crate: a label such as `[32,16]` is quoted, not split into two
/// columns) and `out/stem.md`, each written atomically.
fn write_tables(out: &Path, stem: &str, csv: &[Vec<String>], md: &str) -> Result<()> {
    csv_table::write(&out.join(format!("{stem}.csv")), csv)?;
    write_atomic(&out.join(format!("{stem}.md")), md.as_bytes())
}
