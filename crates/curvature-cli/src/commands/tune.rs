//! `curvature tune`: fill cubecl's persistent autotuning cache for the bundled models on a GPU.
//!
//! With the `autotune` feature, burn's GPU backends (cubecl) time several kernels for every
//! matrix product and convolution *shape* the first time it runs and keep the fastest. The
//! choice is written to a cache on disk (cubecl's `autotune` cache, keyed by device and
//! shape) and read back by every later process, so only the first run of a shape pays for
//! the tuning. A cold start is long: on an H100 (2026-11-22, docs/benchmarks.md) the MLP's
//! first HVP spent 116 s tuning and VGG-16's first gradient had not finished after 330 s.
//! This command pays that cost once, up front: it runs every operation `curvature bench`
//! times (gradient, exact HVP, GGN product, Lanczos, optimiser steps) once per model at the
//! batch size given, and says how long each first call took and where the cache is.
//!
//! Shapes, not models, are cached: tune at the batch size you train at.

use anyhow::{Result, bail};
use clap::Args;
use curvature_lab::ConvLowering;

use crate::args::BackendArgs;

#[derive(Args)]
pub struct TuneArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Models, comma-separated (any model name of `train`); default: the four of `curvature
    /// bench`'s GPU table (mlp, cnn, vgg16-bn, wrn-28-10).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Batch size: tune at the size you will train at (the cache is keyed by tensor shapes).
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Input image shape C,H,W.
    #[arg(long, value_delimiter = ',', default_values_t = [3, 32, 32], value_name = "C,H,W")]
    pub image: Vec<usize>,
    /// How the convolutions are computed (tune the lowering you will run).
    #[arg(long, value_enum, default_value_t)]
    pub conv: ConvLowering,
    /// Also tune KFAC's steps (its factor products; the first step eigendecomposes every
    /// factor on the host: minutes for VGG-16 and WRN-28-10).
    #[arg(long)]
    pub kfac: bool,
}

/// Where cubecl keeps the autotuning cache of this process: its `autotune` directory under the
/// configured root (`target/` of the nearest Cargo project above the working directory, else
/// the user's cache directory; a `cubecl.toml` with `[autotune] cache = ...` moves it).
#[cfg(feature = "autotune")]
fn cache_dir() -> String {
    use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};
    let root = CubeClRuntimeConfig::get().autotune.cache.root();
    root.join("autotune").display().to_string()
}

/// Run the command: every operation of each model once, timing its first call.
pub fn run(args: &TuneArgs) -> Result<()> {
    let choice = args.backend.choice()?;
    if !choice.is_gpu() {
        bail!(
            "curvature tune: autotuning applies to the GPU backends (--backend cuda or wgpu); \
             `{}` runs fixed CPU kernels and has nothing to tune",
            choice.backend
        );
    }
    tune(args, &choice)
}

#[cfg(not(feature = "autotune"))]
fn tune(_: &TuneArgs, choice: &curvature_lab::BackendChoice) -> Result<()> {
    bail!(
        "curvature tune: this curvature was built without autotuning, so burn's GPU kernels are \
         fixed and there is nothing to tune; build it with `--features {},autotune`",
        choice.backend
    )
}

#[cfg(feature = "autotune")]
fn tune(args: &TuneArgs, choice: &curvature_lab::BackendChoice) -> Result<()> {
    use super::bench::{image_shape, model_names};
    use curvature_lab::bench::{BenchEvent, BenchOptions};
    use std::time::Instant;

    let image = image_shape(&args.image)?;
    let options = BenchOptions {
        models: model_names(&args.models, true),
        batch: args.batch,
        // One untimed call tunes; one timed call shows the tuned kernels' time.
        repeats: 1,
        warmup: 1,
        // Two steps run every kernel of the Lanczos recursion and its re-orthogonalisation.
        lanczos_steps: 2,
        lanczos_opt_rank: 2,
        kfac_inversion: false,
        skip_kfac: !args.kfac,
        image,
        conv: args.conv,
        ..BenchOptions::default()
    };
    println!(
        "curvature tune: {} at batch {} on {}; autotuning cache: {}",
        options.models.join(", "),
        options.batch,
        choice.backend,
        cache_dir()
    );
    println!(
        "shapes tuned before are read from the cache; a cold cache can take minutes per model \
         (an H100 spent 116 s on the MLP's first HVP, over 330 s on VGG-16's first gradient)"
    );
    println!(
        "{:<14} {:<40} {:>10} {:>12}",
        "model", "operation", "first s", "tuned ms"
    );
    let start = Instant::now();
    curvature_lab::bench::run_on(choice, &options, None, &mut |event| match event {
        BenchEvent::Backend { device, .. } => eprintln!("device {device}"),
        BenchEvent::Starting(line) => {
            eprintln!("[{:>5.0} s] {line}", start.elapsed().as_secs_f64())
        }
        // Rows derived from others (estimates, amortised steps) ran nothing of their own.
        BenchEvent::Row(row) => {
            if let Some(first) = row.first_ms {
                println!(
                    "{:<14} {:<40} {:>10.1} {:>12.3}",
                    row.model,
                    row.operation,
                    first / 1e3,
                    row.ms
                );
            }
        }
    })?;
    println!(
        "tuned in {:.0} s; later runs at these shapes read the cache",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
