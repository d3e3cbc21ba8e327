//! `curvature bench`: one-screen timings of every curvature operation and optimiser step, on
//! whichever burn backend the caller picks (NdArray, wgpu or CUDA), for CIFAR-shaped random
//! input `[N, 3, 32, 32]`.
//!
//! For each model it measures, as the median of `repeats` timed calls after `warmup` untimed
//! ones ([`MedianTimer`]; the criterion benches in `benches/` plug in their own [`Measure`]),
//! with the device synchronised after every call. An untimed set-up (KFAC's first step, which
//! builds the factors and their eigenbases) is [`Operation::prepare`], run only for the
//! operations a measure times:
//!
//! | operation | what is timed | ratio to |
//! |---|---|---|
//! | gradient | loss and `∇L` of one batch ([`Objective::gradient`]) | — |
//! | exact HVP | `∇²L·v`, reverse-over-reverse ([`Objective::hvp`]) | gradient |
//! | GGN product | `Jᵀ H_ℓ J v` ([`Objective::ggn_vp`]) | gradient |
//! | FD HVP | `(∇L(θ + εv) − ∇L(θ − εv)) / 2ε` ([`Objective::finite_difference_hessian`]) | gradient |
//! | Lanczos step | `m` steps of [`lanczos`](curvature_core::lanczos()) with full re-orthogonalisation, divided by `m` | gradient |
//! | SGD / Adam step | forward, backward, loss check and update on `Autodiff<B>` | SGD step |
//! | KFAC plain / factors / inversion | the three kinds of KFAC step; amortised over `T_cov = 10`, `T_inv = 100` as `plain + (factors − plain)/10 + (inversion − factors)/100` | SGD step |
//! | LanczosOPT | one update with `k` Lanczos steps | SGD step |
//!
//! Every optimiser row times [`TrainingStep::train_step`], the call `curvature train` makes.
//!
//! plus training throughput (images/s of the SGD step) and, from the measured HVP time, the
//! estimated time of a 100-step Lanczos run over the full CIFAR training set (50 000 images:
//! `100 × ⌈50 000 / N⌉` batch HVPs; re-orthogonalisation not included) with the memory its
//! Krylov basis takes on the device (`100 × P × 4` bytes in f32).
//!
//! The PyTorch script `benches/pytorch/bench.py` measures the same operations on the same
//! shapes and writes the same CSV columns, so the two tables can be compared row by row
//! (`bench.py --compare ours.csv`).

use std::fmt::Write as _;
use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use curvature_core::testing::random_classification_batch;
use curvature_core::{
    Batch, BatchNormMode, CurvatureModel, LanczosConfig, LinearOperator, Loss, Network, Objective,
    Train, gaussian_vector, lanczos, mark_trainable,
};
use curvature_optim::{
    AdamConfig, AnyOptimizer, FixedDamping, KfacConfig, LanczosOptConfig, OptimizerConfig,
    SgdConfig, TrainingStep,
};
use serde::Serialize;

use crate::backend::{BackendChoice, BackendVisitor, on_backend};
use crate::config::TrainConfig;
use crate::error::{LabError, Result, require_positive};
use crate::setup::{ModelSpec, ModelVisitor, build_model};

/// The models of the classic table, in order: the MLP 3072-512-512-10, the CNN 16-32,
/// VGG-16-BN and WideResNet-28-10 (what `benches/pytorch/bench.py` also builds).
pub const TABLE_MODELS: [&str; 4] = ["mlp", "cnn", "vgg16-bn", "wrn-28-10"];

