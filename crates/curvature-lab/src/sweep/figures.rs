//! The sweep's figures, each written as SVG and PNG:
//!
//! * `heatmap` — the chosen metric after training per setting;
//! * `heatmap-train-error-gap`, `heatmap-val-error-gap` — each setting's final training /
//!   validation error minus the best setting's, in percentage points: the damping paper's
//!   Fig. 4 ("error change … relative to the single best run", Granziol & Baskerville §5);
//! * `curves-train-error`, `curves-val-error` — the error of every setting epoch by epoch (its
//!   Figs. 5–6); settings none of whose runs finished are not drawn (the title says how many).
//!
//! A setting is one grid point, or with a `seed` axis the runs of one point of the other axes:
//! heat maps show the mean over its runs that finished (a setting none of whose runs finished
//! is left blank); curves the mean over the same runs (over all of them, up to the earliest
//! divergence, when none finished).

use super::*;

/// Write every figure of the sweep into `out`.
///
/// `map_axes` are the axes the heat maps lay out (rows: the first; columns: the second; with
/// more, the first value of the others), `settings` the runs of each setting in grid order,
/// `seeds` the number of seeds per setting when there is a seed axis.
pub(super) fn write_figures(
    map_axes: &[&Axis],
    settings: &[Vec<&SweepCell>],
    seeds: Option<usize>,
    out: &Path,
    metric: Metric,
) -> Result<()> {
    let over = seeds.map_or(String::new(), |n| format!(", mean over {n} seeds"));
    let mean = |m: Metric| -> Vec<Option<f64>> {
        settings
            .iter()
            .map(|runs| mean_std(&finished_values(runs, Column::Metric(m))).map(|(m, _)| m))
            .collect()
    };
    save_both(
        &heatmap(
            map_axes,
            &mean(metric),
            format!("{metric} after training{over}"),
            metric.is_loss(),
        )
        .render(),
        out,
        "heatmap",
    )?;
    for (split, accuracy) in [
        ("train", Metric::TrainAccuracy),
        ("val", Metric::ValAccuracy),
    ] {
        let gap = error_gap(&mean(accuracy));
        save_both(
            &heatmap(
                map_axes,
                &gap,
                format!("{split} error − the best setting's (points){over}"),
                false,
            )
            .render(),
            out,
            &format!("heatmap-{split}-error-gap"),
        )?;
        // Settings none of whose runs finished are left out (their few epochs before the
        // divergence would only crowd the start), and said so in the title.
        let drawn: Vec<&Vec<&SweepCell>> = settings
            .iter()
            .filter(|runs| runs.iter().any(|c| c.last.is_some()))
            .collect();
        let left_out = match settings.len() - drawn.len() {
            0 => String::new(),
            n => format!(" ({n} diverged settings not drawn)"),
        };
        let chart = LineChart {
            title: format!("{split} error during training{over}{left_out}"),
            x_label: "epoch".into(),
            y_label: format!("{split} error (%)"),
            log_y: false,
            series: drawn.iter().map(|runs| curve(runs, accuracy)).collect(),
        };
        save_both(&chart.render(), out, &format!("curves-{split}-error"))?;
    }
    Ok(())
}

/// Error in percent `100 (1 − accuracy)` minus the smallest of them, per setting.
fn error_gap(accuracy: &[Option<f64>]) -> Vec<Option<f64>> {
    let error: Vec<Option<f64>> = accuracy
        .iter()
        .map(|a| a.map(|a| 100.0 * (1.0 - a)))
        .collect();
    let best = error
        .iter()
        .flatten()
        .copied()
        .fold(f64::INFINITY, f64::min);
    error.iter().map(|e| e.map(|e| e - best)).collect()
}

/// The error curve of one setting: `100 (1 − accuracy)` per epoch, averaged over its runs that
/// finished (all of them when none did) at the epochs every one of those reached; named by the
/// setting's values of the non-seed axes.
fn curve(runs: &[&SweepCell], accuracy: Metric) -> Series {
    let finished: Vec<&SweepCell> = runs.iter().copied().filter(|c| c.last.is_some()).collect();
    let runs = if finished.is_empty() { runs } else { &finished };
    let name = runs.first().map_or(String::new(), |c| {
        c.point
            .iter()
            .filter(|(k, _)| k != SEED)
            .map(|(k, v)| format!("{k}={}", label(k, v)))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let epochs = runs.iter().map(|c| c.history.len()).min().unwrap_or(0);
    let points = (0..epochs)
        .map(|e| {
            let mean = runs
                .iter()
                .map(|c| 1.0 - value_of(&c.history[e], accuracy))
                .sum::<f64>()
                / runs.len() as f64;
            (runs[0].history[e].epoch as f64, 100.0 * mean)
        })
        .collect();
    Series { name, points }
}

/// `values` (one per setting, in grid order) laid out as a heat map over `map_axes`.
fn heatmap(map_axes: &[&Axis], values: &[Option<f64>], title: String, log: bool) -> Heatmap {
    let (rows_axis, cols_axis) = (map_axes[0], map_axes.get(1));
    let ncols = cols_axis.map_or(1, |a| a.1.len());
    let stride: usize = map_axes.iter().skip(1).map(|a| a.1.len()).product();
    let per_col = stride / ncols.max(1);
    let values: Vec<Vec<Option<f64>>> = (0..rows_axis.1.len())
        .map(|r| {
            (0..ncols)
                // With more than two axes, the map shows the first value of the others.
                .map(|c| values.get(r * stride + c * per_col).copied().flatten())
                .collect()
        })
        .collect();
    Heatmap {
        title,
        x_label: cols_axis.map_or(String::new(), |a| a.0.clone()),
        y_label: rows_axis.0.clone(),
        x_ticks: cols_axis.map_or(vec![String::new()], |a| {
            a.1.iter().map(|v| label(&a.0, v)).collect()
        }),
        y_ticks: rows_axis.1.iter().map(|v| label(&rows_axis.0, v)).collect(),
        values,
        log,
    }
}
