//! The `curvature` command. `curvature --help` lists the subcommands; with no arguments it runs
//! the offline quickstart (an MLP on the embedded optdigits digits).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use curvature_lab::progress::{Interrupt, ProgressMode};
use curvature_lab::{
    BackendChoice, BackendVisitor, DampingSetting, InterpolateRequest, LabError, RunOptions,
    SpectrumRequest, TrainConfig, VarianceRequest, interpolate, measure, measure_variance,
    on_backend, resume, train,
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
    /// A grid of training runs (e.g. lr × damping), resumable, with a summary table and heat map.
    Sweep(SweepArgs),
    /// List the bundled experiment presets.
    Presets,
    /// Time gradients, HVPs, GGN products, Lanczos and optimiser steps on a backend.
    Bench(BenchArgs),
}

/// Where a command computes.
#[derive(Args)]
struct BackendArgs {
    /// Backend: ndarray (CPU), wgpu or cuda (the latter two need a binary built with
    /// `--features wgpu` / `--features cuda`).
    #[arg(long, default_value = "ndarray")]
    backend: String,
    /// Device index for wgpu (discrete GPU N) and cuda.
    #[arg(long)]
    device: Option<usize>,
    /// Float precision: f32, or f64 (ndarray only).
    #[arg(long, default_value = "f32")]
    precision: String,
}