/// The configuration `curvature bench` builds model `name` from: any name of
/// [`MODELS`](crate::config::MODELS) (logistic, mlp, cnn, vgg16, vgg16-bn, `preresnet-<depth>`,
/// `wrn-<depth>-<k>`), with the MLP's hidden widths 512-512 and the CNN's channels 16-32, seed 0.
pub fn bench_config(name: &str) -> TrainConfig {
    TrainConfig {
        model: name.to_string(),
        hidden: vec![512, 512],
        channels: vec![16, 32],
        seed: 0,
        ..TrainConfig::default()
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Model names (see [`bench_config`]), in order.
    pub models: Vec<String>,
    /// Batch size `N`.
    pub batch: usize,
    /// Timed calls per operation (the median is reported).
    pub repeats: usize,
    /// Untimed calls before timing (kernel compilation, autotuning, allocator warm-up).
    pub warmup: usize,
    /// Lanczos steps `m` of the Lanczos row.
    pub lanczos_steps: usize,
    /// Lanczos steps `k` of the LanczosOPT row.
    pub lanczos_opt_rank: usize,
    /// Measure KFAC's inversion step (a host eigendecomposition of every factor; ≈ 50 s for
    /// VGG-16-BN's factors of up to 4609 × 4609 on a 2-core CPU).
    pub kfac_inversion: bool,
    /// Skip the curvature rows (gradient, HVP, GGN, finite differences, Lanczos): optimiser
    /// steps only.
    pub skip_curvature: bool,
    /// Skip the optimiser rows (curvature operations only).
    pub skip_optimisers: bool,
    /// Skip KFAC: its first step eigendecomposes every Kronecker factor on the host (≈ 50 s
    /// for VGG-16-BN on a 2-core CPU; WRN-28-10 has seven 5761 × 5761 factors).
    pub skip_kfac: bool,
    /// Input image shape `[C, H, W]` (CIFAR's `[3, 32, 32]` by default, the shape the
    /// papers' CIFAR models are built for); the dense models see it flattened.
    pub image: [usize; 3],
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            models: vec!["mlp".into(), "cnn".into()],
            batch: 128,
            repeats: 10,
            warmup: 2,
            lanczos_steps: 10,
            lanczos_opt_rank: 5,
            kfac_inversion: true,
            skip_curvature: false,
            skip_optimisers: false,
            skip_kfac: false,
            image: [3, 32, 32],
        }
    }
}

impl BenchOptions {
    fn validate(&self) -> Result<()> {
        if self.skip_curvature && self.skip_optimisers {
            return Err(LabError::InvalidConfig {
                field: "skip_curvature",
                value: "true".into(),
                reason: "with skip_optimisers as well nothing is left to measure",
            });
        }
        require_positive(&[
            ("batch", self.batch),
            ("repeats", self.repeats),
            ("lanczos_steps", self.lanczos_steps),
            ("lanczos_opt_rank", self.lanczos_opt_rank),
            ("image channels", self.image[0]),
            ("image height", self.image[1]),
            ("image width", self.image[2]),
        ])?;
        if self.models.is_empty() {
            return Err(LabError::InvalidConfig {
                field: "models",
                value: "[]".into(),
                reason: "name at least one model",
            });
        }
        for name in &self.models {
            ModelSpec::parse(name)?;
        }
        Ok(())
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// Model name.
    pub model: String,
    /// Number of parameters `P`.
    pub params: usize,
    /// Operation (see the module docs).
    pub operation: String,
    /// Median milliseconds (or the estimate's milliseconds for `estimate` rows).
    pub ms: f64,
    /// `ms` divided by the baseline's (`gradient` for curvature rows, `sgd step` for
    /// optimiser rows); 1 for the baselines themselves.
    pub ratio: Option<f64>,
    /// What `ratio` divides by.
    pub baseline: &'static str,
    /// Free-form detail (throughput, memory, how an estimate was made).
    pub note: String,
    /// Milliseconds of the first (untimed) call: kernel compilation and autotuning on a GPU.
    pub first_ms: Option<f64>,
}

/// What [`run`] reports while it works.
#[derive(Debug)]
pub enum BenchEvent<'a> {
    /// [`run_on`] built the backend: its type and device (`Debug`), before any measurement.
    Backend {
        /// The burn backend type.
        backend: &'a str,
        /// The device.
        device: &'a str,
    },
    /// A measurement is about to start (a one-line description).
    Starting(&'a str),
    /// A row was measured.
    Row(&'a BenchRow),
}

/// One operation about to be timed.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    /// Model name (criterion's benchmark group).
    pub model: &'a str,
    /// What is timed (criterion's function id), e.g. `exact hvp` or `lanczos (10 steps)`.
    pub operation: &'a str,
    /// One call is already many HVPs (a Lanczos run, a LanczosOPT update): time fewer calls.
    pub heavy: bool,
}

/// A measurement: the median and the first (warm-up) call's milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Median milliseconds per call.
    pub ms: f64,
    /// Milliseconds of the first call (kernel compilation and autotuning on a GPU), if timed.
    pub first_ms: Option<f64>,
}

