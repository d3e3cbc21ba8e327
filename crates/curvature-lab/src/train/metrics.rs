//! The per-epoch CSV files of a run: `metrics.csv` ([`EpochMetrics`], appended with the plots
//! redrawn by [`MetricsLog`]) and `spectra.csv` ([`SpectrumRecord`]), and their truncation to
//! the epochs of a checkpoint on resume.

use super::*;

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Optimiser steps so far.
    pub step: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Damping in use at the end of the epoch (KFAC δ or Adam ε), if any.
    pub damping: Option<f64>,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy.
    pub train_accuracy: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Wall-clock seconds of the epoch (training steps only).
    pub seconds: f64,
}

/// The columns of `metrics.csv`.
pub(super) const HEADER: [&str; 9] = [
    "epoch",
    "step",
    "lr",
    "damping",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
];
/// The columns of `spectra.csv`.
pub(super) const SPECTRA_HEADER: [&str; 17] = [
    "epoch",
    "step",
    "lambda_max",
    "lambda_min",
    "trace",
    "frobenius",
    "negative_mass",
    "degenerate_mass",
    "outliers",
    "trace_stderr",
    "frobenius_stderr",
    "negative_mass_stderr",
    "degenerate_mass_stderr",
    "outlier_eigenvalues_above",
    "outlier_eigenvalues_allowed",
    "bulk_misfit",
    "bulk_misfit_allowance",
];

impl EpochMetrics {
    /// Read a row of `metrics.csv` (`None` for a malformed row).
    pub fn from_record(f: &csv::StringRecord) -> Option<Self> {
        if f.len() != 9 {
            return None;
        }
        let num = |i: usize| f[i].parse::<f64>().ok();
        Some(Self {
            epoch: f[0].parse().ok()?,
            step: f[1].parse().ok()?,
            lr: num(2)?,
            damping: num(3),
            train_loss: num(4)?,
            train_accuracy: num(5)?,
            val_loss: num(6)?,
            val_accuracy: num(7)?,
            seconds: num(8)?,
        })
    }

    /// The fields of its `metrics.csv` row.
    pub(super) fn fields(&self) -> Vec<String> {
        vec![
            self.epoch.to_string(),
            self.step.to_string(),
            format!("{:e}", self.lr),
            self.damping.map_or(String::new(), |d| format!("{d:e}")),
            format!("{:.6}", self.train_loss),
            format!("{:.6}", self.train_accuracy),
            format!("{:.6}", self.val_loss),
            format!("{:.6}", self.val_accuracy),
            format!("{:.3}", self.seconds),
        ]
    }
}

/// One row of `spectra.csv`: the Hessian spectrum recorded after an epoch
/// (`--spectrum-every`), as summarised by the library's `spectrum`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectrumRecord {
    /// Epoch after which it was measured.
    pub epoch: usize,
    /// Optimiser steps taken by then.
    pub step: usize,
    /// Largest eigenvalue.
    pub lambda_max: f64,
    /// Smallest eigenvalue.
    pub lambda_min: f64,
    /// Trace.
    pub trace: f64,
    /// Frobenius norm.
    pub frobenius: f64,
    /// Spectral mass below zero.
    pub negative_mass: f64,
    /// Spectral mass near zero.
    pub degenerate_mass: f64,
    /// Outliers above the bulk.
    pub outliers: usize,
    /// Standard errors of trace, Frobenius norm, negative and degenerate mass (NaN in rows
    /// written before they were recorded).
    pub stderr: [f64; 4],
    /// Whether `outliers` means anything ([`curvature_core::OutlierCheck`]). `None` in rows
    /// written before it was recorded.
    pub outlier_check: Option<curvature_core::OutlierCheck>,
}

