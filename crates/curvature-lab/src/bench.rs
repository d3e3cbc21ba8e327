//! `curvature bench`: one-screen timings of every curvature operation and optimiser step, on
//! whichever burn backend the caller picks (NdArray, wgpu or CUDA), for CIFAR-shaped random
//! input `[N, 3, 32, 32]`.
//!
//! For each model it measures, as the median of `repeats` timed calls after `warmup` untimed
//! ones, with the device synchronised after every call:
//!
//! | operation | what is timed | ratio to |
//! |---|---|---|
//! | gradient | loss and `∇L` of one batch ([`Objective::gradient`]) | — |
//! | exact HVP | `∇²L·v`, reverse-over-reverse ([`Objective::hvp`]) | gradient |
//! | GGN product | `Jᵀ H_ℓ J v` ([`Objective::ggn_vp`]) | gradient |
//! | Lanczos step | `m` steps of [`lanczos`](curvature_core::lanczos()) with full re-orthogonalisation, divided by `m` | gradient |
//! | SGD / Adam step | forward, backward and update on `Autodiff<B>` | SGD step |
//! | KFAC plain / factors / inversion | the three kinds of KFAC step; amortised over `T_cov = 10`, `T_inv = 100` as `plain + (factors − plain)/10 + (inversion − factors)/100` | SGD step |
//! | LanczosOPT | one update with `k` Lanczos steps | SGD step |
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
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::testing::random_classification_batch;
use curvature_core::{
    Batch, BatchNormMode, CurvatureModel, LanczosConfig, Loss, Network, Objective, Train,
    gaussian_vector, lanczos, mark_trainable,
};
use curvature_optim::{AdamConfig, FixedDamping, KfacConfig, LanczosOptConfig, SgdConfig};
use serde::Serialize;

use crate::config::TrainConfig;
use crate::error::{LabError, Result, require_positive};
use crate::setup::{ModelSpec, ModelVisitor, build_model};

/// The models of the classic table, in order: the MLP 3072-512-512-10, the CNN 16-32,
/// VGG-16-BN and WideResNet-28-10 (what `benches/pytorch/bench.py` also builds).
pub const TABLE_MODELS: [&str; 4] = ["mlp", "cnn", "vgg16-bn", "wrn-28-10"];

/// The configuration `curvature bench` builds model `name` from: any name of
/// [`MODELS`](crate::config::MODELS) (logistic, mlp, cnn, vgg16, vgg16-bn, preresnet-<depth>,
/// wrn-<depth>-<k>), with the MLP's hidden widths 512-512 and the CNN's channels 16-32, seed 0.
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
    /// Skip the optimiser rows (curvature operations only).
    pub skip_optimisers: bool,
    /// Skip KFAC: its first step eigendecomposes every Kronecker factor on the host (≈ 50 s
    /// for VGG-16-BN on a 2-core CPU; WRN-28-10 has seven 5761 × 5761 factors).
    pub skip_kfac: bool,
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
            skip_optimisers: false,
            skip_kfac: false,
        }
    }
}