impl Timing {
    /// A value computed from measurements (no call of its own).
    fn derived(ms: f64) -> Self {
        Self { ms, first_ms: None }
    }
}

/// One operation to time: an untimed set-up, then calls.
///
/// Every closure `FnMut() -> Result<()>` is an operation without set-up.
pub trait Operation {
    /// Untimed set-up (KFAC's first step, which builds the factors and their eigenbases).
    /// A [`Measure`] runs it once before the first call, and only if it times the operation
    /// at all, so that a skipped case costs nothing.
    ///
    /// # Errors
    /// Errors of the set-up.
    fn prepare(&mut self) -> Result<()> {
        Ok(())
    }

    /// One call of the operation; synchronises the device before it returns.
    ///
    /// # Errors
    /// Errors of the operation.
    fn call(&mut self) -> Result<()>;
}

impl<F: FnMut() -> Result<()>> Operation for F {
    fn call(&mut self) -> Result<()> {
        self()
    }
}

/// How each operation is timed. `curvature bench` uses [`MedianTimer`]; the criterion benches
/// in `benches/` drive the very same operations through criterion with their own `Measure`.
pub trait Measure {
    /// Prepare `op` (untimed), time its calls and return their median.
    ///
    /// `Ok(None)` means the harness skipped the operation (criterion's name filter, `--list`):
    /// it should then not prepare it either. The row, and the rows derived from it, are left
    /// out.
    ///
    /// # Errors
    /// The first error of `op`.
    fn measure(&mut self, case: Case<'_>, op: &mut dyn Operation) -> Result<Option<Timing>>;
}

/// Timed calls of a [`Case::heavy`] operation, at most.
const HEAVY_REPEATS: usize = 3;

/// `curvature bench`'s [`Measure`]: `warmup` untimed calls, then the median of `repeats` timed
/// calls (heavy operations: at most one warm-up and `HEAVY_REPEATS` timed calls).
#[derive(Debug, Clone, Copy)]
pub struct MedianTimer {
    /// Untimed calls first.
    pub warmup: usize,
    /// Timed calls.
    pub repeats: usize,
}

impl MedianTimer {
    /// The warm-up and timed calls of `options`.
    pub fn for_options(options: &BenchOptions) -> Self {
        Self {
            warmup: options.warmup,
            repeats: options.repeats,
        }
    }
}

impl Measure for MedianTimer {
    fn measure(&mut self, case: Case<'_>, op: &mut dyn Operation) -> Result<Option<Timing>> {
        op.prepare()?;
        let (warmup, repeats) = if case.heavy {
            (self.warmup.min(1), self.repeats.min(HEAVY_REPEATS))
        } else {
            (self.warmup, self.repeats)
        };
        let mut first_ms = None;
        for _ in 0..warmup {
            let start = Instant::now();
            op.call()?;
            first_ms.get_or_insert(start.elapsed().as_secs_f64() * 1e3);
        }
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let start = Instant::now();
            op.call()?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        Ok(median(&mut times).map(|ms| Timing { ms, first_ms }))
    }
}

/// The median of `times` (`None` if empty).
pub fn median(times: &mut [f64]) -> Option<f64> {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(times[n / 2]),
        _ => Some(0.5 * (times[n / 2 - 1] + times[n / 2])),
    }
}

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

