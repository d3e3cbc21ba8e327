//! The tables of a sweep: `summary.csv`/`.md` per run and, with a `seed` axis,
//! `summary-over-seeds.csv`/`.md` (mean ± sample standard deviation per setting).

use super::*;

pub(super) fn value_of(m: &EpochMetrics, metric: Metric) -> f64 {
    match metric {
        Metric::ValAccuracy => m.val_accuracy,
        Metric::ValLoss => m.val_loss,
        Metric::TrainLoss => m.train_loss,
        Metric::TrainAccuracy => m.train_accuracy,
    }
}

/// A column of the summary over seeds: a final metric, or λ_max of the last spectrum.
#[derive(Debug, Clone, Copy)]
pub(super) enum Column {
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
pub(super) type Axis = (String, Vec<serde_json::Value>);

/// The grid key whose values are replicates rather than settings.
pub(super) const SEED: &str = "seed";

/// The runs of one setting of the non-seed axes, one per seed.
struct SeedGroup<'a> {
    /// Values of the other axes.
    point: Vec<(String, serde_json::Value)>,
    runs: Vec<&'a SweepCell>,
}

/// Mean and sample standard deviation (n − 1; 0 for one value) of `values`, `None` if empty.
pub(super) fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
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
pub(super) fn finished_values(runs: &[&SweepCell], column: Column) -> Vec<f64> {
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
