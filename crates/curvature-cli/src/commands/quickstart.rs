//! `curvature` with no arguments: the offline quickstart (an MLP on the embedded optdigits digits,
//! then its Hessian spectrum).

use std::path::Path;

use anyhow::{Context, Result};
use curvature_lab::{RunOptions, TrainConfig, train};

/// Run the quickstart.
pub fn run() -> Result<()> {
    let base = Path::new("curvature-runs");
    let out = (1..)
        .map(|i| base.join(format!("quickstart-{i}")))
        .find(|p| !p.exists())
        .expect("an unused name");
    println!(
        "curvature quickstart: an MLP 64-100-10 on the embedded optdigits digits (SGD, 10 epochs), \
         then the Hessian spectrum of its training loss (exact HVPs + Lanczos)"
    );
    let config = TrainConfig {
        spectrum_every: 10,
        ..TrainConfig::default()
    };
    let rows = train(&config, &out, RunOptions::default())?;
    let last = rows.last().context("no epochs ran")?;
    println!(
        "\nvalidation accuracy {:.2}% after {} steps",
        100.0 * last.val_accuracy,
        last.step
    );
    // The spectrum recorded after the last epoch.
    let paths = curvature_lab::RunPaths { out: out.clone() };
    let s = paths
        .read_spectra()?
        .pop()
        .context("the quickstart recorded no spectrum")?;
    let problems = s.outlier_check.map(|c| c.problems()).unwrap_or_default();
    let outliers = match problems.first() {
        Some(problem) => format!(
            "{} outliers above the bulk (unreliable: {problem})",
            s.outliers
        ),
        None => format!("{} outliers above the bulk", s.outliers),
    };
    println!(
        "Hessian of the training loss: λ_max {:.4}, λ_min {:.4}, trace {:.3} ± {:.3}, \
         {outliers}, {:.1}% ± {:.1}% of the spectral mass near zero \
         (one SLQ vector; error bars from its Ritz decomposition)",
        s.lambda_max,
        s.lambda_min,
        s.trace,
        s.stderr[0],
        100.0 * s.degenerate_mass,
        100.0 * s.stderr[3]
    );
    println!(
        "outputs in {}/: config.json, metrics.csv, spectra.csv, spectra/, plots/ (SVG and PNG), \
         checkpoint/, weights.safetensors",
        out.display()
    );
    println!("next: `curvature train --help`");
    Ok(())
}
