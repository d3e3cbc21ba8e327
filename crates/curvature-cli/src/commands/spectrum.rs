//! `curvature spectrum`: the Hessian / GGN / Hessian−GGN spectrum of a model over a dataset.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use curvature_core::BatchNormMode;
use curvature_lab::progress::ProgressMode;
use curvature_lab::{OperatorKind, OutlierKind, SpectrumRequest, SplitKind, measure};

use crate::args::{PeerArgs, SourceArgs, write_json};

#[derive(Args)]
pub struct SpectrumArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Which part of the data.
    #[arg(long, value_enum, default_value_t = SplitKind::Train)]
    pub split: SplitKind,
    /// The curvature operator.
    #[arg(long, value_enum, default_value_t = OperatorKind::Hessian)]
    pub operator: OperatorKind,
    /// Batch-norm mode: the batch's statistics (train) or the running ones (eval).
    #[arg(long, value_enum, default_value_t)]
    pub bn_mode: BatchNormMode,
    /// Lanczos steps m.
    #[arg(long, default_value_t = 80)]
    pub steps: usize,
    /// Random start vectors n_v (the trace, Frobenius norm and masses are averaged over them;
    /// every estimate is printed with its standard error).
    #[arg(long, default_value_t = 4)]
    pub vectors: usize,
    /// Outlier rule.
    #[arg(long, value_enum, default_value_t = OutlierKind::Mp)]
    pub outliers: OutlierKind,
    /// Exact eigenvalues from the dense matrix (models up to 5 000 parameters).
    #[arg(long)]
    pub dense: bool,
    /// Examples per batch when summing over the data.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// One parameter block only (a layer's weight or bias, e.g. `layers.0.weight`): its
    /// diagonal block of the operator. An unknown name lists the valid ones.
    #[arg(long)]
    pub block: Option<String>,
    /// Draw the stem plot (log-scale y axis, like the papers' figures) to this .svg or .png file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Add the Gaussian-smoothed density to the plot.
    #[arg(long)]
    pub smooth: bool,
    /// Measure over N augmented training examples (random crop + flip, each example drawn
    /// anew; the "true" Hessian of the augmented data distribution) instead of the plain
    /// training set. The run's `augment` setting, or crop-flip.
    #[arg(long, value_name = "N")]
    pub augmented: Option<usize>,
    #[command(flatten)]
    pub peers: PeerArgs,
}

impl SpectrumArgs {
    fn request(&self, progress: ProgressMode) -> Result<SpectrumRequest> {
        let (config, weights) = self.source.resolve()?;
        Ok(SpectrumRequest {
            seed: config.seed,
            config,
            weights,
            split: self.split,
            operator: self.operator,
            bn_mode: self.bn_mode,
            steps: self.steps,
            vectors: self.vectors,
            outliers: self.outliers.rule(),
            dense: self.dense,
            batch_size: self.batch_size,
            augmented: self.augmented,
            block: self.block.clone(),
            plot: self.plot.clone(),
            smooth: self.smooth,
            progress,
            backend: self.source.backend.choice()?,
            peers: self.peers.config(),
        })
    }
}

/// Run the command.
pub fn run(args: SpectrumArgs, progress: ProgressMode) -> Result<()> {
    let result = measure(&args.request(progress)?)?;
    println!("{}", result.text.trim_end());
    if let Some(path) = &args.json {
        write_json(path, &result.json)?;
        println!("summary written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        println!("plot written to {}", path.display());
    }
    Ok(())
}
