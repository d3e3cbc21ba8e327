//! The `curvature` command. `curvature --help` lists the subcommands; with no arguments it runs
//! the offline quickstart (an MLP on the embedded optdigits digits).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use curvature_lab::progress::{Interrupt, ProgressMode};
use curvature_lab::{
    DampingSetting, InterpolateRequest, LabError, RunOptions, SpectrumRequest, TrainConfig,
    VarianceRequest, interpolate, measure, measure_variance, resume, train,
};

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

#[derive(Subcommand)]
enum Command {
    /// Train a model; writes config.json, metrics.csv, checkpoints and weights to --out.
    Train(TrainArgs),
    /// Hessian / GGN / Hessian−GGN spectrum of a model at given weights over a dataset.
    Spectrum(SpectrumArgs),
    /// Hessian variance (Algorithm 1 of the damping paper) and the optimal damping it implies.
    Variance(VarianceArgs),
    /// Loss and accuracy along the line between two weight files (CSV + plots).
    Interpolate(InterpolateArgs),
}

#[derive(Args)]
struct VarianceArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Which part of the data: train or val.
    #[arg(long, default_value = "train")]
    split: String,
    /// Mini-batch size B of the batch Hessians.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Sub-sample size S.
    #[arg(long, default_value_t = 10_000)]
    max_examples: usize,
    /// Batch-norm mode: train or eval.
    #[arg(long, default_value = "train")]
    bn_mode: String,
    /// Write the result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct InterpolateArgs {
    /// Run directory at α = 0 (its config names model and data).
    #[arg(long, conflicts_with = "from")]
    from_run: Option<PathBuf>,
    /// Run directory at α = 1.
    #[arg(long, conflicts_with = "to")]
    to_run: Option<PathBuf>,
    /// Weights at α = 0 (with --model/--data or --config).
    #[arg(long)]
    from: Option<PathBuf>,
    /// Weights at α = 1.
    #[arg(long)]
    to: Option<PathBuf>,
    /// A TOML or JSON run configuration naming model and data.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// α range START:END.
    #[arg(long, default_value = "-0.5:1.5")]
    range: String,
    /// Number of points.
    #[arg(long, default_value_t = 41)]
    points: usize,
    /// Output directory for interpolation.csv and the plots.
    #[arg(long)]
    out: PathBuf,
}

/// Model, data and seed flags shared by every command; each overrides its configuration key.
#[derive(Args)]
struct ModelArgs {
    /// Model: logistic, mlp.
    #[arg(long)]
    model: Option<String>,
    /// Hidden widths of the MLP, e.g. 100 or 100,50.
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Dataset: optdigits, clusters.
    #[arg(long)]
    data: Option<String>,
    /// Seed of initialisation, data split, shuffling and estimators.
    #[arg(long)]
    seed: Option<u64>,
}

impl ModelArgs {
    fn apply(&self, c: &mut TrainConfig) {
        if let Some(m) = &self.model {
            c.model = m.clone();
        }
        if let Some(h) = &self.hidden {
            c.hidden = h.clone();
        }
        if let Some(d) = &self.data {
            c.data = d.clone();
        }
        if let Some(s) = self.seed {
            c.seed = s;
        }
    }
}

/// The configuration file's keys, or the defaults.
fn base_config(path: Option<&Path>) -> Result<TrainConfig> {
    Ok(match path {
        Some(p) => TrainConfig::from_file(p)?,
        None => TrainConfig::default(),
    })
}

