//! The optimiser of a run: built from a [`TrainConfig`], stepped on one batch, saved into and
//! loaded from a checkpoint, asked for the damping it used. `train` and `verify` drive every
//! optimiser through this one type, so an optimiser is added in one place.

use std::path::Path;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::{
    Batch, BatchNormMode, CurvatureModel, Loss, Network, Objective, mark_trainable,
};
use curvature_optim::{
    ADAM_D_EPSILON, Adam, AdamConfig, DampingCell, DampingPolicy, FixedDamping, Kfac, KfacConfig,
    LanczosOpt, LanczosOptConfig, OptimError, RmtDamping, Sgd, SgdConfig, WeightDecayMode,
    checked_step,
};

use crate::config::{DampingSetting, TrainConfig};
use crate::error::{Result, io};
use crate::names::OptimizerKind;

/// One step's outcome: the new model and the batch loss before the step, or the model as it
/// was and why the step was refused (e.g. a non-finite loss).
pub(crate) type StepOutcome<M> = std::result::Result<(M, f64), (M, OptimError)>;

/// The optimiser of a run, with its damping policy.
pub(crate) enum RunOptimizer<BB: Backend, M: AutodiffModule<Autodiff<BB>>> {
    /// SGD (momentum, weight decay).
    Sgd(OptimizerAdaptor<Sgd, M, Autodiff<BB>>),
    /// Adam, AdamW, Adam-D or Gadam's inner Adam; the cell holds ε (the damping).
    Adam(OptimizerAdaptor<Adam, M, Autodiff<BB>>, DampingCell),
    /// KFAC with its fixed damping (RMT damping, when on, overrides it at every step).
    Kfac(Box<Kfac<Autodiff<BB>, M>>, FixedDamping),
    /// LanczosOPT with its fixed damping (as KFAC's).
    Lanczos(LanczosOpt<BB>, FixedDamping),
}

/// The recorder of checkpoints (full precision, binary).
pub(crate) fn recorder() -> BinFileRecorder<FullPrecisionSettings> {
    BinFileRecorder::<FullPrecisionSettings>::default()
}

/// Read a record written with [`recorder`] (`path` without the `.bin` the recorder adds).
pub(crate) fn read_record<BB: Backend, R: burn::record::Record<BB>>(
    path: &Path,
    device: &BB::Device,
) -> Result<R> {
    recorder()
        .load(path.to_path_buf(), device)
        .map_err(|e| io(path.with_extension("bin"), e))
}

impl<BB: Backend, M: AutodiffModule<Autodiff<BB>>> RunOptimizer<BB, M> {
    /// The optimiser `c.optimizer` with `c`'s hyperparameters.
    ///
    /// # Errors
    /// Invalid hyperparameters (the optimisers' own validation).
    pub(crate) fn new(c: &TrainConfig) -> Result<Self> {
        // Adam-D is Adam with a large ε (damping paper §6): L2 weight decay like Adam unless
        // `decoupled` is set; AdamW and Gadam decouple it.
        let mode = if c.decoupled || c.optimizer.decouples_weight_decay() {
            WeightDecayMode::Decoupled
        } else {
            WeightDecayMode::L2
        };
        let fixed = match c.damping {
            Some(DampingSetting::Fixed(d)) => Some(d),
            _ => None,
        };
        Ok(match c.optimizer {
            OptimizerKind::Sgd => Self::Sgd(
                SgdConfig::new()
                    .with_momentum(c.momentum)
                    .with_weight_decay(c.weight_decay)
                    .with_weight_decay_mode(mode)
                    .init::<Autodiff<BB>, M>()?,
            ),
            OptimizerKind::Kfac => Self::Kfac(
                Box::new(
                    KfacConfig::new()
                        .with_momentum(c.momentum)
                        .with_weight_decay(c.weight_decay)
                        .with_seed(c.seed)
                        .init::<Autodiff<BB>, M>()?,
                ),
                FixedDamping::new(fixed.unwrap_or(c.damping_floor))?,
            ),
            OptimizerKind::LanczosOpt => Self::Lanczos(
                LanczosOptConfig::new()
                    .with_rank(c.rank)
                    .with_eta(c.eta)
                    .init::<BB>()?,
                FixedDamping::new(fixed.unwrap_or(c.damping_floor))?,
            ),
            adam @ (OptimizerKind::Adam
            | OptimizerKind::Adamw
            | OptimizerKind::AdamD
            | OptimizerKind::Gadam) => {
                // Adam-D's ε is its damping: `damping` if set, else the paper's 5e-3.
                let eps = match (fixed, adam) {
                    (Some(d), _) => d,
                    (None, OptimizerKind::AdamD) => ADAM_D_EPSILON,
                    (None, _) => c.eps,
                };
                let cell = DampingCell::new(eps)?;
                let adam = AdamConfig::new()
                    .with_epsilon(eps)
                    .with_weight_decay(c.weight_decay)
                    .with_weight_decay_mode(mode)
                    .init_damped::<Autodiff<BB>, M>(cell.clone())?;
                Self::Adam(adam, cell)
            }
        })
    }

