//! `curvature train`: one training run with metrics, atomic checkpoints and bit-identical
//! resumption (CPU, NdArray f32).
//!
//! Output directory layout:
//!
//! ```text
//! OUT/config.json          the resolved configuration (what --resume reads back)
//! OUT/metrics.csv          one row per epoch: epoch, step, lr, damping, train/val loss and
//!                          accuracy, seconds
//! OUT/checkpoint/          model + optimiser records (+ the iterate average) and state.json,
//!                          replaced atomically (written to checkpoint.tmp, then renamed)
//! OUT/weights.safetensors  final weights, PyTorch names and layouts
//! OUT/summary.json         final metrics
//! OUT/plots/*.svg, *.png   loss, accuracy, learning rate / damping (and λ_max) per epoch
//! OUT/spectra.csv          with spectrum_every: λ_max, λ_min, trace, … of the Hessian
//! OUT/spectra/epoch-N.json the full summaries, and their stem plots epoch-N.svg/.png
//! ```
//!
//! A raised [`Interrupt`] (Ctrl-C in the command) stops the run after the current step with a
//! checkpoint of that step; `--resume` then continues mid-epoch, still bit-identically.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use curvature_core::{
    Batch, CurvatureModel, HessianVarianceConfig, Loss, Network, Objective, Train, mark_trainable,
};
use curvature_data::ClassificationData;
use curvature_nets::{module_path, recompute_running_stats, save_safetensors};
use curvature_optim::{
    AveragingSchedule, IterateAverage, OptimError, RmtDamping, Schedule, load_record, save_record,
};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::backend::BackendChoice;
use crate::config::{DampingSetting, TrainConfig};
use crate::csv_table;
use crate::error::{LabError, Result, invalid, io, write_atomic};
use crate::names::ScheduleKind;
use crate::optimizer::RunOptimizer;
use crate::plot::{LineChart, Series, save_both};
use crate::progress::{Interrupt, Progress, ProgressMode};
use crate::setup::{ModelVisitor, load_weights, shaped_dataset, with_model};
use crate::spectrum::{lanczos_summary, stem_chart};

/// Mixed into the seed of the per-epoch augmentation, so it is independent of the shuffling.
const AUGMENT_STREAM: u64 = 0x5EED_A116;

