//! Damping policies, shared by curvature optimisers (KFAC, LanczosOPT) and Adam (whose `ε`
//! is its damping).
//!
//! Damping `δ` enters a preconditioned step as `1/(λ_i + δ)`. Granziol & Baskerville (*A
//! Random Matrix Theory Approach to Damping in Deep Learning*) read this as linear shrinkage,
//! eq. 13: `1/(λ + δ) = (1/κ)·1/(βλ + 1 − β)`, `β = 1/(1 + δ)`, and derive the optimal damping
//! `δ* = P⁻¹ Tr X²` — the variance of the mini-batch Hessian noise `X` (eq. 15), estimated by
//! by [`curvature_core::hessian_variance`] (unbiased; Algorithm 1 as printed on request).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use curvature_core::{
    CurvatureModel, HessianVariance, HessianVarianceConfig, Objective, derive_seed,
    hessian_variance,
};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// The estimated-curvature learning-rate ratio `R = 1 + (λ_1 − λ_P)/δ`: how much faster the
/// best-conditioned direction moves than the worst under damping `δ` (damping paper §5).
pub fn curvature_lr_ratio(lambda_max: f64, lambda_min: f64, damping: f64) -> f64 {
    1.0 + (lambda_max - lambda_min) / damping
}

/// A rule that sets the damping `δ` over training.
pub trait DampingPolicy {
    /// The current damping `δ > 0`.
    fn damping(&self) -> f64;
}

/// A damping value shared between the code that runs a [`DampingPolicy`] and an optimiser that
/// reads it at every step — how a learned damping reaches burn optimisers such as
/// [`Adam`](crate::Adam) (whose `ε` is its damping; see
/// [`AdamConfig::init_damped`](crate::AdamConfig::init_damped)). Clones share the value.
#[derive(Debug, Clone)]
pub struct DampingCell(Arc<AtomicU64>);

impl DampingCell {
    /// A cell holding `δ`.
    ///
    /// # Errors
    /// `δ ≤ 0` or not finite.
    pub fn new(delta: f64) -> Result<Self> {
        let cell = Self(Arc::new(AtomicU64::new(0)));
        cell.set(delta)?;
        Ok(cell)
    }

    /// Replace the value.
    ///
    /// # Errors
    /// `δ ≤ 0` or not finite (the value is kept).
    pub fn set(&self, delta: f64) -> Result<()> {
        if !(delta.is_finite() && delta > 0.0) {
            return Err(invalid("DampingCell", "delta", delta, "must be positive"));
        }
        self.0.store(delta.to_bits(), Ordering::Relaxed);
        Ok(())
    }

    /// Copy the current damping of `policy` into the cell.
    pub fn follow(&self, policy: &dyn DampingPolicy) -> Result<()> {
        self.set(policy.damping())
    }
}

impl DampingPolicy for DampingCell {
    fn damping(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// A constant damping.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FixedDamping {
    delta: f64,
}

impl FixedDamping {
    /// `δ` fixed.
    ///
    /// # Errors
    /// `δ ≤ 0` or not finite.
    pub fn new(delta: f64) -> Result<Self> {
        if !(delta.is_finite() && delta > 0.0) {
            return Err(invalid("FixedDamping", "delta", delta, "must be positive"));
        }
        Ok(Self { delta })
    }
}

impl DampingPolicy for FixedDamping {
    fn damping(&self) -> f64 {
        self.delta
    }
}

/// Levenberg–Marquardt adaptation (Martens & Grosse 2015, §6.5): every `T₁ = interval` steps,
/// with the reduction ratio `ρ = (L(w_new) − L(w)) / (q(Δ) − q(0))` of the actual to the
/// quadratic model's predicted change, `δ ← ω δ` if `ρ > 3/4`, `δ ← δ / ω` if `ρ < 1/4`, with
/// `ω = (19/20)^{T₁}` — the per-step factor 19/20 of Martens (2010) compounded over the `T₁`
/// steps between adaptations (K-FAC paper §6.5; `T₁ = 5`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevenbergMarquardt {
    delta: f64,
    /// Steps between adaptations `T₁`.
    interval: usize,
    steps: usize,
}

