//! Models and datasets by name, shared by every command.

use burn::tensor::backend::Backend;
use curvature_data::{ClassificationData, GaussianClustersConfig, gaussian_clusters, optdigits};
use curvature_nets::{LogisticRegression, LogisticRegressionConfig, Mlp, MlpConfig};

use crate::config::TrainConfig;
use crate::error::{Result, invalid};

/// A model built from a configuration's `model` name.
pub(crate) enum AnyModel<B: Backend> {
    Logistic(LogisticRegression<B>),
    Mlp(Mlp<B>),
}

/// Build `config.model` for `d` inputs and `k` classes (call `B::seed` first).
pub(crate) fn build_model<B: Backend>(
    config: &TrainConfig,
    d: usize,
    k: usize,
    device: &B::Device,
) -> Result<AnyModel<B>> {
    Ok(match config.model.as_str() {
        "logistic" => AnyModel::Logistic(LogisticRegressionConfig::new(d, k).init(device)?),
        _ => AnyModel::Mlp(MlpConfig::new(d, config.hidden.clone(), k).init(device)?),
    })
}

/// `(train, validation)` split of `config.data` (seeded by `config.seed`).
pub(crate) fn dataset(config: &TrainConfig) -> Result<(ClassificationData, ClassificationData)> {
    let all = match config.data.as_str() {
        "optdigits" => optdigits()?,
        _ => gaussian_clusters(&GaussianClustersConfig {
            seed: config.seed,
            ..GaussianClustersConfig::new(config.classes, 100)
        })?,
    };
    if config.val_size >= all.len() {
        return Err(invalid(
            "val_size",
            config.val_size,
            "must leave training examples",
        ));
    }
    Ok(all.split(config.val_size, config.seed)?)
}

/// Load weights (safetensors, PyTorch names) into `model`; every tensor of the file must be
/// used, so a file of another architecture is an error rather than a partial load.
pub(crate) fn load_weights<BB: Backend, M: burn::module::Module<BB>>(
    model: M,
    path: &std::path::Path,
) -> Result<M> {
    if !path.exists() {
        return Err(crate::error::io(path, "weights file not found"));
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

/// The training or validation part of `config.data`.
pub(crate) fn split(config: &TrainConfig, which: &str) -> Result<ClassificationData> {
    if !matches!(which, "train" | "val") {
        return Err(crate::error::LabError::UnknownName {
            kind: "split",
            name: which.to_string(),
            valid: vec!["train", "val"],
        });
    }
    let (train, val) = dataset(config)?;
    Ok(if which == "train" { train } else { val })
}