impl BenchOptions {
    fn validate(&self) -> Result<()> {
        require_positive(&[
            ("batch", self.batch),
            ("repeats", self.repeats),
            ("lanczos_steps", self.lanczos_steps),
            ("lanczos_opt_rank", self.lanczos_opt_rank),
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
    /// A measurement is about to start (a one-line description).
    Starting(&'a str),
    /// A row was measured.
    Row(&'a BenchRow),
}

/// A timer that synchronises the device after every call, so GPU work is counted where it runs.
struct Timer<'a, B: Backend> {
    device: &'a B::Device,
    warmup: usize,
    repeats: usize,
}

/// A measurement: the median and the first (warm-up) call's milliseconds.
#[derive(Debug, Clone, Copy)]
struct Timing {
    ms: f64,
    first_ms: Option<f64>,
}

impl Timing {
    /// A value computed from measurements (no call of its own).
    fn derived(ms: f64) -> Self {
        Self { ms, first_ms: None }
    }
}

/// What a row's ratio divides by.
#[derive(Debug, Clone, Copy)]
enum Baseline {
    Gradient(f64),
    SgdStep(f64),
    None,
}

impl<B: Backend> Timer<'_, B> {
    fn sync(&self) -> Result<()> {
        B::sync(self.device).map_err(|e| {
            LabError::Device(format!("{:?} failed to synchronise: {e:?}", self.device))
        })
    }

    /// The same timer with at most `repeats` timed calls and one warm-up call.
    fn fewer(&self, repeats: usize) -> Self {
        Timer {
            device: self.device,
            warmup: self.warmup.min(1),
            repeats: self.repeats.min(repeats),
        }
    }

    /// Median milliseconds of `f`, with the first warm-up call's milliseconds.
    fn median(&self, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
        let mut first_ms = None;
        for _ in 0..self.warmup {
            let start = Instant::now();
            f()?;
            self.sync()?;
            first_ms.get_or_insert(start.elapsed().as_secs_f64() * 1e3);
        }
        let mut times = Vec::with_capacity(self.repeats);
        for _ in 0..self.repeats {
            let start = Instant::now();
            f()?;
            self.sync()?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let n = times.len();
        let median = if n % 2 == 1 {
            times[n / 2]
        } else {
            0.5 * (times[n / 2 - 1] + times[n / 2])
        };
        Ok(Timing {
            ms: median,
            first_ms,
        })
    }
}

/// Run the benchmark on `device`, reporting each measurement to `progress` as it starts and
/// each row as soon as it is measured (so a run cut short still leaves its rows).
///
/// # Errors
/// Invalid options, and any error of the operations measured.
pub fn run<B: Backend>(
    device: &B::Device,
    options: &BenchOptions,
    progress: &mut dyn FnMut(BenchEvent<'_>),
) -> Result<Vec<BenchRow>> {
    options.validate()?;
    let mut rows = Vec::new();
    for name in &options.models {
        // Flat [3072] examples for the dense models, [3, 32, 32] images for the others.
        let example = match ModelSpec::parse(name)?.rank() {
            2 => vec![3 * 32 * 32],
            _ => vec![3, 32, 32],
        };
        let visitor = BenchVisitor {
            name,
            example: &example,
            options,
            progress: &mut *progress,
            rows: &mut rows,
        };
        build_model::<B, _>(&bench_config(name), &example, 10, device, visitor)?;
    }
    Ok(rows)
}

/// Times one model, whichever network type its name builds.
struct BenchVisitor<'a> {
    name: &'a str,
    /// Shape of one example, as the model was built for.
    example: &'a [usize],
    options: &'a BenchOptions,
    progress: &'a mut dyn FnMut(BenchEvent<'_>),
    rows: &'a mut Vec<BenchRow>,
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
        bench_network(
            self.name,
            model,
            batch,
            device,
            self.options,
            self.progress,
            self.rows,
        )
    }
}

/// KFAC intervals meaning "never" (only the first step updates factors and inverts).
const NEVER: usize = usize::MAX;

#[allow(clippy::too_many_arguments)]
fn bench_network<B, M, const D: usize>(
    name: &str,
    model: M,
    batch: Batch<B, D>,
    device: &B::Device,
    options: &BenchOptions,
    progress: &mut dyn FnMut(BenchEvent<'_>),
    rows: &mut Vec<BenchRow>,
) -> Result<()>
where
    B: Backend,
    M: AutodiffModule<Autodiff<B>> + Network<Autodiff<B>, D>,
    M::InnerModule: CurvatureModel<B, D>,
{
    let timer = Timer::<B> {
        device,
        warmup: options.warmup,
        repeats: options.repeats,
    };
    let n = options.batch;
    let objective = Objective::new(model.valid(), Loss::CrossEntropy, vec![batch.clone()])?
        .with_bn_mode(BatchNormMode::Train);
    let p = objective.dim();
    let mut rec = Recorder {
        model: name,
        params: p,
        batch: n,
        rows,
        progress,
    };

    rec.say("gradient");
    let grad = timer.median(|| objective.gradient().map(drop).map_err(Into::into))?;
    let per_grad = Baseline::Gradient(grad.ms);
    rec.row("gradient", grad, per_grad, String::new());
    let v = gaussian_vector::<B>(p, 1, device);
    rec.say("exact HVP");
    let hvp = timer.median(|| objective.hvp(&v).map(drop).map_err(Into::into))?;
    rec.row("exact hvp", hvp, per_grad, String::new());
    rec.say("GGN product");
    let ggn = timer.median(|| objective.ggn_vp(&v).map(drop).map_err(Into::into))?;
    rec.row("ggn product", ggn, per_grad, String::new());
    let m = options.lanczos_steps;
    rec.say(&format!("Lanczos ({m} steps)"));
    let config = LanczosConfig::new().with_steps(m);
    let hessian = objective.hessian();
    // A Lanczos run is already `m` HVPs: fewer repeats keep the table quick on big models.
    let total = timer
        .fewer(3)
        .median(|| lanczos(&hessian, &config).map(drop).map_err(Into::into))?;
    rec.row(
        "lanczos step",
        Timing {
            ms: total.ms / m as f64,
            ..total
        },
        per_grad,
        format!(
            "{m} steps with full re-orthogonalisation: {:.1} ms",
            total.ms
        ),
    );
    let batches = 50_000usize.div_ceil(n);
    let estimate = 100.0 * batches as f64 * hvp.ms;
    rec.row(
        "est. 100-step lanczos on 50k images",
        Timing::derived(estimate),
        Baseline::None,
        format!(
            "100 × {batches} batch HVPs = {:.1} min; basis 100 × P × 4 B = {:.2} GB",
            estimate / 60_000.0,
            100.0 * p as f64 * 4.0 / 1e9
        ),
    );
    if options.skip_optimisers {
        return Ok(());
    }

    type AB<B> = Autodiff<B>;
    rec.say("SGD step");
    let sgd_opt = SgdConfig::new().with_momentum(0.9).init::<AB<B>, M>()?;
    let sgd = first_order(&timer, sgd_opt, &model, &batch)?;
    let per_sgd = Baseline::SgdStep(sgd.ms);
    rec.row(
        "sgd step",
        sgd,
        per_sgd,
        format!("{:.0} images/s", n as f64 / (sgd.ms / 1e3)),
    );
    rec.say("Adam step");
    let adam_opt = AdamConfig::new().init::<AB<B>, M>()?;
    let adam = first_order(&timer, adam_opt, &model, &batch)?;
    rec.row("adam step", adam, per_sgd, String::new());

    if !options.skip_kfac {
        rec.say("KFAC plain step");
        let plain = kfac(&timer, (NEVER, NEVER), &model, &batch)?;
        rec.row("kfac plain step", plain, per_sgd, String::new());
        rec.say("KFAC factor step");
        let factors = kfac(&timer, (1, NEVER), &model, &batch)?;
        rec.row("kfac factor step", factors, per_sgd, String::new());
        let (plain, factors) = (plain.ms, factors.ms);
        if options.kfac_inversion {
            rec.say("KFAC inversion step");
            let inversion = kfac(&timer, (1, 1), &model, &batch)?;
            rec.row("kfac inversion step", inversion, per_sgd, String::new());
            let amortised = plain + (factors - plain) / 10.0 + (inversion.ms - factors) / 100.0;
            rec.row(
                "kfac amortised 10/100",
                Timing::derived(amortised),
                per_sgd,
                String::new(),
            );
        } else {
            rec.row(
                "kfac amortised 10/never",
                Timing::derived(plain + (factors - plain) / 10.0),
                per_sgd,
                "inversion step not measured (--no-kfac-inversion)".into(),
            );
        }
    }

    let k = options.lanczos_opt_rank;
    rec.say(&format!("LanczosOPT step (k = {k})"));
    let mut lopt = LanczosOptConfig::new().with_rank(k).init::<B>()?;
    let damping = FixedDamping::new(1.0)?;
    let mut objective = objective;
    let lo = timer.fewer(3).median(|| {
        lopt.step(&mut objective, 1e-4, &damping)
            .map(drop)
            .map_err(Into::into)
    })?;
    rec.row(
        &format!("lanczos-opt step (k={k})"),
        lo,
        per_sgd,
        format!("{:.3} ms per Lanczos step", lo.ms / k as f64),
    );
    Ok(())
}

/// Collects rows and reports progress for one model.
struct Recorder<'a> {
    model: &'a str,
    params: usize,
    batch: usize,
    rows: &'a mut Vec<BenchRow>,
    progress: &'a mut dyn FnMut(BenchEvent<'_>),
}

impl Recorder<'_> {
    fn say(&mut self, what: &str) {
        let line = format!(
            "{} (P = {}, batch {}): {what}",
            self.model, self.params, self.batch
        );
        (self.progress)(BenchEvent::Starting(&line));
    }