/// Where a model's weights come from: a run directory, or a weights file plus model flags.
#[derive(Args)]
struct SourceArgs {
    /// A training run directory: its config.json names the model and data, its
    /// weights.safetensors holds the weights.
    #[arg(long, conflicts_with_all = ["weights", "config"])]
    run: Option<PathBuf>,
    /// Weights (safetensors with the model's PyTorch names); without it and without --run, the
    /// seeded initialisation.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// A TOML or JSON run configuration naming model and data (as for `train`).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

impl SourceArgs {
    /// The configuration (model, data, seed) and the weights file.
    fn resolve(&self) -> Result<(TrainConfig, Option<PathBuf>)> {
        let (mut config, weights) = match &self.run {
            Some(dir) => (
                TrainConfig::from_file(&dir.join("config.json"))?,
                Some(dir.join("weights.safetensors")),
            ),
            None => (base_config(self.config.as_deref())?, self.weights.clone()),
        };
        self.model.apply(&mut config);
        Ok((config, weights))
    }
}

fn bn_mode(name: &str) -> Result<curvature_core::BatchNormMode> {
    match name {
        "train" => Ok(curvature_core::BatchNormMode::Train),
        "eval" => Ok(curvature_core::BatchNormMode::Eval),
        other => anyhow::bail!("unknown --bn-mode `{other}`; valid: train, eval"),
    }
}

#[derive(Args)]
struct SpectrumArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Which part of the data: train or val.
    #[arg(long, default_value = "train")]
    split: String,
    /// hessian, ggn or hessian-minus-ggn.
    #[arg(long, default_value = "hessian")]
    operator: String,
    /// Batch-norm mode: train or eval.
    #[arg(long, default_value = "train")]
    bn_mode: String,
    /// Lanczos steps m.
    #[arg(long, default_value_t = 80)]
    steps: usize,
    /// Random start vectors n_v.
    #[arg(long, default_value_t = 1)]
    vectors: usize,
    /// Exact eigenvalues from the dense matrix (models up to 5 000 parameters).
    #[arg(long)]
    dense: bool,
    /// Examples per batch when summing over the data.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// One parameter block only (a layer's weight or bias, e.g. `layers.0.weight`): its
    /// diagonal block of the operator. An unknown name lists the valid ones.
    #[arg(long)]
    block: Option<String>,
    /// Draw the stem plot (log-scale y axis, like the papers' figures) to this .svg file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Add the Gaussian-smoothed density to the plot.
    #[arg(long)]
    smooth: bool,
}

impl SpectrumArgs {
    fn request(&self, progress: ProgressMode) -> Result<SpectrumRequest> {
        let (config, weights) = self.source.resolve()?;
        Ok(SpectrumRequest {
            seed: config.seed,
            config,
            weights,
            split: self.split.clone(),
            operator: self.operator.clone(),
            bn_mode: bn_mode(&self.bn_mode)?,
            steps: self.steps,
            vectors: self.vectors,
            dense: self.dense,
            batch_size: self.batch_size,
            block: self.block.clone(),
            plot: self.plot.clone(),
            smooth: self.smooth,
            progress,
        })
    }
}

#[derive(Args)]
struct TrainArgs {
    /// A TOML or JSON file with any of the keys below (flags given on the command line win).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output directory.
    #[arg(long, required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, conflicts_with_all = ["config", "out"])]
    resume: Option<PathBuf>,
    /// Overwrite an output directory that holds another run.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    model: ModelArgs,
    /// Validation examples held out.
    #[arg(long)]
    val_size: Option<usize>,
    /// Optimiser: sgd, adam, adamw, adam-d, kfac, lanczos-opt.
    #[arg(long)]
    optimizer: Option<String>,
    /// Base learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Momentum (SGD, KFAC).
    #[arg(long)]
    momentum: Option<f64>,
    /// Weight decay.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Decoupled (AdamW-style) weight decay.
    #[arg(long)]
    decoupled: bool,
    /// Adam's ε.
    #[arg(long)]
    eps: Option<f64>,
    /// Damping (KFAC δ, Adam ε): a number or `auto`.
    #[arg(long)]
    damping: Option<DampingSetting>,
    /// Floor δ* of KFAC's auto-damping.
    #[arg(long)]
    damping_floor: Option<f64>,
    /// Steps between RMT damping re-estimates.
    #[arg(long)]
    damping_interval: Option<usize>,
    /// Epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Mini-batch size (≥ the training set: full-batch gradient descent).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Schedule: constant, cosine, linear-decay, warm-ramp.
    #[arg(long)]
    schedule: Option<String>,
    /// Start from these weights (safetensors with the model's PyTorch names).
    #[arg(long)]
    init_weights: Option<PathBuf>,
    /// Classes of the Gaussian-clusters dataset.
    #[arg(long)]
    classes: Option<usize>,
    /// Lanczos steps k of LanczosOPT.
    #[arg(long)]
    rank: Option<usize>,
    /// Perturbation factor η of LanczosOPT.
    #[arg(long)]
    eta: Option<f64>,
    /// Record the Hessian spectrum (Lanczos) every N epochs into spectra.csv and spectra/.
    #[arg(long)]
    spectrum_every: Option<usize>,
    /// Lanczos steps of those spectra.
    #[arg(long)]
    spectrum_steps: Option<usize>,
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let mut c = base_config(self.config.as_deref())?;
        self.model.apply(&mut c);
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { c.$f = v.clone(); } )* };
        }
        set!(val_size, optimizer, lr, momentum, weight_decay, eps);
        set!(
            damping_floor,
            damping_interval,
            epochs,
            batch_size,
            schedule
        );
        set!(classes, rank, eta, spectrum_every, spectrum_steps);
        if let Some(d) = self.damping {
            c.damping = Some(d);
        }
        if let Some(p) = &self.init_weights {
            c.init_weights = Some(p.clone());
        }
        if self.decoupled {
            c.decoupled = true;
        }
        Ok(c)
    }
}

