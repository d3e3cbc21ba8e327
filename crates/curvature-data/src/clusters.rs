//! Synthetic k-Gaussian-cluster classification (Sagun et al., *Empirical Analysis of the
//! Hessian of Over-Parametrized Neural Networks*, §3.1 and App. A).
//!
//! Class means `μ_c ~ N(0, I_d)`; examples `x = μ_c + ε`, `ε ~ N(0, s I_d)` with the
//! covariance multiplier `s` (1 or 10 in the paper); then the data are normalised globally
//! (zero mean and unit standard deviation over all coordinates of all examples). The paper
//! uses `d = 100` and `k ∈ {2, 5, 10, 20, 50}`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::classification::ClassificationData;
use crate::error::{DataError, Result};

/// Configuration of [`gaussian_clusters`].
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianClustersConfig {
    /// Number of clusters = classes `k`.
    pub num_classes: usize,
    /// Input dimension `d` (100 in the paper).
    pub num_features: usize,
    /// Examples drawn from each cluster.
    pub examples_per_class: usize,
    /// Covariance multiplier `s`.
    pub covariance_scale: f64,
    /// Seed.
    pub seed: u64,
}

impl GaussianClustersConfig {
    /// `k` clusters in 100 dimensions, `n` examples each, `s = 1`, seed 0.
    pub fn new(num_classes: usize, examples_per_class: usize) -> Self {
        Self {
            num_classes,
            num_features: 100,
            examples_per_class,
            covariance_scale: 1.0,
            seed: 0,
        }
    }
}

/// Sample the dataset (examples interleaved by class: 0, 1, …, k−1, 0, 1, …).
///
/// # Errors
/// [`DataError::InvalidArgument`] for zero sizes or a non-positive covariance multiplier.
pub fn gaussian_clusters(config: &GaussianClustersConfig) -> Result<ClassificationData> {
    let (k, d, n) = (
        config.num_classes,
        config.num_features,
        config.examples_per_class,
    );
    if k == 0 || d == 0 || n == 0 {
        return Err(DataError::InvalidArgument {
            name: "num_classes/num_features/examples_per_class",
            value: format!("{k}/{d}/{n}"),
            reason: "must be positive",
        });
    }
    if !(config.covariance_scale.is_finite() && config.covariance_scale > 0.0) {
        return Err(DataError::InvalidArgument {
            name: "covariance_scale",
            value: config.covariance_scale.to_string(),
            reason: "must be positive",
        });
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let means: Vec<Vec<f64>> = (0..k)
        .map(|_| (0..d).map(|_| rng.sample(StandardNormal)).collect())
        .collect();
    let sd = config.covariance_scale.sqrt();
    let mut x = Vec::with_capacity(k * n * d);
    let mut labels = Vec::with_capacity(k * n);
    for _ in 0..n {
        for (c, mean) in means.iter().enumerate() {
            x.extend(
                mean.iter()
                    .map(|m| m + sd * rng.sample::<f64, _>(StandardNormal)),
            );
            labels.push(c);
        }
    }
    let len = x.len() as f64;
    let mu = x.iter().sum::<f64>() / len;
    let std = (x.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / len).sqrt();
    ClassificationData::new(
        x.iter().map(|v| ((v - mu) / std) as f32).collect(),
        vec![d],
        labels,
        k,
    )
}
