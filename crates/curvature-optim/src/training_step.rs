//! One way to take a training step, whatever the optimiser.
//!
//! [`TrainingStep`] is what a training loop needs of an optimiser: one step on a mini-batch
//! `(X, y)` at learning rate `α` under a [`DampingPolicy`], returning the stepped model and the
//! step's [`StepReport`], and the optimiser's state written to and read from a file (for
//! checkpoints). It is implemented by
//!
//! | optimiser | type | what the damping `δ` is |
//! |---|---|---|
//! | SGD (momentum, Nesterov) | [`FirstOrder`] over [`SgdConfig::init`](crate::SgdConfig::init) | not used |
//! | Adam, AdamW, Adam-D, Gadam's Adam | [`FirstOrder`] over [`AdamConfig::init_damped`](crate::AdamConfig::init_damped) | `ε`, read at every step |
//! | KFAC | [`Kfac`] | added to the factors' eigenvalues |
//! | LanczosOPT | [`LanczosOpt`] | added to the Ritz values (eq. 9, damping paper) |
//!
//! and by [`AnyOptimizer`], which [`OptimizerConfig::init`] builds from a configuration naming
//! any of them, so that one loop (`curvature train`, `curvature bench`, the examples) drives
//! every optimiser through one call. Iterate averaging (Gadam, SWA) is a wrapper around any of
//! them: [`IterateAveraging`] is itself a [`TrainingStep`] ([`OptimizerConfig::Averaged`],
//! [`OptimizerConfig::gadam`]).
//!
//! The damping policy belongs to the loop: a [`FixedDamping`](crate::FixedDamping), a
//! [`LevenbergMarquardt`](crate::LevenbergMarquardt) or the random-matrix-theory
//! [`RmtDamping`](crate::RmtDamping), which the loop updates between steps and every optimiser
//! reads in the same way.
//!
//! ```no_run
//! use burn::backend::{Autodiff, NdArray};
//! use curvature_core::{Batch, Loss};
//! use curvature_nets::{Mlp, MlpConfig};
//! use curvature_optim::{FixedDamping, KfacConfig, OptimizerConfig, TrainingStep};
//!
//! type B = NdArray<f32>;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let batch: Batch<B, 2> = unimplemented!();
//! let device = Default::default();
//! let mut model = MlpConfig::new(64, vec![32], 10).init::<Autodiff<B>>(&device)?;
//! let mut opt = OptimizerConfig::Kfac(KfacConfig::new()).init::<B, Mlp<Autodiff<B>>>()?;
//! let damping = FixedDamping::new(0.1)?;
//! for _ in 0..10 {
//!     let (stepped, report) = opt
//!         .train_step(model, &batch, Loss::CrossEntropy, 0.05, &damping)
//!         .map_err(|(_, e)| e)?;
//!     model = stepped;
//!     println!("step {} loss {:.4}", report.step, report.loss);
//! }
//! # Ok(()) }
//! ```

use std::path::Path;
use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::record::{
    BinFileRecorder, DoublePrecisionSettings, FullPrecisionSettings, Record, Recorder,
};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::{
    Batch, BatchNormMode, CurvatureModel, Loss, Network, Objective, mark_trainable,
};
use serde::{Deserialize, Serialize};

use crate::checked::checked_step_in;
use crate::damping::{DampingCell, DampingPolicy};
use crate::data_parallel::PeerGroup;
use crate::error::{OptimError, Result};
use crate::observe::StepReport;
use crate::{
    Adam, AdamConfig, AveragingSchedule, IterateAveraging, Kfac, KfacConfig, LanczosOpt,
    LanczosOptConfig, Sgd, SgdConfig,
};

/// A step's outcome: the stepped model and its report, or the model untouched and why the
/// step was refused (a non-finite loss, a non-positive learning rate or damping, ...).
pub type StepOutcome<M> = std::result::Result<(M, StepReport), (M, OptimError)>;

/// An optimiser a training loop can drive: one step on a batch, and its state saved and
/// restored. See the [module documentation](self) for the implementations.
///
/// `B` is the inner backend (the batch's), `M` the model on `Autodiff<B>`; the loss is
/// `(1/N) Σ_n ℓ(f(x_n; w), y_n)` over the batch, batch norm in train mode.
pub trait TrainingStep<B: Backend, M: AutodiffModule<Autodiff<B>>>: Sized {
    /// The optimiser's name in reports (`"sgd"`, `"adam"`, `"kfac"`, `"lanczos_opt"`).
    fn name(&self) -> &'static str;

