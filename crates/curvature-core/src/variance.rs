//! The Hessian variance of Granziol & Baskerville, *A Random Matrix Theory Approach to Damping
//! in Deep Learning*: the optimal damping of eq. 15 and its estimate, Algorithm 1.
//!
//! # What is estimated
//!
//! Eq. 15 sets the damping of a preconditioned step to `δ* = P⁻¹ Tr X²`, the mean squared
//! eigenvalue of the mini-batch noise `X = H_batch − H̄`. On a sub-sample of `S` examples split
//! into `n` batches of sizes `B_i` (weights `w_i = B_i / S`), with batch-mean Hessians `H_i` and
//! `H̄ = Σ_i w_i H_i`, the batch-level quantity is
//!
//! ```text
//! V_batch = P⁻¹ Tr Σ_i w_i (H_i − H̄)².
//! ```
//!
//! # The unbiased estimator (default, [`VarianceEstimator::Unbiased`])
//!
//! For a vector `v` uniform on the unit sphere `E_v[vᵀ A v] = P⁻¹ Tr A`, so
//!
//! ```text
//! σ²(v) = Σ_i w_i ‖(H_i − H̄) v‖² = Σ_i w_i ‖H_i v‖² − ‖H̄ v‖²,     E_v σ²(v) = V_batch,
//! ```
//!
//! accumulating `H̄v = Σ_i w_i H_i v` as a vector (a weighted Welford update, so that no
//! cancellation between the two terms is suffered). With a single batch (`H_i = H̄`) it is
//! exactly 0.
//!
//! # Algorithm 1 as printed ([`VarianceEstimator::AsPrinted`])
//!
//! The paper's Algorithm 1 subtracts the squared quadratic form instead:
//! `Σ_i w_i ‖H_i v‖² − (vᵀH̄v)²`. It exceeds `σ²(v)` by `‖H̄v‖² − (vᵀH̄v)² ≥ 0` (Cauchy–Schwarz),
//! a bias that does not vanish without noise: identical batches still give a positive value.
//! It is kept, by name, for fidelity comparisons with the paper. (Its printed loop also lacks
//! the `1/n` of the first sum; the weights `w_i` restore it, as eq. 15 requires.)
//!
//! # From batches of the estimation size to the training batch
//!
//! If the `S` examples are split into batches at random, each `H_i` is the mean of `B_i`
//! examples drawn without replacement, so `E ‖H_i − H̄‖²_F = s² (1/B_i − 1/S)` with `s²` the
//! per-example sample variance `(S − 1)⁻¹ Σ_j ‖h_j − H̄‖²_F`. Summing with the weights,
//! `E Σ_i w_i ‖H_i − H̄‖²_F = s² (n − 1)/S` — for equal and ragged batches alike, so a ragged
//! last batch is weighted correctly and need not be dropped. Hence the per-example variance
//! (per parameter)
//!
//! ```text
//! s²/P ≈ V_batch · S / (n − 1)          (n ≥ 2; a single batch carries no information on it)
//! ```
//!
//! and the damping for training batches of size `B` drawn from a training set of `N` examples
//! (`X = H_batch − H_emp`, damping paper eq. A.3):
//!
//! ```text
//! δ*(B) = (s²/P) (1/B − 1/N).
//! ```
//!
//! The finite-population correction of the estimate uses the sub-sample size `S`; that of the
//! training noise uses the training-set size `N`. The paper estimates on a sub-sample of
//! 10 000 examples in batches of 128 (§7); with equal batches of the training size and `N = S`,
//! `δ*(B) = V_batch`.
//!
//! # Error bars
//!
//! `σ²(v)` is averaged over `vectors` independent unit vectors; the reported standard error is
//! the sample standard deviation of the per-vector values over `√vectors` (Monte-Carlo error
//! over `v` for the fixed sub-sample). One vector gives no error bar.
//!
//! # Sharded objectives
//!
//! On an objective made one peer's shard by
//! [`Objective::with_peers`](crate::Objective::with_peers), each peer accumulates its own
//! batches (those within the first `max_examples` of the data set, counting the shards in rank
//! order) and the accumulators are merged across peers by Chan, Golub & LeVeque's update (two
//! all-reduces per estimate): the same estimate as one process over the same batches, up to
//! summation order.

use std::fmt;
use std::str::FromStr;

use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::error::{CurvatureError, Result as CResult, invalid};
use crate::model::CurvatureModel;
use crate::objective::Objective;
use crate::random_vector::{derive_seed, gaussian_vector};
use crate::reduce::{dot, to_host};
use crate::slq::mean_stderr;

