//! Models and datasets by name, shared by every command.
//!
//! A command builds its model through `with_model`, which calls a `ModelVisitor` with the
//! network as an [`AnyModel`] on inputs `[N, C, H, W]` (`D = 4`; the dense models flatten
//! them), so one generic body serves every model and is compiled once per backend, not once
//! per model family.

use std::path::PathBuf;

use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use curvature_core::CurvatureModel;
use curvature_data::{
    Cifar, ClassificationData, GaussianClustersConfig, Split, gaussian_clusters, load_mnist,
    optdigits,
};
use curvature_nets::{
    AnyModel, LogisticRegressionConfig, MlpConfig, PreResNetConfig, ResidualBlock, SimpleCnnConfig,
    VggConfig, WideResNetConfig,
};

use crate::backend::{BackendChoice, BackendVisitor, on_backend};
use crate::config::{MODELS, TrainConfig};
use crate::error::{LabError, Result, invalid};
use crate::names::{DatasetKind, SplitKind, ValidationKind};

/// A parsed model name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSpec {
    /// Softmax regression on flattened inputs.
    Logistic,
    /// MLP with the `hidden` widths on flattened inputs.
    Mlp,
    /// Conv blocks of the `channels` widths (3×3, batch norm, ReLU, 2×2 max pool) and a dense
    /// classifier.
    Cnn,
    /// VGG-16 (CIFAR variant), optionally with batch norm.
    Vgg16 {
        /// VGG-16-BN.
        batch_norm: bool,
    },
    /// Pre-activation ResNet: bottleneck blocks when `depth = 9n + 2`, else basic blocks
    /// (`depth = 6n + 2`).
    PreResNet {
        /// Depth.
        depth: usize,
    },
    /// WideResNet-`depth`-`k`.
    WideResNet {
        /// Depth `6n + 4`.
        depth: usize,
        /// Widening factor.
        widen: usize,
    },
}

impl ModelSpec {
    /// Parse a model name (see [`MODELS`]).
    ///
    /// # Errors
    /// [`LabError::UnknownName`] listing the valid names.
    pub fn parse(name: &str) -> Result<Self> {
        let number = |s: &str| s.parse::<usize>().ok().filter(|&n| n > 0);
        let spec = match name {
            "logistic" => Some(Self::Logistic),
            "mlp" => Some(Self::Mlp),
            "cnn" => Some(Self::Cnn),
            "vgg16" => Some(Self::Vgg16 { batch_norm: false }),
            "vgg16-bn" => Some(Self::Vgg16 { batch_norm: true }),
            _ => {
                if let Some(depth) = name.strip_prefix("preresnet-").and_then(number) {
                    Some(Self::PreResNet { depth })
                } else if let Some(rest) = name.strip_prefix("wrn-") {
                    rest.split_once('-').and_then(|(d, k)| {
                        Some(Self::WideResNet {
                            depth: number(d)?,
                            widen: number(k)?,
                        })
                    })
                } else {
                    None
                }
            }
        };
        spec.ok_or_else(|| LabError::UnknownName {
            kind: "model",
            name: name.to_string(),
            valid: MODELS.to_vec(),
        })
    }

    /// Whether the family is convolutional (needs image examples `[C, H, W]`); the others
    /// take any example, flattened.
    pub fn is_convolutional(self) -> bool {
        !matches!(self, Self::Logistic | Self::Mlp)
    }
}

/// What a command does with its model, generic over the backend `BB`, the network type `M`
/// and its input rank `D` (2 or 4). [`with_model`] builds the model and calls it.
/// The rank of every network's input batch, `[N, C, H, W]`: images as they are, vectors as
/// `[N, d, 1, 1]` (see `shape_for_model`).
pub(crate) const INPUT_RANK: usize = 4;

pub(crate) trait ModelVisitor {
    /// The result (host values: the same type on every backend).
    type Output;
    /// Use the model, which lives on `device`.
    ///
    /// # Errors
    /// Whatever the command's errors are.
    fn visit<BB: Backend, M: CurvatureModel<BB, INPUT_RANK>>(
        self,
        model: M,
        device: &BB::Device,
    ) -> Result<Self::Output>;
}

