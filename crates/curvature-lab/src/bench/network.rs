//! The measurements of one model: the curvature operations, then every optimiser's
//! [`TrainingStep::train_step`], each row with its ratio to the gradient or the SGD step.

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use curvature_core::{
    Batch, BatchNormMode, CurvatureModel, LanczosConfig, LinearOperator, Loss, Network, Objective,
    gaussian_vector, lanczos,
};
use curvature_optim::{
    AdamConfig, AnyOptimizer, FixedDamping, KfacConfig, LanczosOptConfig, OptimizerConfig,
    PeerGroup, SgdConfig, TrainingStep,
};

use super::measure::{Case, Measure, Operation, Timing};
use super::table::{BenchRow, three_digits};
use super::{BenchEvent, BenchOptions};
use crate::error::{LabError, Result};

/// What a row's ratio divides by.
#[derive(Debug, Clone, Copy)]
enum Baseline {
    Gradient(f64),
    SgdStep(f64),
    None,
}

impl Baseline {
    fn gradient(t: Option<Timing>) -> Self {
        t.map_or(Self::None, |t| Self::Gradient(t.ms))
    }

    fn sgd_step(t: Option<Timing>) -> Self {
        t.map_or(Self::None, |t| Self::SgdStep(t.ms))
    }
}

/// KFAC intervals meaning "never" (only the first step updates factors and inverts).
const NEVER: usize = usize::MAX;

