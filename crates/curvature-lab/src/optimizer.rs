//! The optimiser of a run: a [`TrainConfig`] turned into curvature-optim's [`OptimizerConfig`]
//! and damping, stepped on one batch through [`TrainingStep`], saved into and loaded from a
//! checkpoint, asked for the damping it used. `train` and `verify` drive every optimiser
//! through this one type.

use std::path::Path;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use curvature_core::{Batch, CurvatureModel, Loss, Network};
use curvature_optim::{
    ADAM_D_EPSILON, AdamConfig, AnyOptimizer, AveragingSchedule, DampingPolicy, FixedDamping,
    KfacConfig, LanczosOptConfig, OptimizerConfig, PeerGroup, RmtDamping, SgdConfig, StepOutcome,
    TrainingStep, WeightDecayMode,
};

use crate::config::{DampingSetting, TrainConfig};
use crate::error::Result;
use crate::names::OptimizerKind;

/// The optimiser of a run ([`AnyOptimizer`], stepped through [`TrainingStep`]) and the damping
/// it is stepped with when RMT auto-damping is off.
pub(crate) struct RunOptimizer<BB: Backend, M: AutodiffModule<Autodiff<BB>>> {
    optimizer: AnyOptimizer<BB, M>,
    /// `damping` if fixed, else Adam-D's 5e-3, Adam's `eps` or the second-order floor.
    fixed: FixedDamping,
    /// The smallest damping RMT auto-damping may set.
    floor: f64,
}

impl<BB: Backend, M: AutodiffModule<Autodiff<BB>>> RunOptimizer<BB, M> {
    /// The optimiser `c.optimizer` with `c`'s hyperparameters, for a training set of
    /// `train_len` examples (which fixes the step at which iterate averaging starts).
    ///
    /// # Errors
    /// Invalid hyperparameters (the optimisers' own validation).
    pub(crate) fn new(c: &TrainConfig, train_len: usize) -> Result<Self> {
        let (config, fixed, floor) = optimizer_config(c, train_len);
        Ok(Self {
            optimizer: config.init::<BB, M>()?,
            fixed: FixedDamping::new(fixed)?,
            floor,
        })
    }

    /// This optimiser as one peer of the data-parallel `group` ([`TrainingStep::with_peers`]):
    /// every step takes the peer's share of a global batch and applies the global batch's step.
    ///
    /// # Errors
    /// An optimiser that cannot step data-parallel.
    pub(crate) fn with_peers(self, group: PeerGroup<BB>) -> Result<Self> {
        Ok(Self {
            optimizer: self.optimizer.with_peers(group)?,
            ..self
        })
    }

    /// The smallest damping RMT auto-damping may set: `damping_floor` for the second-order
    /// optimisers, Adam's `eps` otherwise.
    pub(crate) fn damping_floor(&self) -> f64 {
        self.floor
    }

    /// The damping in use (`None` for SGD): RMT's when auto-damping is on.
    pub(crate) fn damping(&self, rmt: Option<&RmtDamping>) -> Option<f64> {
        self.optimizer
            .is_damped()
            .then(|| policy(&self.fixed, rmt).damping())
    }

    /// One step at learning rate `lr` on `batch` (cross-entropy, batch norm in train mode),
    /// damped by `rmt` when given, else by the run's fixed damping (Adam: its `ε`); the report
    /// carries the batch loss before the step.
    pub(crate) fn step<const D: usize>(
        &mut self,
        model: M,
        lr: f64,
        batch: &Batch<BB, D>,
        rmt: Option<&RmtDamping>,
    ) -> StepOutcome<M>
    where
        M: Network<Autodiff<BB>, D>,
        M::InnerModule: CurvatureModel<BB, D>,
    {
        self.optimizer.train_step(
            model,
            batch,
            Loss::CrossEntropy,
            lr,
            policy(&self.fixed, rmt),
        )
    }

    /// With iterate averaging under way: `model` with the averaged parameters (batch-norm
    /// statistics still `model`'s); otherwise `None`.
    ///
    /// # Errors
    /// A model that does not match the average.
    pub(crate) fn averaged(&self, model: M) -> Result<Option<M>> {
        Ok(self.optimizer.averaged(model)?)
    }

