//! Flags shared by several commands: backend, model and data, where weights come from.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use curvature_lab::{
    BackendChoice, BackendKind, ConvLowering, DatasetKind, Precision, TrainConfig,
};

/// Where a command computes.
#[derive(Args)]
pub struct BackendArgs {
    /// Backend (flex, wgpu and cuda need a binary built with their cargo feature; the default
    /// build has flex). Default: flex for f32 in a build with it, else ndarray; ndarray for f64;
    /// a resume continues on the backend the run was trained on.
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// Device index for wgpu (discrete GPU N) and cuda.
    #[arg(long)]
    pub device: Option<usize>,
    /// Float precision (f64 on ndarray only). Default: f32; a resume continues in the
    /// precision the run was trained in.
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
}

impl BackendArgs {
    /// The named backend, or the default for the precision ([`BackendKind::default_for`]).
    pub fn choice(&self) -> Result<BackendChoice> {
        let precision = self.precision.unwrap_or_default();
        let backend = self
            .backend
            .unwrap_or_else(|| BackendKind::default_for(precision));
        Ok(BackendChoice::new(backend, self.device, precision)?)
    }

    /// For a resume of the run in `out`: the backend and precision it was trained on unless
    /// either is named ([`curvature_lab::trained_backend`]; a run from before they were
    /// recorded gets [`BackendArgs::choice`]).
    pub fn choice_for_resume(&self, out: &Path) -> Result<BackendChoice> {
        match (
            self.backend,
            self.precision,
            curvature_lab::trained_backend(out)?,
        ) {
            (None, None, Some(trained)) => Ok(BackendChoice::new(
                trained.backend,
                self.device.or(trained.device),
                trained.precision,
            )?),
            _ => self.choice(),
        }
    }
}

/// Data parallelism: how many peers share the data.
#[derive(Args)]
pub struct PeerArgs {
    /// Share the work between N data-parallel peers, one thread each (peer q on device d + q
    /// with --backend wgpu|cuda; all on the CPU otherwise): spectrum and variance share the
    /// data's batches, train shares every global batch; each sum over examples is completed by
    /// one all-reduce (burn-collective). The numbers equal one peer's up to summation order.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub peers: usize,
    /// Seconds a peer waits for the others in an all-reduce before it stops the run with an
    /// error naming the peers that never arrived.
    #[arg(long, value_name = "SECONDS", default_value_t = 600.0)]
    pub peer_timeout: f64,
    /// Spread the group over K machines (nodes), each running this command with its own
    /// --node-rank and --peers peers, all meeting at the orchestrator (`curvature
    /// orchestrator`). Node 0 prints and writes the files; in `train` the other nodes write
    /// nothing (to resume, copy node 0's output directory to them first).
    #[arg(long, value_name = "K", requires_all = ["node_rank", "orchestrator", "node_host"])]
    pub nodes: Option<usize>,
    /// This machine's index i in 0..K (node 0 holds global peer 0).
    #[arg(long, value_name = "i", requires = "nodes")]
    pub node_rank: Option<usize>,
    /// Where `curvature orchestrator` listens: HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", requires = "nodes")]
    pub orchestrator: Option<String>,
    /// This machine's host name or IP address as the other nodes reach it.
    #[arg(long, value_name = "HOST", requires = "nodes")]
    pub node_host: Option<String>,
    /// Port of this node's tensor data service, which the other nodes download partial sums
    /// from (default: the orchestrator's port + 1 + node rank).
    #[arg(long, value_name = "PORT", requires = "nodes")]
    pub data_port: Option<u16>,
}

impl PeerArgs {
    /// The group configuration.
    pub fn config(&self) -> curvature_collective::PeerGroupConfig {
        let node = match (
            &self.nodes,
            &self.node_rank,
            &self.orchestrator,
            &self.node_host,
        ) {
            (Some(nodes), Some(rank), Some(orchestrator), Some(host)) => {
                let port = orchestrator
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .unwrap_or(0);
                // An invalid default (0) is reported by the configuration's validation.
                let default_port = u16::try_from(usize::from(port) + 1 + rank).unwrap_or(0);
                Some(curvature_collective::NodeConfig::new(
                    *nodes,
                    *rank,
                    orchestrator.clone(),
                    host.clone(),
                    self.data_port
                        .unwrap_or(if port == 0 { 0 } else { default_port }),
                ))
            }
            _ => None,
        };
        curvature_collective::PeerGroupConfig::new(self.peers)
            .with_timeout_secs(self.peer_timeout)
            .with_node(node)
    }
}

