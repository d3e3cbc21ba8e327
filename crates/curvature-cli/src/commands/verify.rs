//! `curvature verify`: a backend's loss, gradient, Hessian and GGN products, Lanczos and
//! optimiser steps against NdArray's, from the same weights and batch.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use curvature_lab::OptimizerKind;
use curvature_lab::verify::{VerifyRequest, verify};

use crate::args::{SourceArgs, write_json};

#[derive(Args)]
pub struct VerifyArgs {
    /// Model, data, weights and the backend under test (the reference is ndarray at the same
    /// precision); a configuration's optimiser hyperparameters are used for the steps.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Training examples in the batch (the first ones of the training split).
    #[arg(long, default_value_t = 16)]
    pub examples: usize,
    /// Lanczos steps for the top Ritz values.
    #[arg(long, default_value_t = 10)]
    pub lanczos_steps: usize,
    /// Steps of each optimiser.
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    /// The optimisers whose updates are compared.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sgd,adam,kfac"
    )]
    pub optimizers: Vec<OptimizerKind>,
    /// Write the comparisons as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Run the command: print every comparison; fail (exit 1) if any disagrees.
pub fn run(args: VerifyArgs) -> Result<()> {
    let (config, weights) = args.source.resolve()?;
    let backend = args.source.backend.choice()?;
    let request = VerifyRequest {
        weights,
        examples: args.examples,
        lanczos_steps: args.lanczos_steps,
        steps: args.steps,
        optimizers: args.optimizers,
        ..VerifyRequest::new(config, backend)
    };
    let report = verify(&request)?;
    println!("{report}");
    if let Some(path) = &args.json {
        write_json(path, &serde_json::to_value(&report)?)?;
        println!("result written to {}", path.display());
    }
    if !report.passed() {
        let names: Vec<&str> = report
            .failures()
            .iter()
            .map(|c| c.quantity.as_str())
            .collect();
        bail!(
            "{} disagrees with {} on: {}",
            report.backend,
            report.reference,
            names.join(", ")
        );
    }
    Ok(())
}