/// Build `config.model` on the chosen backend (seeded with `config.seed`) for examples of
/// shape `example` (as [`shaped_dataset`] returns them) and `k` classes, and hand it to
/// `visitor`.
///
/// # Errors
/// A backend this build lacks, unknown model names, images a network cannot take (e.g.
/// VGG-16 on 8 × 8), invalid sizes, and the visitor's errors.
pub(crate) fn with_model<V: ModelVisitor>(
    config: &TrainConfig,
    backend: &BackendChoice,
    example: &[usize],
    k: usize,
    visitor: V,
) -> Result<V::Output> {
    on_backend(
        backend,
        Build {
            config,
            example,
            k,
            visitor,
        },
    )
}

/// [`with_model`]'s work on one backend.
struct Build<'a, V> {
    config: &'a TrainConfig,
    example: &'a [usize],
    k: usize,
    visitor: V,
}

impl<V: ModelVisitor> BackendVisitor for Build<'_, V> {
    type Output = V::Output;
    fn visit<BB: Backend>(self, device: BB::Device) -> Result<V::Output> {
        build_model::<BB, V>(self.config, self.example, self.k, &device, self.visitor)
    }
}

/// [`with_model`] on a backend the caller already has: build `config.model` on `device`
/// (initial weights drawn on the CPU from `config.seed`) for examples of shape `example` and
/// `k` classes, and hand it to `visitor`.
///
/// # Errors
/// As [`with_model`].
pub(crate) fn build_model<BB: Backend, V: ModelVisitor>(
    config: &TrainConfig,
    example: &[usize],
    k: usize,
    device: &BB::Device,
    visitor: V,
) -> Result<V::Output> {
    // Initial weights are drawn on the CPU backend from `config.seed` and copied to `BB`,
    // so a seed gives the same network on every f32 backend. (An f64 run draws them in f64:
    // its process claimed NdArray's float type first, `backend::claim_ndarray_dtype`, and
    // burn's NdArray samples in the claimed type — the same seed, other values.) burn's NdArray RNG is one per
    // process: seeding it and drawing must not interleave with another thread's seeded
    // initialisation (runs in parallel threads, parallel tests: CI saw a CNN's weights differ
    // between two builds from one seed), so both happen under one lock.
    let seeded = SEEDED_INIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cpu = Default::default();
    Cpu::seed(&cpu, config.seed);
    let spec = ModelSpec::parse(&config.model)?;
    let d: usize = example.iter().product();
    let image = || -> Result<(usize, [usize; 2])> {
        match example {
            [c, h, w] => Ok((*c, [*h, *w])),
            _ => Err(invalid(
                "model",
                &config.model,
                "needs image examples [C, H, W]",
            )),
        }
    };
    // Every family is held as an `AnyModel` (on images `[N, C, H, W]`; the dense models
    // flatten them), so the command's generic body is compiled for one network type.
    let (cpu_net, net): (AnyModel<Cpu>, AnyModel<BB>) = match spec {
        ModelSpec::Logistic => {
            let net = LogisticRegressionConfig::new(d, k);
            (net.init(&cpu)?.into(), net.init(device)?.into())
        }
        ModelSpec::Mlp => {
            let net = MlpConfig::new(d, config.hidden.clone(), k);
            (net.init(&cpu)?.into(), net.init(device)?.into())
        }
        ModelSpec::Cnn => {
            let (c, size) = image()?;
            let net =
                SimpleCnnConfig::new(c, size, config.channels.clone(), k).with_conv(config.conv);
            (net.init(&cpu)?.into(), net.init(device)?.into())
        }
        ModelSpec::Vgg16 { batch_norm } => {
            let (c, size) = image()?;
            let net = VggConfig {
                in_channels: c,
                image_size: size,
                ..VggConfig::vgg16(k, batch_norm).with_conv(config.conv)
            };
            (net.init(&cpu)?.into(), net.init(device)?.into())
        }
        ModelSpec::PreResNet { depth } => {
            let (c, _) = image()?;
            let block = if depth >= 11 && (depth - 2) % 9 == 0 {
                ResidualBlock::Bottleneck
            } else {
                ResidualBlock::Basic
            };
            let net = PreResNetConfig {
                in_channels: c,
                ..PreResNetConfig::new(depth, k)
                    .with_block(block)
                    .with_conv(config.conv)
            };
            (net.init(&cpu)?.into(), net.init(device)?.into())
        }
        ModelSpec::WideResNet { depth, widen } => {
            let (c, _) = image()?;
            let net = WideResNetConfig {
                in_channels: c,
                ..WideResNetConfig::new(depth, widen, k).with_conv(config.conv)
            };
            (net.init(&cpu)?.into(), net.init(device)?.into())
        }
    };
    drop(seeded);
    visitor.visit::<BB, _>(same_init(cpu_net, net, config, device)?, device)
}