/// Time every operation of `model` on `batch` — with a `group`, as one peer of it: `batch` is
/// the peer's share of the global batch and every product and step is the global batch's.
pub(super) fn bench_network<B, M, const D: usize>(
    model: M,
    batch: Batch<B, D>,
    device: &B::Device,
    options: &BenchOptions,
    mut rec: Recorder<'_>,
    group: Option<PeerGroup<B>>,
) -> Result<()>
where
    B: Backend,
    M: AutodiffModule<Autodiff<B>> + Network<Autodiff<B>, D>,
    M::InnerModule: CurvatureModel<B, D>,
{
    let n = options.batch;
    let objective = Objective::new(model.valid(), Loss::CrossEntropy, vec![batch.clone()])?
        .with_bn_mode(BatchNormMode::Train);
    let objective = match &group {
        Some(g) => objective.with_peers(g.clone())?,
        None => objective,
    };
    let p = objective.dim();
    rec.params = p;
    let sync = || {
        B::sync(device)
            .map_err(|e| LabError::Device(format!("{device:?} failed to synchronise: {e:?}")))
    };

    if !options.skip_curvature {
        let grad = rec.time("gradient", false, &mut || {
            drop(objective.gradient()?);
            sync()
        })?;
        let per_grad = Baseline::gradient(grad);
        rec.row("gradient", grad, per_grad, String::new());
        let v = gaussian_vector::<B>(p, 1, device);
        let hvp = rec.time("exact hvp", false, &mut || {
            drop(objective.hvp(&v)?);
            sync()
        })?;
        rec.row("exact hvp", hvp, per_grad, String::new());
        let ggn = rec.time("ggn product", false, &mut || {
            drop(objective.ggn_vp(&v)?);
            sync()
        })?;
        rec.row("ggn product", ggn, per_grad, String::new());
        let fd = objective.finite_difference_hessian();
        let fd_hvp = rec.time("fd hvp", false, &mut || {
            drop(fd.apply(&v)?);
            sync()
        })?;
        rec.row(
            "fd hvp",
            fd_hvp,
            per_grad,
            "central difference of two gradients".into(),
        );
        let m = options.lanczos_steps;
        let config = LanczosConfig::new().with_steps(m);
        let hessian = objective.hessian();
        // A Lanczos run is already `m` HVPs: a heavy case (fewer repeats).
        let total = rec.time(&format!("lanczos ({m} steps)"), true, &mut || {
            drop(lanczos(&hessian, &config)?);
            sync()
        })?;
        if let Some(total) = total {
            rec.row(
                "lanczos step",
                Some(Timing {
                    ms: total.ms / m as f64,
                    ..total
                }),
                per_grad,
                format!(
                    "{m} steps with full re-orthogonalisation: {:.1} ms",
                    total.ms
                ),
            );
        }
        if let Some(hvp) = hvp {
            let batches = 50_000usize.div_ceil(n);
            let estimate = 100.0 * batches as f64 * hvp.ms;
            rec.row(
                "est. 100-step lanczos on 50k images",
                Some(Timing::derived(estimate)),
                Baseline::None,
                format!(
                    "100 × {batches} batch HVPs = {:.1} min; basis 100 × P × 4 B = {:.2} GB",
                    estimate / 60_000.0,
                    100.0 * p as f64 * 4.0 / 1e9
                ),
            );
        }
    }
    if options.skip_optimisers {
        return Ok(());
    }

    // Every optimiser row times `TrainingStep::train_step` at α = 1e-4, as training calls it.
    let steps = |config: OptimizerConfig, damping: f64, prepare: bool| {
        OptimizerSteps::new(
            &config,
            damping,
            prepare,
            (&model, &batch),
            &sync,
            group.clone(),
        )
    };
    let sgd_config = OptimizerConfig::Sgd(SgdConfig::new().with_momentum(0.9));
    let sgd = rec.time("sgd step", false, &mut steps(sgd_config, 1.0, false)?)?;
    let per_sgd = Baseline::sgd_step(sgd);
    let throughput = sgd.map_or(String::new(), |t| {
        format!("{} images/s", three_digits(n as f64 / (t.ms / 1e3)))
    });
    rec.row("sgd step", sgd, per_sgd, throughput);
    // Adam's damping is its ε: the default 1e-8.
    let adam_config = AdamConfig::new();
    let eps = adam_config.epsilon;
    let adam = rec.time(
        "adam step",
        false,
        &mut steps(OptimizerConfig::Adam(adam_config), eps, false)?,
    )?;
    rec.row("adam step", adam, per_sgd, String::new());

    if !options.skip_kfac {
        // KFAC steps with intervals `(cov, inv)`, after one untimed step that builds the
        // factors and their eigenbases.
        let mut kfac = |op: &str, (cov, inv): (usize, usize)| -> Result<Option<Timing>> {
            let config = KfacConfig::new()
                .with_solver_and_split(options.kfac_solver)
                .with_cov_interval(cov)
                .with_inv_interval(inv);
            rec.time(
                op,
                false,
                &mut steps(OptimizerConfig::Kfac(config), 1e-2, true)?,
            )
        };
        let plain = kfac("kfac plain step", (NEVER, NEVER))?;
        let factors = kfac("kfac factor step", (1, NEVER))?;
        let inversion = if options.kfac_inversion {
            Some(kfac("kfac inversion step", (1, 1))?)
        } else {
            None
        };
        rec.row("kfac plain step", plain, per_sgd, String::new());
        rec.row("kfac factor step", factors, per_sgd, String::new());
        match inversion {
            Some(inversion) => {
                let solver = format!("factors inverted by {}", options.kfac_solver);
                rec.row("kfac inversion step", inversion, per_sgd, solver);
                if let (Some(p), Some(f), Some(i)) = (plain, factors, inversion) {
                    let amortised = p.ms + (f.ms - p.ms) / 10.0 + (i.ms - f.ms) / 100.0;
                    let amortised = Some(Timing::derived(amortised));
                    rec.row("kfac amortised 10/100", amortised, per_sgd, String::new());
                }
            }
            None => {
                if let (Some(p), Some(f)) = (plain, factors) {
                    rec.row(
                        "kfac amortised 10/never",
                        Some(Timing::derived(p.ms + (f.ms - p.ms) / 10.0)),
                        per_sgd,
                        "inversion step not measured (--no-kfac-inversion)".into(),
                    );
                }
            }
        }
    }

    let k = options.lanczos_opt_rank;
    let op = format!("lanczos-opt step (k={k})");
    let config = OptimizerConfig::LanczosOpt(LanczosOptConfig::new().with_rank(k));
    let lo = rec.time(&op, true, &mut steps(config, 1.0, false)?)?;
    let note = lo.map_or(String::new(), |t| {
        format!("{:.3} ms per Lanczos step", t.ms / k as f64)
    });
    rec.row(&op, lo, per_sgd, note);
    Ok(())
}

