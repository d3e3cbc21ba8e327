//! The configuration of a training run: every command-line flag is a key of [`TrainConfig`],
//! which is what `config.json` in the output directory holds.

use curvature_nets::ConvLowering;
use curvature_optim::FactorSolver;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result, invalid, require_positive};
use crate::names::{AugmentKind, DatasetKind, OptimizerKind, ScheduleKind, ValidationKind};

/// The model names (`<depth>`, `<k>`: numbers, e.g. `preresnet-110`, `wrn-28-10`).
pub const MODELS: [&str; 7] = [
    "logistic",
    "mlp",
    "cnn",
    "vgg16",
    "vgg16-bn",
    "preresnet-<depth>",
    "wrn-<depth>-<k>",
];
/// Damping: a number, or `auto` (RMT auto-damping from the Hessian variance, damping paper §7).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DampingSetting {
    /// A fixed damping `δ`.
    Fixed(f64),
    /// `"auto"`.
    Auto(AutoTag),
}

/// The literal `"auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoTag {
    /// `auto`.
    Auto,
}

impl std::str::FromStr for DampingSetting {
    type Err = LabError;
    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(DampingSetting::Auto(AutoTag::Auto));
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(DampingSetting::Fixed(v)),
            _ => Err(invalid("damping", s, "must be a positive number or `auto`")),
        }
    }
}

/// A training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Model name (see [`MODELS`]).
    pub model: String,
    /// Hidden widths of the MLP.
    pub hidden: Vec<usize>,
    /// Output channels of the conv blocks of `cnn`.
    pub channels: Vec<usize>,
    /// How the convolutions of a convolutional model are computed: `auto` (im2col + matmul
    /// on NdArray, burn's `conv2d` elsewhere), `burn` or `im2col` — the same function, with
    /// the same derivatives, every way ([`ConvLowering`]).
    pub conv: ConvLowering,
    /// Dataset.
    pub data: DatasetKind,
    /// Directory of a dataset read from files (default `data/<name>`).
    pub data_dir: Option<std::path::PathBuf>,
    /// Examples held out for validation (optdigits, clusters; MNIST and CIFAR validate on
    /// their official test split unless `validation = "held-out"`).
    pub val_size: usize,
    /// Where validation examples come from: the official test split where there is one
    /// (`auto`), or `val_size` examples held out of the training split (`held-out`).
    pub validation: ValidationKind,
    /// Keep a seeded random subset of this many training examples.
    pub train_size: Option<usize>,
    /// Keep a seeded random subset of this many validation / test examples.
    pub test_size: Option<usize>,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Base learning rate `α₀`.
    pub lr: f64,
    /// Momentum (SGD, KFAC).
    pub momentum: f64,
    /// Weight decay `λ`.
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW style) instead of L2.
    pub decoupled: bool,
    /// Adam's `ε` (also the floor of its auto-damping).
    pub eps: f64,
    /// Damping of KFAC (`δ`) or Adam (`ε`, overriding `eps`): a number or `auto`.
    pub damping: Option<DampingSetting>,
    /// Floor `δ*` of KFAC's auto-damping.
    pub damping_floor: f64,
    /// How KFAC inverts its damped factors: `host_eigen` (eigendecompositions on the host,
    /// the exact damping of `G ⊗ A`) or `newton_schulz` (the π-split damped inverses on the
    /// device, matrix products only: for GPUs).
    pub kfac_solver: FactorSolver,
    /// Steps between RMT re-estimates (100 in the paper).
    pub damping_interval: usize,
    /// Training examples in the RMT sub-sample `S` on which the Hessian variance is
    /// estimated, in batches of 128 (10 000 in the damping paper, §7). A smaller sub-sample
    /// makes each re-estimate cheaper; the finite-population correction uses this `S`.
    pub rmt_subsample: usize,
    /// Random vectors averaged per RMT re-estimate (fresh ones each time; Algorithm 1 of the
    /// damping paper draws one, ≥ 2 give a standard error).
    pub rmt_vectors: usize,
    /// A run whose mini-batch loss stays above `divergence_factor ×` its first step's loss
    /// for `divergence_patience` steps in a row has blown up (e.g. `--lr 1e6`: finite but
    /// meaningless losses) and stops as a NaN loss does, keeping the last good checkpoint.
    pub divergence_factor: f64,
    /// Consecutive steps above `divergence_factor ×` the first loss that stop a run.
    pub divergence_patience: usize,
    /// Epochs (with `steps`: derived from it, see [`TrainConfig::with_step_budget`]).
    pub epochs: usize,
    /// A budget of optimiser steps instead of epochs: the run ends after exactly this many
    /// updates, `⌈steps / batches per epoch⌉` epochs with the last one cut short. Runs with
    /// different batch sizes then compare at equal iterations, the time scale of Sagun et al.
    /// (2018, §4: "the number of iterations as the time-scale").
    pub steps: Option<usize>,
    /// Mini-batch size (≥ the training set: full-batch gradient descent).
    pub batch_size: usize,
    /// Seed of initialisation, shuffling and estimators.
    pub seed: u64,
    /// Learning-rate schedule.
    pub schedule: ScheduleKind,
    /// Start from these weights (safetensors, PyTorch names) instead of the seeded
    /// initialisation.
    pub init_weights: Option<std::path::PathBuf>,
    /// Classes: of the Gaussian clusters (default 10), or for the other datasets keep only
    /// the examples of the first `classes` classes (default: all; Sagun et al. 2018, §3).
    pub classes: Option<usize>,
    /// Lanczos steps `k` of LanczosOPT.
    pub rank: usize,
    /// Perturbation factor `η` of LanczosOPT (1 = plain LanczosOPT).
    pub eta: f64,
    /// Record the Hessian spectrum every this many epochs and after the last one (0 = never).
    pub spectrum_every: usize,
    /// Lanczos steps of those spectra.
    pub spectrum_steps: usize,
    /// Training-time augmentation of image data, drawn anew every epoch.
    pub augment: AugmentKind,
    /// Iterate averaging (SWA / Gadam): average the weights after every `average_every`-th
    /// step from the end of this epoch on; evaluation, spectra and the final weights then use
    /// the average (batch-norm statistics recomputed). `gadam` defaults to ⌊epochs/2⌋.
    pub average_from: Option<usize>,
    /// Steps between averaged iterates.
    pub average_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: "mlp".into(),
            hidden: vec![100],
            channels: vec![16, 32],
            conv: ConvLowering::Auto,
            data: DatasetKind::Optdigits,
            data_dir: None,
            val_size: 297,
            validation: ValidationKind::Auto,
            train_size: None,
            test_size: None,
            optimizer: OptimizerKind::Sgd,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.0,
            decoupled: false,
            eps: 1e-8,
            damping: None,
            damping_floor: 1e-3,
            kfac_solver: FactorSolver::HostEigen,
            damping_interval: 100,
            rmt_subsample: 10_000,
            rmt_vectors: 4,
            divergence_factor: 100.0,
            divergence_patience: 5,
            epochs: 10,
            steps: None,
            batch_size: 100,
            seed: 0,
            schedule: ScheduleKind::Constant,
            init_weights: None,
            classes: None,
            rank: 20,
            eta: 1.0,
            spectrum_every: 0,
            spectrum_steps: 30,
            augment: AugmentKind::None,
            average_from: None,
            average_every: 1,
        }
    }
}