/// Run the benchmark on `device` with [`MedianTimer`], reporting each measurement to
/// `progress` as it starts and each row as soon as it is measured (so a run cut short still
/// leaves its rows).
///
/// # Errors
/// Invalid options, and any error of the operations measured.
pub fn run<B: Backend>(
    device: &B::Device,
    options: &BenchOptions,
    progress: &mut dyn FnMut(BenchEvent<'_>),
) -> Result<Vec<BenchRow>> {
    let mut timer = MedianTimer::for_options(options);
    run_with::<B>(device, options, &mut timer, progress)
}

/// [`run`] on the backend `choice` names: the one place the benchmark's generic code is
/// instantiated for every backend of this build (NdArray f32/f64, wgpu, CUDA), next to the
/// other commands', which share its models and optimisers. `measure` replaces the
/// [`MedianTimer`] (the criterion benches pass theirs).
///
/// # Errors
/// A backend this build lacks, and the errors of [`run_with`].
pub fn run_on(
    choice: &BackendChoice,
    options: &BenchOptions,
    measure: Option<&mut dyn Measure>,
    progress: &mut dyn FnMut(BenchEvent<'_>),
) -> Result<Vec<BenchRow>> {
    let mut timer = MedianTimer::for_options(options);
    let measure = match measure {
        Some(m) => m,
        None => &mut timer,
    };
    on_backend(
        choice,
        RunOn {
            options,
            measure,
            progress,
        },
    )?
}

/// [`run_on`]'s work on one backend.
struct RunOn<'a, 'p> {
    options: &'a BenchOptions,
    measure: &'a mut (dyn Measure + 'p),
    progress: &'a mut (dyn FnMut(BenchEvent<'_>) + 'p),
}

impl BackendVisitor for RunOn<'_, '_> {
    type Output = Result<Vec<BenchRow>>;
    fn visit<BB: Backend>(self, device: BB::Device) -> Result<Self::Output> {
        (self.progress)(BenchEvent::Backend {
            backend: std::any::type_name::<BB>(),
            device: &format!("{device:?}"),
        });
        Ok(run_with::<BB>(
            &device,
            self.options,
            self.measure,
            self.progress,
        ))
    }
}

/// [`run`] with another way of timing (`options.warmup` and `options.repeats` are then the
/// measure's business): the criterion benches in `benches/` call this.
///
/// # Errors
/// Invalid options, and any error of the operations measured.
pub fn run_with<B: Backend>(
    device: &B::Device,
    options: &BenchOptions,
    measure: &mut dyn Measure,
    progress: &mut dyn FnMut(BenchEvent<'_>),
) -> Result<Vec<BenchRow>> {
    options.validate()?;
    let mut rows = Vec::new();
    for name in &options.models {
        // [C, H, W] images for every model (the dense ones flatten them).
        ModelSpec::parse(name)?;
        let example = options.image.to_vec();
        let visitor = BenchVisitor {
            example: &example,
            options,
            rec: Recorder {
                model: name,
                params: 0,
                batch: options.batch,
                rows: &mut rows,
                progress: &mut *progress,
                measure: &mut *measure,
            },
        };
        build_model::<B, _>(&bench_config(name), &example, 10, device, visitor)?;
    }
    Ok(rows)
}

/// Times one model, whichever network type its name builds.
struct BenchVisitor<'a> {
    /// Shape of one example, as the model was built for.
    example: &'a [usize],
    options: &'a BenchOptions,
    rec: Recorder<'a>,
}

impl ModelVisitor for BenchVisitor<'_> {
    type Output = ();
    fn visit<BB: Backend, M: CurvatureModel<BB, D>, const D: usize>(
        self,
        model: M,
        device: &BB::Device,
    ) -> Result<()> {
        // `build_model` picked the rank `D` from the example's shape: `[N, example...]`.
        let mut shape = [self.options.batch; D];
        shape[1..].copy_from_slice(self.example);
        let batch = random_classification_batch::<BB, D>(shape, 10, 0, device);
        let model = Train::<BB, M>::from_inner(mark_trainable(model));
        bench_network(model, batch, device, self.options, self.rec)
    }
}

