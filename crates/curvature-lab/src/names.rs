//! The closed sets of names of the experiment runner, one enum each.
//!
//! Each enum is the single source of its names: serde reads and writes them in configuration
//! files, presets and `config.json` (kebab-case, as `"adam-d"` or `"crop-flip"`; the metrics
//! in snake_case as the CSV columns), clap parses them on the command line and lists them in
//! `--help` (`ValueEnum`), and an unknown name is refused with the valid ones listed — by
//! serde (`unknown variant ..., expected one of ...`) or clap (`possible values: ...`). Code
//! matches on the variants, so no name can fall through to a silent default.
//!
//! Model and dataset names stay strings with their own parser ([`crate::setup::ModelSpec`]:
//! `preresnet-<depth>`, `wrn-<depth>-<k>` are families, not a closed set).

use std::fmt;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// `Display` as the name used in files and on the command line.
macro_rules! display_as_value_name {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let value = self.to_possible_value().expect("no variant is skipped");
                f.write_str(value.get_name())
            }
        }
    )*};
}

/// The burn backend a command computes on.
///
/// The default ([`BackendKind::default_for`]) is the fastest deterministic CPU backend of the
/// build: Flex for f32 when the `flex` feature is on (the `curvature` command's default build),
/// NdArray otherwise and for f64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// burn's NdArray on the CPU, f32 or f64.
    Ndarray,
    /// wgpu (Vulkan, Metal, DX12), f32; a build with the cargo feature `wgpu`.
    Wgpu,
    /// CUDA, f32; a build with the cargo feature `cuda`.
    Cuda,
    /// burn's Flex CPU backend, f32; a build with the cargo feature `flex`.
    Flex,
}

impl Default for BackendKind {
    /// [`BackendKind::default_for`] f32.
    fn default() -> Self {
        Self::default_for(Precision::F32)
    }
}

impl BackendKind {
    /// The CPU backend used unless another is named: Flex for f32 in a build with the `flex`
    /// feature — 1.2–3.8× NdArray's speed on the MLP's and the CNN's gradient, HVP and
    /// optimiser steps (about equal on PreResNet-20), and with its threads on still
    /// bit-reproducible whatever the thread count (docs/benchmarks.md, "Flex with threads, the
    /// default f32 CPU backend") — and NdArray otherwise, and always for f64.
    pub fn default_for(precision: Precision) -> Self {
        if cfg!(feature = "flex") && precision == Precision::F32 {
            Self::Flex
        } else {
            Self::Ndarray
        }
    }

    /// Whether the device runs asynchronously (a GPU): timings must synchronise.
    pub fn is_gpu(self) -> bool {
        matches!(self, Self::Wgpu | Self::Cuda)
    }

    /// Whether the backend computes in f64 (NdArray only).
    pub fn has_f64(self) -> bool {
        matches!(self, Self::Ndarray)
    }
}

/// The float precision of a computation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// 32-bit floats (every backend).
    #[default]
    F32,
    /// 64-bit floats (NdArray only).
    F64,
}

/// A dataset: optdigits (embedded) and the Gaussian clusters are offline; MNIST,
/// Fashion-MNIST and CIFAR are read from `data_dir`, by default the first of `data/<name>` and
/// `/usr/share/datasets/<name>` that holds them (`curvature_data::locate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// UCI optdigits, 8 × 8 handwritten digits, embedded in the crate.
    #[default]
    Optdigits,
    /// Gaussian clusters drawn from the seed (`classes` of them, 100 dimensions).
    Clusters,
    /// MNIST (IDX files).
    Mnist,
    /// Fashion-MNIST (IDX files).
    FashionMnist,
    /// CIFAR-10 (binary version).
    #[value(name = "cifar10")]
    #[serde(rename = "cifar10")]
    Cifar10,
    /// CIFAR-100 (binary version, fine labels).
    #[value(name = "cifar100")]
    #[serde(rename = "cifar100")]
    Cifar100,
}

impl DatasetKind {
    /// Whether the examples are images (`[C, H, W]`): all but the Gaussian clusters.
    pub fn has_images(self) -> bool {
        !matches!(self, Self::Clusters)
    }

    /// The file-based dataset behind this name (`None` for the offline ones).
    pub fn files(self) -> Option<curvature_data::DownloadableDataset> {
        use curvature_data::DownloadableDataset as D;
        match self {
            Self::Optdigits | Self::Clusters => None,
            Self::Mnist => Some(D::Mnist),
            Self::FashionMnist => Some(D::FashionMnist),
            Self::Cifar10 => Some(D::Cifar10),
            Self::Cifar100 => Some(D::Cifar100),
        }
    }
}