/// Which single-vector estimator of the Hessian variance to average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum VarianceEstimator {
    /// `Σ_i w_i ‖H_i v‖² − ‖H̄v‖²`: unbiased for `P⁻¹ Tr Σ_i w_i (H_i − H̄)²`; 0 without noise.
    #[default]
    Unbiased,
    /// Algorithm 1 as printed, `Σ_i w_i ‖H_i v‖² − (vᵀH̄v)²`: biased upwards by
    /// `‖H̄v‖² − (vᵀH̄v)² ≥ 0`, kept for fidelity comparisons.
    AsPrinted,
}

impl VarianceEstimator {
    /// Every estimator, in the order of [`VarianceEstimator::name`]s listed in errors and help.
    pub const ALL: [Self; 2] = [Self::Unbiased, Self::AsPrinted];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unbiased => "unbiased",
            Self::AsPrinted => "as-printed",
        }
    }

    /// What the estimator computes, for printed reports.
    pub fn description(self) -> &'static str {
        match self {
            Self::Unbiased => "unbiased: Σ w_i ‖H_i v‖² − ‖H̄v‖² (eq. 15)",
            Self::AsPrinted => {
                "Algorithm 1 as printed: Σ w_i ‖H_i v‖² − (vᵀH̄v)² (biased up by ‖H̄v‖² − (vᵀH̄v)²)"
            }
        }
    }
}

impl fmt::Display for VarianceEstimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for VarianceEstimator {
    type Err = CurvatureError;
    fn from_str(s: &str) -> CResult<Self> {
        Self::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| invalid("estimator", s, "unknown; valid: unbiased, as-printed"))
    }
}

/// Configuration of [`hessian_variance`].
#[derive(Config, Debug)]
pub struct HessianVarianceConfig {
    /// Use the objective's batches until this many examples are covered (the sub-sample `S`;
    /// 10 000 in the paper). The batch structure is the objective's: build it with batches of
    /// the estimation size (128 in the paper).
    #[config(default = 10_000)]
    pub max_examples: usize,
    /// Number of independent random unit vectors `v` averaged (≥ 2 gives a standard error).
    #[config(default = 4)]
    pub vectors: usize,
    /// Seed of the vectors: vector 0 uses `seed`, vector `k` a seed derived from it.
    #[config(default = 0)]
    pub seed: u64,
    /// The single-vector estimator.
    #[config(default = "VarianceEstimator::Unbiased")]
    pub estimator: VarianceEstimator,
}

impl HessianVarianceConfig {
    /// Check the configuration.
    ///
    /// # Errors
    /// [`CurvatureError::InvalidConfig`] for `max_examples = 0` or `vectors = 0`.
    pub fn validate(&self) -> CResult<()> {
        if self.max_examples == 0 {
            return Err(invalid(
                "max_examples",
                0,
                "the sub-sample must contain at least one example",
            ));
        }
        if self.vectors == 0 {
            return Err(invalid(
                "vectors",
                0,
                "at least one random vector is needed",
            ));
        }
        Ok(())
    }

    /// The seeded Gaussian vectors `v_0, …` of this configuration (normalised by the
    /// estimator).
    pub fn random_vectors<B: Backend>(&self, dim: usize, device: &B::Device) -> Vec<Tensor<B, 1>> {
        (0..self.vectors)
            .map(|k| {
                let seed = if k == 0 {
                    self.seed
                } else {
                    derive_seed(self.seed, k as u64)
                };
                gaussian_vector::<B>(dim, seed, device)
            })
            .collect()
    }
}

/// The Hessian variance with its error bar, the per-example variance and the damping it
/// implies. Serialises to JSON with these field names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HessianVariance {
    /// The single-vector estimator averaged.
    pub estimator: VarianceEstimator,
    /// `V_batch`: the mean over vectors of the single-vector estimates — the per-parameter
    /// variance `P⁻¹ Tr Σ_i w_i (H_i − H̄)²` of the batch Hessians at the estimation batch size.
    pub batch_variance: f64,
    /// Standard error of `batch_variance` over the vectors (`None` for one vector).
    pub batch_variance_stderr: Option<f64>,
    /// `s²/P = V_batch · S / (n − 1)`: the per-example variance (`None` for one batch).
    pub per_example_variance: Option<f64>,
    /// Its standard error over the vectors.
    pub per_example_variance_stderr: Option<f64>,
    /// `vᵀH̄v`, mean over vectors.
    pub mean_quadratic_form: f64,
    /// `Σ_i w_i ‖H_i v‖²`, mean over vectors.
    pub mean_squared_norm: f64,
    /// The single-vector estimates, one per vector.
    pub per_vector: Vec<f64>,
    /// Number of mini-batches `n`.
    pub batches: usize,
    /// Number of examples used `S`.
    pub examples: usize,
}