/// KFAC intervals meaning "never" (only the first step updates factors and inverts).
const NEVER: usize = usize::MAX;

fn bench_network<B, M, const D: usize>(
    model: M,
    batch: Batch<B, D>,
    device: &B::Device,
    options: &BenchOptions,
    mut rec: Recorder<'_>,
) -> Result<()>
where
    B: Backend,
    M: AutodiffModule<Autodiff<B>> + Network<Autodiff<B>, D>,
    M::InnerModule: CurvatureModel<B, D>,
{
    let n = options.batch;
    let objective = Objective::new(model.valid(), Loss::CrossEntropy, vec![batch.clone()])?
        .with_bn_mode(BatchNormMode::Train);
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
        OptimizerSteps::new(&config, damping, prepare, &model, &batch, &sync)
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
                rec.row("kfac inversion step", inversion, per_sgd, String::new());
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
struct Recorder<'a> {
    model: &'a str,
    params: usize,
    batch: usize,
    rows: &'a mut Vec<BenchRow>,
    progress: &'a mut dyn FnMut(BenchEvent<'_>),
    measure: &'a mut dyn Measure,
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
        start: &'a M,
        batch: &'a Batch<B, D>,
        sync: &'a dyn Fn() -> Result<()>,
    ) -> Result<Self> {
        Ok(Self {
            optimizer: config.init()?,
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

/// `x` with at least three significant digits, without exponent: `109423`, `476`, `12.3`,
/// `0.742` (a throughput of under one image per second still reads).
pub fn three_digits(x: f64) -> String {
    let decimals = if x.is_finite() && x > 0.0 {
        (2 - x.log10().floor() as i64).clamp(0, 12) as usize
    } else {
        0
    };
    format!("{x:.decimals$}")
}

/// The CSV columns shared with `benches/pytorch/bench.py`.
pub const CSV_HEADER: [&str; 8] = [
    "model",
    "params",
    "operation",
    "ms",
    "ratio",
    "baseline",
    "note",
    "first_ms",
];

/// The rows as CSV (header [`CSV_HEADER`]).
pub fn to_csv(rows: &[BenchRow]) -> String {
    let table: Vec<Vec<String>> =
        std::iter::once(CSV_HEADER.iter().map(|h| h.to_string()).collect())
            .chain(rows.iter().map(|r| {
                vec![
                    r.model.clone(),
                    r.params.to_string(),
                    r.operation.clone(),
                    format!("{:.4}", r.ms),
                    r.ratio.map(|x| format!("{x:.3}")).unwrap_or_default(),
                    r.baseline.to_string(),
                    r.note.clone(),
                    r.first_ms.map(|x| format!("{x:.1}")).unwrap_or_default(),
                ]
            }))
            .collect();
    let bytes = crate::csv_table::to_bytes(std::path::Path::new("bench.csv"), &table)
        .expect("rows of one width");
    String::from_utf8(bytes).expect("UTF-8 fields")
}

/// The header line of [`table_row`]'s table.
pub fn table_header() -> String {
    format!(
        "{:<14} {:>11} {:<34} {:>12} {:>8}  {}",
        "model", "P", "operation", "ms", "ratio", "note"
    )
}

/// One row of the text table.
pub fn table_row(r: &BenchRow) -> String {
    let ratio = match r.ratio {
        Some(x) => format!("{x:.2}"),
        None => "-".into(),
    };
    format!(
        "{:<14} {:>11} {:<34} {:>12.3} {:>8}  {}",
        r.model, r.params, r.operation, r.ms, ratio, r.note
    )
}

/// The rows as a one-screen text table.
pub fn to_table(rows: &[BenchRow]) -> String {
    let mut out = table_header() + "\n";
    for r in rows {
        let _ = writeln!(out, "{}", table_row(r));
    }
    out
}
