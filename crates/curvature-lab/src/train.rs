//! `curvature train`: one training run with metrics, atomic checkpoints and bit-identical
//! resumption (CPU, NdArray f32).
//!
//! Output directory layout:
//!
//! ```text
//! OUT/config.json          the resolved configuration (what --resume reads back)
//! OUT/metrics.csv          one row per epoch: epoch, step, lr, damping, train/val loss and
//!                          accuracy, seconds
//! OUT/checkpoint/          model + optimiser records and state.json after the last epoch,
//!                          replaced atomically (written to checkpoint.tmp, then renamed)
//! OUT/weights.safetensors  final weights, PyTorch names and layouts
//! OUT/summary.json         final metrics
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::{Batch, BatchNormMode, HessianVarianceConfig, Loss, Network, Objective};
use curvature_data::ClassificationData;
use curvature_nets::{module_path, save_safetensors};
use curvature_optim::{
    Adam, AdamConfig, DampingCell, DampingPolicy, FixedDamping, Kfac, KfacConfig, OptimError,
    RmtDamping, Schedule, Sgd, SgdConfig, WeightDecayMode, checked_step,
};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::config::{DampingSetting, TrainConfig};
use crate::error::{LabError, Result, io};
use crate::setup::{AnyModel, build_model, dataset};

/// The training backend.
pub type B = NdArray<f32>;
/// Its autodiff backend.
pub type AB = Autodiff<B>;

/// How a run talks to the user.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Overwrite an output directory that holds another run.
    pub force: bool,
    /// No progress lines.
    pub quiet: bool,
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

const HEADER: &str =
    "epoch,step,lr,damping,train_loss,train_accuracy,val_loss,val_accuracy,seconds";

impl EpochMetrics {
    fn csv(&self) -> String {
        format!(
            "{},{},{:e},{},{:.6},{:.6},{:.6},{:.6},{:.3}",
            self.epoch,
            self.step,
            self.lr,
            self.damping.map_or(String::new(), |d| format!("{d:e}")),
            self.train_loss,
            self.train_accuracy,
            self.val_loss,
            self.val_accuracy,
            self.seconds
        )
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
    /// `OUT/weights.safetensors`.
    pub fn weights(&self) -> PathBuf {
        self.out.join("weights.safetensors")
    }
    /// `OUT/summary.json`.
    pub fn summary(&self) -> PathBuf {
        self.out.join("summary.json")
    }
}

/// Progress of a run saved in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    epochs_done: usize,
    steps: usize,
    rmt: Option<RmtDamping>,
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
    if options.force && paths.checkpoint().exists() {
        std::fs::remove_dir_all(paths.checkpoint()).map_err(|e| io(paths.checkpoint(), e))?;
    }
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    write_atomic(
        &paths.config(),
        serde_json::to_string_pretty(config)
            .expect("serialisable")
            .as_bytes(),
    )?;
    write_atomic(&paths.metrics(), format!("{HEADER}\n").as_bytes())?;
    dispatch(config, &paths, false, options)
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
    let device = Default::default();
    B::seed(&device, config.seed);
    let (train, val) = dataset(config)?;
    let (d, k) = (train.example_len(), train.num_classes);
    match build_model::<AB>(config, d, k, &device)? {
        AnyModel::Logistic(m) => {
            let m = initial_weights(config, m)?;
            run(config, paths, resume, options, m, &train, &val)
        }
        AnyModel::Mlp(m) => {
            let m = initial_weights(config, m)?;
            run(config, paths, resume, options, m, &train, &val)
        }
    }
}

/// Load `config.init_weights`, if given (every tensor of the file must be used).
fn initial_weights<M: burn::module::Module<AB>>(config: &TrainConfig, model: M) -> Result<M> {
    let Some(path) = &config.init_weights else {
        return Ok(model);
    };
    let (model, unused) = curvature_nets::load_safetensors(model, path, &module_path)?;
    if !unused.is_empty() {
        return Err(io(
            path,
            format!(
                "tensors not used by the model (wrong --model?): {}",
                unused.join(", ")
            ),
        ));
    }
    Ok(model)
}

/// The optimiser of a run, with its damping policy.
enum Opt<M: AutodiffModule<AB>> {
    Sgd(OptimizerAdaptor<Sgd, M, AB>),
    Adam(OptimizerAdaptor<Adam, M, AB>, DampingCell),
    Kfac(Box<Kfac<AB, M>>, FixedDamping),
}