impl HessianVariance {
    /// The number of random vectors averaged.
    pub fn vectors(&self) -> usize {
        self.per_vector.len()
    }

    /// The mean batch size `S / n` of the estimate.
    pub fn mean_batch_size(&self) -> f64 {
        self.examples as f64 / self.batches.max(1) as f64
    }

    /// The optimal damping of eq. 15 for training batches of `batch_size` examples drawn from
    /// a training set of `population` examples (`None`: infinite, factor `1/B`):
    /// `δ* = (s²/P)(1/B − 1/N)`, never negative. `None` when the per-example variance is
    /// unknown (a single estimation batch) or `batch_size = 0`.
    pub fn damping_for(&self, batch_size: usize, population: Option<usize>) -> Option<f64> {
        let s2 = self.per_example_variance?;
        (batch_size > 0).then(|| s2 * fpc(batch_size, population))
    }

    /// The standard error of [`damping_for`](Self::damping_for).
    pub fn damping_stderr_for(&self, batch_size: usize, population: Option<usize>) -> Option<f64> {
        let se = self.per_example_variance_stderr?;
        (batch_size > 0).then(|| se * fpc(batch_size, population))
    }
}

/// `(1/B − 1/N)⁺`, or `1/B` without a population size.
fn fpc(batch_size: usize, population: Option<usize>) -> f64 {
    let inv_n = population.map_or(0.0, |n| 1.0 / n.max(1) as f64);
    (1.0 / batch_size as f64 - inv_n).max(0.0)
}

/// The Hessian variance over the objective's batches up to `config.max_examples` examples,
/// averaged over `config.vectors` seeded unit vectors (module docs: estimator, rescaling,
/// error bar).
///
/// # Errors
/// Invalid configuration and the errors of [`Objective::batch_hvp`].
pub fn hessian_variance<B: Backend, M: CurvatureModel<B, D>, const D: usize>(
    objective: &Objective<B, M, D>,
    config: &HessianVarianceConfig,
) -> CResult<HessianVariance> {
    config.validate()?;
    let vectors = config.random_vectors::<B>(objective.dim(), objective.device());
    hessian_variance_along(objective, vectors, config.max_examples, config.estimator)
}

/// One vector's running sums: the weighted mean `H̄v` (Welford), the weighted sum of squared
/// deviations `Σ w_i ‖H_i v − H̄v‖²` and `Σ w_i ‖H_i v‖²`.
struct Accumulator<B: Backend> {
    v: Tensor<B, 1>,
    mean: Option<Tensor<B, 1>>,
    deviation: f64,
    squared_norm: f64,
}

/// The Hessian variance along given vectors (each normalised internally).
///
/// # Errors
/// `max_examples = 0`, no vectors, a zero or wrongly sized vector, and the errors of
/// [`Objective::batch_hvp`].
pub fn hessian_variance_along<B: Backend, M: CurvatureModel<B, D>, const D: usize>(
    objective: &Objective<B, M, D>,
    vectors: Vec<Tensor<B, 1>>,
    max_examples: usize,
    estimator: VarianceEstimator,
) -> CResult<HessianVariance> {
    HessianVarianceConfig::new()
        .with_max_examples(max_examples)
        .with_vectors(vectors.len())
        .validate()?;
    let mut acc = vectors
        .into_iter()
        .map(|v| {
            objective.layout().check(&v, "vector v")?;
            let norm = dot(&v, &v).sqrt();
            if !(norm.is_finite() && norm > 0.0) {
                return Err(CurvatureError::NonFinite(
                    "vector v (zero or non-finite norm)".into(),
                ));
            }
            Ok(Accumulator {
                v: v.mul_scalar(1.0 / norm),
                mean: None,
                deviation: 0.0,
                squared_norm: 0.0,
            })
        })
        .collect::<CResult<Vec<_>>>()?;
    // Weights are accumulated as example counts and normalised at the end (w_i = B_i / S).
    // On a sharded objective this peer's batches come after those of the peers before it.
    let offset = objective.examples_before_this_shard();
    let (mut batches, mut examples) = (0usize, 0usize);
    objective.for_each_batch(&mut |batch| {
        if offset + examples >= max_examples {
            return Ok(());
        }
        let b = batch.len() as f64;
        let total = (examples + batch.len()) as f64;
        for a in &mut acc {
            let (_, hv) = objective.batch_hvp(batch, &a.v)?;
            a.squared_norm += b * dot(&hv, &hv);
            // West's weighted update: δ = x − m, m ← m + (b/W) δ, M2 ← M2 + b ⟨δ, x − m⟩.
            let mean = match a.mean.take() {
                None => {
                    a.mean = Some(hv);
                    continue;
                }
                Some(m) => m,
            };
            let delta = hv.clone() - mean.clone();
            let mean = mean + delta.clone().mul_scalar(b / total);
            a.deviation += b * dot(&delta, &(hv - mean.clone()));
            a.mean = Some(mean);
        }
        batches += 1;
        examples += batch.len();
        Ok(())
    })?;
    let (batches, examples) = combine_peers(objective, &mut acc, batches, examples)?;
    if examples == 0 {
        return Err(CurvatureError::InvalidData(
            "the objective has no examples to estimate the Hessian variance on".into(),
        ));
    }
    let s = examples as f64;
    let (mut per_vector, mut quad, mut sq) = (Vec::new(), Vec::new(), Vec::new());
    for a in &acc {
        let mean = a.mean.as_ref().expect("at least one batch was seen");
        let q = dot(mean, &a.v);
        let squared_norm = a.squared_norm / s;
        per_vector.push(match estimator {
            VarianceEstimator::Unbiased => a.deviation / s,
            VarianceEstimator::AsPrinted => squared_norm - q * q,
        });
        quad.push(q);
        sq.push(squared_norm);
    }
    let (batch_variance, batch_variance_stderr) = mean_stderr(&per_vector);
    let rescale = (batches >= 2).then(|| s / (batches - 1) as f64);
    Ok(HessianVariance {
        estimator,
        batch_variance,
        batch_variance_stderr,
        per_example_variance: rescale.map(|r| r * batch_variance),
        per_example_variance_stderr: rescale.zip(batch_variance_stderr).map(|(r, e)| r * e),
        mean_quadratic_form: mean_stderr(&quad).0,
        mean_squared_norm: mean_stderr(&sq).0,
        per_vector,
        batches,
        examples,
    })
}

