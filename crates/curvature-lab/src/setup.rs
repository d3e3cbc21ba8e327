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
