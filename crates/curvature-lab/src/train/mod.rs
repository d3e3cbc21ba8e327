//! `curvature train`: one training run with metrics, atomic checkpoints and bit-identical
//! resumption (on the CPU backends, NdArray and Flex).
//!
//! Output directory layout:
//!
//! ```text
//! OUT/config.json          the resolved configuration (what --resume reads back)
//! OUT/metrics.csv          one row per epoch: epoch, step, lr, damping, train/val loss and
//!                          accuracy, seconds
//! OUT/checkpoint/          model + optimiser records (+ the iterate average,
//!                          optimizer-average.bin) and state.json,
//!                          replaced atomically (written to checkpoint.tmp, then renamed)
//! OUT/weights.safetensors  final weights, PyTorch names and layouts
//! OUT/summary.json         final metrics
//! OUT/plots/*.svg, *.png   loss, accuracy, learning rate / damping (and λ_max) per epoch
//! OUT/spectra.csv          with spectrum_every: λ_max, λ_min, trace, … of the Hessian
//! OUT/spectra/epoch-N.json the full summaries, and their stem plots epoch-N.svg/.png
//! OUT/rmt.csv              with damping = auto: every re-estimate — the batch and per-example
//!                          Hessian variance (± standard errors), δ̂ and the δ used
//! ```
//!
//! A raised [`Interrupt`] (Ctrl-C in the command) stops the run after the current step with a
//! checkpoint of that step; `--resume` then continues mid-epoch, still bit-identically.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::module::Module;
use burn::tensor::backend::Backend;
use curvature_core::{
    Batch, CurvatureModel, HessianVarianceConfig, Network, Train, mark_trainable,
};
use curvature_data::ClassificationData;
use curvature_nets::{module_path, recompute_running_stats, save_safetensors};
use curvature_optim::{OptimError, RmtDamping, Schedule, StepReport, load_record, save_record};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::backend::BackendChoice;
use crate::config::{DampingSetting, TrainConfig};
use crate::csv_table;
use crate::dir_lock::DirLock;
use crate::error::{LabError, Result, invalid, io, write_atomic};
use crate::names::ScheduleKind;
use crate::optimizer::RunOptimizer;
use crate::peers::{each_peer, group_objective};
use crate::plot::{LineChart, Series, save_both};
use crate::progress::{Interrupt, Progress, ProgressMode};
use crate::setup::{INPUT_RANK, ModelVisitor, load_weights, shaped_dataset, with_model};
use crate::spectrum::{lanczos_summary, stem_chart};
use curvature_collective::{PeerGroupConfig, shard_range};
use curvature_optim::PeerGroup;

/// How a run talks to the user.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overwrite an output directory that holds another run.
    pub force: bool,
    /// Progress bars and per-epoch lines ([`ProgressMode::Quiet`]: none).
    pub progress: ProgressMode,
    /// Polled after every step: when raised, checkpoint and stop with
    /// [`LabError::Interrupted`].
    pub interrupt: Option<Interrupt>,
    /// Backend, device and precision (resumption is bit-identical on the CPU backend).
    pub backend: BackendChoice,
    /// Data parallelism: the run on this many peers (threads, one per device), each taking its
    /// share of every global batch (`None`: one process). A resume needs the same number.
    pub peers: Option<PeerGroupConfig>,
}

mod checkpoint;
mod data;
mod guard;
mod metrics;
mod observer;
mod paths;
mod progress_log;
mod report;
mod rmt;
mod run_state;
mod training_loop;

use checkpoint::{Checkpointer, State};
use data::{LoopData, epoch_batches};
use guard::{BlowUpGuard, diverged};
pub use metrics::{EpochMetrics, SpectrumRecord};
use metrics::{HEADER, MetricsLog, SPECTRA_HEADER, truncate_csv, write_rmt_csv};
use observer::{Observer, observers};
pub use paths::RunPaths;
use progress_log::ProgressLog;
use report::{SpectrumLog, plot_run};
use rmt::RmtEstimator;
use run_state::Run;
use training_loop::{RunInputs, initial_weights, run};

