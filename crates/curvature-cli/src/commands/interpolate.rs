//! `curvature interpolate`: loss and accuracy along the line between two weight files.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use curvature_lab::progress::ProgressMode;
use curvature_lab::{InterpolateRequest, TrainConfig, interpolate};

use crate::args::{BackendArgs, ModelArgs, base_config};

#[derive(Args)]
pub struct InterpolateArgs {
    /// Run directory at α = 0 (its config names model and data).
    #[arg(long, conflicts_with = "from")]
    pub from_run: Option<PathBuf>,
    /// Run directory at α = 1.
    #[arg(long, conflicts_with = "to")]
    pub to_run: Option<PathBuf>,
    /// Weights at α = 0 (with --model/--data or --config).
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Weights at α = 1.
    #[arg(long)]
    pub to: Option<PathBuf>,
    /// A TOML or JSON run configuration naming model and data.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// α range START:END.
    #[arg(long, default_value = "-0.5:1.5", allow_hyphen_values = true)]
    pub range: String,
    /// Number of points.
    #[arg(long, default_value_t = 41)]
    pub points: usize,
    /// Output directory for interpolation.csv and the plots.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// Run the command.
pub fn run(args: InterpolateArgs, progress: ProgressMode) -> Result<()> {
    let (mut config, from, to) = match (&args.from_run, &args.to_run) {
        (Some(a), Some(b)) => (
            TrainConfig::from_file(&a.join("config.json"))?,
            a.join("weights.safetensors"),
            b.join("weights.safetensors"),
        ),
        (None, None) => match (&args.from, &args.to) {
            (Some(a), Some(b)) => (base_config(args.config.as_deref())?, a.clone(), b.clone()),
            _ => {
                anyhow::bail!("give both ends: --from-run and --to-run, or --from and --to")
            }
        },
        _ => anyhow::bail!("give both --from-run and --to-run"),
    };
    args.model.apply(&mut config);
    let (start, end) = args
        .range
        .split_once(':')
        .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)))
        .with_context(|| {
            format!(
                "--range `{}`: expected START:END, e.g. -0.5:1.5",
                args.range
            )
        })?;
    let points = interpolate(
        &InterpolateRequest {
            config,
            from,
            to,
            start,
            end,
            points: args.points,
            progress,
            backend: args.backend.choice()?,
        },
        &args.out,
    )?;
    for p in &points {
        println!(
            "α {:>6.3}  train loss {:.4} acc {:.2}%  val loss {:.4} acc {:.2}%",
            p.alpha,
            p.train_loss,
            100.0 * p.train_accuracy,
            p.val_loss,
            100.0 * p.val_accuracy
        );
    }
    println!(
        "written: {0}/interpolation.csv, {0}/interpolation-{{loss,accuracy}}.{{svg,png}}",
        args.out.display()
    );
    Ok(())
}
