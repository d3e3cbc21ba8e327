//! Step reports and the observers that receive them.
//!
//! Every step of a curvature optimiser ([`Kfac`](crate::Kfac), [`LanczosOpt`](crate::LanczosOpt))
//! returns a [`StepReport`] and hands it to its observers; first-order steps report through
//! [`observed_step`]. A report carries the loss, the learning rate, the damping `δ`, the
//! estimated-curvature learning-rate ratio `R = 1 + (λ_max − λ_min)/δ` (damping paper §5) where
//! the optimiser has a curvature estimate, and wall-clock timings.

use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use crate::error::OptimError;

/// Wall-clock time of one step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepTimings {
    /// The whole step.
    pub total: Duration,
    /// Of which: curvature work (KFAC factor statistics and inversions, Lanczos).
    pub curvature: Duration,
}

/// What one optimiser step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// The optimiser (`"sgd"`, `"adam"`, `"kfac"`, `"lanczos_opt"`, ...).
    pub optimizer: &'static str,
    /// Steps taken before this one (0 for the first).
    pub step: usize,
    /// The mini-batch loss the step was computed from.
    pub loss: f64,
    /// Learning rate `α`.
    pub lr: f64,
    /// Damping `δ` (Adam: `ε`), if the optimiser has one.
    pub damping: Option<f64>,
    /// Largest and smallest curvature eigenvalue of the optimiser's model, if it has one.
    pub curvature_range: Option<(f64, f64)>,
    /// `R = 1 + (λ_max − λ_min)/δ`, when both a curvature range and a damping exist.
    pub curvature_ratio: Option<f64>,
    /// The change of the loss the optimiser's (undamped) quadratic model predicts for this
    /// step, where it computes one — with the loss after the step, the reduction ratio
    /// `ρ = (L_after − L_before) / predicted_change` of [`LevenbergMarquardt`](crate::LevenbergMarquardt).
    pub predicted_change: Option<f64>,
    /// Whether the curvature model (factors, inverses, Ritz pairs) was recomputed this step.
    pub refreshed: bool,
    /// Timings.
    pub timings: StepTimings,
}

impl StepReport {
    /// The report of a first-order step (no curvature model): `loss` before the step, `lr`,
    /// Adam's `ε` as the damping if given, and the step's wall-clock time.
    pub fn first_order(
        optimizer: &'static str,
        step: usize,
        loss: f64,
        lr: f64,
        damping: Option<f64>,
        total: Duration,
    ) -> Self {
        Self {
            optimizer,
            step,
            loss,
            lr,
            damping,
            curvature_range: None,
            curvature_ratio: None,
            predicted_change: None,
            refreshed: false,
            timings: StepTimings {
                total,
                curvature: Duration::ZERO,
            },
        }
    }
}

/// Receives a [`StepReport`] after every step.
pub trait StepObserver {
    /// Called once per step.
    fn observe(&mut self, report: &StepReport);
}

impl<F: FnMut(&StepReport)> StepObserver for F {
    fn observe(&mut self, report: &StepReport) {
        self(report)
    }
}

/// Keeps every report (e.g. to plot the damping trajectory afterwards).
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The reports, in step order.
    pub reports: Vec<StepReport>,
}

impl StepObserver for History {
    fn observe(&mut self, report: &StepReport) {
        self.reports.push(report.clone());
    }
}

/// Prints one line every `every` steps to standard error.
#[derive(Debug, Clone, Copy)]
pub struct PrintEvery(pub usize);

impl StepObserver for PrintEvery {
    fn observe(&mut self, r: &StepReport) {
        if self.0 == 0 || !r.step.is_multiple_of(self.0) {
            return;
        }
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3e}"));
        eprintln!(
            "[{} step {}] loss {:.5} lr {:.3e} damping {} R {} ({:.1} ms, curvature {:.1} ms)",
            r.optimizer,
            r.step,
            r.loss,
            r.lr,
            opt(r.damping),
            opt(r.curvature_ratio),
            r.timings.total.as_secs_f64() * 1e3,
            r.timings.curvature.as_secs_f64() * 1e3,
        );
    }
}

/// A list of observers owned by an optimiser.
#[derive(Default)]
pub struct Observers(Vec<Box<dyn StepObserver>>);

impl Observers {
    /// Add an observer.
    pub fn push(&mut self, observer: impl StepObserver + 'static) {
        self.0.push(Box::new(observer));
    }

    /// Hand `report` to every observer.
    pub fn notify(&mut self, report: &StepReport) {
        for o in &mut self.0 {
            o.observe(report);
        }
    }
}

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Observers({})", self.0.len())
    }
}

/// [`checked_step`](crate::checked_step) for a first-order burn optimiser, timed and reported
/// to `observer` (`damping`: Adam's current `ε`, if it should appear in the report).
///
/// # Errors
/// As `checked_step`: a non-finite loss returns the untouched model with the error.
#[allow(clippy::too_many_arguments)]
pub fn observed_step<B, M, O>(
    optimizer: &mut O,
    name: &'static str,
    step: usize,
    lr: f64,
    damping: Option<f64>,
    module: M,
    loss: Tensor<B, 1>,
    observer: &mut dyn StepObserver,
) -> std::result::Result<M, (M, OptimError)>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let start = Instant::now();
    let (module, value) = crate::checked_step(optimizer, lr, module, loss)?;
    observer.observe(&StepReport::first_order(
        name,
        step,
        value,
        lr,
        damping,
        start.elapsed(),
    ));
    Ok(module)
}
