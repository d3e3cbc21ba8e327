//! What a run shows while it trains: a progress bar over each epoch's steps with the current
//! loss, and a line per epoch with its metrics (nothing with [`ProgressMode::Quiet`]).

use super::*;

/// The per-epoch bar and line.
pub(super) struct ProgressLog {
    epochs: usize,
    mode: ProgressMode,
    bar: Option<Progress>,
}

impl ProgressLog {
    pub(super) fn new(epochs: usize, mode: ProgressMode) -> Self {
        Self {
            epochs,
            mode,
            bar: None,
        }
    }

    fn end_bar(&mut self) {
        if let Some(mut bar) = self.bar.take() {
            bar.finish();
        }
    }
}

impl<BB: Backend, M: AutodiffModule<Autodiff<BB>>> Observer<BB, M> for ProgressLog {
    fn epoch_started(&mut self, run: &Run<BB, M>, epoch: usize, steps: usize) -> Result<()> {
        let mut bar = Progress::new(
            format!("epoch {}/{}", epoch + 1, self.epochs),
            steps,
            self.mode,
        );
        bar.advance(run.state.batches_done, "");
        self.bar = Some(bar);
        Ok(())
    }

    fn after_step(&mut self, _run: &mut Run<BB, M>, report: &StepReport) -> Result<()> {
        if let Some(bar) = &mut self.bar {
            bar.advance(1, &format!("loss {:.4}", report.loss));
        }
        Ok(())
    }

    fn steps_done(&mut self, _run: &Run<BB, M>) {
        self.end_bar();
    }

    fn epoch_ended(
        &mut self,
        _run: &Run<BB, M>,
        row: &EpochMetrics,
        _reported: &M::InnerModule,
    ) -> Result<()> {
        if self.mode != ProgressMode::Quiet {
            eprintln!(
                "epoch {}/{}  step {}  lr {:.3e}  train loss {:.4} acc {:.2}%  val loss {:.4} acc {:.2}%  ({:.1}s)",
                row.epoch,
                self.epochs,
                row.step,
                row.lr,
                row.train_loss,
                100.0 * row.train_accuracy,
                row.val_loss,
                100.0 * row.val_accuracy,
                row.seconds
            );
        }
        Ok(())
    }

    fn interrupted(&mut self, _run: &Run<BB, M>) -> Result<()> {
        self.end_bar();
        Ok(())
    }
}

/// A run stopped by an error mid-epoch still ends the bar's line, so the error starts on a
/// line of its own.
impl Drop for ProgressLog {
    fn drop(&mut self) {
        self.end_bar();
    }
}
