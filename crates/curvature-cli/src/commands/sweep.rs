//! `curvature sweep`: a resumable grid of training runs with a summary table and heat map.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use curvature_lab::progress::ProgressMode;
use curvature_lab::{Metric, RunOptions};

use crate::args::{BackendArgs, base_config, json_value, key_value};

use crate::interrupt::ctrl_c;

#[derive(Args)]
pub struct SweepArgs {
    /// A bundled preset (`curvature presets`): its configuration and grid.
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// A TOML or JSON run configuration as the base of every run.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A grid axis KEY=V1,V2,… over any configuration key (repeat for more axes; replaces the
    /// preset's axis of the same key). A value naming one of that axis' table entries selects
    /// the entry, e.g. `--grid run=kfac-auto --grid seed=0`.
    #[arg(long = "grid", value_name = "KEY=V1,V2")]
    pub grid: Vec<String>,
    /// Override a configuration key of every run, KEY=VALUE (repeatable), e.g. epochs=1.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Metric of the heat map.
    #[arg(long, value_enum, default_value_t = Metric::ValAccuracy)]
    pub metric: Metric,
    /// Output directory (one sub-directory per run; running again continues).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// Run the command.
pub fn run(args: SweepArgs, progress: ProgressMode) -> Result<()> {
    let (mut base, mut axes) = match &args.preset {
        Some(name) => {
            let p = curvature_lab::preset(name)?;
            let axes = p.grid();
            (p.train, axes)
        }
        None => (base_config(args.config.as_deref())?, Vec::new()),
    };
    for g in &args.grid {
        let (k, v) = key_value(g, "--grid")?;
        let values = v.split(',').map(|x| json_value(x.trim())).collect();
        curvature_lab::sweep::override_axis(&mut axes, &base, &k, values)?;
    }
    for kv in &args.set {
        let (k, v) = key_value(kv, "--set")?;
        base = curvature_lab::sweep::with_key(&base, &k, &json_value(&v))?;
    }
    let cells = curvature_lab::sweep(
        &base,
        &axes,
        &args.out,
        args.metric,
        RunOptions {
            force: false,
            progress,
            interrupt: Some(ctrl_c()),
            backend: args.backend.choice()?,
            peers: None,
        },
    )?;
    print!("{}", std::fs::read_to_string(args.out.join("summary.md"))?);
    let diverged = cells.iter().filter(|c| c.last.is_none()).count();
    println!(
        "{} runs ({diverged} diverged); written: {out}/summary.csv, {out}/summary.md, {out}/heatmap.{{svg,png}}",
        cells.len(),
        out = args.out.display(),
    );
    Ok(())
}