/// Train from scratch into `out`; the metrics of every epoch.
///
/// # Errors
/// Invalid configuration, an `out` holding another run (without `force`), data and model
/// errors, divergence ([`LabError::Diverged`]), file errors.
pub fn train(config: &TrainConfig, out: &Path, options: RunOptions) -> Result<Vec<EpochMetrics>> {
    config.validate()?;
    let paths = RunPaths { out: out.into() };
    // Checked before the data is loaded, and again under the lock in `start_run`.
    if writes_files(&options) {
        refuse_another_run(&paths, options.force)?;
    }
    dispatch(config, &paths, false, options)
}

/// Whether this process writes the run's files: always, except on the nodes other than node 0
/// of a run across machines (their `--out` is only read, on a resume).
fn writes_files(options: &RunOptions) -> bool {
    options
        .peers
        .as_ref()
        .and_then(|g| g.node.as_ref())
        .is_none_or(|n| n.node_rank == 0)
}

/// [`LabError::OutputExists`] when `paths` holds a run (`config.json`) and `force` is off.
fn refuse_another_run(paths: &RunPaths, force: bool) -> Result<()> {
    if paths.config().exists() && !force {
        return Err(LabError::OutputExists(paths.out.clone()));
    }
    Ok(())
}

/// Lock the directory, clear what a forced run replaces, then write `config.json` and the
/// header of `metrics.csv`: called once data and model are ready, so a run that cannot start
/// leaves nothing behind. The lock is held until the returned guard is dropped.
fn start_run(config: &TrainConfig, paths: &RunPaths, force: bool) -> Result<DirLock> {
    let lock = DirLock::acquire(&paths.out)?;
    // Again under the lock: another process may have finished a run here since.
    refuse_another_run(paths, force)?;
    if force {
        let (tmp, old) = (paths.checkpoint_tmp(), paths.previous_checkpoint());
        for dir in [paths.checkpoint(), tmp, old, paths.spectra(), paths.plots()] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
            }
        }
        for file in [paths.spectra_csv(), paths.summary(), paths.weights()] {
            if file.exists() {
                std::fs::remove_file(&file).map_err(|e| io(&file, e))?;
            }
        }
    }
    write_atomic(
        &paths.config(),
        serde_json::to_string_pretty(config)
            .expect("serialisable")
            .as_bytes(),
    )?;
    csv_table::write(&paths.metrics(), &[HEADER])?;
    Ok(lock)
}

/// Continue the run in `out` from its last checkpoint; the metrics of every epoch of the run,
/// those before the checkpoint included.
///
/// # Errors
/// A directory without `config.json` or checkpoint, plus the errors of [`train`].
pub fn resume(out: &Path, options: RunOptions) -> Result<Vec<EpochMetrics>> {
    let paths = RunPaths { out: out.into() };
    if !paths.config().exists() {
        return Err(io(
            paths.config(),
            "no run to resume here (config.json is missing)",
        ));
    }
    // Another node than node 0 only reads node 0's checkpoint (copied here, or shared).
    let _lock = match writes_files(&options) {
        true => {
            let lock = DirLock::acquire(out)?;
            paths.recover_checkpoint()?;
            Some(lock)
        }
        false if !paths.checkpoint().join("state.json").exists() => {
            return Err(io(
                paths.checkpoint(),
                "no checkpoint here: every node of a run across machines resumes from node 0's checkpoint — copy node 0's output directory here (or share it) first",
            ));
        }
        false => None,
    };
    let config = TrainConfig::from_file(&paths.config())?;
    config.validate()?;
    dispatch(&config, &paths, true, options)
}

/// The backend and precision the run in `out` was trained on, from its checkpoint (`None`
/// before the first checkpoint, or in a checkpoint written before it was recorded): a resume
/// that names no backend continues there.
///
/// # Errors
/// An unreadable or malformed `checkpoint/state.json`.
pub fn trained_backend(out: &Path) -> Result<Option<BackendChoice>> {
    let paths = RunPaths { out: out.into() };
    // Read only (no lock is held): the checkpoint, or the previous one that
    // `recover_checkpoint` would restore after an interrupted swap.
    match [paths.checkpoint(), paths.previous_checkpoint()]
        .into_iter()
        .find(|dir| dir.join("state.json").exists())
    {
        Some(dir) => Ok(State::read(&dir)?.backend),
        None => Ok(None),
    }
}

