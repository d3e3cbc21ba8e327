//! LanczosOPT (Granziol & Baskerville, *A Random Matrix Theory Approach to Damping in Deep
//! Learning*, eq. 9): a damped Newton step in the Krylov subspace of the batch Hessian.
//!
//! Every `refresh` updates, `k` Lanczos steps on the Hessian `H` of the objective give Ritz
//! pairs `(λ_i, φ_i)`. The update is
//!
//! ```text
//! w ← w − α ( (1/η) Σ_{i≤k} φ_i φ_iᵀ g / (f(λ_i) + δ)  +  (1/δ) (I − ΦΦᵀ) g ),
//! ```
//!
//! `g = ∇L`: curvature-scaled in the Krylov directions and gradient descent with step `α/δ`
//! in the orthogonal complement. `η = 1` is the plain optimiser, `η = 3, 10` the paper's
//! "LOPT[η]" perturbations. Negative Ritz values would make `λ + δ` vanish or flip sign:
//! `f(λ) = |λ|` by default (a saddle-free step, Dauphin et al. 2014) or `max(λ, 0)` with
//! [`NegativeCurvature::Clip`].

use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::{CurvatureModel, LanczosConfig, Objective, lanczos};
use serde::{Deserialize, Serialize};

use crate::damping::DampingPolicy;
use crate::error::{Result as OResult, invalid};

/// How negative Ritz values enter `1/(f(λ) + δ)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NegativeCurvature {
    /// `f(λ) = |λ|`.
    Absolute,
    /// `f(λ) = max(λ, 0)`.
    Clip,
}

/// Configuration of [`LanczosOpt`].
#[derive(Config, Debug)]
pub struct LanczosOptConfig {
    /// Lanczos steps `k` (50 in the paper's MNIST experiments).
    #[config(default = 50)]
    pub rank: usize,
    /// Recompute the Ritz pairs every this many updates (1 = every update).
    #[config(default = 1)]
    pub refresh: usize,
    /// Perturbation factor `η > 0` (1 = plain LanczosOPT).
    #[config(default = 1.0)]
    pub eta: f64,
    /// Negative Ritz value handling.
    #[config(default = "NegativeCurvature::Absolute")]
    pub negative: NegativeCurvature,
    /// Seed of the Lanczos start vectors.
    #[config(default = 0)]
    pub seed: u64,
}

impl LanczosOptConfig {
    /// Check and build.
    ///
    /// # Errors
    /// `rank = 0`, `refresh = 0` or `η ≤ 0`.
    pub fn init<B: Backend>(&self) -> OResult<LanczosOpt<B>> {
        if self.rank == 0 {
            return Err(invalid(
                "LanczosOptConfig",
                "rank",
                0,
                "needs at least one Lanczos step",
            ));
        }
        if self.refresh == 0 {
            return Err(invalid(
                "LanczosOptConfig",
                "refresh",
                0,
                "must be positive",
            ));
        }
        if !(self.eta.is_finite() && self.eta > 0.0) {
            return Err(invalid(
                "LanczosOptConfig",
                "eta",
                self.eta,
                "must be positive",
            ));
        }
        Ok(LanczosOpt {
            config: self.clone(),
            pairs: None,
            updates: 0,
        })
    }
}

/// What one update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LanczosOptReport {
    /// Loss before the update.
    pub loss: f64,
    /// Damping `δ` used.
    pub damping: f64,
    /// Largest and smallest Ritz value in use.
    pub ritz_range: (f64, f64),
    /// Whether the Ritz pairs were recomputed.
    pub refreshed: bool,
}

/// The LanczosOPT optimiser (see the [module docs](self)).
pub struct LanczosOpt<B: Backend> {
    config: LanczosOptConfig,
    pairs: Option<(Vec<f64>, Tensor<B, 2>)>,
    updates: usize,
}

impl<B: Backend> LanczosOpt<B> {
    /// One update of the objective's parameters with learning rate `α` and the damping of
    /// `damping`. The objective plays the role of the closure that re-evaluates loss, gradient
    /// and Hessian-vector products on the current batch.
    ///
    /// # Errors
    /// `α ≤ 0`, and curvature errors (a NaN loss stops the step before any change).
    pub fn step<M: CurvatureModel<B, D>, const D: usize>(
        &mut self,
        objective: &mut Objective<B, M, D>,
        lr: f64,
        damping: &dyn DampingPolicy,
    ) -> OResult<LanczosOptReport> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(invalid("LanczosOpt::step", "lr", lr, "must be positive"));
        }
        let delta = damping.damping();
        let (loss, g) = objective.gradient()?;
        let refreshed = self.pairs.is_none() || self.updates % self.config.refresh == 0;
        if refreshed {
            let cfg = LanczosConfig::new()
                .with_steps(self.config.rank)
                .with_keep_basis(true)
                .with_seed(self.config.seed.wrapping_add(self.updates as u64));
            let run = lanczos(&objective.hessian(), &cfg)?;
            self.pairs = Some((run.ritz_values.clone(), run.ritz_vectors()?));
        }
        let (values, phi) = self.pairs.as_ref().expect("computed above");
        let (k, p) = (phi.dims()[0], phi.dims()[1]);
        // c = Φ g; projected = Φᵀ c; curvature part = Φᵀ (c / (f(λ) + δ)).
        let c = phi.clone().matmul(g.clone().reshape([p, 1])); // [k, 1]
        let scale: Vec<f64> = values
            .iter()
            .map(|&l| {
                let f = match self.config.negative {
                    NegativeCurvature::Absolute => l.abs(),
                    NegativeCurvature::Clip => l.max(0.0),
                };
                1.0 / (f + delta)
            })
            .collect();
        let scale =
            Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(scale, [k, 1]), &g.device());
        let phi_t = phi.clone().transpose();
        let projected = phi_t.clone().matmul(c.clone()).reshape([p]);
        let curvature_part = phi_t.matmul(c * scale).reshape([p]);
        let update = curvature_part.mul_scalar(1.0 / self.config.eta)
            + (g - projected).mul_scalar(1.0 / delta);
        objective.set_params(objective.params() - update.mul_scalar(lr))?;
        self.updates += 1;
        let ritz_range = (
            values.iter().cloned().fold(f64::MIN, f64::max),
            values.iter().cloned().fold(f64::MAX, f64::min),
        );
        Ok(LanczosOptReport {
            loss,
            damping: delta,
            ritz_range,
            refreshed,
        })
    }
}