impl TrainConfig {
    /// The epoch `T_avg` after which iterates are averaged: `average_from`, or ⌊epochs/2⌋
    /// for `gadam`; `None`: no averaging.
    pub fn averaging_start(&self) -> Option<usize> {
        self.average_from
            .or((self.optimizer == OptimizerKind::Gadam).then_some(self.epochs / 2))
    }

    /// The augmentation of `augment`, for images of side `side` (`None` for `none`).
    pub fn augmentation(&self, side: usize) -> Option<curvature_data::Augmentation> {
        self.augment.for_side(side)
    }

    /// Check every key.
    ///
    /// # Errors
    /// Unknown names (listing the valid ones) and out-of-range numbers.
    pub fn validate(&self) -> Result<()> {
        crate::setup::ModelSpec::parse(&self.model)?;
        if self.augment != AugmentKind::None
            && (matches!(self.model.as_str(), "logistic" | "mlp") || !self.data.has_images())
        {
            return Err(invalid(
                "augment",
                self.augment,
                "crops and flips need image examples and a convolutional model (cnn, vgg16, preresnet-*, wrn-*)",
            ));
        }
        // With a step budget the epochs are known once the data is: `with_step_budget`.
        if self.steps.is_none() {
            self.check_averaging()?;
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid("lr", self.lr, "must be positive"));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(invalid("momentum", self.momentum, "must lie in [0, 1)"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(invalid("weight_decay", self.weight_decay, "must be ≥ 0"));
        }
        for (field, v) in [("eps", self.eps), ("damping_floor", self.damping_floor)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(field, v, "must be positive"));
            }
        }
        if let Some(DampingSetting::Fixed(d)) = self.damping
            && !(d.is_finite() && d > 0.0)
        {
            return Err(invalid("damping", d, "must be positive"));
        }
        if self.damping.is_some() && !self.optimizer.has_damping() {
            return Err(invalid(
                "damping",
                self.optimizer,
                "only KFAC, LanczosOPT and the Adam family have a damping (Adam: its ε)",
            ));
        }
        require_positive(&[
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("damping_interval", self.damping_interval),
            ("rmt_subsample", self.rmt_subsample),
            ("rmt_vectors", self.rmt_vectors),
            ("divergence_patience", self.divergence_patience),
            ("val_size", self.val_size),
            ("rank", self.rank),
            ("spectrum_steps", self.spectrum_steps),
            ("average_every", self.average_every),
        ])?;
        if !(self.divergence_factor.is_finite() && self.divergence_factor > 1.0) {
            return Err(invalid(
                "divergence_factor",
                self.divergence_factor,
                "must be a finite number above 1 (a multiple of the first loss)",
            ));
        }
        if !(self.eta.is_finite() && self.eta > 0.0) {
            return Err(invalid("eta", self.eta, "must be positive"));
        }
        if let Some(k) = self.classes
            && k < 2
        {
            return Err(invalid("classes", k, "needs at least 2 classes"));
        }
        if let Some(p) = &self.init_weights
            && !p.exists()
        {
            return Err(crate::error::io(p, "--init-weights: file not found"));
        }
        for (field, model, widths) in [
            ("hidden", "mlp", &self.hidden),
            ("channels", "cnn", &self.channels),
        ] {
            if self.model == model && (widths.is_empty() || widths.contains(&0)) {
                return Err(invalid(
                    field,
                    format!("{widths:?}"),
                    "needs positive widths",
                ));
            }
        }
        for (field, n) in [
            ("train_size", self.train_size),
            ("test_size", self.test_size),
            ("steps", self.steps),
        ] {
            if n == Some(0) {
                return Err(invalid(field, 0, "must be positive"));
            }
        }
        Ok(())
    }

    /// Iterate averaging must start before the last epoch, and the averaging-decay schedule
    /// needs it.
    fn check_averaging(&self) -> Result<()> {
        match self.averaging_start() {
            Some(t) if t >= self.epochs => {
                return Err(invalid(
                    "average_from",
                    t,
                    "must be smaller than epochs (averaging would never start)",
                ));
            }
            Some(0) if self.schedule == ScheduleKind::AveragingDecay => {
                return Err(invalid(
                    "average_from",
                    0,
                    "the averaging-decay schedule decays towards the averaging start: it must be \
                     at least epoch 1",
                ));
            }
            None if self.schedule == ScheduleKind::AveragingDecay => {
                return Err(invalid(
                    "schedule",
                    "averaging-decay",
                    "needs iterate averaging (set average_from, or use gadam)",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Optimiser steps in one epoch of `train_len` examples: `⌈train_len / batch_size⌉` (the
    /// last batch may be ragged; a batch size above `train_len` is full-batch, one step).
    pub fn batches_per_epoch(&self, train_len: usize) -> usize {
        train_len
            .max(1)
            .div_ceil(self.batch_size.min(train_len).max(1))
    }

    /// The configuration with `epochs` set from the step budget `steps`, for `train_len`
    /// training examples: `⌈steps / ⌈train_len / batch_size⌉⌉` epochs (unchanged without a
    /// budget). The learning-rate schedule and iterate averaging then count those epochs.
    ///
    /// # Errors
    /// An `average_from` at or after the derived last epoch (or 0 with the averaging-decay
    /// schedule).
    pub fn with_step_budget(&self, train_len: usize) -> Result<Self> {
        let Some(steps) = self.steps else {
            return Ok(self.clone());
        };
        let resolved = Self {
            epochs: steps.div_ceil(self.batches_per_epoch(train_len)),
            ..self.clone()
        };
        resolved.check_averaging()?;
        Ok(resolved)
    }

    /// Read a configuration file: TOML (`.toml`) or JSON (anything else); keys as in this
    /// struct, missing keys take the defaults, unknown keys are an error.
    ///
    /// # Errors
    /// Unreadable or malformed files, unknown keys.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::error::io(path, e))?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
        {
            toml::from_str(&text).map_err(|e| crate::error::io(path, e))
        } else {
            serde_json::from_str(&text).map_err(|e| crate::error::io(path, e))
        }
    }
}