impl SpectrumRecord {
    /// Read a row of `spectra.csv` (`None` for a malformed row). Rows written by older
    /// versions read too: 9 columns without the standard errors (NaN) and 13 without the
    /// outlier check (`None`).
    pub fn from_record(f: &csv::StringRecord) -> Option<Self> {
        if ![9, 13, 17].contains(&f.len()) {
            return None;
        }
        let num = |i: usize| f[i].parse::<f64>().ok();
        let stderr = if f.len() >= 13 {
            [num(9)?, num(10)?, num(11)?, num(12)?]
        } else {
            [f64::NAN; 4]
        };
        let outlier_check = if f.len() == 17 {
            Some(curvature_core::OutlierCheck {
                eigenvalues_above: num(13)?,
                eigenvalues_allowed: num(14)?,
                bulk_misfit: num(15),
                bulk_misfit_allowance: num(16),
            })
        } else {
            None
        };
        Some(Self {
            stderr,
            outlier_check,
            epoch: f[0].parse().ok()?,
            step: f[1].parse().ok()?,
            lambda_max: num(2)?,
            lambda_min: num(3)?,
            trace: num(4)?,
            frobenius: num(5)?,
            negative_mass: num(6)?,
            degenerate_mass: num(7)?,
            outliers: f[8].parse().ok()?,
        })
    }

    /// The fields of its `spectra.csv` row.
    pub(super) fn fields(&self) -> Vec<String> {
        let mut f = vec![self.epoch.to_string(), self.step.to_string()];
        f.extend(
            [self.lambda_max, self.lambda_min, self.trace, self.frobenius]
                .map(|x| format!("{x:e}")),
        );
        f.extend([
            self.negative_mass.to_string(),
            self.degenerate_mass.to_string(),
            self.outliers.to_string(),
        ]);
        f.extend(self.stderr.map(|x| format!("{x:e}")));
        let check = self.outlier_check.as_ref();
        let number = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:.4}"));
        f.extend([
            number(check.map(|c| c.eigenvalues_above)),
            number(check.map(|c| c.eigenvalues_allowed)),
            number(check.and_then(|c| c.bulk_misfit)),
            number(check.and_then(|c| c.bulk_misfit_allowance)),
        ]);
        f
    }
}

/// Write `rmt.csv`: one row per re-estimate of the RMT auto-damping (step, the estimation
/// batches' Hessian variance, the per-example variance `s²/P`, each with its standard error,
/// the damping `δ̂` implied for the training batch and the `δ` used after the moving average
/// and the floor). Rewritten whole from the policy's state, so a resumed run keeps it complete.
pub(super) fn write_rmt_csv(path: &Path, rmt: &curvature_optim::RmtDamping) -> Result<()> {
    let number = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:e}"));
    let header = [
        "step",
        "batch_variance",
        "batch_variance_stderr",
        "per_example_variance",
        "per_example_variance_stderr",
        "delta_estimate",
        "delta",
    ]
    .map(String::from);
    let rows = std::iter::once(header.to_vec()).chain(rmt.estimates.iter().map(|e| {
        vec![
            e.step.to_string(),
            format!("{:e}", e.batch_variance),
            number(e.batch_variance_stderr),
            number(e.per_example_variance),
            number(e.per_example_variance_stderr),
            format!("{:e}", e.estimate),
            format!("{:e}", e.delta),
        ]
    }));
    csv_table::write(path, &rows.collect::<Vec<_>>())
}

/// Keep the header and the rows of epochs `≤ epochs` of a per-epoch CSV file (if it exists).
pub(super) fn truncate_csv(path: &Path, epochs: usize) -> Result<()> {
    let Some((header, rows)) = csv_table::read(path)? else {
        return Ok(());
    };
    let kept: Vec<Vec<String>> = std::iter::once(&header)
        .chain(rows.iter().filter(|r| {
            r.get(0)
                .and_then(|e| e.parse::<usize>().ok())
                .is_none_or(|e| e <= epochs)
        }))
        .map(|r| r.iter().map(str::to_string).collect())
        .collect();
    csv_table::write(path, &kept)
}

/// Appends each epoch's row to `metrics.csv` and redraws `plots/`.
pub(super) struct MetricsLog<'a> {
    pub(super) paths: &'a RunPaths,
}

impl<BB: Backend, M: AutodiffModule<Autodiff<BB>>> Observer<BB, M> for MetricsLog<'_> {
    fn epoch_ended(
        &mut self,
        _run: &Run<BB, M>,
        row: &EpochMetrics,
        _reported: &M::InnerModule,
    ) -> Result<()> {
        csv_table::append(&self.paths.metrics(), &HEADER, &row.fields())?;
        plot_run(self.paths)
    }
}
