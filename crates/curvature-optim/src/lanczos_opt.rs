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
//! "LOPT\[η\]" perturbations. Negative Ritz values would make `λ + δ` vanish or flip sign:
//! `f(λ) = |λ|` by default (a saddle-free step, Dauphin et al. 2014) or `max(λ, 0)` with
//! [`NegativeCurvature::Clip`].

use std::time::Instant;

use burn::config::Config;
use burn::record::Record;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::reduce::{dot, to_host};
use curvature_core::{CurvatureModel, LanczosConfig, Objective, lanczos};
use serde::{Deserialize, Serialize};

use crate::damping::DampingPolicy;
use crate::data_parallel::PeerGroup;
use crate::error::{OptimError, Result as OResult, invalid};
use crate::observe::{Observers, StepObserver, StepReport, StepTimings};

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
            observers: Observers::default(),
            peers: None,
        })
    }
}

/// Saved state of [`LanczosOpt`]: the Ritz pairs in use and the update count, enough to
/// continue bit-identically (the next refresh happens at the same update).
#[derive(Record, Clone)]
pub struct LanczosOptRecord<B: Backend> {
    /// Updates taken.
    pub updates: usize,
    /// Ritz values `λ_i`.
    pub ritz_values: Vec<f64>,
    /// Ritz vectors `Φ` `[k, P]`, if computed.
    pub ritz_vectors: Option<Tensor<B, 2>>,
}

/// The LanczosOPT optimiser (see the [module docs](self)).
pub struct LanczosOpt<B: Backend> {
    config: LanczosOptConfig,
    pairs: Option<(Vec<f64>, Tensor<B, 2>)>,
    updates: usize,
    observers: Observers,
    peers: Option<PeerGroup<B>>,
}

impl<B: Backend> LanczosOpt<B> {
    /// This optimiser as one peer of the data-parallel `group`: the objective of every
    /// [`TrainingStep`](crate::TrainingStep) step is the peer's share of the global batch made
    /// global ([`Objective::with_peers`](curvature_core::Objective::with_peers)), so its
    /// gradient and every Hessian-vector product of the Lanczos run are the global batch's and
    /// every peer computes the same Ritz pairs and step.
    pub fn with_peers(mut self, group: PeerGroup<B>) -> Self {
        self.peers = Some(group);
        self
    }

    /// The data-parallel group, if any ([`with_peers`](Self::with_peers)).
    pub fn peer_group(&self) -> Option<&PeerGroup<B>> {
        self.peers.as_ref()
    }

    /// Add an observer that receives every update's [`StepReport`].
    pub fn observe(&mut self, observer: impl StepObserver + 'static) {
        self.observers.push(observer);
    }

    /// Updates taken.
    pub fn updates(&self) -> usize {
        self.updates
    }

    /// The state as a burn record.
    pub fn to_record(&self) -> LanczosOptRecord<B> {
        LanczosOptRecord {
            updates: self.updates,
            ritz_values: self.pairs.as_ref().map(|p| p.0.clone()).unwrap_or_default(),
            ritz_vectors: self.pairs.as_ref().map(|p| p.1.clone()),
        }
    }

    /// Restore a state saved by [`to_record`](Self::to_record).
    ///
    /// # Errors
    /// Ritz values and vectors of different counts.
    pub fn load_record(mut self, record: LanczosOptRecord<B>) -> OResult<Self> {
        self.pairs = match record.ritz_vectors {
            Some(phi) => {
                if phi.dims()[0] != record.ritz_values.len() {
                    return Err(OptimError::InvalidInput(format!(
                        "LanczosOPT record: {} Ritz values for {} Ritz vectors",
                        record.ritz_values.len(),
                        phi.dims()[0]
                    )));
                }
                Some((record.ritz_values, phi))
            }
            None => None,
        };
        self.updates = record.updates;
        Ok(self)
    }

    /// One update of the objective's parameters with learning rate `α` and the damping of
    /// `damping`. The objective plays the role of the closure that re-evaluates loss, gradient
    /// and Hessian-vector products on the current batch.
    ///
    /// Returns the step's [`StepReport`] (`curvature_range` = the extreme Ritz values).
    ///
    /// # Errors
    /// `α ≤ 0`, `δ ≤ 0`, a non-finite loss ([`OptimError::NonFiniteLoss`]) and curvature
    /// errors — all before any change to the parameters.
    pub fn step<M: CurvatureModel<B, D>, const D: usize>(
        &mut self,
        objective: &mut Objective<B, M, D>,
        lr: f64,
        damping: &dyn DampingPolicy,
    ) -> OResult<StepReport> {
        let start = Instant::now();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(invalid("LanczosOpt::step", "lr", lr, "must be positive"));
        }
        let delta = damping.damping();
        if !(delta.is_finite() && delta > 0.0) {
            return Err(invalid(
                "LanczosOpt::step",
                "damping",
                delta,
                "must be positive",
            ));
        }
        let (loss, g) = objective.gradient()?;
        if !loss.is_finite() {
            return Err(OptimError::NonFiniteLoss(loss));
        }
        let refreshed = self.pairs.is_none() || self.updates.is_multiple_of(self.config.refresh);
        let curvature_start = Instant::now();
        if refreshed {
            let cfg = LanczosConfig::new()
                .with_steps(self.config.rank)
                .with_keep_basis(true)
                .with_seed(self.config.seed.wrapping_add(self.updates as u64));
            let run = lanczos(&objective.hessian(), &cfg)?;
            self.pairs = Some((run.ritz_values.clone(), run.ritz_vectors()?));
        }
        let curvature = curvature_start.elapsed();
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
            + (g.clone() - projected).mul_scalar(1.0 / delta);
        // q(−αu) − q(0) = −α gᵀu + ½α² Σ_i λ_i (φ_iᵀu)²: the Ritz model of H (zero curvature
        // outside the Krylov space).
        let predicted_change = {
            let cu = to_host(&phi.clone().matmul(update.clone().reshape([p, 1])));
            let curv: f64 = values.iter().zip(&cu).map(|(l, c)| l * c * c).sum();
            -lr * dot(&g, &update) + 0.5 * lr * lr * curv
        };
        objective.set_params(objective.params() - update.mul_scalar(lr))?;
        let range = (
            values.iter().cloned().fold(f64::MIN, f64::max),
            values.iter().cloned().fold(f64::MAX, f64::min),
        );
        let report = StepReport {
            optimizer: "lanczos_opt",
            step: self.updates,
            loss,
            lr,
            damping: Some(delta),
            curvature_range: Some(range),
            curvature_ratio: Some(crate::curvature_lr_ratio(range.0, range.1, delta)),
            predicted_change: Some(predicted_change),
            refreshed,
            timings: StepTimings {
                total: start.elapsed(),
                curvature,
            },
        };
        self.updates += 1;
        self.observers.notify(&report);
        Ok(report)
    }
}