/// The default backend (CPU, f32; see [`BackendChoice`] for the others).
pub type B = NdArray<f32>;

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
}

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
const HEADER: [&str; 9] = [
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
const SPECTRA_HEADER: [&str; 13] = [
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
    fn fields(&self) -> Vec<String> {
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

/// Where a run's files are.
#[derive(Debug, Clone)]
pub struct RunPaths {
    /// The output directory.
    pub out: PathBuf,
}

impl RunPaths {
    /// `OUT/config.json`.
    pub fn config(&self) -> PathBuf {
        self.out.join("config.json")
    }
    /// `OUT/metrics.csv`.
    pub fn metrics(&self) -> PathBuf {
        self.out.join("metrics.csv")
    }
    /// `OUT/checkpoint`.
    pub fn checkpoint(&self) -> PathBuf {
        self.out.join("checkpoint")
    }
    /// `OUT/checkpoint.old`: the previous checkpoint during the swap in [`checkpoint`].
    fn previous_checkpoint(&self) -> PathBuf {
        self.out.join("checkpoint.old")
    }
    /// `OUT/checkpoint.tmp`: the next checkpoint while [`checkpoint`] writes it.
    fn checkpoint_tmp(&self) -> PathBuf {
        self.out.join("checkpoint.tmp")
    }
    /// After a crash between the two renames of the checkpoint swap only `checkpoint.old`
    /// exists (complete: it was the checkpoint until then): move it back so that resuming,
    /// `--checkpoint` and sweeps find it.
    ///
    /// # Errors
    /// The rename's I/O error.
    pub fn recover_checkpoint(&self) -> Result<()> {
        let (ck, old) = (self.checkpoint(), self.previous_checkpoint());
        if !ck.join("state.json").exists() && old.join("state.json").exists() {
            if ck.exists() {
                std::fs::remove_dir_all(&ck).map_err(|e| io(&ck, e))?;
            }
            std::fs::rename(&old, &ck).map_err(|e| io(&old, e))?;
        }
        Ok(())
    }
    /// `OUT/weights.safetensors`.
    pub fn weights(&self) -> PathBuf {
        self.out.join("weights.safetensors")
    }
    /// `OUT/summary.json`.
    pub fn summary(&self) -> PathBuf {
        self.out.join("summary.json")
    }
    /// `OUT/plots`.
    pub fn plots(&self) -> PathBuf {
        self.out.join("plots")
    }
    /// `OUT/spectra.csv`.
    pub fn spectra_csv(&self) -> PathBuf {
        self.out.join("spectra.csv")
    }
    /// `OUT/spectra`.
    pub fn spectra(&self) -> PathBuf {
        self.out.join("spectra")
    }
    /// The rows of `metrics.csv`.
    ///
    /// # Errors
    /// An unreadable file.
    pub fn read_metrics(&self) -> Result<Vec<EpochMetrics>> {
        let (_, rows) =
            csv_table::read(&self.metrics())?.ok_or_else(|| io(self.metrics(), "not found"))?;
        Ok(rows.iter().filter_map(EpochMetrics::from_record).collect())
    }

    /// The rows of `spectra.csv` (empty when the run recorded no spectra).
    ///
    /// # Errors
    /// [`LabError::Io`] if the file exists but cannot be read.
    pub fn read_spectra(&self) -> Result<Vec<SpectrumRecord>> {
        Ok(
            csv_table::read(&self.spectra_csv())?.map_or_else(Vec::new, |(_, rows)| {
                rows.iter()
                    .filter_map(SpectrumRecord::from_record)
                    .collect()
            }),
        )
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
}

impl SpectrumRecord {
    /// Read a row of `spectra.csv` (`None` for a malformed row; rows of 9 columns, written
    /// before the standard errors were recorded, read with NaN standard errors).
    pub fn from_record(f: &csv::StringRecord) -> Option<Self> {
        if f.len() != 9 && f.len() != 13 {
            return None;
        }
        let num = |i: usize| f[i].parse::<f64>().ok();
        let stderr = if f.len() == 13 {
            [num(9)?, num(10)?, num(11)?, num(12)?]
        } else {
            [f64::NAN; 4]
        };
        Some(Self {
            stderr,
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
    fn fields(&self) -> Vec<String> {
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
        f
    }
}

/// Progress of a run saved in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    epochs_done: usize,
    /// Batches of epoch `epochs_done + 1` already taken (an interrupted epoch).
    #[serde(default)]
    batches_done: usize,
    steps: usize,
    rmt: Option<RmtDamping>,
    /// The first step's mini-batch loss: the yardstick of the blow-up rule.
    #[serde(default)]
    first_loss: Option<f64>,
    /// Consecutive steps so far with a loss above `divergence_factor × first_loss`.
    #[serde(default)]
    steps_above: usize,
}

impl State {
    /// Record a step's loss; `Some(cause)` when the run has blown up
    /// ([`TrainConfig::divergence_factor`], [`TrainConfig::divergence_patience`]).
    fn blown_up(&mut self, loss: f64, config: &TrainConfig) -> Option<String> {
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

/// Train from scratch into `out`.
///
/// # Errors
/// Invalid configuration, an `out` holding another run (without `force`), data and model
/// errors, divergence ([`LabError::Diverged`]), file errors.
pub fn train(config: &TrainConfig, out: &Path, options: RunOptions) -> Result<Vec<EpochMetrics>> {
    config.validate()?;
    let paths = RunPaths { out: out.into() };
    if paths.config().exists() && !options.force {
        return Err(LabError::OutputExists(out.into()));
    }
    dispatch(config, &paths, false, options)
}

/// Clear what a forced run replaces, then write `config.json` and the header of `metrics.csv`:
/// called once data and model are ready, so a run that cannot start leaves nothing behind.
fn start_run(config: &TrainConfig, paths: &RunPaths, force: bool) -> Result<()> {
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
    std::fs::create_dir_all(&paths.out).map_err(|e| io(&paths.out, e))?;
    write_atomic(
        &paths.config(),
        serde_json::to_string_pretty(config)
            .expect("serialisable")
            .as_bytes(),
    )?;
    csv_table::write(&paths.metrics(), &[HEADER])
}

/// Continue the run in `out` from its last checkpoint.
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
    paths.recover_checkpoint()?;
    let config = TrainConfig::from_file(&paths.config())?;
    config.validate()?;
    dispatch(&config, &paths, true, options)
}

fn dispatch(
    config: &TrainConfig,
    paths: &RunPaths,
    resume: bool,
    options: RunOptions,
) -> Result<Vec<EpochMetrics>> {
    let (train, val) = shaped_dataset(config)?;
    let backend = options.backend;
    let (example, k) = (train.example_shape.clone(), train.num_classes);
    let trainer = Trainer {
        config,
        paths,
        resume,
        options,
        train: &train,
        val: &val,
    };
    with_model(config, &backend, &example, k, trainer)
}

/// [`run`] for whichever backend and model the configuration names.
struct Trainer<'a> {
    config: &'a TrainConfig,
    paths: &'a RunPaths,
    resume: bool,
    options: RunOptions,
    train: &'a ClassificationData,
    val: &'a ClassificationData,
}

impl ModelVisitor for Trainer<'_> {
    type Output = Vec<EpochMetrics>;
    fn visit<BB: Backend, M: CurvatureModel<BB, D>, const D: usize>(
        self,
        model: M,
        device: &BB::Device,
    ) -> Result<Self::Output> {
        let model = initial_weights(self.config, model)?;
        let model = Train::<BB, M>::from_inner(mark_trainable(model));
        if !self.resume {
            start_run(self.config, self.paths, self.options.force)?;
        }
        run::<BB, _, D>(
            self.config,
            self.paths,
            self.resume,
            self.options,
            model,
            self.train,
            self.val,
            device,
        )
    }
}

/// Load `config.init_weights`, if given.
fn initial_weights<BB: Backend, M: burn::module::Module<BB>>(
    config: &TrainConfig,
    model: M,
) -> Result<M> {
    match &config.init_weights {
        Some(path) => load_weights(model, path),
        None => Ok(model),
    }
}

fn schedule(config: &TrainConfig) -> Schedule {
    match config.schedule {
        ScheduleKind::Constant => Schedule::Constant,
        ScheduleKind::Cosine => Schedule::Cosine { min_ratio: 0.0 },
        ScheduleKind::LinearDecay => Schedule::LinearDecay { ratio: 0.01 },
        // α_avg = α₀/2 as in the paper; validation guarantees averaging is on.
        ScheduleKind::AveragingDecay => Schedule::AveragingDecay {
            averaging_start: config.averaging_start().unwrap_or(config.epochs) as f64,
            avg_ratio: 0.5,
        },
        ScheduleKind::WarmRamp => Schedule::WarmRamp {
            kappa: 5.0,
            ratio: 0.01,
        },
    }
}

/// Loss and accuracy of `model` (inference form) on `data`.
fn evaluate<BB: Backend, M: CurvatureModel<BB, D>, const D: usize>(
    model: &M,
    data: &[Batch<BB, D>],
) -> Result<(f64, f64)> {
    let e = Objective::new(model.clone(), Loss::CrossEntropy, data.to_vec())?.evaluate()?;
    Ok((e.loss, e.accuracy.unwrap_or(0.0)))
}

/// The model a run reports on: the current iterate, or once iterate averaging has begun the
/// averaged weights with their batch-norm statistics recomputed over `data` (the averaged
/// weights never produced statistics of their own; Izmailov et al. 2018).
fn reported_model<BB: Backend, M, const D: usize>(
    model: &M,
    average: Option<&IterateAverage<Autodiff<BB>>>,
    data: &Vec<Batch<BB, D>>,
) -> Result<M::InnerModule>
where
    M: AutodiffModule<Autodiff<BB>>,
    M::InnerModule: CurvatureModel<BB, D>,
{
    match average.map(|a| a.averaged(model.clone())).transpose()? {
        Some(Some(averaged)) => {
            let inner = averaged.valid();
            recompute_running_stats(&inner, data)?;
            Ok(inner)
        }
        _ => Ok(model.valid()),
    }
}

#[allow(clippy::too_many_arguments)]
fn run<BB: Backend, M, const D: usize>(
    config: &TrainConfig,
    paths: &RunPaths,
    resume: bool,
    options: RunOptions,
    mut model: M,
    train: &ClassificationData,
    val: &ClassificationData,
    device: &BB::Device,
) -> Result<Vec<EpochMetrics>>
where
    M: AutodiffModule<Autodiff<BB>> + Network<Autodiff<BB>, D>,
    M::InnerModule: CurvatureModel<BB, D>,
{
    let device = device.clone();
    let quiet = options.progress == ProgressMode::Quiet;
    let mut opt = RunOptimizer::<BB, M>::new(config)?;
    let auto = matches!(config.damping, Some(DampingSetting::Auto(_)));
    if auto && train.len().min(10_000) <= 128 {
        return Err(invalid(
            "damping",
            "auto",
            "RMT auto-damping estimates the Hessian variance on batches of 128 and needs more than 128 training examples (at least two batches)",
        ));
    }
    let floor = opt.damping_floor();
    let mut state = State {
        epochs_done: 0,
        batches_done: 0,
        steps: 0,
        first_loss: None,
        steps_above: 0,
        rmt: if auto {
            Some(
                RmtDamping::new(floor)?
                    .with_schedule(config.damping_interval, 0.7)?
                    .for_training_batch(config.batch_size.min(train.len()), Some(train.len()))?,
            )
        } else {
            None
        },
    };
    if resume {
        let ck = paths.checkpoint();
        let text = std::fs::read_to_string(ck.join("state.json"))
            .map_err(|e| io(ck.join("state.json"), e))?;
        state = serde_json::from_str(&text).map_err(|e| io(ck.join("state.json"), e))?;
        model = model.load_record(load_record(&ck.join("model"), &device)?);
        opt = opt.load(&ck.join("optimizer"), &device)?;
        // Keep the rows of the checkpointed epochs only.
        truncate_csv(&paths.metrics(), state.epochs_done)?;
        truncate_csv(&paths.spectra_csv(), state.epochs_done)?;
        if !quiet {
            eprintln!(
                "resuming {} after epoch {}{} (step {})",
                paths.out.display(),
                state.epochs_done,
                if state.batches_done > 0 {
                    format!(" + {} batches", state.batches_done)
                } else {
                    String::new()
                },
                state.steps
            );
        }
    }
    let batch_size = config.batch_size.min(train.len());
    // Iterate averaging from the end of epoch T_avg (in steps), on any optimiser.
    let mut average = match config.averaging_start() {
        Some(t_avg) => {
            let average = IterateAverage::<Autodiff<BB>>::new(AveragingSchedule {
                start: (t_avg * train.len().div_ceil(batch_size)).max(1),
                frequency: config.average_every,
            })?;
            Some(if resume {
                average.load_record(load_record(&paths.checkpoint().join("average"), &device)?)
            } else {
                average
            })
        }
        None => None,
    };
    // Training-time augmentation, drawn anew every epoch from (seed, epoch).
    let augmentation = match train.example_shape[..] {
        [_, h, w] => config.augmentation(h.min(w)),
        _ => None,
    };

    let val_batches = val.batches::<BB, D>(val.len().min(1000), &device)?;
    let train_eval = train.batches::<BB, D>(train.len().min(1000), &device)?;
    // RMT sub-sample: up to 10 000 training examples in batches of 128 (damping paper §7);
    // also the data of the spectra recorded during training.
    let subsample = train
        .take(10_000)
        .batches::<BB, D>(128.min(train.len()), &device)?;
    let sched = schedule(config);
    let mut rows = Vec::new();
    for epoch in state.epochs_done..config.epochs {
        let start = Instant::now();
        // A fixed permutation per (seed, epoch): resumed runs see the same batches.
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(curvature_core::derive_seed(
            config.seed,
            epoch as u64,
        ));
        order.shuffle(&mut rng);
        let epoch_data = match &augmentation {
            Some(a) => std::borrow::Cow::Owned(a.augment_all(
                train,
                curvature_core::derive_seed(config.seed ^ AUGMENT_STREAM, epoch as u64),
            )?),
            None => std::borrow::Cow::Borrowed(train),
        };
        let batches = epoch_data
            .select(&order)
            .batches::<BB, D>(batch_size, &device)?;
        drop(epoch_data);
        let n_batches = batches.len();
        let mut bar = Progress::new(
            format!("epoch {}/{}", epoch + 1, config.epochs),
            n_batches,
            options.progress,
        );
        let skip = state.batches_done;
        bar.advance(skip, "");
        let mut lr = config.lr;
        for (i, batch) in batches.iter().enumerate().skip(skip) {
            let t = epoch as f64 + i as f64 / n_batches as f64;
            lr = sched.learning_rate(config.lr, t, config.epochs as f64);
            if let Some(rmt) = &mut state.rmt {
                // Fresh vectors at every re-estimate (seeded by the step count: resumable).
                let base = HessianVarianceConfig::new().with_seed(config.seed);
                rmt.step_estimating(&base, |cfg| {
                    let objective =
                        Objective::new(model.valid(), Loss::CrossEntropy, subsample.clone())?;
                    Ok(curvature_core::hessian_variance(&objective, cfg)?)
                })?;
            }
            let result = opt.step(model, lr, batch, state.rmt.as_ref());
            let loss;
            (model, loss) = match result {
                Ok(r) => r,
                Err((_, OptimError::NonFiniteLoss(loss))) => {
                    bar.finish();
                    return Err(LabError::Diverged {
                        loss,
                        cause: String::new(),
                        step: state.steps,
                        epoch: epoch + 1,
                        checkpoint: Some(paths.checkpoint()).filter(|p| p.exists()),
                    });
                }
                Err((_, e)) => return Err(e.into()),
            };
            if let Some(cause) = state.blown_up(loss, config) {
                bar.finish();
                return Err(LabError::Diverged {
                    loss,
                    cause,
                    step: state.steps,
                    epoch: epoch + 1,
                    checkpoint: Some(paths.checkpoint()).filter(|p| p.exists()),
                });
            }
            if let Some(a) = &mut average {
                a.observe(&model)?;
            }
            state.steps += 1;
            state.batches_done = i + 1;
            bar.advance(1, &format!("loss {loss:.4}"));
            if options.interrupt.as_ref().is_some_and(Interrupt::raised) && i + 1 < n_batches {
                bar.finish();
                checkpoint(paths, &model, &opt, average.as_ref(), &state)?;
                return Err(LabError::Interrupted {
                    step: state.steps,
                    out: paths.out.clone(),
                });
            }
        }
        bar.finish();
        let seconds = start.elapsed().as_secs_f64();
        let reported = reported_model(&model, average.as_ref(), &train_eval)?;
        let (train_loss, train_accuracy) = evaluate(&reported, &train_eval)?;
        let (val_loss, val_accuracy) = evaluate(&reported, &val_batches)?;
        state.epochs_done = epoch + 1;
        state.batches_done = 0;
        let damping = opt.damping(state.rmt.as_ref());
        let row = EpochMetrics {
            epoch: epoch + 1,
            step: state.steps,
            lr,
            damping,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
            seconds,
        };
        if config.spectrum_every > 0 && (epoch + 1) % config.spectrum_every == 0 {
            record_spectrum(config, paths, &reported, &subsample, &row, options.progress)?;
        }
        checkpoint(paths, &model, &opt, average.as_ref(), &state)?;
        csv_table::append(&paths.metrics(), &HEADER, &row.fields())?;
        plot_run(paths)?;
        if !quiet {
            eprintln!(
                "epoch {}/{}  step {}  lr {:.3e}  train loss {:.4} acc {:.2}%  val loss {:.4} acc {:.2}%  ({:.1}s)",
                row.epoch,
                config.epochs,
                row.step,
                row.lr,
                row.train_loss,
                100.0 * row.train_accuracy,
                row.val_loss,
                100.0 * row.val_accuracy,
                row.seconds
            );
        }
        rows.push(row);
        if options.interrupt.as_ref().is_some_and(Interrupt::raised) && epoch + 1 < config.epochs {
            return Err(LabError::Interrupted {
                step: state.steps,
                out: paths.out.clone(),
            });
        }
    }
    // The reported model: with iterate averaging, the average (as Gadam and SWA evaluate).
    let reported = reported_model(&model, average.as_ref(), &train_eval)?;
    save_safetensors(&reported, paths.weights(), &module_path)?;
    if let Some(last) = rows.last() {
        write_atomic(
            &paths.summary(),
            serde_json::to_string_pretty(last)
                .expect("serialisable")
                .as_bytes(),
        )?;
    }
    Ok(rows)
}

/// Keep the header and the rows of epochs `≤ epochs` of a per-epoch CSV file (if it exists).
fn truncate_csv(path: &Path, epochs: usize) -> Result<()> {
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

/// The Hessian spectrum of the training sub-sample at the end of an epoch: a row of
/// `spectra.csv`, `spectra/epoch-N.json` and its stem plot `spectra/epoch-N.svg` (and `.png`).
fn record_spectrum<BB: Backend, M: CurvatureModel<BB, D>, const D: usize>(
    config: &TrainConfig,
    paths: &RunPaths,
    model: &M,
    data: &[Batch<BB, D>],
    row: &EpochMetrics,
    progress: ProgressMode,
) -> Result<()> {
    let objective = Objective::new(model.clone(), Loss::CrossEntropy, data.to_vec())?;
    let s = lanczos_summary(
        &objective.hessian(),
        config.spectrum_steps,
        1,
        config.seed,
        curvature_core::OutlierRule::default(),
        progress,
    )?;
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
    };
    csv_table::append(&paths.spectra_csv(), &SPECTRA_HEADER, &record.fields())
}

/// Redraw `plots/` from `metrics.csv` (and `spectra.csv`).
fn plot_run(paths: &RunPaths) -> Result<()> {
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

/// Write model, optimiser and state to `checkpoint.tmp`, flush every file to disk, then swap
/// it in: `checkpoint` → `checkpoint.old`, `checkpoint.tmp` → `checkpoint`, remove
/// `checkpoint.old`. At every instant a complete checkpoint exists under one of the two names
/// ([`RunPaths::recover_checkpoint`], called by [`resume`], takes the old one back after a
/// crash in between).
fn checkpoint<BB: Backend, M: AutodiffModule<Autodiff<BB>>>(
    paths: &RunPaths,
    model: &M,
    opt: &RunOptimizer<BB, M>,
    average: Option<&IterateAverage<Autodiff<BB>>>,
    state: &State,
) -> Result<()> {
    let tmp = paths.checkpoint_tmp();
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    save_record::<Autodiff<BB>, _>(model.clone().into_record(), &tmp.join("model"))?;
    opt.save(&tmp.join("optimizer"))?;
    if let Some(a) = average {
        save_record::<Autodiff<BB>, _>(a.to_record(), &tmp.join("average"))?;
    }
    std::fs::write(
        tmp.join("state.json"),
        serde_json::to_string_pretty(state).expect("serialisable"),
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
    Ok(())
}

/// `fsync` every file of `dir`, then `dir` itself.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::File::open(&path)?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}
