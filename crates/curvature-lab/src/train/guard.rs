//! The blow-up guard: a loss that grows far beyond the first one without becoming NaN stops
//! the run as a NaN does ([`TrainConfig::divergence_factor`],
//! [`TrainConfig::divergence_patience`]; the count is in the checkpointed [`State`]).

use super::*;

/// Stops a run whose loss has blown up.
pub(super) struct BlowUpGuard<'a> {
    pub(super) config: &'a TrainConfig,
    pub(super) paths: &'a RunPaths,
}

impl<BB: Backend, M: AutodiffModule<Autodiff<BB>>> Observer<BB, M> for BlowUpGuard<'_> {
    fn after_step(&mut self, run: &mut Run<BB, M>, report: &StepReport) -> Result<()> {
        match run.state.blown_up(report.loss, self.config) {
            Some(cause) => Err(diverged(self.paths, &run.state, report.loss, cause)),
            None => Ok(()),
        }
    }
}

/// [`LabError::Diverged`] at the step `state` is at, with `loss`, its `cause` (empty for a
/// non-finite loss) and the last checkpoint, which is kept.
pub(super) fn diverged(paths: &RunPaths, state: &State, loss: f64, cause: String) -> LabError {
    LabError::Diverged {
        loss,
        cause,
        step: state.steps,
        epoch: state.epochs_done + 1,
        checkpoint: Some(paths.checkpoint()).filter(|p| p.exists()),
    }
}
