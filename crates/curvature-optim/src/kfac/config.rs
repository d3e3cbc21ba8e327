//! KFAC's configuration: the Fisher estimate, the damping split, the update intervals and
//! moving average, momentum, weight decay and KL clipping, validated when [`Kfac`] is built.

use super::*;

/// Which output gradients the `G` factor is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FisherEstimate {
    /// One label per example sampled from the model's predictive distribution (softmax for
    /// cross-entropy, `N(z, K/2·I)` for the squared error): an unbiased estimate of the
    /// Fisher = GGN. Costs one extra forward/backward on factor steps.
    Sampled,
    /// The batch's own labels ("empirical Fisher"): free, biased (Kunstner et al. 2019).
    Empirical,
    /// The exact expectation over the output distribution: `K` backward passes, each with one
    /// column of a square root of the output Hessian.
    Exact,
}

/// How the damping `δ` is applied to the Kronecker factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DampingSplit {
    /// `(G ⊗ A + δI)⁻¹` exactly, in the factors' eigenbases.
    Eigen,
    /// `(G + √δ/π I)⁻¹ ⊗ (A + π√δ I)⁻¹` (Martens & Grosse §6.3).
    PiSplit,
}

/// Configuration of [`Kfac`].
#[derive(Config, Debug)]
pub struct KfacConfig {
    /// EMA coefficient `ξ ∈ [0, 1)` of the factors (0 = use the latest batch only).
    #[config(default = 0.95)]
    pub stat_decay: f64,
    /// Update the factors every `T_cov` steps.
    #[config(default = 10)]
    pub cov_interval: usize,
    /// Eigendecompose the factors every `T_inv` steps.
    #[config(default = 100)]
    pub inv_interval: usize,
    /// How the damping enters.
    #[config(default = "DampingSplit::Eigen")]
    pub damping_split: DampingSplit,
    /// Which output gradients build `G`.
    #[config(default = "FisherEstimate::Sampled")]
    pub fisher: FisherEstimate,
    /// Momentum `ρ ∈ [0, 1)` on the preconditioned direction.
    #[config(default = 0.9)]
    pub momentum: f64,
    /// Decoupled weight decay `λ ≥ 0`.
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// KL clipping bound `κ > 0` (Ba et al. 2017 and kfac-pytorch use 1e-3); `None` = no
    /// clipping. Clipping keeps early steps, when the factors are poorly estimated and small
    /// damping makes `(s_G s_A + δ)⁻¹` large, from diverging.
    #[config(default = "Some(1e-3)")]
    pub kl_clip: Option<f64>,
    /// Report the change of the loss predicted by the undamped Kronecker model,
    /// `q(s) − q(0) = ⟨∇L, s⟩ + ½ sᵀ(G ⊗ A)s` for the preconditioned step `s = −αν Δ`
    /// (preconditioned layers only; momentum and weight decay not included), in
    /// [`StepReport::predicted_change`] — the denominator of the Levenberg–Marquardt reduction
    /// ratio. Costs two more matmuls per layer and step.
    #[config(default = false)]
    pub predict_change: bool,
    /// Seed of the sampled labels.
    #[config(default = 0)]
    pub seed: u64,
}

impl KfacConfig {
    fn validate(&self) -> OResult<()> {
        if !(0.0..1.0).contains(&self.stat_decay) {
            return Err(invalid(
                "KfacConfig",
                "stat_decay",
                self.stat_decay,
                "must lie in [0, 1)",
            ));
        }
        if self.cov_interval == 0 {
            return Err(invalid(
                "KfacConfig",
                "cov_interval",
                0,
                "T_cov must be positive",
            ));
        }
        if self.inv_interval == 0 {
            return Err(invalid(
                "KfacConfig",
                "inv_interval",
                0,
                "T_inv must be positive",
            ));
        }
        if let Some(k) = self.kl_clip
            && !(k.is_finite() && k > 0.0)
        {
            return Err(invalid("KfacConfig", "kl_clip", k, "must be positive"));
        }
        Ok(())
    }

    /// Check and build KFAC for module `M`.
    ///
    /// # Errors
    /// `ξ ∉ [0, 1)`, `T_cov = 0`, `T_inv = 0`, `κ ≤ 0`, and invalid momentum / weight decay.
    pub fn init<AB: AutodiffBackend, M: AutodiffModule<AB>>(&self) -> OResult<Kfac<AB, M>> {
        self.validate()?;
        let sgd = SgdConfig::new()
            .with_momentum(self.momentum)
            .with_weight_decay(self.weight_decay)
            .with_weight_decay_mode(WeightDecayMode::Decoupled)
            .init::<AB, M>()?;
        Ok(Kfac {
            config: self.clone(),
            sgd,
            layers: Vec::new(),
            steps: 0,
            observers: Observers::default(),
            peers: None,
        })
    }
}