impl LevenbergMarquardt {
    /// Start at `δ₀` with `T₁ = 5`, `ω = (19/20)⁵`.
    ///
    /// # Errors
    /// `δ₀ ≤ 0`.
    pub fn new(initial: f64) -> Result<Self> {
        if !(initial.is_finite() && initial > 0.0) {
            return Err(invalid(
                "LevenbergMarquardt",
                "initial",
                initial,
                "must be positive",
            ));
        }
        Ok(Self {
            delta: initial,
            interval: 5,
            steps: 0,
        })
    }

    /// Adapt every `T₁ = interval` steps, with `ω = (19/20)^{T₁}`.
    ///
    /// # Errors
    /// `interval = 0`.
    pub fn with_interval(mut self, interval: usize) -> Result<Self> {
        if interval == 0 {
            return Err(invalid(
                "LevenbergMarquardt",
                "interval",
                0,
                "must be positive",
            ));
        }
        self.interval = interval;
        Ok(self)
    }

    /// The factor `ω = (19/20)^{T₁}` (Martens & Grosse §6.5), derived from the interval.
    pub fn omega(&self) -> f64 {
        (19.0f64 / 20.0).powi(self.interval as i32)
    }

    /// The adaptation interval `T₁`.
    pub fn interval(&self) -> usize {
        self.interval
    }

    /// Record one step's reduction ratio; adapts every `interval` steps. A non-finite ratio
    /// (a failed step) counts as a bad step.
    pub fn observe(&mut self, reduction_ratio: f64) {
        self.steps += 1;
        if !self.steps.is_multiple_of(self.interval) {
            return;
        }
        if !reduction_ratio.is_finite() || reduction_ratio < 0.25 {
            self.delta /= self.omega();
        } else if reduction_ratio > 0.75 {
            self.delta *= self.omega();
        }
    }
}

impl DampingPolicy for LevenbergMarquardt {
    fn damping(&self) -> f64 {
        self.delta
    }
}

/// RMT auto-damping (damping paper §7): start at the floor `δ*`; every `interval` steps
/// (100 in the paper) estimate the optimal damping of eq. 15 for the training batch
/// ([`HessianVariance::damping_for`](curvature_core::HessianVariance::damping_for): the
/// unbiased Hessian variance on a sub-sample of 10 000 examples in batches of 128, rescaled from
/// the estimation batch size to the training batch size), smooth it with an exponential moving
/// average `δ ← ema·δ + (1 − ema)·δ̂` (`ema = 0.7`), and never go below the floor. Every
/// re-estimate draws fresh random vectors, as Algorithm 1 draws a new `v`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmtDamping {
    floor: f64,
    /// Steps between re-estimates `N`.
    pub interval: usize,
    /// EMA coefficient on the previous value.
    pub ema: f64,
    delta: f64,
    steps: usize,
    /// `(step, δ)` after every update — the damping trajectory.
    pub trajectory: Vec<(usize, f64)>,
    /// Training batch size `B` and training-set size `N` the damping is for (`None`: the
    /// estimation batches themselves, `δ̂ = V_batch`).
    #[serde(default)]
    pub training_batch: Option<(usize, Option<usize>)>,
    /// Every Hessian-variance re-estimate behind the trajectory (by
    /// [`step_estimating`](Self::step_estimating)): the per-example and per-batch variances with
    /// their standard errors, the damping `δ̂` they imply and the `δ` used after the moving
    /// average and the floor. Empty in checkpoints written before it was recorded.
    #[serde(default)]
    pub estimates: Vec<RmtEstimate>,
}

/// One re-estimate of [`RmtDamping`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmtEstimate {
    /// Optimiser steps taken when it was made.
    pub step: usize,
    /// `V_batch`, the Hessian variance of the estimation batches (`P⁻¹ Σ_i w_i‖H_i − H̄‖²_F`).
    pub batch_variance: f64,
    /// Its standard error over the random vectors.
    pub batch_variance_stderr: Option<f64>,
    /// `s²/P`, the per-example variance (`None` for a single estimation batch).
    pub per_example_variance: Option<f64>,
    /// Its standard error.
    pub per_example_variance_stderr: Option<f64>,
    /// `δ̂`, the damping this estimate implies for the training batch.
    pub estimate: f64,
    /// `δ` after the update: `max(ema·δ + (1 − ema)·δ̂, floor)`.
    pub delta: f64,
}