    /// The smallest damping RMT auto-damping may set: `damping_floor` for the second-order
    /// optimisers, Adam's `eps` otherwise.
    pub(crate) fn damping_floor(&self, c: &TrainConfig) -> f64 {
        match self {
            Self::Kfac(..) | Self::Lanczos(..) => c.damping_floor,
            Self::Sgd(_) | Self::Adam(..) => c.eps,
        }
    }

    /// The damping in use (`None` for SGD): RMT's when auto-damping is on.
    pub(crate) fn damping(&self, rmt: Option<&RmtDamping>) -> Option<f64> {
        match self {
            Self::Sgd(_) => None,
            Self::Adam(_, cell) => Some(cell.damping()),
            Self::Kfac(_, d) | Self::Lanczos(_, d) => {
                Some(rmt.map_or(d.damping(), DampingPolicy::damping))
            }
        }
    }

    /// One step at learning rate `lr` on `batch` (cross-entropy, batch norm in train mode),
    /// damped by `rmt` when given (Adam: ε follows it; KFAC and LanczosOPT: it replaces the
    /// fixed damping).
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
        let damping = |fixed: &FixedDamping| -> FixedDamping {
            rmt.and_then(|r| FixedDamping::new(r.damping()).ok())
                .unwrap_or(*fixed)
        };
        match self {
            Self::Sgd(o) => first_order(o, lr, model, batch),
            Self::Adam(o, cell) => {
                if let Some(rmt) = rmt
                    && let Err(e) = cell.follow(rmt)
                {
                    return Err((model, e));
                }
                first_order(o, lr, model, batch)
            }
            Self::Kfac(o, fixed) => {
                let x = Tensor::<Autodiff<BB>, D>::from_inner(batch.inputs.clone());
                o.step(
                    model,
                    lr,
                    &damping(fixed),
                    Loss::CrossEntropy,
                    &batch.targets,
                    |m| m.output(x.clone(), BatchNormMode::Train),
                )
                .map(|(m, report)| (m, report.loss))
            }
            Self::Lanczos(o, fixed) => {
                let mut objective =
                    match Objective::new(model.valid(), Loss::CrossEntropy, vec![batch.clone()]) {
                        Ok(objective) => objective,
                        Err(e) => return Err((model, e.into())),
                    };
                match o.step(&mut objective, lr, &damping(fixed)) {
                    Ok(report) => Ok((
                        M::from_inner(mark_trainable(objective.model())),
                        report.loss,
                    )),
                    Err(e) => Err((model, e)),
                }
            }
        }
    }

    /// Adam's ε set from `rmt` (a resumed run's damping); the others read it at every step.
    ///
    /// # Errors
    /// A damping the cell refuses (not finite or not positive).
    pub(crate) fn follow(&self, rmt: &RmtDamping) -> Result<()> {
        if let Self::Adam(_, cell) = self {
            cell.follow(rmt)?;
        }
        Ok(())
    }

    /// Save the optimiser's state (moments, KFAC factors, …) to `path` (+ `.bin`).
    ///
    /// # Errors
    /// The file cannot be written.
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let rec = recorder();
        let path_buf = path.to_path_buf();
        match self {
            Self::Sgd(o) => rec.record(o.to_record(), path_buf),
            Self::Adam(o, _) => rec.record(o.to_record(), path_buf),
            Self::Kfac(o, _) => rec.record(o.to_record(), path_buf),
            Self::Lanczos(o, _) => rec.record(o.to_record(), path_buf),
        }
        .map_err(|e| io(path.with_extension("bin"), e))
    }

    /// Restore the state [`save`](Self::save) wrote to `path`.
    ///
    /// # Errors
    /// A missing or unreadable file, or the record of another optimiser or model.
    pub(crate) fn load(self, path: &Path, device: &BB::Device) -> Result<Self> {
        Ok(match self {
            Self::Sgd(o) => Self::Sgd(o.load_record(read_record(path, device)?)),
            Self::Adam(o, cell) => Self::Adam(o.load_record(read_record(path, device)?), cell),
            Self::Kfac(o, d) => Self::Kfac(Box::new(o.load_record(read_record(path, device)?)?), d),
            Self::Lanczos(o, d) => Self::Lanczos(o.load_record(read_record(path, device)?)?, d),
        })
    }
}

/// One step of a first-order optimiser on the batch's mean cross-entropy.
fn first_order<BB: Backend, M, O, const D: usize>(
    opt: &mut O,
    lr: f64,
    model: M,
    batch: &Batch<BB, D>,
) -> StepOutcome<M>
where
    M: AutodiffModule<Autodiff<BB>> + Network<Autodiff<BB>, D>,
    O: Optimizer<M, Autodiff<BB>>,
{
    let loss = Loss::CrossEntropy.batch_mean(&model, batch, BatchNormMode::Train);
    checked_step(opt, lr, model, loss)
}
