//! Iterate averaging (Polyak averaging / SWA; Granziol, *Flatness is a False Friend*, §5) around
//! any burn optimiser or any [`TrainingStep`] ([`IterateAveraging`] is both), and the Gadam
//! preset (Adam + decoupled weight decay + averaging).
//!
//! After `start` steps, every `frequency` steps the running mean `w̄ ← w̄ + (w − w̄)/(n + 1)` of
//! the iterates is updated; training continues on the raw iterates and
//! [`IterateAveraging::averaged`] gives the averaged model for evaluation. Its batch-norm running
//! statistics must then be recomputed with one pass over the training data —
//! [`curvature_nets::recompute_running_stats`] does that for any `curvature-nets` model —
//! since the averaged weights never produced them.

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, MultiGradientsParams, Optimizer};
use burn::record::Record;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use curvature_core::{Batch, CurvatureModel, Loss, Network, ParamLayout};

use crate::adam::AdamConfig;
use crate::damping::DampingPolicy;
use crate::error::{Result as OResult, invalid};
use crate::training_step::{StepOutcome, TrainingStep, load_record, save_record};

/// When averaging happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AveragingSchedule {
    /// Optimiser steps before averaging starts (`T_avg` in steps).
    pub start: usize,
    /// Average every this many steps after the start.
    pub frequency: usize,
}

/// Saved averaging state.
#[derive(Record, Clone)]
pub struct IterateAveragingRecord<B: Backend, R: Record<B>> {
    /// The wrapped optimiser's record.
    pub inner: R,
    /// Steps taken.
    pub steps: usize,
    /// Iterates averaged.
    pub count: usize,
    /// The running mean of the parameters (flat, in `ParamLayout` order).
    pub average: Option<Tensor<B, 1>>,
}

/// The running mean of a module's parameters over the iterates of a training run, on any
/// optimiser: call [`observe`](Self::observe) after every step. [`IterateAveraging`] wraps a
/// burn optimiser or a [`TrainingStep`] with one; a loop of its own can also use it directly.
#[derive(Clone)]
pub struct IterateAverage<B: AutodiffBackend> {
    schedule: AveragingSchedule,
    steps: usize,
    count: usize,
    average: Option<Tensor<B::InnerBackend, 1>>,
}

/// Saved [`IterateAverage`] state.
#[derive(Record, Clone)]
pub struct IterateAverageRecord<B: Backend> {
    /// Steps observed.
    pub steps: usize,
    /// Iterates averaged.
    pub count: usize,
    /// The running mean of the parameters (flat, in `ParamLayout` order).
    pub average: Option<Tensor<B, 1>>,
}

impl<B: AutodiffBackend> IterateAverage<B> {
    /// An empty average following `schedule`.
    ///
    /// # Errors
    /// `frequency = 0`.
    pub fn new(schedule: AveragingSchedule) -> OResult<Self> {
        if schedule.frequency == 0 {
            return Err(invalid(
                "AveragingSchedule",
                "frequency",
                0,
                "must be positive",
            ));
        }
        Ok(Self {
            schedule,
            steps: 0,
            count: 0,
            average: None,
        })
    }

    /// Number of iterates averaged so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Optimiser steps observed so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Record one optimiser step that produced `module`: from step `start` on, every
    /// `frequency` steps, `w̄ ← w̄ + (w − w̄)/(n + 1)`.
    ///
    /// # Errors
    /// A module whose parameters do not match the average kept so far.
    pub fn observe<M: AutodiffModule<B>>(&mut self, module: &M) -> OResult<()> {
        self.steps += 1;
        if self.steps < self.schedule.start
            || !(self.steps - self.schedule.start).is_multiple_of(self.schedule.frequency)
        {
            return Ok(());
        }
        let layout = ParamLayout::of(module)?;
        let w = layout.flatten(&module.valid())?;
        self.average = Some(match self.average.take() {
            Some(avg) => {
                if avg.dims() != w.dims() {
                    return Err(invalid(
                        "IterateAverage",
                        "module",
                        w.dims()[0],
                        "has a different parameter count than the average",
                    ));
                }
                avg.clone() + (w - avg).mul_scalar(1.0 / (self.count + 1) as f64)
            }
            None => w,
        });
        self.count += 1;
        Ok(())
    }

    /// The averaged model (parameters replaced by their running mean), or `None` before
    /// averaging started. Batch-norm running statistics are `module`'s; recompute them
    /// ([`curvature_nets::recompute_running_stats`]) before evaluating.
    ///
    /// # Errors
    /// A module whose parameters do not match the averaged vector.
    pub fn averaged<M: AutodiffModule<B>>(&self, module: M) -> OResult<Option<M>> {
        let Some(avg) = &self.average else {
            return Ok(None);
        };
        let layout = ParamLayout::of(&module)?;
        Ok(Some(layout.load(module, avg.clone())?))
    }

    /// The state to save.
    pub fn to_record(&self) -> IterateAverageRecord<B> {
        IterateAverageRecord {
            steps: self.steps,
            count: self.count,
            average: self.average.clone().map(Tensor::from_inner),
        }
    }