/// The optimiser of a training run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// SGD with momentum.
    Sgd,
    /// Adam (L2 weight decay unless `decoupled`).
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
    /// Adam with a large ε = damping (damping paper §6; default ε 5e-3).
    AdamD,
    /// AdamW with iterate averaging (*Flatness* paper).
    Gadam,
    /// KFAC (dense and KFC convolution factors).
    Kfac,
    /// LanczosOPT (damping paper §5).
    LanczosOpt,
}

impl OptimizerKind {
    /// Whether the optimiser has a damping (`δ` of KFAC/LanczosOPT, `ε` of the Adam family).
    pub fn has_damping(self) -> bool {
        !matches!(self, Self::Sgd)
    }
    /// Whether weight decay is decoupled by default (AdamW, Gadam).
    pub fn decouples_weight_decay(self) -> bool {
        matches!(self, Self::Adamw | Self::Gadam)
    }
}

/// The learning-rate schedule of a training run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// The base learning rate throughout.
    Constant,
    /// Cosine decay to zero.
    Cosine,
    /// *Flatness* eq. 12: constant, then linear decay to 1 % of the base rate.
    LinearDecay,
    /// *Flatness* eq. 13: eq. 12 towards α₀/2 at the averaging start (needs averaging).
    AveragingDecay,
    /// Damping paper eq. 16: warm ramp, then decay.
    WarmRamp,
}

/// Training-time augmentation of image data, drawn anew every epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AugmentKind {
    /// No augmentation.
    None,
    /// A random crop of the image padded by side/8 pixels of black.
    Crop,
    /// A random crop and a random horizontal flip (the CIFAR recipe).
    CropFlip,
}

impl AugmentKind {
    /// The augmentation for images of side `side`: padding side/8 (at least 1) pixels
    /// (4 for CIFAR's 32×32, 1 for optdigits' 8×8); `None` for [`AugmentKind::None`].
    pub fn for_side(self, side: usize) -> Option<curvature_data::Augmentation> {
        let pad = (side / 8).max(1);
        match self {
            Self::None => None,
            Self::Crop => Some(curvature_data::Augmentation { pad, flip: false }),
            Self::CropFlip => Some(curvature_data::Augmentation { pad, flip: true }),
        }
    }
}

/// A final metric of a run (the column names of `metrics.csv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Metric {
    /// Validation accuracy.
    ValAccuracy,
    /// Validation loss.
    ValLoss,
    /// Training loss.
    TrainLoss,
    /// Training accuracy.
    TrainAccuracy,
}

impl Metric {
    /// Whether lower is better (a loss; drawn on a log scale).
    pub fn is_loss(self) -> bool {
        matches!(self, Self::ValLoss | Self::TrainLoss)
    }
}

/// The curvature operator of a spectrum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OperatorKind {
    /// The exact Hessian of the loss.
    Hessian,
    /// The generalised Gauss–Newton matrix.
    Ggn,
    /// Hessian minus GGN (the part from the network's second derivatives).
    HessianMinusGgn,
}

/// The outlier rule of a spectrum (`--outliers`), at its standard setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OutlierKind {
    /// Marchenko–Pastur bulk edge fitted to the SLQ moments, plus 3 Tracy–Widom scales.
    #[default]
    Mp,
    /// Clusters split at gaps larger than 10 × the median gap; outliers lie above the
    /// heaviest.
    Gap,
}

impl OutlierKind {
    /// The rule: [`curvature_core::OutlierRule::MarchenkoPastur`] with `tracy_widom = 3` or
    /// [`curvature_core::OutlierRule::Gap`] with `factor = 10`.
    pub fn rule(self) -> curvature_core::OutlierRule {
        match self {
            Self::Mp => curvature_core::OutlierRule::default(),
            Self::Gap => curvature_core::OutlierRule::Gap { factor: 10.0 },
        }
    }
}

/// Where the validation examples come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ValidationKind {
    /// The dataset's official test split where it has one (MNIST, Fashion-MNIST, CIFAR);
    /// `val_size` examples held out of the rest (optdigits, clusters).
    #[default]
    Auto,
    /// `val_size` seeded examples held out of the training split, for every dataset (e.g. the
    /// *Flatness* paper's 45 000 / 5 000 split of MNIST: `val_size = 5000`,
    /// `train_size = 45000`).
    HeldOut,
}

/// Which part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SplitKind {
    /// The training examples.
    Train,
    /// The held-out examples: the validation part of optdigits and the clusters, the
    /// official test split of MNIST and CIFAR (also written `val`).
    #[serde(alias = "val")]
    #[value(alias = "val")]
    Test,
}

display_as_value_name!(
    BackendKind,
    Precision,
    DatasetKind,
    OptimizerKind,
    ScheduleKind,
    AugmentKind,
    Metric,
    OperatorKind,
    OutlierKind,
    SplitKind,
    ValidationKind
);
