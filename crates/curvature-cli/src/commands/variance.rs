//! `curvature variance`: the Hessian variance of eq. 15 (damping paper) and the optimal damping it implies.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use curvature_core::{BatchNormMode, VarianceEstimator};
use curvature_lab::{SplitKind, VarianceRequest, measure_variance};

use crate::args::{PeerArgs, SourceArgs, write_json};

#[derive(Args)]
pub struct VarianceArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Which part of the data.
    #[arg(long, value_enum, default_value_t = SplitKind::Train)]
    pub split: SplitKind,
    /// Estimation batch size of the batch Hessians H_i (128 in the paper).
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Sub-sample size S.
    #[arg(long, default_value_t = 10_000)]
    pub max_examples: usize,
    /// Random unit vectors averaged (at least 2 for a standard error).
    #[arg(long, default_value_t = 4)]
    pub vectors: usize,
    /// Estimator: unbiased (Σ w_i ‖H_i v‖² − ‖H̄v‖², eq. 15) or as-printed (Algorithm 1 as
    /// printed, biased up by ‖H̄v‖² − (vᵀH̄v)²).
    #[arg(long, value_enum, default_value_t)]
    pub estimator: VarianceEstimator,
    /// Training batch size B the optimal damping δ* = (s²/P)(1/B − 1/N) is reported for
    /// (default: the run's batch size).
    #[arg(long)]
    pub train_batch_size: Option<usize>,
    /// Batch-norm mode: the batch's statistics (train) or the running ones (eval).
    #[arg(long, value_enum, default_value_t)]
    pub bn_mode: BatchNormMode,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub peers: PeerArgs,
}

/// Run the command.
pub fn run(args: VarianceArgs) -> Result<()> {
    let (config, weights) = args.source.resolve()?;
    let train_batch_size = args.train_batch_size.unwrap_or(config.batch_size);
    let result = measure_variance(&VarianceRequest {
        seed: config.seed,
        config,
        weights,
        split: args.split,
        batch_size: args.batch_size,
        max_examples: args.max_examples,
        vectors: args.vectors,
        estimator: args.estimator,
        train_batch_size,
        bn_mode: args.bn_mode,
        backend: args.source.backend.choice()?,
        peers: args.peers.config(),
    })?;
    print!("{result}");
    if let Some(path) = &args.json {
        write_json(path, &serde_json::to_value(&result)?)?;
        println!("result written to {}", path.display());
    }
    Ok(())
}