fn dispatch(
    config: &TrainConfig,
    paths: &RunPaths,
    resume: bool,
    options: RunOptions,
) -> Result<Vec<EpochMetrics>> {
    if let Some(group) = &options.peers {
        group.validate()?;
    }
    let (train, val) = shaped_dataset(config)?;
    // A step budget fixes the epochs once the training set's size is known (what
    // `config.json` then records).
    let config = &config.with_step_budget(train.len())?;
    if let Some(group) = options.peers.as_ref().filter(|g| g.total_peers() > 1) {
        check_shares(config, train.len(), group.total_peers())?;
    }
    let backend = options.backend;
    let (example, k) = (train.example_shape.clone(), train.num_classes);
    let trainer = Trainer(RunInputs {
        config,
        paths,
        resume,
        options,
        train: &train,
        val: &val,
    });
    with_model(config, &backend, &example, k, trainer)
}

/// [`run`] for whichever backend and model the configuration names.
struct Trainer<'a>(RunInputs<'a>);

impl ModelVisitor for Trainer<'_> {
    type Output = Vec<EpochMetrics>;
    fn visit<BB: Backend, M: CurvatureModel<BB, INPUT_RANK>>(
        self,
        model: M,
        device: &BB::Device,
    ) -> Result<Self::Output> {
        let inputs = &self.0;
        let model = initial_weights(inputs.config, model)?;
        let model = Train::<BB, M>::from_inner(mark_trainable(model));
        let writes = writes_files(&inputs.options);
        let lock = match !inputs.resume && writes {
            true => Some(start_run(
                inputs.config,
                inputs.paths,
                inputs.options.force,
            )?),
            // `resume` holds the lock; other nodes than node 0 write nothing.
            false => None,
        };
        let result = match &inputs.options.peers {
            Some(group) if group.total_peers() > 1 => {
                each_peer::<BB, _, _>(group, device, model, |peer, model| {
                    let device = peer.device().clone();
                    let model = model.fork(&device);
                    let group = Some(peer as PeerGroup<BB>);
                    run::<BB, _, INPUT_RANK>(inputs, model, &device, group)
                })
            }
            _ => run::<BB, _, INPUT_RANK>(inputs, model, device, None),
        };
        let unstarted = writes
            && !inputs.resume
            && !inputs.paths.checkpoint().exists()
            && matches!(
                &result,
                Err(e) if !matches!(e, LabError::Diverged { .. } | LabError::Interrupted { .. })
            );
        if unstarted {
            discard_unstarted(inputs.paths);
        }
        drop(lock);
        result
    }
}

/// Refuse, before any peer starts, a data-parallel run whose global batches cannot all be
/// shared by `peers` peers (every peer needs at least one example of every batch, the last,
/// partial one included).
fn check_shares(config: &TrainConfig, train_len: usize, peers: usize) -> Result<()> {
    let batch = config.batch_size.min(train_len);
    let smallest = match train_len % batch {
        0 => batch,
        last => last,
    };
    if smallest < peers {
        return Err(invalid(
            "peers",
            format!(
                "{peers} (the smallest global batch has {smallest} examples: batch_size {} over {train_len} training examples)",
                config.batch_size
            ),
            "every peer needs at least one example of every global batch: use fewer peers, or a batch size whose last batch has at least as many examples as there are peers",
        ));
    }
    Ok(())
}

/// Remove what [`start_run`] wrote for a run that failed before its first checkpoint (other
/// than by divergence or an interrupt, which are recorded): the directory does not claim to
/// hold a run, so the corrected command can use it again. Best effort — the run's own error
/// is the one reported.
fn discard_unstarted(paths: &RunPaths) {
    for file in [paths.config(), paths.metrics(), DirLock::file(&paths.out)] {
        let _ = std::fs::remove_file(file);
    }
    // Only succeeds when nothing else is left in it.
    let _ = std::fs::remove_dir(&paths.out);
}
