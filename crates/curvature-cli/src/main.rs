//! The `curvature` command. `curvature --help` lists the subcommands; with no arguments it runs
//! the offline quickstart (an MLP on the embedded optdigits digits).

//!
//! One file per subcommand under `commands/` (its flags and its `run`), the flags several
//! commands share in `args`.

mod args;
mod commands;
mod interrupt;

use anyhow::Result;
use clap::{Parser, Subcommand};
use commands::{
    bench::BenchArgs, interpolate::InterpolateArgs, orchestrator::OrchestratorArgs,
    spectrum::SpectrumArgs, sweep::SweepArgs, train::TrainArgs, tune::TuneArgs,
    variance::VarianceArgs, verify::VerifyArgs,
};
use curvature_lab::LabError;
use curvature_lab::progress::ProgressMode;

#[derive(Parser)]
#[command(
    name = "curvature",
    version,
    about = "Exact Hessians, spectra and curvature-aware optimisers on burn"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// No progress output (bars on a terminal, plain lines otherwise).
    #[arg(long, global = true)]
    quiet: bool,
    /// Threads for the CPU work that runs in parallel (the Flex backend's kernels, KFAC's
    /// eigendecompositions); default: every core. Flex's results do not depend on it (its
    /// gradient, HVP and 5 M-element dot products tested bit for bit at 1, 2 and 3 threads).
    /// NdArray stays single-threaded: its threads gain nothing measurable and its SIMD kernels
    /// are not reproducible run to run.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

impl Cli {
    fn progress(&self) -> ProgressMode {
        if self.quiet {
            ProgressMode::Quiet
        } else {
            ProgressMode::Auto
        }
    }
}

// Subcommands with numeric flags read `--lr -1` as the value −1 (which validation then rejects
// with the usual message), not as an unknown flag `-1`.
#[derive(Subcommand)]
enum Command {
    /// Train a model; writes config.json, metrics.csv, checkpoints and weights to --out.
    #[command(allow_negative_numbers = true)]
    Train(Box<TrainArgs>),
    /// Hessian / GGN / Hessian−GGN spectrum of a model at given weights over a dataset.
    #[command(allow_negative_numbers = true)]
    Spectrum(SpectrumArgs),
    /// Hessian variance (Algorithm 1 of the damping paper) and the optimal damping it implies.
    #[command(allow_negative_numbers = true)]
    Variance(VarianceArgs),
    /// A backend's loss, gradient, Hv, Gv, Lanczos and optimiser steps against ndarray's, from
    /// the same weights and batch; fails if any disagrees (check a GPU before trusting it).
    #[command(allow_negative_numbers = true)]
    Verify(VerifyArgs),
    /// Loss and accuracy along the line between two weight files (CSV + plots).
    #[command(allow_negative_numbers = true)]
    Interpolate(InterpolateArgs),
    /// A grid of training runs (e.g. lr × damping), resumable, with a summary table and heat map.
    Sweep(SweepArgs),
    /// List the bundled experiment presets.
    Presets,
    /// Time gradients, HVPs, GGN products, Lanczos and optimiser steps on a backend.
    #[command(allow_negative_numbers = true)]
    Bench(BenchArgs),
    /// Fill the GPU kernel autotuning cache for the bundled models once (builds with the
    /// `autotune` feature): every operation of `bench` run once, its first call timed.
    Tune(TuneArgs),
    /// Serve as the rendezvous of a data-parallel group spread over several machines (then run
    /// spectrum, variance, train or bench on each with --nodes K --node-rank i --orchestrator HOST:PORT).
    Orchestrator(OrchestratorArgs),
}

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`curvature presets | head`) would
    // panic; restore the default action: the process ends quietly like other Unix tools.
    #[cfg(unix)]
    // SAFETY: called first in main, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Large tensors reuse freed memory instead of page-faulting fresh mappings in on every op
    // (a 20-step Lanczos of VGG-16 on the CPU: 177 → 116 s; see curvature_lab::memory).
    curvature_lab::memory::keep_freed_memory();
    let cli = Cli::parse();
    // burn's libraries log through `tracing`: warnings and errors reach stderr. (Without a
    // subscriber of ours, burn-communication installs one at INFO that prints a line per tensor
    // transfer between nodes.) The orchestrator keeps burn's: its connection log is its output.
    if !matches!(cli.command, Some(Command::Orchestrator(_))) {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
            .with_writer(std::io::stderr)
            .try_init();
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<LabError>() {
                Some(LabError::Interrupted { .. }) => std::process::ExitCode::from(130),
                _ => std::process::ExitCode::FAILURE,
            }
        }
    }
}
fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.into())
            .build_global()
            .map_err(|e| anyhow::anyhow!("--threads {n}: {e}"))?;
    }
    let progress = cli.progress();
    match cli.command {
        None => commands::quickstart::run(),
        Some(Command::Train(args)) => commands::train::run(*args, progress),
        Some(Command::Spectrum(args)) => commands::spectrum::run(args, progress),
        Some(Command::Variance(args)) => commands::variance::run(args),
        Some(Command::Verify(args)) => commands::verify::run(args),
        Some(Command::Interpolate(args)) => commands::interpolate::run(args, progress),
        Some(Command::Sweep(args)) => commands::sweep::run(args, progress),
        Some(Command::Presets) => commands::presets::run(),
        Some(Command::Bench(args)) => commands::bench::run(&args, progress),
        Some(Command::Tune(args)) => commands::tune::run(&args),
        Some(Command::Orchestrator(args)) => commands::orchestrator::run(&args),
    }
}