    fn row(&mut self, operation: &str, t: Timing, base: Baseline, note: String) {
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

fn first_order<B, M, O, const D: usize>(
    timer: &Timer<'_, B>,
    mut opt: O,
    model: &M,
    batch: &Batch<B, D>,
) -> Result<Timing>
where
    B: Backend,
    M: AutodiffModule<Autodiff<B>> + Network<Autodiff<B>, D>,
    O: Optimizer<M, Autodiff<B>>,
{
    let mut model = model.clone();
    timer.median(|| {
        let loss = Loss::CrossEntropy.batch_mean(&model, batch, BatchNormMode::Train);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = opt.step(1e-4, model.clone(), grads);
        Ok(())
    })
}

/// KFAC steps with intervals `(cov, inv)`, after one step that builds the factors and their
/// eigenbases.
fn kfac<B, M, const D: usize>(
    timer: &Timer<'_, B>,
    (cov, inv): (usize, usize),
    model: &M,
    batch: &Batch<B, D>,
) -> Result<Timing>
where
    B: Backend,
    M: AutodiffModule<Autodiff<B>> + Network<Autodiff<B>, D>,
{
    let mut kfac = KfacConfig::new()
        .with_cov_interval(cov)
        .with_inv_interval(inv)
        .init::<Autodiff<B>, M>()?;
    let damping = FixedDamping::new(1e-2)?;
    let x = Tensor::<Autodiff<B>, D>::from_inner(batch.inputs.clone());
    let mut step = |m: M| -> Result<M> {
        kfac.step(m, 1e-4, &damping, Loss::CrossEntropy, &batch.targets, |m| {
            m.output(x.clone(), BatchNormMode::Train)
        })
        .map(|(m, _)| m)
        .map_err(|(_, e)| e.into())
    };
    let mut model = step(model.clone())?;
    timer.median(|| {
        model = step(model.clone())?;
        Ok(())
    })
}

/// The CSV columns shared with `benches/pytorch/bench.py`.
pub const CSV_HEADER: &str = "model,params,operation,ms,ratio,baseline,note,first_ms";

/// The rows as CSV (header [`CSV_HEADER`]).
pub fn to_csv(rows: &[BenchRow]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},\"{}\",{:.4},{},{},\"{}\",{}",
            r.model,
            r.params,
            r.operation.replace('"', "'"),
            r.ms,
            r.ratio.map(|x| format!("{x:.3}")).unwrap_or_default(),
            r.baseline,
            r.note.replace('"', "'"),
            r.first_ms.map(|x| format!("{x:.1}")).unwrap_or_default()
        );
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn mlp_bench_measures_every_row_with_positive_times() {
        let options = BenchOptions {
            models: vec!["mlp".into()],
            batch: 4,
            repeats: 1,
            warmup: 0,
            lanczos_steps: 2,
            lanczos_opt_rank: 2,
            // KFAC's first step eigendecomposes the 3073 × 3073 input factor on the host
            // (tens of seconds); the optimiser itself is tested in curvature-optim.
            skip_kfac: true,
            ..BenchOptions::default()
        };
        let mut lines = Vec::new();
        let rows = run::<NdArray<f32>>(&Default::default(), &options, &mut |e| {
            if let BenchEvent::Starting(l) = e {
                lines.push(l.to_string())
            }
        })
        .unwrap();
        let ops: Vec<&str> = rows.iter().map(|r| r.operation.as_str()).collect();
        for op in [
            "gradient",
            "exact hvp",
            "ggn product",
            "lanczos step",
            "sgd step",
            "adam step",
            "lanczos-opt step (k=2)",
        ] {
            assert!(ops.contains(&op), "missing {op} in {ops:?}");
        }
        assert!(!ops.iter().any(|o| o.starts_with("kfac")), "{ops:?}");
        assert!(rows.iter().all(|r| r.ms > 0.0 && r.ms.is_finite()));
        assert_eq!(rows[0].params, 3072 * 512 + 512 + 512 * 512 + 512 + 5130);
        assert_eq!(lines.len(), 7, "{lines:?}");
        assert!(rows[0].first_ms.is_none(), "no warm-up, no first call");
        assert!(to_table(&rows).lines().count() == rows.len() + 1);
        let csv = to_csv(&rows);
        assert!(csv.starts_with(CSV_HEADER));
        assert_eq!(csv.lines().count(), rows.len() + 1);
    }

    #[test]
    fn unknown_model_lists_the_valid_ones() {
        let options = BenchOptions {
            models: vec!["mlp".into(), "resnet".into()],
            ..BenchOptions::default()
        };
        let e = run::<NdArray<f32>>(&Default::default(), &options, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("`resnet`") && e.contains("preresnet-"), "{e}");
    }

    #[test]
    fn zero_repeats_is_rejected() {
        let options = BenchOptions {
            repeats: 0,
            ..BenchOptions::default()
        };
        let e = run::<NdArray<f32>>(&Default::default(), &options, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("repeats"), "{e}");
    }
}