impl RmtDamping {
    /// Floor `δ*`, `N = 100`, EMA 0.7.
    ///
    /// # Errors
    /// `δ* ≤ 0`.
    pub fn new(floor: f64) -> Result<Self> {
        if !(floor.is_finite() && floor > 0.0) {
            return Err(invalid("RmtDamping", "floor", floor, "must be positive"));
        }
        Ok(Self {
            floor,
            interval: 100,
            ema: 0.7,
            delta: floor,
            steps: 0,
            trajectory: Vec::new(),
            training_batch: None,
            estimates: Vec::new(),
        })
    }

    /// Estimate the damping for training batches of `batch_size` examples drawn from
    /// `population` examples (`None`: an infinite population): `δ̂ = (s²/P)(1/B − 1/N)`.
    ///
    /// # Errors
    /// `batch_size = 0`.
    pub fn for_training_batch(
        mut self,
        batch_size: usize,
        population: Option<usize>,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(invalid("RmtDamping", "batch_size", 0, "must be positive"));
        }
        self.training_batch = Some((batch_size, population));
        Ok(self)
    }

    /// The damping `δ̂` one variance estimate implies for this policy's training batch.
    ///
    /// # Errors
    /// A training batch is set but the estimate has a single batch, from which the
    /// per-example variance cannot be told.
    pub fn estimate_from(&self, variance: &HessianVariance) -> Result<f64> {
        damping_estimate(self.training_batch, variance)
    }

    /// The configuration of the next re-estimate: `config` with a seed derived from its seed
    /// and the step count, so that every re-estimate draws fresh vectors (and a resumed run
    /// draws the same ones).
    pub fn next_config(&self, config: &HessianVarianceConfig) -> HessianVarianceConfig {
        config
            .clone()
            .with_seed(derive_seed(config.seed, self.steps as u64))
    }

    /// Set the re-estimation interval and EMA coefficient.
    ///
    /// # Errors
    /// `interval = 0` or `ema ∉ [0, 1)`.
    pub fn with_schedule(mut self, interval: usize, ema: f64) -> Result<Self> {
        if interval == 0 {
            return Err(invalid("RmtDamping", "interval", 0, "must be positive"));
        }
        if !(0.0..1.0).contains(&ema) {
            return Err(invalid("RmtDamping", "ema", ema, "must lie in [0, 1)"));
        }
        self.interval = interval;
        self.ema = ema;
        Ok(self)
    }

    /// The floor `δ*`.
    pub fn floor(&self) -> f64 {
        self.floor
    }

    /// Count one optimiser step; every `interval` steps call `estimate` for a fresh `σ²` and
    /// update `δ`. Returns whether an update happened.
    ///
    /// # Errors
    /// Errors of `estimate`; a negative or non-finite estimate is ignored (keeps `δ`) rather
    /// than trusted — see the returned `false`.
    pub fn step(&mut self, estimate: impl FnOnce() -> Result<f64>) -> Result<bool> {
        self.steps += 1;
        if !self.steps.is_multiple_of(self.interval) {
            return Ok(false);
        }
        let sigma2 = estimate()?;
        if !(sigma2.is_finite() && sigma2 >= 0.0) {
            return Ok(false);
        }
        self.delta = (self.ema * self.delta + (1.0 - self.ema) * sigma2).max(self.floor);
        self.trajectory.push((self.steps, self.delta));
        Ok(true)
    }

    /// [`step`](Self::step) with a Hessian-variance estimate: `estimate` is called (only when
    /// the interval is reached) with the configuration of this re-estimate — fresh vectors each
    /// time ([`next_config`](Self::next_config)) — and its result is rescaled by
    /// [`estimate_from`](Self::estimate_from). For callers that build the sub-sample's
    /// objective only when it is needed.
    ///
    /// # Errors
    /// Errors of `estimate` and [`estimate_from`](Self::estimate_from).
    pub fn step_estimating(
        &mut self,
        config: &HessianVarianceConfig,
        estimate: impl FnOnce(&HessianVarianceConfig) -> Result<HessianVariance>,
    ) -> Result<bool> {
        let config = self.next_config(config);
        let training_batch = self.training_batch;
        let mut variance = None;
        let updated = self.step(|| {
            let v = estimate(&config)?;
            let delta = damping_estimate(training_batch, &v)?;
            variance = Some((v, delta));
            Ok(delta)
        })?;
        if let (true, Some((v, estimate))) = (updated, variance) {
            self.estimates.push(RmtEstimate {
                step: self.steps,
                batch_variance: v.batch_variance,
                batch_variance_stderr: v.batch_variance_stderr,
                per_example_variance: v.per_example_variance,
                per_example_variance_stderr: v.per_example_variance_stderr,
                estimate,
                delta: self.delta,
            });
        }
        Ok(updated)
    }

    /// [`step_estimating`](Self::step_estimating) with [`hessian_variance`] on `objective`
    /// (whose data is the sub-sample, in batches of the estimation size).
    ///
    /// # Errors
    /// Errors of [`hessian_variance`] and [`estimate_from`](Self::estimate_from).
    pub fn step_with<B: burn::tensor::backend::Backend, M: CurvatureModel<B, D>, const D: usize>(
        &mut self,
        objective: &Objective<B, M, D>,
        config: &HessianVarianceConfig,
    ) -> Result<bool> {
        self.step_estimating(config, |c| Ok(hessian_variance(objective, c)?))
    }
}