fn build_optimizer<M: AutodiffModule<AB>>(c: &TrainConfig) -> Result<Opt<M>> {
    let mode = if c.decoupled || matches!(c.optimizer.as_str(), "adamw" | "adam-d") {
        WeightDecayMode::Decoupled
    } else {
        WeightDecayMode::L2
    };
    let fixed = match c.damping {
        Some(DampingSetting::Fixed(d)) => Some(d),
        _ => None,
    };
    Ok(match c.optimizer.as_str() {
        "sgd" => Opt::Sgd(
            SgdConfig::new()
                .with_momentum(c.momentum)
                .with_weight_decay(c.weight_decay)
                .with_weight_decay_mode(mode)
                .init::<AB, M>()?,
        ),
        "kfac" => Opt::Kfac(
            Box::new(
                KfacConfig::new()
                    .with_momentum(c.momentum)
                    .with_weight_decay(c.weight_decay)
                    .with_seed(c.seed)
                    .init::<AB, M>()?,
            ),
            FixedDamping::new(fixed.unwrap_or(c.damping_floor))?,
        ),
        _ => {
            let eps = fixed.unwrap_or(c.eps);
            let cell = DampingCell::new(eps)?;
            let adam = AdamConfig::new()
                .with_epsilon(eps)
                .with_weight_decay(c.weight_decay)
                .with_weight_decay_mode(mode)
                .init_damped::<AB, M>(cell.clone())?;
            Opt::Adam(adam, cell)
        }
    })
}

fn schedule(name: &str) -> Schedule {
    match name {
        "cosine" => Schedule::Cosine { min_ratio: 0.0 },
        "linear-decay" => Schedule::LinearDecay { ratio: 0.01 },
        "warm-ramp" => Schedule::WarmRamp {
            kappa: 5.0,
            ratio: 0.01,
        },
        _ => Schedule::Constant,
    }
}

fn recorder() -> BinFileRecorder<FullPrecisionSettings> {
    BinFileRecorder::<FullPrecisionSettings>::default()
}

/// Read a record written by [`checkpoint`] (`path` without the `.bin` the recorder adds).
fn read_record<R: burn::record::Record<AB>>(
    path: &Path,
    device: &burn::tensor::Device<AB>,
) -> Result<R> {
    recorder()
        .load(path.to_path_buf(), device)
        .map_err(|e| io(path.with_extension("bin"), e))
}

/// Write `bytes` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

fn evaluate<M: AutodiffModule<AB>>(model: &M, data: &[Batch<B, 2>]) -> Result<(f64, f64)>
where
    M::InnerModule: Network<B, 2> + curvature_core::CurvatureModel<B, 2>,
{
    let e = Objective::new(model.valid(), Loss::CrossEntropy, data.to_vec())?.evaluate()?;
    Ok((e.loss, e.accuracy.unwrap_or(0.0)))
}