    /// Whether the damping policy changes the step (`false` for SGD).
    fn is_damped(&self) -> bool;

    /// One step at learning rate `lr` on `batch` with loss `loss`, damped by `damping`.
    ///
    /// # Errors
    /// The optimiser's own (a non-finite loss, `lr` or `δ` not positive, mismatched shapes);
    /// the model is then returned as it was, next to the error.
    fn train_step<const D: usize>(
        &mut self,
        model: M,
        batch: &Batch<B, D>,
        loss: Loss,
        lr: f64,
        damping: &dyn DampingPolicy,
    ) -> StepOutcome<M>
    where
        M: Network<Autodiff<B>, D>,
        M::InnerModule: CurvatureModel<B, D>;

    /// This optimiser as one peer of the data-parallel `group`: from now on every
    /// [`train_step`](Self::train_step) takes the peer's share of a global batch, and the
    /// gradient (KFAC: and its factors at their refresh; LanczosOPT: every Hessian-vector
    /// product) is the global batch's, summed across the peers by one all-reduce
    /// ([`data_parallel`](crate::data_parallel)). Every peer of the group must step the same
    /// model with the same optimiser configuration; their states then stay identical.
    ///
    /// # Errors
    /// None of this crate's optimisers refuses a group; the `Result` is for implementations
    /// that cannot step data-parallel.
    fn with_peers(self, group: PeerGroup<B>) -> Result<Self>;

    /// Write the optimiser's state (moments, factors, Ritz pairs, step counts) to `path`
    /// (burn's binary record format; the recorder appends `.bin`).
    ///
    /// # Errors
    /// [`OptimError::Record`] if the file cannot be written.
    fn save(&self, path: &Path) -> Result<()>;

    /// Restore the state [`save`](Self::save) wrote to `path`, onto tensors on `device`.
    ///
    /// # Errors
    /// [`OptimError::Record`] for a missing or unreadable file or the record of another
    /// optimiser or model; [`OptimError::InvalidInput`] for a record that does not fit.
    fn load(self, path: &Path, device: &B::Device) -> Result<Self>;
}

/// Write `record` to `path` (burn's binary format; the recorder appends `.bin`), losslessly:
/// in f64 for a backend whose float element is 8 bytes wide, in f32 otherwise (so that a
/// resumed f64 run continues bit-identically, and an f32 state takes no more room than it
/// needs). [`load_record`] applies the same rule.
///
/// # Errors
/// [`OptimError::Record`] naming the file.
pub fn save_record<B: Backend, R: Record<B>>(record: R, path: &Path) -> Result<()> {
    let written = if is_double::<B>() {
        BinFileRecorder::<DoublePrecisionSettings>::default().record(record, path.to_path_buf())
    } else {
        BinFileRecorder::<FullPrecisionSettings>::default().record(record, path.to_path_buf())
    };
    written.map_err(|e| record_error(path, e))
}

/// Read a record [`save_record`] wrote to `path` onto `device`.
///
/// # Errors
/// [`OptimError::Record`] naming the file: missing, unreadable, or another type's record.
pub fn load_record<B: Backend, R: Record<B>>(path: &Path, device: &B::Device) -> Result<R> {
    let read = if is_double::<B>() {
        BinFileRecorder::<DoublePrecisionSettings>::default().load(path.to_path_buf(), device)
    } else {
        BinFileRecorder::<FullPrecisionSettings>::default().load(path.to_path_buf(), device)
    };
    read.map_err(|e| record_error(path, e))
}

fn is_double<B: Backend>() -> bool {
    std::mem::size_of::<B::FloatElem>() == 8
}

fn record_error(path: &Path, e: impl std::fmt::Display) -> OptimError {
    OptimError::Record {
        path: path.with_extension("bin"),
        message: e.to_string(),
    }
}

/// A first-order burn optimiser (SGD, Adam) as a [`TrainingStep`]: loss and gradient by
/// backpropagation, the update by the optimiser, a non-finite loss refused
/// ([`checked_step`](crate::checked_step)).
///
/// With an `ε` cell ([`with_epsilon`](Self::with_epsilon), for an Adam built by
/// [`AdamConfig::init_damped`](crate::AdamConfig::init_damped) with the same cell) the
/// damping policy's `δ` becomes Adam's `ε` before every step (damping paper §6: Adam's `ε` is
/// its damping); without one the policy is ignored.
pub struct FirstOrder<O, B: Backend> {
    optimizer: O,
    name: &'static str,
    epsilon: Option<DampingCell>,
    steps: usize,
    peers: Option<PeerGroup<B>>,
}