    /// Restore saved state.
    pub fn load_record(mut self, record: IterateAverageRecord<B>) -> Self {
        self.steps = record.steps;
        self.count = record.count;
        self.average = record.average.map(Tensor::inner);
        self
    }
}

/// An optimiser that also keeps the running mean of its iterates ([`IterateAverage`]): a burn
/// [`Optimizer`] around a burn optimiser, a [`TrainingStep`] around a training step (e.g.
/// [`OptimizerConfig::Averaged`](crate::OptimizerConfig::Averaged)).
#[derive(Clone)]
pub struct IterateAveraging<O, B: AutodiffBackend> {
    inner: O,
    average: IterateAverage<B>,
}

impl<O, B: AutodiffBackend> IterateAveraging<O, B> {
    /// Wrap `inner`.
    ///
    /// # Errors
    /// `frequency = 0`.
    pub fn new(inner: O, schedule: AveragingSchedule) -> OResult<Self> {
        Ok(Self {
            inner,
            average: IterateAverage::new(schedule)?,
        })
    }

    /// Number of iterates averaged so far.
    pub fn count(&self) -> usize {
        self.average.count()
    }

    /// The averaged model (parameters replaced by their running mean), or `None` before
    /// averaging started.
    ///
    /// # Errors
    /// A module whose parameters do not match the averaged vector.
    pub fn averaged<M: AutodiffModule<B>>(&self, module: M) -> OResult<Option<M>> {
        self.average.averaged(module)
    }

    /// The running average itself.
    pub fn average(&self) -> &IterateAverage<B> {
        &self.average
    }

    /// The wrapped optimiser.
    pub fn inner(&self) -> &O {
        &self.inner
    }
}

impl<O, M, B> Optimizer<M, B> for IterateAveraging<O, B>
where
    O: Optimizer<M, B>,
    M: AutodiffModule<B>,
    B: AutodiffBackend,
{
    type Record = IterateAveragingRecord<B, O::Record>;

    fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        let module = self.inner.step(lr, module, grads);
        // burn's `Optimizer::step` cannot fail; a module is always its own layout.
        let _ = self.average.observe(&module);
        module
    }

    fn step_multi(&mut self, lr: f64, module: M, grads: MultiGradientsParams) -> M {
        let module = self.inner.step_multi(lr, module, grads);
        let _ = self.average.observe(&module);
        module
    }

    fn to_record(&self) -> Self::Record {
        let a = self.average.to_record();
        IterateAveragingRecord {
            inner: self.inner.to_record(),
            steps: a.steps,
            count: a.count,
            average: a.average,
        }
    }

    fn load_record(mut self, record: Self::Record) -> Self {
        self.inner = self.inner.load_record(record.inner);
        self.average = self.average.load_record(IterateAverageRecord {
            steps: record.steps,
            count: record.count,
            average: record.average,
        });
        self
    }
}

/// Averaging around any [`TrainingStep`] (SGD, Adam, KFAC, LanczosOPT — Gadam is this around
/// AdamW): the inner optimiser takes the step, then the running mean observes the stepped
/// model. The state saved is the inner optimiser's at `path` and the average's beside it at
/// [`average_path`]`(path)`.
impl<B, M, S> TrainingStep<B, M> for IterateAveraging<S, Autodiff<B>>
where
    B: Backend,
    M: AutodiffModule<Autodiff<B>>,
    S: TrainingStep<B, M>,
{
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn is_damped(&self) -> bool {
        self.inner.is_damped()
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
        let (model, report) = self.inner.train_step(model, batch, loss, lr, damping)?;
        match self.average.observe(&model) {
            Ok(()) => Ok((model, report)),
            Err(e) => Err((model, e)),
        }
    }

    fn with_peers(mut self, group: crate::PeerGroup<B>) -> OResult<Self> {
        // Every peer averages the same iterates: only the inner step is shared.
        self.inner = self.inner.with_peers(group)?;
        Ok(self)
    }

    fn save(&self, path: &Path) -> OResult<()> {
        self.inner.save(path)?;
        save_record::<Autodiff<B>, _>(self.average.to_record(), &average_path(path))
    }

    fn load(mut self, path: &Path, device: &B::Device) -> OResult<Self> {
        self.inner = self.inner.load(path, device)?;
        self.average = self
            .average
            .load_record(load_record::<Autodiff<B>, _>(&average_path(path), device)?);
        Ok(self)
    }
}

/// Where [`IterateAveraging`] saves its running mean next to the inner optimiser's state at
/// `path`: `path` with `-average` appended to its file name (`optimizer` → `optimizer-average`,
/// to which the recorder appends `.bin`).
pub fn average_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push("-average");
    path.with_file_name(name)
}

/// Gadam (*Flatness is a False Friend* §5): Adam with decoupled weight decay `λ` and iterate
/// averaging from step `start`.
///
/// # Errors
/// Invalid Adam settings or `frequency = 0`.
pub fn gadam<B: AutodiffBackend, M: AutodiffModule<B>>(
    weight_decay: f64,
    schedule: AveragingSchedule,
) -> OResult<IterateAveraging<burn::optim::adaptor::OptimizerAdaptor<crate::adam::Adam, M, B>, B>> {
    IterateAveraging::new(AdamConfig::adamw(weight_decay).init::<B, M>()?, schedule)
}
