//! `curvature bench`: time gradients, HVPs, GGN products, Lanczos and optimiser steps on a backend.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use curvature_lab::ConvLowering;
use curvature_lab::FactorSolver;
use curvature_lab::bench::BenchEvent;
use curvature_lab::progress::ProgressMode;

use crate::args::{BackendArgs, PeerArgs};

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Data parallelism: the batch of --batch examples shared between the peers, every
    /// operation timed on peer 0 (products and steps of the global batch).
    #[command(flatten)]
    pub peers: PeerArgs,
    /// Models, comma-separated: any model name of `train` (logistic, mlp [3072-512-512-10],
    /// cnn [16-32], vgg16, vgg16-bn, preresnet-<depth>, wrn-<depth>-<k>) on CIFAR-shaped input.
    /// Default: mlp,cnn on ndarray; mlp,cnn,vgg16-bn,wrn-28-10 on a GPU.
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Timed calls per operation (the median is reported).
    #[arg(long, default_value_t = 10)]
    pub repeats: usize,
    /// Untimed calls before timing.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Lanczos steps m of the Lanczos row.
    #[arg(long, default_value_t = 10)]
    pub lanczos_steps: usize,
    /// Lanczos steps k of the LanczosOPT row.
    #[arg(long, default_value_t = 5)]
    pub lanczos_opt_rank: usize,
    /// Skip KFAC's inversion step (a host eigendecomposition per factor: ≈ 50 s for VGG-16-BN on 2 cores).
    #[arg(long)]
    pub no_kfac_inversion: bool,
    /// No KFAC rows (its first step eigendecomposes every factor on the host: minutes on
    /// VGG-16 and WRN-28-10).
    #[arg(long)]
    pub no_kfac: bool,
    /// Curvature operations only, no optimiser steps.
    #[arg(long)]
    pub no_optimisers: bool,
    /// Optimiser steps only, no curvature operations (gradient, HVP, GGN, Lanczos).
    #[arg(long, conflicts_with = "no_optimisers")]
    pub no_curvature: bool,
    /// Input image shape C,H,W (dense models see it flattened); the papers' CIFAR models are
    /// built for 3,32,32.
    #[arg(long, value_delimiter = ',', default_values_t = [3, 32, 32], value_name = "C,H,W")]
    pub image: Vec<usize>,
    /// How the convolutions are computed: auto (im2col + matmul on ndarray, gemm-grad on flex,
    /// burn's conv2d elsewhere), burn, im2col, or gemm-grad.
    #[arg(long, value_enum, default_value_t)]
    pub conv: ConvLowering,
    /// How KFAC inverts its damped factors: host-eigen (eigendecompositions on the host) or
    /// newton-schulz (π-split damped inverses on the device).
    #[arg(long, value_enum, default_value_t)]
    pub kfac_solver: FactorSolver,
    /// Also write the rows as CSV (the columns of benches/pytorch/bench.py).
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

impl BenchArgs {
    fn options(&self, gpu: bool) -> Result<curvature_lab::bench::BenchOptions> {
        let image = image_shape(&self.image)?;
        Ok(curvature_lab::bench::BenchOptions {
            models: model_names(&self.models, gpu),
            batch: self.batch,
            repeats: self.repeats,
            warmup: self.warmup,
            lanczos_steps: self.lanczos_steps,
            lanczos_opt_rank: self.lanczos_opt_rank,
            kfac_inversion: !self.no_kfac_inversion,
            skip_curvature: self.no_curvature,
            skip_optimisers: self.no_optimisers,
            skip_kfac: self.no_kfac,
            image,
            conv: self.conv,
            kfac_solver: self.kfac_solver,
            peers: Some(self.peers.config()).filter(|g| g.total_peers() > 1 || g.peers == 0),
        })
    }
}

/// `--models`, or by default the table's models: all four on a GPU, the MLP and the CNN on the
/// CPU (`curvature bench` and `curvature tune`).
pub fn model_names(models: &[String], gpu: bool) -> Vec<String> {
    use curvature_lab::bench::TABLE_MODELS;
    if models.is_empty() {
        let n = if gpu { TABLE_MODELS.len() } else { 2 };
        TABLE_MODELS[..n].iter().map(|m| m.to_string()).collect()
    } else {
        models.iter().map(|m| m.trim().to_string()).collect()
    }
}

/// `--image C,H,W` as a shape (`curvature bench` and `curvature tune`).
///
/// # Errors
/// Not three sizes.
pub fn image_shape(image: &[usize]) -> Result<[usize; 3]> {
    image
        .try_into()
        .map_err(|_| anyhow::anyhow!("--image {image:?}: expected three sizes C,H,W, e.g. 3,32,32"))
}

/// Run the command: print the table as rows are measured, and write the CSV.
pub fn run(args: &BenchArgs, progress: ProgressMode) -> Result<()> {
    let choice = args.backend.choice()?;
    let options = args.options(choice.is_gpu())?;
    let quiet = matches!(progress, ProgressMode::Quiet);
    let mut csv_error = None;
    // Rows are printed, and the CSV rewritten, as soon as each is measured.
    let mut done = Vec::new();
    curvature_lab::bench::run_on(&choice, &options, None, &mut |event| match event {
        BenchEvent::Backend { backend, device } => {
            if !quiet {
                eprintln!("backend {backend}, device {device}");
            }
            println!(
                "curvature bench: {} on {device}, batch {}, median of {} after {} warm-up calls, {}, conv {}{}",
                choice.backend,
                options.batch,
                options.repeats,
                options.warmup,
                choice.precision,
                options.conv,
                match &options.peers {
                    Some(g) => format!(
                        ", {} data-parallel peers (each on its share of the batch; peer 0 timed)",
                        g.total_peers()
                    ),
                    None => String::new(),
                }
            );
            println!("{}", curvature_lab::bench::table_header());
        }
        BenchEvent::Starting(line) => {
            if !quiet {
                eprintln!("timing {line}");
            }
        }
        BenchEvent::Row(row) => {
            println!("{}", curvature_lab::bench::table_row(row));
            done.push(row.clone());
            if let Some(path) = &args.csv
                && let Err(e) = curvature_lab::write_atomic(
                    path,
                    curvature_lab::bench::to_csv(&done).as_bytes(),
                )
            {
                csv_error.get_or_insert(e.to_string());
            }
        }
    })?;
    if let Some(e) = csv_error {
        anyhow::bail!(e);
    }
    if let Some(path) = &args.csv {
        println!("written: {}", path.display());
    }
    Ok(())
}
