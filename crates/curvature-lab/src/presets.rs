//! Bundled experiment presets (`crates/curvature-lab/presets/*.toml`, embedded in the binary).
//!
//! A preset is a TOML file with a `description`, the `paper` it reproduces, a `[train]` table
//! of [`TrainConfig`] keys and an optional `[grid]` table (`key = [values]`) for
//! `curvature sweep`.

use serde::Deserialize;

use crate::config::TrainConfig;
use crate::error::{LabError, Result, io};

/// `(name, TOML source)` of every bundled preset.
const SOURCES: [(&str, &str); 28] = [
    (
        "l2-sharpness-logreg-mini",
        include_str!("../presets/l2-sharpness-logreg-mini.toml"),
    ),
    (
        "l2-sharpness-mlp-mini",
        include_str!("../presets/l2-sharpness-mlp-mini.toml"),
    ),
    (
        "l2-sharpness-cnn-mini",
        include_str!("../presets/l2-sharpness-cnn-mini.toml"),
    ),
    (
        "l2-sharpness-resnets-mini",
        include_str!("../presets/l2-sharpness-resnets-mini.toml"),
    ),
    (
        "sagun-batch-mini",
        include_str!("../presets/sagun-batch-mini.toml"),
    ),
    (
        "sagun-clusters-mini",
        include_str!("../presets/sagun-clusters-mini.toml"),
    ),
    (
        "sagun-clusters",
        include_str!("../presets/sagun-clusters.toml"),
    ),
    (
        "sagun-batch-mnist",
        include_str!("../presets/sagun-batch-mnist.toml"),
    ),
    (
        "sagun-width-fashion-mnist",
        include_str!("../presets/sagun-width-fashion-mnist.toml"),
    ),
    (
        "sagun-batch-fashion-mnist",
        include_str!("../presets/sagun-batch-fashion-mnist.toml"),
    ),
    (
        "lanczosopt-grid-mini",
        include_str!("../presets/lanczosopt-grid-mini.toml"),
    ),
    (
        "adam-eps-grid-mini",
        include_str!("../presets/adam-eps-grid-mini.toml"),
    ),
    (
        "kfac-grid-mini",
        include_str!("../presets/kfac-grid-mini.toml"),
    ),
    (
        "optimizers-mini",
        include_str!("../presets/optimizers-mini.toml"),
    ),
    (
        "auto-damping-mini",
        include_str!("../presets/auto-damping-mini.toml"),
    ),
    // Full size: the papers' data and hyper-parameters (dataset files needed).
    (
        "l2-sharpness-logreg-mnist",
        include_str!("../presets/l2-sharpness-logreg-mnist.toml"),
    ),
    (
        "l2-sharpness-logreg-fashion-mnist",
        include_str!("../presets/l2-sharpness-logreg-fashion-mnist.toml"),
    ),
    (
        "optimizers-cnn-fashion-mnist",
        include_str!("../presets/optimizers-cnn-fashion-mnist.toml"),
    ),
    (
        "lanczosopt-mnist",
        include_str!("../presets/lanczosopt-mnist.toml"),
    ),
    (
        "lanczosopt-fashion-mnist",
        include_str!("../presets/lanczosopt-fashion-mnist.toml"),
    ),
    (
        "gadam-vs-sgd-mini",
        include_str!("../presets/gadam-vs-sgd-mini.toml"),
    ),
    (
        "true-hessian-mini",
        include_str!("../presets/true-hessian-mini.toml"),
    ),
    (
        "gadam-vs-sgd-vgg16bn-cifar100",
        include_str!("../presets/gadam-vs-sgd-vgg16bn-cifar100.toml"),
    ),
    (
        "true-hessian-preresnet110-cifar100",
        include_str!("../presets/true-hessian-preresnet110-cifar100.toml"),
    ),
    (
        "l2-sharpness-resnets-cifar100",
        include_str!("../presets/l2-sharpness-resnets-cifar100.toml"),
    ),
    (
        "damping-table1-vgg16-cifar100",
        include_str!("../presets/damping-table1-vgg16-cifar100.toml"),
    ),
    (
        "damping-table2-vgg16-cifar100",
        include_str!("../presets/damping-table2-vgg16-cifar100.toml"),
    ),
    (
        "auto-damping-vgg16-cifar100",
        include_str!("../presets/auto-damping-vgg16-cifar100.toml"),
    ),
];

/// A parsed preset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Its name (the file name).
    #[serde(skip)]
    pub name: String,
    /// One line on what it shows.
    pub description: String,
    /// The paper and section it reproduces.
    pub paper: String,
    /// The run configuration.
    pub train: TrainConfig,
    /// The sweep grid (empty: a single run).
    #[serde(default)]
    pub grid: toml::Table,
    /// Commands to run on the finished sweep (e.g. spectra over other data), `{out}` standing
    /// for its output directory.
    #[serde(default)]
    pub then: Vec<String>,
}

impl Preset {
    /// The grid as `(key, values)`, keys sorted by name (the first is the heat map's rows),
    /// values as JSON.
    pub fn grid(&self) -> Vec<(String, Vec<serde_json::Value>)> {
        self.grid
            .iter()
            .map(|(k, v)| {
                let values = match v {
                    toml::Value::Array(a) => a.iter().map(to_json).collect(),
                    other => vec![to_json(other)],
                };
                (k.clone(), values)
            })
            .collect()
    }
}

fn to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Every bundled preset, in listing order.
///
/// # Errors
/// A malformed bundled file (a bug; the unit tests parse them all).
pub fn presets() -> Result<Vec<Preset>> {
    SOURCES
        .iter()
        .map(|(name, text)| {
            let mut p: Preset =
                toml::from_str(text).map_err(|e| io(format!("presets/{name}.toml"), e))?;
            p.name = (*name).to_string();
            Ok(p)
        })
        .collect()
}

/// The preset called `name`.
///
/// # Errors
/// An unknown name lists the valid ones.
pub fn preset(name: &str) -> Result<Preset> {
    presets()?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| LabError::UnknownName {
            kind: "preset",
            name: name.to_string(),
            valid: SOURCES.iter().map(|s| s.0).collect(),
        })
}