/// The backend initial weights are drawn on.
type Cpu = burn::backend::NdArray<f32>;

/// Held while [`Cpu`]'s process-wide RNG is seeded and the initial weights are drawn.
static SEEDED_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `target` (on `BB`) with the tensors of `cpu` (the same network on [`Cpu`]), then `BB`
/// seeded with `config.seed` for whatever randomness follows.
fn same_init<BB: Backend, MC: Module<Cpu>, M: Module<BB>>(
    cpu: MC,
    target: M,
    config: &TrainConfig,
    device: &BB::Device,
) -> Result<M> {
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = recorder
        .record(cpu.into_record(), ())
        .map_err(|e| LabError::Device(format!("copying the initial weights: {e}")))?;
    let record = recorder
        .load(bytes, device)
        .map_err(|e| LabError::Device(format!("copying the initial weights: {e}")))?;
    BB::seed(device, config.seed);
    Ok(target.load_record(record))
}

/// Give the examples the shape every model takes, `[C, H, W]`: images keep theirs, vectors
/// become `[d, 1, 1]` (the dense models flatten their input).
///
/// # Errors
/// A convolutional model on a dataset whose examples are not images.
pub(crate) fn shape_for_model(config: &TrainConfig, data: &mut ClassificationData) -> Result<()> {
    let spec = ModelSpec::parse(&config.model)?;
    if data.example_shape.len() == 3 {
        // Images, as every model takes them (the dense ones flatten them).
    } else if !spec.is_convolutional() {
        // Vectors enter as `[d, 1, 1]`.
        data.example_shape = vec![data.example_len(), 1, 1];
    } else {
        return Err(invalid(
            "model",
            format!("{} on {}", config.model, config.data),
            "convolutional models need image data (optdigits, mnist, fashion-mnist, cifar10, cifar100)",
        ));
    }
    Ok(())
}

/// Where `config.data` is read from: `data_dir` (for CIFAR also the directory the archive
/// unpacked in it), or without one the first of `data/<name>` and `/usr/share/datasets/<name>`
/// that holds the files (`curvature_data::locate`).
///
/// # Errors
/// No `data_dir` and no copy in either place: the error names both places and how to get the
/// data.
fn data_dir(config: &TrainConfig) -> Result<PathBuf> {
    let Some(files) = config.data.files() else {
        return Ok(PathBuf::new());
    };
    Ok(match &config.data_dir {
        // A directory without the files keeps its name so the loader names what is missing.
        Some(dir) => files.files_in(dir).unwrap_or_else(|| dir.clone()),
        None => curvature_data::locate(files)?,
    })
}

/// A seeded random subset of `n` examples (all of them, in order, if `n` is absent or not
/// smaller).
fn subset(data: ClassificationData, n: Option<usize>, seed: u64) -> Result<ClassificationData> {
    match n {
        Some(n) if n < data.len() => Ok(data.split(n, seed)?.1),
        _ => Ok(data),
    }
}

