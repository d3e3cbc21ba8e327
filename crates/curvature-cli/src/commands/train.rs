//! `curvature train`: train a model (or resume a run) with metrics, checkpoints and plots.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use curvature_lab::progress::ProgressMode;
use curvature_lab::{
    AugmentKind, DampingSetting, FactorSolver, OptimizerKind, RunOptions, ScheduleKind,
    TrainConfig, ValidationKind, resume, train,
};

use crate::args::{BackendArgs, ModelArgs, PeerArgs, base_config};

use crate::interrupt::ctrl_c;

#[derive(Args)]
pub struct TrainArgs {
    /// A TOML or JSON file with any of the keys below (flags given on the command line win).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Start from a bundled preset's configuration (`curvature presets`; flags win).
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// Output directory.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, conflicts_with_all = ["config", "out", "preset"])]
    pub resume: Option<PathBuf>,
    /// Overwrite an output directory that holds another run.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub peers: PeerArgs,
    /// Validation examples held out.
    #[arg(long)]
    pub val_size: Option<usize>,
    /// Where validation examples come from: the official test split where there is one
    /// (auto), or --val-size examples held out of the training split (held-out).
    #[arg(long, value_enum)]
    pub validation: Option<ValidationKind>,
    /// Optimiser (default sgd).
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Base learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Momentum (SGD, KFAC).
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Weight decay.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Decoupled (AdamW-style) weight decay.
    #[arg(long)]
    pub decoupled: bool,
    /// Adam's ε.
    #[arg(long)]
    pub eps: Option<f64>,
    /// Damping (KFAC δ, Adam ε): a number or `auto`.
    #[arg(long)]
    pub damping: Option<DampingSetting>,
    /// Floor δ* of KFAC's auto-damping.
    #[arg(long)]
    pub damping_floor: Option<f64>,
    /// How KFAC inverts its damped factors: host-eigen (eigendecompositions on the host, the
    /// exact damping; default) or newton-schulz (π-split damped inverses on the device,
    /// matrix products only: for GPUs).
    #[arg(long, value_enum)]
    pub kfac_solver: Option<FactorSolver>,
    /// Steps between RMT damping re-estimates.
    #[arg(long)]
    pub damping_interval: Option<usize>,
    /// Training examples in the RMT sub-sample on which the Hessian variance is estimated
    /// (default 10 000, as the damping paper).
    #[arg(long)]
    pub rmt_subsample: Option<usize>,
    /// Random vectors averaged per RMT re-estimate (default 4).
    #[arg(long)]
    pub rmt_vectors: Option<usize>,
    /// Stop as diverged when the mini-batch loss stays above this multiple of the first
    /// step's loss for --divergence-patience steps in a row (default 100).
    #[arg(long)]
    pub divergence_factor: Option<f64>,
    /// Consecutive steps above --divergence-factor × the first loss that stop a run (default 5).
    #[arg(long)]
    pub divergence_patience: Option<usize>,
    /// Epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// A budget of optimiser steps instead of epochs (the last epoch is cut short): runs of
    /// different batch sizes compare at equal iterations.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Mini-batch size (≥ the training set: full-batch gradient descent).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning-rate schedule (default constant).
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,
    /// Start from these weights (safetensors with the model's PyTorch names).
    #[arg(long)]
    pub init_weights: Option<PathBuf>,
    /// Classes: of the Gaussian clusters (default 10); for the other datasets, keep only the
    /// examples of the first K classes.
    #[arg(long)]
    pub classes: Option<usize>,
    /// Lanczos steps k of LanczosOPT.
    #[arg(long)]
    pub rank: Option<usize>,
    /// Perturbation factor η of LanczosOPT.
    #[arg(long)]
    pub eta: Option<f64>,
    /// Record the Hessian spectrum (Lanczos) every N epochs, and after the last, into
    /// spectra.csv and spectra/.
    #[arg(long)]
    pub spectrum_every: Option<usize>,
    /// Lanczos steps of those spectra.
    #[arg(long)]
    pub spectrum_steps: Option<usize>,
    /// Training-time augmentation of images, drawn anew every epoch (default none).
    #[arg(long, value_enum)]
    pub augment: Option<AugmentKind>,
    /// Iterate averaging (SWA, Gadam) from the end of this epoch: evaluation, spectra and the
    /// final weights use the averaged weights (batch-norm statistics recomputed). gadam
    /// defaults to half the epochs.
    #[arg(long)]
    pub average_from: Option<usize>,
    /// Steps between averaged iterates.
    #[arg(long)]
    pub average_every: Option<usize>,
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let mut c = match &self.preset {
            Some(name) => curvature_lab::preset(name)?.train,
            None => base_config(self.config.as_deref())?,
        };
        self.model.apply(&mut c);
        macro_rules! set {
            (some: $($f:ident),*) => { $( if let Some(v) = &self.$f { c.$f = Some(v.clone()); } )* };
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { c.$f = v.clone(); } )* };
        }
        set!(
            val_size,
            validation,
            optimizer,
            lr,
            momentum,
            weight_decay,
            eps
        );
        set!(
            damping_floor,
            kfac_solver,
            damping_interval,
            rmt_subsample,
            rmt_vectors,
            epochs,
            batch_size,
            schedule
        );
        set!(rank, eta, spectrum_every, spectrum_steps);
        set!(
            augment,
            average_every,
            divergence_factor,
            divergence_patience
        );
        set!(some: average_from, classes, steps, damping, init_weights);
        if self.decoupled {
            c.decoupled = true;
        }
        Ok(c)
    }
}

/// Run the command.
pub fn run(args: TrainArgs, progress: ProgressMode) -> Result<()> {
    let options = RunOptions {
        force: args.force,
        progress,
        interrupt: Some(ctrl_c()),
        backend: match &args.resume {
            Some(dir) => args.backend.choice_for_resume(dir)?,
            None => args.backend.choice()?,
        },
        peers: Some(args.peers.config()),
    };
    let rows = match &args.resume {
        Some(dir) => resume(dir, options)?,
        None => {
            let out = args.out.clone().expect("required by clap");
            train(&args.config()?, &out, options)?
        }
    };
    if let Some(last) = rows.last() {
        println!(
            "done: epoch {} step {}  val loss {:.4}  val accuracy {:.2}%",
            last.epoch,
            last.step,
            last.val_loss,
            100.0 * last.val_accuracy
        );
    }
    Ok(())
}
