//! What a run draws: the Hessian spectrum after an epoch (`spectra.csv`, JSON, stem plot;
//! [`SpectrumLog`]) and the per-epoch plots of `plots/`.

use super::*;

/// The Hessian spectrum of the training sub-sample at the end of an epoch: a row of
/// `spectra.csv`, `spectra/epoch-N.json` and its stem plot `spectra/epoch-N.svg` (and `.png`).
///
/// With a `group`, every peer computes the spectrum on its share of `data` and peer 0 alone
/// writes it.
pub(super) fn record_spectrum<BB: Backend, M: CurvatureModel<BB, D>, const D: usize>(
    config: &TrainConfig,
    paths: &RunPaths,
    model: &M,
    data: &[Batch<BB, D>],
    row: &EpochMetrics,
    progress: ProgressMode,
    group: Option<&PeerGroup<BB>>,
) -> Result<()> {
    let objective = group_objective(model.clone(), data, group)?;
    let s = lanczos_summary(
        &objective.hessian(),
        config.spectrum_steps,
        1,
        config.seed,
        curvature_core::OutlierRule::default(),
        progress,
    )?;
    if group.is_some_and(|g| g.rank() != 0) {
        return Ok(());
    }
    let dir = paths.spectra();
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let name = format!("epoch-{:04}", row.epoch);
    write_atomic(
        &dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(&s)
            .expect("serialisable")
            .as_bytes(),
    )?;
    let chart = stem_chart(
        &s.ritz_values,
        &s.ritz_weights,
        &format!(
            "Hessian after epoch {} (Lanczos, m = {})",
            row.epoch, s.lanczos_steps
        ),
        false,
    );
    save_both(&chart.render(), &dir, &name)?;
    let record = SpectrumRecord {
        epoch: row.epoch,
        step: row.step,
        lambda_max: s.lambda_max,
        lambda_min: s.lambda_min,
        trace: s.trace,
        frobenius: s.frobenius,
        negative_mass: s.negative_mass,
        degenerate_mass: s.degenerate_mass,
        outliers: s.outliers,
        stderr: [
            s.trace_stderr,
            s.frobenius_stderr,
            s.negative_mass_stderr,
            s.degenerate_mass_stderr,
        ],
        outlier_check: Some(s.outlier_check),
    };
    csv_table::append(&paths.spectra_csv(), &SPECTRA_HEADER, &record.fields())
}

/// Records the Hessian spectrum every `spectrum_every` epochs and after the last one.
pub(super) struct SpectrumLog<'a, BB: Backend, const D: usize> {
    pub(super) config: &'a TrainConfig,
    pub(super) paths: &'a RunPaths,
    pub(super) data: &'a [Batch<BB, D>],
    pub(super) progress: ProgressMode,
    pub(super) group: Option<&'a PeerGroup<BB>>,
}

impl<BB: Backend, M, const D: usize> Observer<BB, M> for SpectrumLog<'_, BB, D>
where
    M: AutodiffModule<Autodiff<BB>>,
    M::InnerModule: CurvatureModel<BB, D>,
{
    fn epoch_ended(
        &mut self,
        _run: &Run<BB, M>,
        row: &EpochMetrics,
        reported: &M::InnerModule,
    ) -> Result<()> {
        let every = self.config.spectrum_every;
        if row.epoch.is_multiple_of(every) || row.epoch == self.config.epochs {
            record_spectrum(
                self.config,
                self.paths,
                reported,
                self.data,
                row,
                self.progress,
                self.group,
            )?;
        }
        Ok(())
    }
}

/// Redraw `plots/` from `metrics.csv` (and `spectra.csv`).
pub(super) fn plot_run(paths: &RunPaths) -> Result<()> {
    let rows = paths.read_metrics()?;
    let dir = paths.plots();
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let series = |name: &str, f: &dyn Fn(&EpochMetrics) -> Option<f64>| Series {
        name: name.into(),
        points: rows
            .iter()
            .filter_map(|r| f(r).map(|v| (r.epoch as f64, v)))
            .collect(),
    };
    let chart = |title: &str, y: &str, log_y: bool, series: Vec<Series>| LineChart {
        title: title.into(),
        x_label: "epoch".into(),
        y_label: y.into(),
        log_y,
        series,
    };
    save_both(
        &chart(
            "loss",
            "cross-entropy",
            true,
            vec![
                series("train", &|r| Some(r.train_loss)),
                series("validation", &|r| Some(r.val_loss)),
            ],
        )
        .render(),
        &dir,
        "loss",
    )?;
    save_both(
        &chart(
            "accuracy",
            "accuracy",
            false,
            vec![
                series("train", &|r| Some(r.train_accuracy)),
                series("validation", &|r| Some(r.val_accuracy)),
            ],
        )
        .render(),
        &dir,
        "accuracy",
    )?;
    let mut lr = vec![series("learning rate", &|r| Some(r.lr))];
    if rows.iter().any(|r| r.damping.is_some()) {
        lr.push(series("damping", &|r| r.damping));
    }
    save_both(
        &chart("learning rate and damping", "value", true, lr).render(),
        &dir,
        "lr-damping",
    )?;
    let spectra = paths.read_spectra()?;
    if !spectra.is_empty() {
        let points = |f: fn(&SpectrumRecord) -> f64| -> Vec<(f64, f64)> {
            spectra.iter().map(|r| (r.epoch as f64, f(r))).collect()
        };
        save_both(
            &chart(
                "Hessian extremes",
                "eigenvalue",
                false,
                vec![
                    Series {
                        name: "λ_max".into(),
                        points: points(|r| r.lambda_max),
                    },
                    Series {
                        name: "λ_min".into(),
                        points: points(|r| r.lambda_min),
                    },
                ],
            )
            .render(),
            &dir,
            "spectrum",
        )?;
    }
    Ok(())
}