impl<O, B: Backend> FirstOrder<O, B> {
    /// `optimizer`, reported as `name`, with the damping ignored.
    pub fn new(optimizer: O, name: &'static str) -> Self {
        Self {
            optimizer,
            name,
            epsilon: None,
            steps: 0,
            peers: None,
        }
    }

    /// Set the damping into `cell` (the one the optimiser reads its `ε` from) at every step.
    pub fn with_epsilon(mut self, cell: DampingCell) -> Self {
        self.epsilon = Some(cell);
        self
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }
}

impl<B, M, O> TrainingStep<B, M> for FirstOrder<O, B>
where
    B: Backend,
    M: AutodiffModule<Autodiff<B>>,
    O: Optimizer<M, Autodiff<B>>,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn is_damped(&self) -> bool {
        self.epsilon.is_some()
    }

    fn train_step<const D: usize>(
        &mut self,
        model: M,
        batch: &Batch<B, D>,
        loss: Loss,
        lr: f64,
        damping: &dyn DampingPolicy,
    ) -> StepOutcome<M>
    where
        M: Network<Autodiff<B>, D>,
        M::InnerModule: CurvatureModel<B, D>,
    {
        let start = Instant::now();
        if !(lr.is_finite() && lr > 0.0) {
            let e = crate::error::invalid("TrainingStep", "lr", lr, "must be positive");
            return Err((model, e));
        }
        let epsilon = match &self.epsilon {
            Some(cell) => match cell.follow(damping) {
                Ok(()) => Some(cell.damping()),
                Err(e) => return Err((model, e)),
            },
            None => None,
        };
        let value = loss.batch_mean(&model, batch, BatchNormMode::Train);
        let group = self.peers.as_ref().map(|g| (g.as_ref(), batch.len()));
        let (model, value) = checked_step_in(group, &mut self.optimizer, lr, model, value)?;
        let report =
            StepReport::first_order(self.name, self.steps, value, lr, epsilon, start.elapsed());
        self.steps += 1;
        Ok((model, report))
    }

    fn with_peers(mut self, group: PeerGroup<B>) -> Result<Self> {
        self.peers = Some(group);
        Ok(self)
    }

    fn save(&self, path: &Path) -> Result<()> {
        // The burn optimiser's record (its moments) and the step count.
        save_record::<Autodiff<B>, _>((self.optimizer.to_record(), self.steps), path)
    }

    fn load(mut self, path: &Path, device: &B::Device) -> Result<Self> {
        let (record, steps): (O::Record, usize) = load_record::<Autodiff<B>, _>(path, device)?;
        self.optimizer = self.optimizer.load_record(record);
        self.steps = steps;
        Ok(self)
    }
}

impl<B, M> TrainingStep<B, M> for Kfac<Autodiff<B>, M>
where
    B: Backend,
    M: AutodiffModule<Autodiff<B>>,
{
    fn name(&self) -> &'static str {
        "kfac"
    }

    fn is_damped(&self) -> bool {
        true
    }

    fn train_step<const D: usize>(
        &mut self,
        model: M,
        batch: &Batch<B, D>,
        loss: Loss,
        lr: f64,
        damping: &dyn DampingPolicy,
    ) -> StepOutcome<M>
    where
        M: Network<Autodiff<B>, D>,
        M::InnerModule: CurvatureModel<B, D>,
    {
        let x = Tensor::<Autodiff<B>, D>::from_inner(batch.inputs.clone());
        self.step(model, lr, damping, loss, &batch.targets, |m| {
            m.output(x.clone(), BatchNormMode::Train)
        })
    }

    fn with_peers(self, group: PeerGroup<B>) -> Result<Self> {
        Ok(Kfac::with_peers(self, group))
    }

    fn save(&self, path: &Path) -> Result<()> {
        save_record::<Autodiff<B>, _>(self.to_record(), path)
    }

    fn load(self, path: &Path, device: &B::Device) -> Result<Self> {
        self.load_record(load_record::<Autodiff<B>, _>(path, device)?)
    }
}

