//! A run's checkpoint: its progress ([`State`]), the atomic swap that writes model, optimiser
//! (with its iterate average) and state together, and the [`Checkpointer`] that writes one
//! after every epoch and on an interrupt.

use super::*;

/// Progress of a run saved in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct State {
    pub(super) epochs_done: usize,
    /// Batches of epoch `epochs_done + 1` already taken (an interrupted epoch).
    #[serde(default)]
    pub(super) batches_done: usize,
    pub(super) steps: usize,
    pub(super) rmt: Option<RmtDamping>,
    /// The first step's mini-batch loss: the yardstick of the blow-up rule.
    #[serde(default)]
    pub(super) first_loss: Option<f64>,
    /// Consecutive steps so far with a loss above `divergence_factor × first_loss`.
    #[serde(default)]
    pub(super) steps_above: usize,
    /// The backend and precision the run trains on; a resume elsewhere is refused (`None` in
    /// checkpoints written before it was recorded).
    #[serde(default)]
    pub(super) backend: Option<BackendChoice>,
    /// The number of data-parallel peers the run trains on (`None` in checkpoints written
    /// before it was recorded: one). A resume on another number is refused.
    #[serde(default)]
    pub(super) peers: Option<usize>,
}

impl State {
    /// The state saved in the checkpoint directory `dir` (its `state.json`).
    ///
    /// # Errors
    /// An unreadable or malformed file, naming it.
    pub(super) fn read(dir: &Path) -> Result<Self> {
        let file = dir.join("state.json");
        let text = std::fs::read_to_string(&file).map_err(|e| io(&file, e))?;
        serde_json::from_str(&text).map_err(|e| io(&file, e))
    }

    /// Record a step's loss; `Some(cause)` when the run has blown up
    /// ([`TrainConfig::divergence_factor`], [`TrainConfig::divergence_patience`]).
    pub(super) fn blown_up(&mut self, loss: f64, config: &TrainConfig) -> Option<String> {
        let first = *self.first_loss.get_or_insert(loss);
        let limit = config.divergence_factor * first.abs();
        self.steps_above = if loss > limit {
            self.steps_above + 1
        } else {
            0
        };
        (self.steps_above >= config.divergence_patience).then(|| {
            format!(
                " (above {} × the first loss {first:.4} for {} steps in a row; \
                 configurable: divergence_factor, divergence_patience)",
                config.divergence_factor, self.steps_above
            )
        })
    }
}

/// Write model, optimiser and state to `checkpoint.tmp`, flush every file to disk, then swap
/// it in: `checkpoint` → `checkpoint.old`, `checkpoint.tmp` → `checkpoint`, remove
/// `checkpoint.old`. At every instant a complete checkpoint exists under one of the two names
/// ([`RunPaths::recover_checkpoint`], called by [`resume`], takes the old one back after a
/// crash in between). With RMT auto-damping, `rmt.csv` is rewritten from the state too.
pub(super) fn checkpoint<BB: Backend, M: AutodiffModule<Autodiff<BB>>>(
    paths: &RunPaths,
    run: &Run<BB, M>,
) -> Result<()> {
    let tmp = paths.checkpoint_tmp();
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    save_record::<Autodiff<BB>, _>(run.model.clone().into_record(), &tmp.join("model"))?;
    // With iterate averaging, the average too (`optimizer-average.bin`).
    run.opt.save(&tmp.join("optimizer"))?;
    std::fs::write(
        tmp.join("state.json"),
        serde_json::to_string_pretty(&run.state).expect("serialisable"),
    )
    .map_err(|e| io(tmp.join("state.json"), e))?;
    sync_dir(&tmp).map_err(|e| io(&tmp, e))?;
    let ck = paths.checkpoint();
    let old = paths.previous_checkpoint();
    if ck.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
        }
        std::fs::rename(&ck, &old).map_err(|e| io(&ck, e))?;
    }
    std::fs::rename(&tmp, &ck).map_err(|e| io(&ck, e))?;
    // The renames themselves reach the disk before the old checkpoint goes.
    std::fs::File::open(&paths.out)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(&paths.out, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    }
    // The RMT re-estimates so far, readable beside the checkpoint that holds them.
    if let Some(rmt) = &run.state.rmt {
        write_rmt_csv(&paths.rmt_csv(), rmt)?;
    }
    Ok(())
}

/// Writes a checkpoint after every epoch and when the run is interrupted.
pub(super) struct Checkpointer<'a> {
    pub(super) paths: &'a RunPaths,
}

impl<BB: Backend, M: AutodiffModule<Autodiff<BB>>> Observer<BB, M> for Checkpointer<'_> {
    fn epoch_ended(
        &mut self,
        run: &Run<BB, M>,
        _row: &EpochMetrics,
        _reported: &M::InnerModule,
    ) -> Result<()> {
        checkpoint(self.paths, run)
    }

    fn interrupted(&mut self, run: &Run<BB, M>) -> Result<()> {
        checkpoint(self.paths, run)
    }
}

/// `fsync` every file of `dir`, then `dir` itself.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::File::open(&path)?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}