/// `(train, validation)` of `config.data`, examples in their natural shape (images `[C, H, W]`;
/// see `shape_for_model`).
///
/// optdigits and the Gaussian clusters hold out `val_size` seeded examples for validation;
/// MNIST, Fashion-MNIST and CIFAR use their official test split, or with
/// `validation = "held-out"` also hold out `val_size` seeded training examples (the test split
/// then goes unused). `train_size` / `test_size` then keep seeded random subsets (e.g. the
/// LanczosOPT paper's 1 000 MNIST training images). With `classes = k` only the examples of
/// the first `k` classes are kept (before any split or subset). CIFAR is normalised per channel
/// with the training examples' statistics.
///
/// # Errors
/// Unknown names; a data directory without the dataset's files (naming them and where to get
/// them); a `val_size` that leaves no training examples.
pub fn dataset(config: &TrainConfig) -> Result<(ClassificationData, ClassificationData)> {
    let held_out = |all: ClassificationData| -> Result<_> {
        if config.val_size >= all.len() {
            return Err(invalid(
                "val_size",
                config.val_size,
                "must leave training examples",
            ));
        }
        Ok(all.split(config.val_size, config.seed)?)
    };
    // The official split's `(train, test)`, or the held-out split of its training part.
    let split = |train: ClassificationData, test: ClassificationData| match config.validation {
        ValidationKind::Auto => Ok((train, test)),
        ValidationKind::HeldOut => held_out(train),
    };
    // The first `classes` classes of a loaded dataset (before any split or subset).
    let keep = |data: ClassificationData| -> Result<_> {
        match config.classes {
            Some(k) => Ok(data.first_classes(k)?),
            None => Ok(data),
        }
    };
    let dir = data_dir(config)?;
    let (mut train, mut val) = match config.data {
        DatasetKind::Optdigits => {
            let mut all = keep(optdigits()?)?;
            all.example_shape = vec![1, 8, 8];
            held_out(all)?
        }
        DatasetKind::Clusters => held_out(gaussian_clusters(&GaussianClustersConfig {
            seed: config.seed,
            ..GaussianClustersConfig::new(config.classes.unwrap_or(10), 100)
        })?)?,
        DatasetKind::Mnist | DatasetKind::FashionMnist => {
            let image = |mut d: ClassificationData| {
                let side = (d.example_len() as f64).sqrt() as usize;
                d.example_shape = vec![1, side, d.example_len() / side.max(1)];
                d
            };
            split(
                keep(image(load_mnist(&dir, Split::Train)?))?,
                keep(image(load_mnist(&dir, Split::Test)?))?,
            )?
        }
        DatasetKind::Cifar10 | DatasetKind::Cifar100 => {
            let kind = if config.data == DatasetKind::Cifar10 {
                Cifar::Ten
            } else {
                Cifar::HundredFine
            };
            split(
                keep(kind.load(&dir, Split::Train)?)?,
                keep(kind.load(&dir, Split::Test)?)?,
            )?
        }
    };
    if matches!(config.data, DatasetKind::Cifar10 | DatasetKind::Cifar100) {
        let (mean, std) = train.channel_stats();
        train.normalize(&mean, &std)?;
        val.normalize(&mean, &std)?;
    }
    Ok((
        subset(train, config.train_size, config.seed)?,
        subset(val, config.test_size, config.seed)?,
    ))
}

/// [`dataset`] with the examples shaped for `config.model`.
///
/// # Errors
/// Those of [`dataset`] and `shape_for_model`.
pub fn shaped_dataset(config: &TrainConfig) -> Result<(ClassificationData, ClassificationData)> {
    let (mut train, mut val) = dataset(config)?;
    shape_for_model(config, &mut train)?;
    shape_for_model(config, &mut val)?;
    Ok((train, val))
}

/// Load weights into `model`: a safetensors file (PyTorch names; every tensor of the file must
/// be used, so a file of another architecture is an error rather than a partial load), or a
/// training checkpoint directory (its `model.bin`, the iterate of the last checkpoint).
pub(crate) fn load_weights<BB: Backend, M: burn::module::Module<BB>>(
    model: M,
    path: &std::path::Path,
) -> Result<M> {
    if !path.exists() {
        return Err(crate::error::io(path, "weights file not found"));
    }
    if path.is_dir() {
        let file = path.join("model");
        if !file.with_extension("bin").exists() {
            return Err(crate::error::io(
                path,
                "not a training checkpoint (no model.bin)",
            ));
        }
        let device = model.devices().into_iter().next().unwrap_or_default();
        // Written by `train`'s checkpoints with the same precision rule.
        let record = curvature_optim::load_record::<BB, _>(&file, &device).map_err(|e| {
            let message = match e {
                curvature_optim::OptimError::Record { message, .. } => message,
                other => other.to_string(),
            };
            crate::error::io(
                file.with_extension("bin"),
                format!("{message} (a checkpoint of another model or --channels/--hidden?)"),
            )
        })?;
        return Ok(model.load_record(record));
    }
    let (model, unused) =
        curvature_nets::load_safetensors(model, path, &curvature_nets::module_path)?;
    if !unused.is_empty() {
        return Err(crate::error::io(
            path,
            format!(
                "tensors not used by the model (wrong --model or --hidden?): {}",
                unused.join(", ")
            ),
        ));
    }
    Ok(model)
}

/// The training part of `config.data`, or its validation / test part (`val` and `test` name
/// the same examples), shaped for `config.model`.
pub(crate) fn split(config: &TrainConfig, which: SplitKind) -> Result<ClassificationData> {
    let (train, val) = shaped_dataset(config)?;
    Ok(match which {
        SplitKind::Train => train,
        SplitKind::Test => val,
    })
}