impl<B, M> TrainingStep<B, M> for LanczosOpt<B>
where
    B: Backend,
    M: AutodiffModule<Autodiff<B>>,
{
    fn name(&self) -> &'static str {
        "lanczos_opt"
    }

    fn is_damped(&self) -> bool {
        true
    }

    /// The step on the [`Objective`] of the batch (its Hessian-vector products are exact);
    /// the model comes back with its parameters trainable again.
    fn train_step<const D: usize>(
        &mut self,
        model: M,
        batch: &Batch<B, D>,
        loss: Loss,
        lr: f64,
        damping: &dyn DampingPolicy,
    ) -> StepOutcome<M>
    where
        M: Network<Autodiff<B>, D>,
        M::InnerModule: CurvatureModel<B, D>,
    {
        let objective = Objective::new(model.valid(), loss, vec![batch.clone()]);
        let objective = match (objective, self.peer_group()) {
            (Ok(objective), Some(group)) => objective.with_peers(group.clone()),
            (objective, _) => objective,
        };
        let mut objective = match objective {
            Ok(objective) => objective,
            Err(e) => return Err((model, e.into())),
        };
        match self.step(&mut objective, lr, damping) {
            Ok(report) => Ok((M::from_inner(mark_trainable(objective.model())), report)),
            Err(e) => Err((model, e)),
        }
    }

    fn with_peers(self, group: PeerGroup<B>) -> Result<Self> {
        Ok(LanczosOpt::with_peers(self, group))
    }

    fn save(&self, path: &Path) -> Result<()> {
        save_record::<B, _>(self.to_record(), path)
    }

    fn load(self, path: &Path, device: &B::Device) -> Result<Self> {
        self.load_record(load_record::<B, _>(path, device)?)
    }
}

/// The configuration of any optimiser of this crate: what a run's configuration file names
/// (`{"kind": "kfac", ...the KfacConfig fields}`), and how [`AnyOptimizer`] is built.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OptimizerConfig {
    /// SGD with momentum and weight decay.
    Sgd(SgdConfig),
    /// Adam (AdamW, Adam-D: its `weight_decay_mode` and `epsilon`); `ε` follows the damping
    /// policy of each step.
    Adam(AdamConfig),
    /// KFAC.
    Kfac(KfacConfig),
    /// LanczosOPT.
    LanczosOpt(LanczosOptConfig),
    /// `inner` with iterate averaging ([`IterateAveraging`]) on `schedule`: Gadam is AdamW
    /// averaged ([`OptimizerConfig::gadam`]), SWA is averaged SGD.
    Averaged {
        /// The optimiser taking the steps.
        inner: Box<OptimizerConfig>,
        /// When the iterates are averaged.
        schedule: AveragingSchedule,
    },
}

impl OptimizerConfig {
    /// The optimiser, for a model `M` on `Autodiff<B>`.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`] from the configuration's own validation.
    pub fn init<B: Backend, M: AutodiffModule<Autodiff<B>>>(&self) -> Result<AnyOptimizer<B, M>> {
        Ok(match self {
            Self::Sgd(c) => AnyOptimizer::Sgd(FirstOrder::new(c.init()?, "sgd")),
            Self::Adam(c) => {
                let cell = DampingCell::new(c.epsilon)?;
                let adam = c.init_damped(cell.clone())?;
                AnyOptimizer::Adam(FirstOrder::new(adam, "adam").with_epsilon(cell))
            }
            Self::Kfac(c) => AnyOptimizer::Kfac(Box::new(c.init()?)),
            Self::LanczosOpt(c) => AnyOptimizer::LanczosOpt(c.init()?),
            Self::Averaged { inner, schedule } => {
                AnyOptimizer::Averaged(Box::new(IterateAveraging::new(inner.init()?, *schedule)?))
            }
        })
    }

    /// Gadam (*Flatness is a False Friend* §5): Adam with decoupled weight decay
    /// `weight_decay` (AdamW), its iterates averaged on `schedule`.
    pub fn gadam(weight_decay: f64, schedule: AveragingSchedule) -> Self {
        Self::Averaged {
            inner: Box::new(Self::Adam(AdamConfig::adamw(weight_decay))),
            schedule,
        }
    }
}

/// Any optimiser of this crate, built by [`OptimizerConfig::init`]; a [`TrainingStep`] that
/// delegates to the one it holds.
pub enum AnyOptimizer<B: Backend, M: AutodiffModule<Autodiff<B>>> {
    /// SGD.
    Sgd(FirstOrder<OptimizerAdaptor<Sgd, M, Autodiff<B>>, B>),
    /// Adam with its `ε` cell.
    Adam(FirstOrder<OptimizerAdaptor<Adam, M, Autodiff<B>>, B>),
    /// KFAC.
    Kfac(Box<Kfac<Autodiff<B>, M>>),
    /// LanczosOPT.
    LanczosOpt(LanczosOpt<B>),
    /// Any of them with iterate averaging.
    Averaged(Box<IterateAveraging<AnyOptimizer<B, M>, Autodiff<B>>>),
}

