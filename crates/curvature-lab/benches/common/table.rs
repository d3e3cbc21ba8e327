//! The criterion side of `curvature bench`: the operations, models, shapes and ratios are
//! `curvature_lab::bench`'s (one piece of code serves the command and the benches); this file
//! only plugs criterion in as the [`Measure`] and picks the backend and the models.
//!
//! - **Backend**: the one compiled in — `cuda` if the `cuda` feature is on, else `wgpu` if
//!   `wgpu` is, else NdArray f32 — or `CURVATURE_BENCH_BACKEND=ndarray|wgpu|cuda`.
//! - **Models**: `CURVATURE_BENCH_MODELS`, comma-separated names of `curvature bench`
//!   (default `mlp,cnn`; `all` = `mlp,cnn,vgg16-bn,wrn-28-10`). VGG-16 and WRN-28-10 take
//!   seconds to minutes per call on a CPU (a VGG-16-BN HVP at batch 128 ≈ 39 s on 2 cores), so
//!   they are opt-in.
//! - **Batch**: `CURVATURE_BENCH_BATCH` (default 128, CIFAR-shaped random input).
//!
//! Every operation is a criterion benchmark `model (backend, batch N)/operation` — e.g.
//! `cargo bench -p curvature-lab --bench hvp -- "mlp (wgpu"` — so criterion's saved baselines never compare two
//! backends or batch sizes. It is timed with `iter_custom` (the device is synchronised inside
//! every call) in flat sampling mode; an untimed set-up (KFAC's first step) runs only for the
//! cases criterion's filter selects. After criterion's report
//! the bench prints the `curvature bench` table: the medians of criterion's samples and their
//! ratios to the gradient / SGD step.
use std::time::{Duration, Instant};

use clap::ValueEnum;
use criterion::{Criterion, SamplingMode};
use curvature_lab::bench::{BenchOptions, Case, Measure, Operation, TABLE_MODELS, Timing};
use curvature_lab::{BackendChoice, BackendKind, Precision, Result};

/// Which rows a bench target measures.
#[derive(Debug, Clone, Copy)]
#[allow(dead_code)] // each bench target names one variant
pub enum Part {
    /// Gradient, exact HVP, GGN product, finite-difference HVP, Lanczos step.
    Curvature,
    /// SGD, Adam, KFAC (plain, factor, inversion; amortised), LanczosOPT.
    Optimisers,
}

/// Criterion as a [`Measure`].
struct CriterionMeasure<'a> {
    criterion: &'a mut Criterion,
    /// What sets a measurement apart besides the model, e.g. `wgpu, batch 128`: part of
    /// criterion's group name, so that its saved baselines never compare two backends.
    setting: String,
}

impl Measure for CriterionMeasure<'_> {
    fn measure(&mut self, case: Case<'_>, op: &mut dyn Operation) -> Result<Option<Timing>> {
        // Milliseconds per call of every `iter_custom` call: warm-up calls first, then
        // `sample_size` samples (one call in `--test` mode, none in `--list` or when filtered).
        let mut per_call: Vec<f64> = Vec::new();
        let mut error = None;
        let mut prepared = false;
        let group_name = format!("{} ({})", case.model, self.setting);
        let mut group = self.criterion.benchmark_group(group_name);
        group.sampling_mode(SamplingMode::Flat);
        group.bench_function(case.operation, |b| {
            // Criterion calls this only for a case it runs: the set-up is skipped with it.
            if !prepared {
                prepared = true;
                error = op.prepare().err();
            }
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    if error.is_none() {
                        error = op.call().err();
                    }
                }
                let elapsed = start.elapsed();
                per_call.push(elapsed.as_secs_f64() * 1e3 / iters as f64);
                elapsed
            })
        });
        group.finish();
        if let Some(e) = error {
            return Err(e);
        }
        let Some(&first_ms) = per_call.first() else {
            return Ok(None);
        };
        let samples = per_call.len().min(SAMPLES);
        let tail = per_call.len() - samples;
        let ms = curvature_lab::bench::median(&mut per_call[tail..]);
        Ok(ms.map(|ms| Timing {
            ms,
            first_ms: Some(first_ms),
        }))
    }
}

/// Criterion samples per operation (its minimum; `--sample-size` on the command line wins).
const SAMPLES: usize = 10;

/// The models named by `CURVATURE_BENCH_MODELS`.
fn models() -> Vec<String> {
    match std::env::var("CURVATURE_BENCH_MODELS") {
        Ok(s) if s.trim() == "all" => TABLE_MODELS.iter().map(|m| m.to_string()).collect(),
        Ok(s) => s.split(',').map(|m| m.trim().to_string()).collect(),
        Err(_) => TABLE_MODELS[..2].iter().map(|m| m.to_string()).collect(),
    }
}

/// `CURVATURE_BENCH_BACKEND`, or the GPU backend compiled in, or the default CPU one.
fn backend() -> std::result::Result<BackendKind, String> {
    match std::env::var("CURVATURE_BENCH_BACKEND") {
        Ok(s) => BackendKind::from_str(s.trim(), true)
            .map_err(|e| format!("CURVATURE_BENCH_BACKEND={s:?}: {e}")),
        Err(_) if cfg!(feature = "cuda") => Ok(BackendKind::Cuda),
        Err(_) if cfg!(feature = "wgpu") => Ok(BackendKind::Wgpu),
        Err(_) => Ok(BackendKind::default()),
    }
}

fn batch() -> usize {
    match std::env::var("CURVATURE_BENCH_BATCH") {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| {
            panic!("CURVATURE_BENCH_BATCH={s:?} is not a batch size (a positive integer)")
        }),
        Err(_) => 128,
    }
}

/// Measure `part` of the table with criterion, then print the table.
pub fn run(part: Part) {
    // As the `curvature` command does: see `curvature_lab::memory`.
    curvature_lab::memory::keep_freed_memory();
    let mut criterion = Criterion::default()
        .sample_size(SAMPLES)
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let options = BenchOptions {
        models: models(),
        batch: batch(),
        skip_curvature: matches!(part, Part::Optimisers),
        skip_optimisers: matches!(part, Part::Curvature),
        ..BenchOptions::default()
    };
    let result = backend().and_then(|backend| {
        let choice =
            BackendChoice::new(backend, None, Precision::F32).map_err(|e| e.to_string())?;
        eprintln!(
            "backend {choice}, models {}, batch {}",
            options.models.join(","),
            options.batch
        );
        let mut measure = CriterionMeasure {
            criterion: &mut criterion,
            setting: format!("{backend}, batch {}", options.batch),
        };
        curvature_lab::bench::run_on(&choice, &options, Some(&mut measure), &mut |_| {})
            .map_err(|e| e.to_string())
    });
    criterion.final_summary();
    match result {
        Ok(rows) if rows.is_empty() => {}
        Ok(rows) => println!("\n{}", curvature_lab::bench::to_table(&rows)),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