/// Times, collects rows and reports progress for one model.
pub(super) struct Recorder<'a> {
    pub(super) model: &'a str,
    pub(super) params: usize,
    pub(super) batch: usize,
    pub(super) rows: &'a mut Vec<BenchRow>,
    pub(super) progress: &'a mut dyn FnMut(BenchEvent<'_>),
    pub(super) measure: &'a mut dyn Measure,
}

impl Recorder<'_> {
    /// Announce and time `operation`.
    fn time(
        &mut self,
        operation: &str,
        heavy: bool,
        op: &mut dyn Operation,
    ) -> Result<Option<Timing>> {
        let line = format!(
            "{} (P = {}, batch {}): {operation}",
            self.model, self.params, self.batch
        );
        (self.progress)(BenchEvent::Starting(&line));
        let case = Case {
            model: self.model,
            operation,
            heavy,
        };
        self.measure.measure(case, op)
    }

    /// Record a row (none if the operation was skipped).
    fn row(&mut self, operation: &str, t: Option<Timing>, base: Baseline, note: String) {
        let Some(t) = t else { return };
        let (ratio, baseline) = match base {
            Baseline::Gradient(b) => (Some(t.ms / b), "gradient"),
            Baseline::SgdStep(b) => (Some(t.ms / b), "sgd step"),
            Baseline::None => (None, ""),
        };
        self.rows.push(BenchRow {
            model: self.model.into(),
            params: self.params,
            operation: operation.into(),
            ms: t.ms,
            ratio,
            baseline,
            note,
            first_ms: t.first_ms,
        });
        (self.progress)(BenchEvent::Row(self.rows.last().expect("just pushed")));
    }
}

/// Timed [`TrainingStep::train_step`]s of one optimiser (cross-entropy, fixed damping), each
/// from the model the previous one returned; with `prepare`, after one untimed step (KFAC's
/// first step builds the factors and their eigenbases; a measure that skips the case never
/// takes it).
struct OptimizerSteps<'a, B: Backend, M: AutodiffModule<Autodiff<B>>, const D: usize> {
    optimizer: AnyOptimizer<B, M>,
    damping: FixedDamping,
    prepare: bool,
    batch: &'a Batch<B, D>,
    /// The model before the first step.
    start: &'a M,
    /// The model after the last step (`None` before the first).
    model: Option<M>,
    sync: &'a dyn Fn() -> Result<()>,
}

impl<'a, B, M, const D: usize> OptimizerSteps<'a, B, M, D>
where
    B: Backend,
    M: AutodiffModule<Autodiff<B>> + Network<Autodiff<B>, D>,
    M::InnerModule: CurvatureModel<B, D>,
{
    fn new(
        config: &OptimizerConfig,
        damping: f64,
        prepare: bool,
        (start, batch): (&'a M, &'a Batch<B, D>),
        sync: &'a dyn Fn() -> Result<()>,
        group: Option<PeerGroup<B>>,
    ) -> Result<Self> {
        let optimizer = config.init()?;
        Ok(Self {
            optimizer: match group {
                Some(g) => optimizer.with_peers(g)?,
                None => optimizer,
            },
            damping: FixedDamping::new(damping)?,
            prepare,
            batch,
            start,
            model: None,
            sync,
        })
    }

    fn step(&mut self) -> Result<()> {
        let model = self.model.take().unwrap_or_else(|| self.start.clone());
        let (model, _) = self
            .optimizer
            .train_step(model, self.batch, Loss::CrossEntropy, 1e-4, &self.damping)
            .map_err(|(_, e)| e)?;
        self.model = Some(model);
        Ok(())
    }
}

impl<B, M, const D: usize> Operation for OptimizerSteps<'_, B, M, D>
where
    B: Backend,
    M: AutodiffModule<Autodiff<B>> + Network<Autodiff<B>, D>,
    M::InnerModule: CurvatureModel<B, D>,
{
    fn prepare(&mut self) -> Result<()> {
        if self.prepare {
            self.step()?;
        }
        Ok(())
    }

    fn call(&mut self) -> Result<()> {
        if self.prepare && self.model.is_none() {
            // A measure that did not prepare: the first call sets up (and is timed with it).
            self.step()?;
        }
        self.step()?;
        (self.sync)()
    }
}