impl<B: Backend, M: AutodiffModule<Autodiff<B>>> AnyOptimizer<B, M> {
    /// With iterate averaging: `model` with its parameters replaced by the running mean of the
    /// iterates (`None` before averaging has started, and without averaging). Batch-norm
    /// running statistics are `model`'s; recompute them before evaluating.
    ///
    /// # Errors
    /// A model whose parameters do not match the average.
    pub fn averaged(&self, model: M) -> Result<Option<M>> {
        match self {
            Self::Averaged(a) => a.averaged(model),
            _ => Ok(None),
        }
    }
}

impl<B: Backend, M: AutodiffModule<Autodiff<B>>> TrainingStep<B, M> for AnyOptimizer<B, M> {
    fn name(&self) -> &'static str {
        match self {
            Self::Sgd(o) => TrainingStep::<B, M>::name(o),
            Self::Adam(o) => TrainingStep::<B, M>::name(o),
            Self::Kfac(o) => TrainingStep::<B, M>::name(o.as_ref()),
            Self::LanczosOpt(o) => TrainingStep::<B, M>::name(o),
            Self::Averaged(o) => TrainingStep::<B, M>::name(o.as_ref()),
        }
    }

    fn is_damped(&self) -> bool {
        match self {
            Self::Sgd(o) => TrainingStep::<B, M>::is_damped(o),
            Self::Adam(o) => TrainingStep::<B, M>::is_damped(o),
            Self::Kfac(o) => TrainingStep::<B, M>::is_damped(o.as_ref()),
            Self::LanczosOpt(o) => TrainingStep::<B, M>::is_damped(o),
            Self::Averaged(o) => TrainingStep::<B, M>::is_damped(o.as_ref()),
        }
    }

    fn train_step<const D: usize>(
        &mut self,
        model: M,
        batch: &Batch<B, D>,
        loss: Loss,
        lr: f64,
        damping: &dyn DampingPolicy,
    ) -> StepOutcome<M>
    where
        M: Network<Autodiff<B>, D>,
        M::InnerModule: CurvatureModel<B, D>,
    {
        match self {
            Self::Sgd(o) => o.train_step(model, batch, loss, lr, damping),
            Self::Adam(o) => o.train_step(model, batch, loss, lr, damping),
            Self::Kfac(o) => o.as_mut().train_step(model, batch, loss, lr, damping),
            Self::LanczosOpt(o) => o.train_step(model, batch, loss, lr, damping),
            Self::Averaged(o) => o.as_mut().train_step(model, batch, loss, lr, damping),
        }
    }

    fn with_peers(self, group: PeerGroup<B>) -> Result<Self> {
        Ok(match self {
            Self::Sgd(o) => Self::Sgd(TrainingStep::<B, M>::with_peers(o, group)?),
            Self::Adam(o) => Self::Adam(TrainingStep::<B, M>::with_peers(o, group)?),
            Self::Kfac(o) => Self::Kfac(Box::new(TrainingStep::<B, M>::with_peers(*o, group)?)),
            Self::LanczosOpt(o) => Self::LanczosOpt(TrainingStep::<B, M>::with_peers(o, group)?),
            Self::Averaged(o) => {
                Self::Averaged(Box::new(TrainingStep::<B, M>::with_peers(*o, group)?))
            }
        })
    }

    fn save(&self, path: &Path) -> Result<()> {
        match self {
            Self::Sgd(o) => TrainingStep::<B, M>::save(o, path),
            Self::Adam(o) => TrainingStep::<B, M>::save(o, path),
            Self::Kfac(o) => TrainingStep::<B, M>::save(o.as_ref(), path),
            Self::LanczosOpt(o) => TrainingStep::<B, M>::save(o, path),
            Self::Averaged(o) => TrainingStep::<B, M>::save(o.as_ref(), path),
        }
    }

    fn load(self, path: &Path, device: &B::Device) -> Result<Self> {
        Ok(match self {
            Self::Sgd(o) => Self::Sgd(TrainingStep::<B, M>::load(o, path, device)?),
            Self::Adam(o) => Self::Adam(TrainingStep::<B, M>::load(o, path, device)?),
            Self::Kfac(o) => Self::Kfac(Box::new(TrainingStep::<B, M>::load(*o, path, device)?)),
            Self::LanczosOpt(o) => Self::LanczosOpt(TrainingStep::<B, M>::load(o, path, device)?),
            Self::Averaged(o) => {
                Self::Averaged(Box::new(TrainingStep::<B, M>::load(*o, path, device)?))
            }
        })
    }
}
