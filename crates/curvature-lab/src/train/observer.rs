//! The training loop's events and the [`Observer`]s that act on them.
//!
//! The loop ([`run`](super::training_loop::run)) only steps the optimiser and evaluates; all
//! else a run does is an observer, called in registration order ([`observers`]):
//!
//! | observer | before a step | after a step | after an epoch | on an interrupt |
//! |---|---|---|---|---|
//! | [`RmtEstimator`](super::rmt::RmtEstimator) | re-estimates δ (RMT auto-damping) | | | |
//! | [`BlowUpGuard`](super::guard::BlowUpGuard) | | stops a blown-up loss | | |
//! | [`ProgressLog`](super::progress_log::ProgressLog) | | advances the bar | prints the epoch line | ends the bar |
//! | [`SpectrumLog`](super::report::SpectrumLog) | | | `spectra.csv`, JSON, plot | |
//! | [`Checkpointer`](super::checkpoint::Checkpointer) | | | writes the checkpoint | writes the checkpoint |
//! | [`MetricsLog`](super::metrics::MetricsLog) | | | `metrics.csv`, `plots/` | |
//!
//! With data parallelism every peer calls the first three (their computations are collective:
//! sharded over the peers' data) and only peer 0 the rest, and writes.
//!
//! The order after an epoch is the crash-safe one: the checkpoint is written before the
//! epoch's row is appended to `metrics.csv`, and a resume truncates the CSV files to the
//! checkpoint's epochs.

use super::*;

/// Something the training loop calls at its events. Every method does nothing by default; an
/// error stops the run with it.
pub(super) trait Observer<BB: Backend, M: AutodiffModule<Autodiff<BB>>> {
    /// Epoch `epoch` (0-based) starts; it takes `steps` steps, of which
    /// `run.state.batches_done` were taken before an interrupt.
    fn epoch_started(&mut self, _run: &Run<BB, M>, _epoch: usize, _steps: usize) -> Result<()> {
        Ok(())
    }

    /// Before a step: may change the damping the step reads.
    fn before_step(&mut self, _run: &mut Run<BB, M>) -> Result<()> {
        Ok(())
    }

    /// After a step (`run.state.steps` still counts the steps before it).
    fn after_step(&mut self, _run: &mut Run<BB, M>, _report: &StepReport) -> Result<()> {
        Ok(())
    }

    /// The epoch's steps are done; it is evaluated next.
    fn steps_done(&mut self, _run: &Run<BB, M>) {}

    /// The epoch is done and evaluated: its metrics, and the model they are of (the iterate
    /// average once averaging has started).
    fn epoch_ended(
        &mut self,
        _run: &Run<BB, M>,
        _row: &EpochMetrics,
        _reported: &M::InnerModule,
    ) -> Result<()> {
        Ok(())
    }

    /// The user asked the run to stop (Ctrl-C) in the middle of an epoch.
    fn interrupted(&mut self, _run: &Run<BB, M>) -> Result<()> {
        Ok(())
    }
}

/// The observers of a run, in the order they are called (see the [module](self) table).
pub(super) fn observers<'a, BB: Backend, M, const D: usize>(
    config: &'a TrainConfig,
    paths: &'a RunPaths,
    progress: ProgressMode,
    data: &'a LoopData<BB, D>,
    group: Option<&'a PeerGroup<BB>>,
) -> Vec<Box<dyn Observer<BB, M> + 'a>>
where
    M: AutodiffModule<Autodiff<BB>> + Network<Autodiff<BB>, D>,
    M::InnerModule: CurvatureModel<BB, D>,
{
    let mut observers: Vec<Box<dyn Observer<BB, M> + 'a>> = Vec::new();
    if let Some(rmt_data) = &data.rmt {
        observers.push(Box::new(RmtEstimator::new(config, rmt_data, group)));
    }
    observers.push(Box::new(BlowUpGuard { config, paths }));
    if let Some(spectrum_data) = &data.spectrum {
        observers.push(Box::new(SpectrumLog {
            config,
            paths,
            data: spectrum_data,
            progress,
            group,
        }));
    }
    // With data parallelism every peer computes (the collective steps above), and peer 0
    // alone writes the run's files and prints.
    if group.is_some_and(|g| g.rank() != 0) {
        return observers;
    }
    observers.push(Box::new(Checkpointer { paths }));
    observers.push(Box::new(MetricsLog { paths }));
    // Last: its epoch line is printed once the epoch's files are written.
    observers.push(Box::new(ProgressLog::new(config.epochs, progress)));
    observers
}