/// `δ̂` for training batches `(B, N)` (`None`: the estimation batches themselves).
fn damping_estimate(
    training_batch: Option<(usize, Option<usize>)>,
    variance: &HessianVariance,
) -> Result<f64> {
    match training_batch {
        None => Ok(variance.batch_variance),
        Some((b, n)) => variance.damping_for(b, n).ok_or_else(|| {
            invalid(
                "RmtDamping",
                "sub-sample",
                format!("{} example(s) in {} batch", variance.examples, variance.batches),
                "needs at least two estimation batches to rescale the Hessian variance to the training batch size",
            )
        }),
    }
}

impl DampingPolicy for RmtDamping {
    fn damping(&self) -> f64 {
        self.delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmt_follows_an_ema_of_the_estimates_and_respects_the_floor() {
        let mut d = RmtDamping::new(0.01)
            .unwrap()
            .with_schedule(2, 0.7)
            .unwrap();
        assert!(
            !d.step(|| panic!("no estimate before the interval"))
                .unwrap()
        );
        assert!(d.step(|| Ok(1.0)).unwrap());
        assert!((d.damping() - (0.7 * 0.01 + 0.3 * 1.0)).abs() < 1e-15);
        // Repeated estimates of the same σ² converge geometrically to σ².
        for _ in 0..200 {
            d.step(|| Ok(0.5)).unwrap();
        }
        assert!((d.damping() - 0.5).abs() < 1e-12);
        // Below the floor: clamped.
        for _ in 0..200 {
            d.step(|| Ok(0.0)).unwrap();
        }
        assert_eq!(d.damping(), 0.01);
        assert!(!d.trajectory.is_empty());
        assert!(RmtDamping::new(0.0).is_err());
        assert!(RmtDamping::new(1.0).unwrap().with_schedule(0, 0.7).is_err());
    }

    #[test]
    fn levenberg_marquardt_adapts_every_interval() {
        let mut lm = LevenbergMarquardt::new(1.0).unwrap();
        for _ in 0..4 {
            lm.observe(0.9);
        }
        assert_eq!(lm.damping(), 1.0, "no change before T_adapt = 5 steps");
        lm.observe(0.9);
        // Martens & Grosse §6.5: ω = (19/20)^{T₁} = 0.95⁵ = 0.7737809375 for T₁ = 5.
        assert!(
            (lm.damping() - 0.773_780_937_5).abs() < 1e-15,
            "good model: δ ← ωδ with ω = (19/20)^5, got {}",
            lm.damping()
        );
        for _ in 0..5 {
            lm.observe(0.1);
        }
        assert!((lm.damping() - 1.0).abs() < 1e-12, "bad model: δ ← δ/ω");
        // T₁ = 1 is Martens (2010)'s per-step rule, ω = 19/20.
        let mut every = LevenbergMarquardt::new(1.0)
            .unwrap()
            .with_interval(1)
            .unwrap();
        every.observe(0.9);
        assert_eq!(every.damping(), 0.95);
        assert_eq!((every.interval(), lm.interval()), (1, 5));
        assert!(
            LevenbergMarquardt::new(1.0)
                .unwrap()
                .with_interval(0)
                .is_err()
        );
        for _ in 0..5 {
            lm.observe(0.5);
        }
        assert!(
            (lm.damping() - 1.0).abs() < 1e-12,
            "0.25 ≤ ρ ≤ 0.75: unchanged"
        );
        assert!(FixedDamping::new(-1.0).is_err());
        assert!((curvature_lr_ratio(10.0, -1.0, 0.1) - 111.0).abs() < 1e-12);
    }
}
