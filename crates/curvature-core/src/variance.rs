//! The Hessian variance of Granziol & Baskerville, *A Random Matrix Theory Approach to Damping
//! in Deep Learning*, Algorithm 1 / eq. 15.
//!
//! With mini-batch Hessians `H_i` (of the batch-mean loss) and a unit vector `v`,
//!
//! ```text
//! σ² = Σ_i w_i vᵀH_i²v − (vᵀ H̄ v)²,   H̄ = Σ_i w_i H_i,   vᵀH_i²v = ‖H_i v‖²,
//! ```
//!
//! with `w_i = B_i / S` (equal weights `1/n` for equal batches). Algorithm 1 as printed omits the
//! `1/n` of the first sum; the variance needs it, as eq. 15 shows. The optimal damping is
//! `δ* = P⁻¹ Tr X² ≈ σ²` (eq. 15) for the per-batch noise `X = H_i − H̄`; the paper estimates
//! it on a sub-sample (default 10 000 examples) in batches of 128, noting that the batch
//! variance is the per-example one times `(1/B − 1/N)`.

use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::Serialize;

use crate::error::{CurvatureError, Result as CResult, invalid};
use crate::model::CurvatureModel;
use crate::objective::Objective;
use crate::random_vector::gaussian_vector;
use crate::reduce::dot;

/// Configuration of [`hessian_variance`].
#[derive(Config, Debug)]
pub struct HessianVarianceConfig {
    /// Use the objective's batches until this many examples are covered (the sub-sample `S`).
    #[config(default = 10_000)]
    pub max_examples: usize,
    /// Seed of the Gaussian vector `v`.
    #[config(default = 0)]
    pub seed: u64,
}

/// The Hessian variance and its diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HessianVariance {
    /// `σ² = mean ‖H_i v‖² − (mean vᵀH_i v)²`.
    pub variance: f64,
    /// `mean_i vᵀH_i v = vᵀH̄v`.
    pub mean_quadratic_form: f64,
    /// `mean_i ‖H_i v‖²`.
    pub mean_squared_norm: f64,
    /// Number of mini-batches `n`.
    pub batches: usize,
    /// Number of examples used `S`.
    pub examples: usize,
}

/// Algorithm 1 with a seeded Gaussian `v`, over the objective's batches up to
/// `config.max_examples` examples (the batch structure is the data source's: build the
/// objective with batches of 128 to follow the paper).
///
/// # Errors
/// Invalid configuration and the errors of [`Objective::batch_hvp`].
pub fn hessian_variance<B: Backend, M: CurvatureModel<B, D>, const D: usize>(
    objective: &Objective<B, M, D>,
    config: &HessianVarianceConfig,
) -> CResult<HessianVariance> {
    let v = gaussian_vector::<B>(objective.dim(), config.seed, objective.device());
    hessian_variance_along(objective, v, config.max_examples)
}

/// Algorithm 1 along a given vector `v` (normalised internally).
///
/// # Errors
/// `max_examples = 0`, a zero or wrongly sized `v`, and the errors of [`Objective::batch_hvp`].
pub fn hessian_variance_along<B: Backend, M: CurvatureModel<B, D>, const D: usize>(
    objective: &Objective<B, M, D>,
    v: Tensor<B, 1>,
    max_examples: usize,
) -> CResult<HessianVariance> {
    if max_examples == 0 {
        return Err(invalid(
            "max_examples",
            0,
            "the sub-sample must contain at least one example",
        ));
    }
    objective.layout().check(&v, "vector v")?;
    let norm = dot(&v, &v).sqrt();
    if !(norm.is_finite() && norm > 0.0) {
        return Err(CurvatureError::NonFinite(
            "vector v (zero or non-finite norm)".into(),
        ));
    }
    let v = v.mul_scalar(1.0 / norm);
    let (mut quad, mut sq, mut batches, mut examples) = (Vec::new(), Vec::new(), 0usize, 0usize);
    objective.for_each_batch(&mut |batch| {
        if examples >= max_examples {
            return Ok(());
        }
        let (_, hv) = objective.batch_hvp(batch, &v)?;
        quad.push((dot(&hv, &v), batch.len()));
        sq.push(dot(&hv, &hv));
        batches += 1;
        examples += batch.len();
        Ok(())
    })?;
    let total = examples as f64;
    let mean_quadratic_form: f64 = quad.iter().map(|(q, b)| q * *b as f64 / total).sum();
    let mean_squared_norm: f64 = sq
        .iter()
        .zip(&quad)
        .map(|(s, (_, b))| s * *b as f64 / total)
        .sum();
    Ok(HessianVariance {
        variance: mean_squared_norm - mean_quadratic_form.powi(2),
        mean_quadratic_form,
        mean_squared_norm,
        batches,
        examples,
    })
}