fn quickstart() -> Result<()> {
    let base = Path::new("curvature-runs");
    let out = (1..)
        .map(|i| base.join(format!("quickstart-{i}")))
        .find(|p| !p.exists())
        .expect("an unused name");
    println!(
        "curvature quickstart: an MLP 64-100-10 on the embedded optdigits digits (SGD, 10 epochs)"
    );
    let rows = train(&TrainConfig::default(), &out, RunOptions::default())?;
    let last = rows.last().context("no epochs ran")?;
    println!(
        "\nvalidation accuracy {:.2}% after {} steps; outputs in {}/ (config.json, metrics.csv, checkpoint/, weights.safetensors)",
        100.0 * last.val_accuracy,
        last.step,
        out.display()
    );
    println!("next: `curvature train --help`");
    Ok(())
}

/// A flag raised by the first Ctrl-C (the run then checkpoints and stops); a second Ctrl-C
/// exits at once.
fn ctrl_c() -> Interrupt {
    let flag = Interrupt::new();
    let raised = flag.clone();
    let result = ctrlc::set_handler(move || {
        if raised.raised() {
            std::process::exit(130);
        }
        eprintln!(
            "\nCtrl-C: stopping after this step and writing a checkpoint (Ctrl-C again to quit now)"
        );
        raised.raise();
    });
    if let Err(e) = result {
        eprintln!(
            "warning: cannot catch Ctrl-C ({e}); an interrupted run resumes from its last epoch"
        );
    }
    flag
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
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
    let progress = cli.progress();
    match cli.command {
        None => quickstart(),
        Some(Command::Spectrum(args)) => {
            let result = measure(&args.request(progress)?)?;
            println!("{}", result.text.trim_end());
            if let Some(path) = &args.json {
                let text = serde_json::to_string_pretty(&result.json)?;
                std::fs::write(path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("summary written to {}", path.display());
            }
            if let Some(path) = &args.plot {
                println!("plot written to {}", path.display());
            }
            Ok(())
        }
        Some(Command::Variance(args)) => {
            let (config, weights) = args.source.resolve()?;
            let result = measure_variance(&VarianceRequest {
                seed: config.seed,
                config,
                weights,
                split: args.split.clone(),
                batch_size: args.batch_size,
                max_examples: args.max_examples,
                bn_mode: bn_mode(&args.bn_mode)?,
            })?;
            print!("{result}");
            if let Some(path) = &args.json {
                std::fs::write(path, serde_json::to_string_pretty(&result)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("result written to {}", path.display());
            }
            Ok(())
        }
        Some(Command::Interpolate(args)) => {
            let (mut config, from, to) = match (&args.from_run, &args.to_run) {
                (Some(a), Some(b)) => (
                    TrainConfig::from_file(&a.join("config.json"))?,
                    a.join("weights.safetensors"),
                    b.join("weights.safetensors"),
                ),
                (None, None) => match (&args.from, &args.to) {
                    (Some(a), Some(b)) => {
                        (base_config(args.config.as_deref())?, a.clone(), b.clone())
                    }
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
                .and_then(|(a, b)| {
                    Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?))
                })
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
                "written: {0}/interpolation.csv, {0}/interpolation-loss.svg, {0}/interpolation-accuracy.svg",
                args.out.display()
            );
            Ok(())
        }
        Some(Command::Train(args)) => {
            let options = RunOptions {
                force: args.force,
                progress,
                interrupt: Some(ctrl_c()),
            };
            let rows = match &args.resume {
                Some(dir) => resume(dir, options)?,
                None => {
                    let out = args.out.clone().expect("required by clap");
                    train(&args.config()?, &out, options)?
                }
            };
            if let Some(last) = rows.last() {
                println!(
                    "done: epoch {} step {}  val loss {:.4}  val accuracy {:.2}%",
                    last.epoch,
                    last.step,
                    last.val_loss,
                    100.0 * last.val_accuracy
                );
            }
            Ok(())
        }
    }
}