/// Model, data and seed flags shared by every command; each overrides its configuration key.
#[derive(Args)]
pub struct ModelArgs {
    /// Model: logistic, mlp, cnn, vgg16, vgg16-bn, preresnet-<depth> (e.g. preresnet-110),
    /// wrn-<depth>-<k> (e.g. wrn-28-10).
    #[arg(long)]
    pub model: Option<String>,
    /// Hidden widths of the MLP, e.g. 100 or 100,50.
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// Output channels of the conv blocks of `cnn`, e.g. 16,32.
    #[arg(long, value_delimiter = ',')]
    pub channels: Option<Vec<usize>>,
    /// How the convolutions are computed: auto (im2col + matmul on ndarray, gemm-grad on flex,
    /// burn's conv2d elsewhere), burn, im2col, or gemm-grad — the same function every way.
    #[arg(long, value_enum)]
    pub conv: Option<ConvLowering>,
    /// Dataset: optdigits and clusters are offline; the others are read from --data-dir, or
    /// without it from data/<name> or /usr/share/datasets/<name> (Debian's
    /// `apt-get install dataset-fashion-mnist` installs Fashion-MNIST there).
    #[arg(long, value_enum)]
    pub data: Option<DatasetKind>,
    /// Directory of the dataset's files (default: the first of data/<name> and
    /// /usr/share/datasets/<name> that holds them).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Keep a seeded random subset of this many training examples.
    #[arg(long)]
    pub train_size: Option<usize>,
    /// Keep a seeded random subset of this many validation / test examples.
    #[arg(long)]
    pub test_size: Option<usize>,
    /// Seed of initialisation, data split, shuffling and estimators.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl ModelArgs {
    pub fn apply(&self, c: &mut TrainConfig) {
        if let Some(m) = &self.model {
            c.model = m.clone();
        }
        if let Some(h) = &self.hidden {
            c.hidden = h.clone();
        }
        if let Some(ch) = &self.channels {
            c.channels = ch.clone();
        }
        if let Some(conv) = self.conv {
            c.conv = conv;
        }
        if let Some(d) = &self.data {
            c.data = *d;
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
pub fn base_config(path: Option<&Path>) -> Result<TrainConfig> {
    Ok(match path {
        Some(p) => TrainConfig::from_file(p)?,
        None => TrainConfig::default(),
    })
}

/// Where a model's weights come from: a run directory, or a weights file plus model flags.
#[derive(Args)]
pub struct SourceArgs {
    /// A training run directory: its config.json names the model and data, its
    /// weights.safetensors holds the weights.
    #[arg(long, conflicts_with_all = ["weights", "config", "checkpoint"])]
    pub run: Option<PathBuf>,
    /// A training run's checkpoint (the run directory or its checkpoint/): the iterate of the
    /// last checkpoint (also of an unfinished or interrupted run), model and data from the
    /// run's config.json.
    #[arg(long, conflicts_with_all = ["weights", "config"])]
    pub checkpoint: Option<PathBuf>,
    /// Weights (safetensors with the model's PyTorch names); without it and without --run, the
    /// seeded initialisation.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// A TOML or JSON run configuration naming model and data (as for `train`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
}

impl SourceArgs {
    /// The configuration (model, data, seed) and the weights file.
    pub fn resolve(&self) -> Result<(TrainConfig, Option<PathBuf>)> {
        let (mut config, weights) = match (&self.run, &self.checkpoint) {
            (Some(dir), _) => (
                TrainConfig::from_file(&dir.join("config.json"))?,
                Some(dir.join("weights.safetensors")),
            ),
            (None, Some(dir)) => {
                curvature_lab::RunPaths { out: dir.clone() }.recover_checkpoint()?;
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

/// A command-line value as JSON: numbers and booleans as such, anything else a string.
pub fn json_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

pub fn key_value(text: &str, flag: &str) -> Result<(String, String)> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .with_context(|| format!("{flag} `{text}`: expected KEY=VALUE"))
}

/// Write `value` as pretty-printed JSON (`--json FILE`).
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    Ok(curvature_lab::write_atomic(
        path,
        serde_json::to_string_pretty(value)?.as_bytes(),
    )?)
}