#[allow(clippy::too_many_arguments)]
fn run<M>(
    config: &TrainConfig,
    paths: &RunPaths,
    resume: bool,
    options: RunOptions,
    mut model: M,
    train: &ClassificationData,
    val: &ClassificationData,
) -> Result<Vec<EpochMetrics>>
where
    M: AutodiffModule<AB> + Network<AB, 2>,
    M::InnerModule: Network<B, 2> + curvature_core::CurvatureModel<B, 2>,
{
    let device = Default::default();
    let mut opt = build_optimizer::<M>(config)?;
    let auto = matches!(config.damping, Some(DampingSetting::Auto(_)));
    let floor = match opt {
        Opt::Kfac(..) => config.damping_floor,
        _ => config.eps,
    };
    let mut state = State {
        epochs_done: 0,
        steps: 0,
        rmt: if auto {
            Some(RmtDamping::new(floor)?.with_schedule(config.damping_interval, 0.7)?)
        } else {
            None
        },
    };
    if resume {
        let ck = paths.checkpoint();
        let text = std::fs::read_to_string(ck.join("state.json"))
            .map_err(|e| io(ck.join("state.json"), e))?;
        state = serde_json::from_str(&text).map_err(|e| io(ck.join("state.json"), e))?;
        model = model.load_record(read_record(&ck.join("model"), &device)?);
        let opt_path = ck.join("optimizer");
        opt = match opt {
            Opt::Sgd(o) => Opt::Sgd(o.load_record(read_record(&opt_path, &device)?)),
            Opt::Adam(o, cell) => Opt::Adam(o.load_record(read_record(&opt_path, &device)?), cell),
            Opt::Kfac(o, d) => Opt::Kfac(
                Box::new(o.load_record(read_record(&opt_path, &device)?)?),
                d,
            ),
        };
        // Keep the metric rows of the checkpointed epochs only.
        let text = std::fs::read_to_string(paths.metrics()).unwrap_or_default();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.split(',')
                    .next()
                    .and_then(|e| e.parse::<usize>().ok())
                    .is_none_or(|e| e <= state.epochs_done)
            })
            .collect();
        write_atomic(
            &paths.metrics(),
            format!("{}\n", kept.join("\n")).as_bytes(),
        )?;
        if !options.quiet {
            eprintln!(
                "resuming {} after epoch {} (step {})",
                paths.out.display(),
                state.epochs_done,
                state.steps
            );
        }
    }
    if let (Opt::Adam(_, cell), Some(rmt)) = (&opt, &state.rmt) {
        cell.follow(rmt)?;
    }

    let val_batches = val.batches::<B, 2>(val.len().min(1000), &device)?;
    let train_eval = train.batches::<B, 2>(train.len().min(1000), &device)?;
    // RMT sub-sample: up to 10 000 training examples in batches of 128 (damping paper §7).
    let subsample = train
        .take(10_000)
        .batches::<B, 2>(128.min(train.len()), &device)?;
    let sched = schedule(&config.schedule);
    let batch_size = config.batch_size.min(train.len());
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
        let batches = train.select(&order).batches::<B, 2>(batch_size, &device)?;
        let n_batches = batches.len();
        let mut lr = config.lr;
        for (i, batch) in batches.iter().enumerate() {
            let t = epoch as f64 + i as f64 / n_batches as f64;
            lr = sched.learning_rate(config.lr, t, config.epochs as f64);
            if let Some(rmt) = &mut state.rmt {
                rmt.step(|| {
                    let objective =
                        Objective::new(model.valid(), Loss::CrossEntropy, subsample.clone())?;
                    let cfg = HessianVarianceConfig::new().with_seed(config.seed);
                    Ok(curvature_core::hessian_variance(&objective, &cfg)?.variance)
                })?;
            }
            let result = match &mut opt {
                Opt::Sgd(o) => first_order(o, lr, model, batch),
                Opt::Adam(o, cell) => {
                    if let Some(rmt) = &state.rmt {
                        cell.follow(rmt)?;
                    }
                    first_order(o, lr, model, batch)
                }
                Opt::Kfac(o, fixed) => {
                    let x = Tensor::<AB, 2>::from_inner(batch.inputs.clone());
                    let damping: &dyn DampingPolicy = match &state.rmt {
                        Some(r) => r,
                        None => fixed,
                    };
                    o.step(
                        model,
                        lr,
                        damping,
                        Loss::CrossEntropy,
                        &batch.targets,
                        |m| m.output(x.clone(), BatchNormMode::Train),
                    )
                    .map(|(m, _)| m)
                }
            };
            model = match result {
                Ok(m) => m,
                Err((_, OptimError::NonFiniteLoss(loss))) => {
                    return Err(LabError::Diverged {
                        loss,
                        step: state.steps,
                        epoch: epoch + 1,
                        checkpoint: Some(paths.checkpoint()).filter(|p| p.exists()),
                    });
                }
                Err((_, e)) => return Err(e.into()),
            };
            state.steps += 1;
        }
        let seconds = start.elapsed().as_secs_f64();
        let (train_loss, train_accuracy) = evaluate(&model, &train_eval)?;
        let (val_loss, val_accuracy) = evaluate(&model, &val_batches)?;
        state.epochs_done = epoch + 1;
        let damping = match &opt {
            Opt::Sgd(_) => None,
            Opt::Adam(_, cell) => Some(cell.damping()),
            Opt::Kfac(_, d) => Some(state.rmt.as_ref().map_or(d.damping(), |r| r.damping())),
        };
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
        checkpoint(paths, &model, &opt, &state)?;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(paths.metrics())
            .map_err(|e| io(paths.metrics(), e))?;
        writeln!(f, "{}", row.csv()).map_err(|e| io(paths.metrics(), e))?;
        if !options.quiet {
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
    }
    save_safetensors(&model.valid(), paths.weights(), &module_path)?;
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

/// A checked first-order step on the batch's mean cross-entropy.
fn first_order<M, O>(
    opt: &mut O,
    lr: f64,
    model: M,
    batch: &Batch<B, 2>,
) -> std::result::Result<M, (M, OptimError)>
where
    M: AutodiffModule<AB> + Network<AB, 2>,
    O: Optimizer<M, AB>,
{
    let loss = Loss::CrossEntropy.batch_mean(&model, batch, BatchNormMode::Train);
    checked_step(opt, lr, model, loss).map(|(m, _)| m)
}

/// Write model, optimiser and state to `checkpoint.tmp`, then swap it in.
fn checkpoint<M: AutodiffModule<AB>>(
    paths: &RunPaths,
    model: &M,
    opt: &Opt<M>,
    state: &State,
) -> Result<()> {
    let tmp = paths.out.join("checkpoint.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    let rec = recorder();
    rec.record(model.clone().into_record(), tmp.join("model"))
        .map_err(|e| io(tmp.join("model.bin"), e))?;
    let opt_path = tmp.join("optimizer");
    match opt {
        Opt::Sgd(o) => rec.record(o.to_record(), opt_path),
        Opt::Adam(o, _) => rec.record(o.to_record(), opt_path),
        Opt::Kfac(o, _) => rec.record(o.to_record(), opt_path),
    }
    .map_err(|e| io(tmp.join("optimizer.bin"), e))?;
    std::fs::write(
        tmp.join("state.json"),
        serde_json::to_string_pretty(state).expect("serialisable"),
    )
    .map_err(|e| io(tmp.join("state.json"), e))?;
    let ck = paths.checkpoint();
    let old = paths.out.join("checkpoint.old");
    if ck.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
        }
        std::fs::rename(&ck, &old).map_err(|e| io(&ck, e))?;
    }
    std::fs::rename(&tmp, &ck).map_err(|e| io(&ck, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    }
    Ok(())
}