    /// Save the optimiser's state (moments, KFAC factors, …) to `path` (+ `.bin`).
    ///
    /// # Errors
    /// The file cannot be written.
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        Ok(self.optimizer.save(path)?)
    }

    /// Restore the state [`save`](Self::save) wrote to `path`.
    ///
    /// # Errors
    /// A missing or unreadable file, or the record of another optimiser or model.
    pub(crate) fn load(self, path: &Path, device: &BB::Device) -> Result<Self> {
        Ok(Self {
            optimizer: self.optimizer.load(path, device)?,
            ..self
        })
    }
}

/// RMT's damping when auto-damping is on, else the fixed one.
fn policy<'a>(fixed: &'a FixedDamping, rmt: Option<&'a RmtDamping>) -> &'a dyn DampingPolicy {
    match rmt {
        Some(rmt) => rmt,
        None => fixed,
    }
}

/// The optimiser configuration of a run on `train_len` training examples, its fixed damping
/// and its RMT damping floor.
///
/// The damping is `c.damping` when fixed; otherwise Adam-D's `ε` = 5e-3 (damping paper §6),
/// Adam's `eps`, or `damping_floor` for KFAC and LanczosOPT (whose damping, without RMT, starts
/// and stays there). Adam-D is Adam with a large `ε`, with L2 weight decay like Adam unless
/// `decoupled` is set; AdamW and Gadam decouple it. With `average_from` (or Gadam) the
/// optimiser is wrapped in iterate averaging ([`OptimizerConfig::Averaged`]).
pub(crate) fn optimizer_config(c: &TrainConfig, train_len: usize) -> (OptimizerConfig, f64, f64) {
    let (config, fixed, floor) = step_config(c);
    // Iterate averaging from the end of epoch T_avg (in steps), around any optimiser.
    let config = match c.averaging_start() {
        Some(t_avg) => OptimizerConfig::Averaged {
            inner: Box::new(config),
            schedule: AveragingSchedule {
                start: (t_avg * c.batches_per_epoch(train_len)).max(1),
                frequency: c.average_every,
            },
        },
        None => config,
    };
    (config, fixed, floor)
}

/// [`optimizer_config`] without the averaging.
fn step_config(c: &TrainConfig) -> (OptimizerConfig, f64, f64) {
    let mode = if c.decoupled || c.optimizer.decouples_weight_decay() {
        WeightDecayMode::Decoupled
    } else {
        WeightDecayMode::L2
    };
    let fixed = match c.damping {
        Some(DampingSetting::Fixed(d)) => Some(d),
        _ => None,
    };
    match c.optimizer {
        OptimizerKind::Sgd => (
            OptimizerConfig::Sgd(
                SgdConfig::new()
                    .with_momentum(c.momentum)
                    .with_weight_decay(c.weight_decay)
                    .with_weight_decay_mode(mode),
            ),
            fixed.unwrap_or(c.eps),
            c.eps,
        ),
        OptimizerKind::Kfac => (
            OptimizerConfig::Kfac(
                KfacConfig::new()
                    .with_solver_and_split(c.kfac_solver)
                    .with_momentum(c.momentum)
                    .with_weight_decay(c.weight_decay)
                    .with_seed(c.seed),
            ),
            fixed.unwrap_or(c.damping_floor),
            c.damping_floor,
        ),
        OptimizerKind::LanczosOpt => (
            OptimizerConfig::LanczosOpt(LanczosOptConfig::new().with_rank(c.rank).with_eta(c.eta)),
            fixed.unwrap_or(c.damping_floor),
            c.damping_floor,
        ),
        adam @ (OptimizerKind::Adam
        | OptimizerKind::Adamw
        | OptimizerKind::AdamD
        | OptimizerKind::Gadam) => {
            let eps = match (fixed, adam) {
                (Some(d), _) => d,
                (None, OptimizerKind::AdamD) => ADAM_D_EPSILON,
                (None, _) => c.eps,
            };
            (
                OptimizerConfig::Adam(
                    AdamConfig::new()
                        .with_epsilon(eps)
                        .with_weight_decay(c.weight_decay)
                        .with_weight_decay_mode(mode),
                ),
                eps,
                c.eps,
            )
        }
    }
}