/// On a sharded objective, merge the peers' accumulators into those of all their batches
/// (Chan, Golub & LeVeque's pairwise update, for `p` groups at once): with `n_q` examples,
/// weighted mean `m_q` and squared deviations `M_q` on peer `q`,
///
/// `n = Σ n_q`, `m = Σ n_q m_q / n`, `M = Σ_q M_q + Σ_q n_q ‖m_q − m‖²`,
///
/// and `Σ b ‖H_i v‖²` adds. Two all-reduces: the sums, then the between-peer term.
fn combine_peers<B: Backend, M: CurvatureModel<B, D>, const D: usize>(
    objective: &Objective<B, M, D>,
    acc: &mut [Accumulator<B>],
    batches: usize,
    examples: usize,
) -> CResult<(usize, usize)> {
    let Some(group) = objective.peer_group() else {
        return Ok((batches, examples));
    };
    let (p, device) = (objective.dim(), objective.device());
    let host = |values: Vec<f64>| crate::reduce::from_host::<B>(values, device);
    let mut parts = Vec::with_capacity(2 * acc.len() + 1);
    for a in acc.iter() {
        parts.push(match &a.mean {
            Some(m) => m.clone().mul_scalar(examples as f64),
            None => Tensor::zeros([p], device),
        });
        parts.push(host(vec![a.deviation, a.squared_norm]));
    }
    parts.push(host(vec![examples as f64, batches as f64]));
    let summed = group.all_reduce_sum(Tensor::cat(parts, 0))?;
    let tail = to_host(
        &summed
            .clone()
            .slice(acc.len() * (p + 2)..acc.len() * (p + 2) + 2),
    );
    let (total, total_batches) = (tail[0].round() as usize, tail[1].round() as usize);
    if total == 0 {
        return Ok((0, 0));
    }
    let mut between = Vec::with_capacity(acc.len());
    let mut means = Vec::with_capacity(acc.len());
    for (j, a) in acc.iter_mut().enumerate() {
        let at = j * (p + 2);
        let mean = summed
            .clone()
            .slice(at..at + p)
            .mul_scalar(1.0 / total as f64);
        let sums = to_host(&summed.clone().slice(at + p..at + p + 2));
        between.push(match &a.mean {
            Some(m) => {
                let d = m.clone() - mean.clone();
                examples as f64 * dot(&d, &d)
            }
            None => 0.0,
        });
        (a.deviation, a.squared_norm) = (sums[0], sums[1]);
        means.push(mean);
    }
    let between = to_host(&group.all_reduce_sum(host(between))?);
    for ((a, mean), extra) in acc.iter_mut().zip(means).zip(between) {
        a.mean = Some(mean);
        a.deviation += extra;
    }
    Ok((total_batches, total))
}