impl BackendArgs {
    fn choice(&self) -> Result<BackendChoice> {
        Ok(BackendChoice::new(
            &self.backend,
            self.device,
            &self.precision,
        )?)
    }
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Models, comma-separated: any model name of `train` (logistic, mlp [3072-512-512-10],
    /// cnn [16-32], vgg16, vgg16-bn, preresnet-<depth>, wrn-<depth>-<k>) on CIFAR-shaped input.
    /// Default: mlp,cnn on ndarray; mlp,cnn,vgg16-bn,wrn-28-10 on a GPU.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Timed calls per operation (the median is reported).
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// Untimed calls before timing.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Lanczos steps m of the Lanczos row.
    #[arg(long, default_value_t = 10)]
    lanczos_steps: usize,
    /// Lanczos steps k of the LanczosOPT row.
    #[arg(long, default_value_t = 5)]
    lanczos_opt_rank: usize,
    /// Skip KFAC's inversion step (a host eigendecomposition per factor: ≈ 50 s for VGG-16-BN on 2 cores).
    #[arg(long)]
    no_kfac_inversion: bool,
    /// No KFAC rows (its first step eigendecomposes every factor on the host: minutes on
    /// VGG-16 and WRN-28-10).
    #[arg(long)]
    no_kfac: bool,
    /// Curvature operations only, no optimiser steps.
    #[arg(long)]
    no_optimisers: bool,
    /// Optimiser steps only, no curvature operations (gradient, HVP, GGN, Lanczos).
    #[arg(long, conflicts_with = "no_optimisers")]
    no_curvature: bool,
    /// Also write the rows as CSV (the columns of benches/pytorch/bench.py).
    #[arg(long)]
    csv: Option<PathBuf>,
}

impl BenchArgs {
    fn options(&self, gpu: bool) -> Result<curvature_lab::bench::BenchOptions> {
        use curvature_lab::bench::{BenchOptions, TABLE_MODELS};
        let models = if self.models.is_empty() {
            let n = if gpu { TABLE_MODELS.len() } else { 2 };
            TABLE_MODELS[..n].iter().map(|m| m.to_string()).collect()
        } else {
            self.models.iter().map(|m| m.trim().to_string()).collect()
        };
        Ok(BenchOptions {
            models,
            batch: self.batch,
            repeats: self.repeats,
            warmup: self.warmup,
            lanczos_steps: self.lanczos_steps,
            lanczos_opt_rank: self.lanczos_opt_rank,
            kfac_inversion: !self.no_kfac_inversion,
            skip_curvature: self.no_curvature,
            skip_optimisers: self.no_optimisers,
            skip_kfac: self.no_kfac,
        })
    }
}

/// Run `curvature bench` on backend `B`, print the table and write the CSV.
fn bench_on<B: burn::tensor::backend::Backend>(
    args: &BenchArgs,
    device: B::Device,
    gpu: bool,
    progress: ProgressMode,
) -> Result<()> {
    let options = args.options(gpu)?;
    let backend = std::any::type_name::<B>();
    let quiet = matches!(progress, ProgressMode::Quiet);
    if !quiet {
        eprintln!("backend {backend}, device {device:?}");
    }
    println!(
        "curvature bench: {} on {device:?}, batch {}, median of {} after {} warm-up calls, {}",
        args.backend.backend,
        options.batch,
        options.repeats,
        options.warmup,
        args.backend.precision
    );
    println!("{}", curvature_lab::bench::table_header());
    let mut csv_error = None;
    // Rows are printed, and the CSV rewritten, as soon as each is measured.
    let mut done = Vec::new();
    curvature_lab::bench::run::<B>(&device, &options, &mut |event| match event {
        curvature_lab::bench::BenchEvent::Starting(line) => {
            if !quiet {
                eprintln!("timing {line}");
            }
        }
        curvature_lab::bench::BenchEvent::Row(row) => {
            println!("{}", curvature_lab::bench::table_row(row));
            done.push(row.clone());
            if let Some(path) = &args.csv {
                if let Err(e) = std::fs::write(path, curvature_lab::bench::to_csv(&done)) {
                    csv_error.get_or_insert(format!("writing {}: {e}", path.display()));
                }
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

fn bench(args: &BenchArgs, progress: ProgressMode) -> Result<()> {
    let choice = args.backend.choice()?;
    on_backend(
        &choice,
        BenchOn {
            args,
            gpu: choice.is_gpu(),
            progress,
        },
    )?
}

/// [`bench_on`] for the chosen backend.
struct BenchOn<'a> {
    args: &'a BenchArgs,
    gpu: bool,
    progress: ProgressMode,
}

impl BackendVisitor for BenchOn<'_> {
    type Output = Result<()>;
    fn visit<BB: burn::tensor::backend::Backend>(
        self,
        device: BB::Device,
    ) -> curvature_lab::Result<Result<()>> {
        Ok(bench_on::<BB>(self.args, device, self.gpu, self.progress))
    }
}

#[derive(Args)]
struct SweepArgs {
    /// A bundled preset (`curvature presets`): its configuration and grid.
    #[arg(long, conflicts_with = "config")]
    preset: Option<String>,
    /// A TOML or JSON run configuration as the base of every run.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A grid axis KEY=V1,V2,… over any configuration key (repeat for more axes; replaces the
    /// preset's axis of the same key).
    #[arg(long = "grid", value_name = "KEY=V1,V2")]
    grid: Vec<String>,
    /// Override a configuration key of every run, KEY=VALUE (repeatable), e.g. epochs=1.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Metric of the heat map: val_accuracy, val_loss, train_loss, train_accuracy.
    #[arg(long, default_value = "val_accuracy")]
    metric: String,
    /// Output directory (one sub-directory per run; running again continues).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    backend: BackendArgs,
}

/// A command-line value as JSON: numbers and booleans as such, anything else a string.
fn json_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

fn key_value(text: &str, flag: &str) -> Result<(String, String)> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .with_context(|| format!("{flag} `{text}`: expected KEY=VALUE"))
}

#[derive(Args)]
struct VarianceArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Which part of the data: train, or test (= val: the held-out part of optdigits and the
    /// clusters, the official test split of MNIST and CIFAR).
    #[arg(long, default_value = "train")]
    split: String,
    /// Estimation batch size of the batch Hessians H_i (128 in the paper).
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Sub-sample size S.
    #[arg(long, default_value_t = 10_000)]
    max_examples: usize,
    /// Random unit vectors averaged (at least 2 for a standard error).
    #[arg(long, default_value_t = 4)]
    vectors: usize,
    /// Estimator: unbiased (Σ w_i ‖H_i v‖² − ‖H̄v‖², eq. 15) or as-printed (Algorithm 1 as
    /// printed, biased up by ‖H̄v‖² − (vᵀH̄v)²).
    #[arg(long, default_value = "unbiased")]
    estimator: String,
    /// Training batch size B the optimal damping δ* = (s²/P)(1/B − 1/N) is reported for
    /// (default: the run's batch size).
    #[arg(long)]
    train_batch_size: Option<usize>,
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
    #[command(flatten)]
    backend: BackendArgs,
}

/// Model, data and seed flags shared by every command; each overrides its configuration key.
#[derive(Args)]
struct ModelArgs {
    /// Model: logistic, mlp, cnn, vgg16, vgg16-bn, preresnet-<depth> (e.g. preresnet-110),
    /// wrn-<depth>-<k> (e.g. wrn-28-10).
    #[arg(long)]
    model: Option<String>,
    /// Hidden widths of the MLP, e.g. 100 or 100,50.
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Output channels of the conv blocks of `cnn`, e.g. 16,32.
    #[arg(long, value_delimiter = ',')]
    channels: Option<Vec<usize>>,
    /// Dataset: optdigits, clusters (both offline), mnist, fashion-mnist, cifar10, cifar100
    /// (read from --data-dir).
    #[arg(long)]
    data: Option<String>,
    /// Directory of the dataset's files (default data/<name>).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep a seeded random subset of this many training examples.
    #[arg(long)]
    train_size: Option<usize>,
    /// Keep a seeded random subset of this many validation / test examples.
    #[arg(long)]
    test_size: Option<usize>,
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
        if let Some(ch) = &self.channels {
            c.channels = ch.clone();
        }
        if let Some(d) = &self.data {
            c.data = d.clone();
        }
        if let Some(d) = &self.data_dir {
            c.data_dir = Some(d.clone());
        }
        if self.train_size.is_some() {
            c.train_size = self.train_size;
        }
        if self.test_size.is_some() {
            c.test_size = self.test_size;
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
    #[arg(long, conflicts_with_all = ["weights", "config", "checkpoint"])]
    run: Option<PathBuf>,
    /// A training run's checkpoint (the run directory or its checkpoint/): the iterate of the
    /// last checkpoint (also of an unfinished or interrupted run), model and data from the
    /// run's config.json.
    #[arg(long, conflicts_with_all = ["weights", "config"])]
    checkpoint: Option<PathBuf>,
    /// Weights (safetensors with the model's PyTorch names); without it and without --run, the
    /// seeded initialisation.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// A TOML or JSON run configuration naming model and data (as for `train`).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    backend: BackendArgs,
}

impl SourceArgs {
    /// The configuration (model, data, seed) and the weights file.
    fn resolve(&self) -> Result<(TrainConfig, Option<PathBuf>)> {
        let (mut config, weights) = match (&self.run, &self.checkpoint) {
            (Some(dir), _) => (
                TrainConfig::from_file(&dir.join("config.json"))?,
                Some(dir.join("weights.safetensors")),
            ),
            (None, Some(dir)) => {
                let (run, ck) = if dir.join("checkpoint").is_dir() {
                    (dir.clone(), dir.join("checkpoint"))
                } else {
                    (
                        dir.parent().unwrap_or(Path::new(".")).to_path_buf(),
                        dir.clone(),
                    )
                };
                if !ck.join("model.bin").exists() {
                    anyhow::bail!(
                        "--checkpoint {}: no checkpoint there (expected {})",
                        dir.display(),
                        ck.join("model.bin").display()
                    );
                }
                (TrainConfig::from_file(&run.join("config.json"))?, Some(ck))
            }
            (None, None) => (base_config(self.config.as_deref())?, self.weights.clone()),
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
    /// Which part of the data: train, or test (= val: the held-out part of optdigits and the
    /// clusters, the official test split of MNIST and CIFAR).
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
    /// Random start vectors n_v (the trace, Frobenius norm and masses are averaged over them;
    /// every estimate is printed with its standard error).
    #[arg(long, default_value_t = 4)]
    vectors: usize,
    /// Outlier rule: mp (Marchenko–Pastur bulk edge fitted to the SLQ moments + Tracy–Widom
    /// width) or gap (clusters split at gaps > 10 × the median gap).
    #[arg(long, default_value = "mp")]
    outliers: String,
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
    /// Draw the stem plot (log-scale y axis, like the papers' figures) to this .svg or .png file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Add the Gaussian-smoothed density to the plot.
    #[arg(long)]
    smooth: bool,
    /// Measure over N augmented training examples (random crop + flip, each example drawn
    /// anew; the "true" Hessian of the augmented data distribution) instead of the plain
    /// training set. The run's `augment` setting, or crop-flip.
    #[arg(long, value_name = "N")]
    augmented: Option<usize>,
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
            outliers: self.outliers.parse()?,
            dense: self.dense,
            batch_size: self.batch_size,
            augmented: self.augmented,
            block: self.block.clone(),
            plot: self.plot.clone(),
            smooth: self.smooth,
            progress,
            backend: self.source.backend.choice()?,
        })
    }
}

#[derive(Args)]
struct TrainArgs {
    /// A TOML or JSON file with any of the keys below (flags given on the command line win).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start from a bundled preset's configuration (`curvature presets`; flags win).
    #[arg(long, conflicts_with = "config")]
    preset: Option<String>,
    /// Output directory.
    #[arg(long, required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, conflicts_with_all = ["config", "out", "preset"])]
    resume: Option<PathBuf>,
    /// Overwrite an output directory that holds another run.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    backend: BackendArgs,
    /// Validation examples held out.
    #[arg(long)]
    val_size: Option<usize>,
    /// Optimiser: sgd, adam, adamw, adam-d (Adam with a large ε = --damping, default 5e-3;
    /// the damping paper's Adam-D), gadam (Adam + decoupled weight decay + iterate averaging),
    /// kfac, lanczos-opt.
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
    /// Schedule: constant, cosine, linear-decay (eq. 12), averaging-decay (eq. 13, with
    /// iterate averaging), warm-ramp (eq. 16).
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
    /// Training-time augmentation of images, new every epoch: none, crop (random crop of the
    /// image padded by side/8 pixels of black) or crop-flip (and a random horizontal flip).
    #[arg(long)]
    augment: Option<String>,
    /// Iterate averaging (SWA, Gadam) from the end of this epoch: evaluation, spectra and the
    /// final weights use the averaged weights (batch-norm statistics recomputed). gadam
    /// defaults to half the epochs.
    #[arg(long)]
    average_from: Option<usize>,
    /// Steps between averaged iterates.
    #[arg(long)]
    average_every: Option<usize>,
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let mut c = match &self.preset {
            Some(name) => curvature_lab::preset(name)?.train,
            None => base_config(self.config.as_deref())?,
        };
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
        set!(augment, average_every);
        if let Some(t) = self.average_from {
            c.average_from = Some(t);
        }
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
    println!(
        "Hessian of the training loss: λ_max {:.4}, λ_min {:.4}, trace {:.3} ± {:.3}, \
         {} outliers above the bulk, {:.1}% ± {:.1}% of the spectral mass near zero \
         (one SLQ vector; error bars from its Ritz decomposition)",
        s.lambda_max,
        s.lambda_min,
        s.trace,
        s.stderr[0],
        s.outliers,
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

/// Write `value` as pretty-printed JSON (`--json FILE`).
fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn run(cli: Cli) -> Result<()> {
    let progress = cli.progress();
    match cli.command {
        None => quickstart(),
        Some(Command::Spectrum(args)) => {
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
        Some(Command::Variance(args)) => {
            let (config, weights) = args.source.resolve()?;
            let train_batch_size = args.train_batch_size.unwrap_or(config.batch_size);
            let result = measure_variance(&VarianceRequest {
                seed: config.seed,
                config,
                weights,
                split: args.split.clone(),
                batch_size: args.batch_size,
                max_examples: args.max_examples,
                vectors: args.vectors,
                estimator: args.estimator.parse()?,
                train_batch_size,
                bn_mode: bn_mode(&args.bn_mode)?,
                backend: args.source.backend.choice()?,
            })?;
            print!("{result}");
            if let Some(path) = &args.json {
                write_json(path, &serde_json::to_value(&result)?)?;
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
        Some(Command::Bench(args)) => bench(&args, progress),
        Some(Command::Presets) => {
            for p in curvature_lab::presets()? {
                println!("{}\n    {}\n    {}", p.name, p.description, p.paper);
                let grid: Vec<String> = p
                    .grid()
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k} ∈ {{{}}}",
                            v.iter()
                                // A table value (several keys) by its label; the file has the rest.
                                .map(|x| match x {
                                    serde_json::Value::Object(_) => {
                                        curvature_lab::sweep::label(k, x)
                                    }
                                    _ => x.to_string(),
                                })
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                    .collect();
                if grid.is_empty() {
                    println!(
                        "    run: curvature train --preset {} --out runs/{}",
                        p.name, p.name
                    );
                } else {
                    println!(
                        "    grid: {}\n    run: curvature sweep --preset {} --out runs/{}",
                        grid.join(" × "),
                        p.name,
                        p.name
                    );
                }
                for then in &p.then {
                    println!(
                        "    then: {}",
                        then.replace("{out}", &format!("runs/{}", p.name))
                    );
                }
            }
            Ok(())
        }
        Some(Command::Sweep(args)) => {
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
                let values: Vec<serde_json::Value> =
                    v.split(',').map(|x| json_value(x.trim())).collect();
                match axes.iter_mut().find(|(key, _)| *key == k) {
                    Some(axis) => axis.1 = values,
                    None => axes.push((k, values)),
                }
            }
            for kv in &args.set {
                let (k, v) = key_value(kv, "--set")?;
                base = curvature_lab::sweep::with_key(&base, &k, &json_value(&v))?;
            }
            let cells = curvature_lab::sweep(
                &base,
                &axes,
                &args.out,
                &args.metric,
                RunOptions {
                    force: false,
                    progress,
                    interrupt: Some(ctrl_c()),
                    backend: args.backend.choice()?,
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
        Some(Command::Train(args)) => {
            let options = RunOptions {
                force: args.force,
                progress,
                interrupt: Some(ctrl_c()),
                backend: args.backend.choice()?,
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
