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

/// How the damped Kronecker factors are inverted, every `T_inv` steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum FactorSolver {
    /// Eigendecompose `A` and `G` on the host in f64 (faer, multithreaded): any
    /// [`DampingSplit`], the curvature range in the [`StepReport`], and a new damping `δ`
    /// takes effect without a new decomposition. Each factor is copied to the host and its
    /// eigenbasis back.
    #[default]
    HostEigen,
    /// Invert the π-split damped factors `A + π√δ I` and `G + (√δ/π) I` on the device by
    /// Newton–Schulz iteration (`newton_schulz.rs`): matrix products only, nothing copied to
    /// the host but a scalar residual per step. [`DampingSplit::PiSplit`] only; the inverses
    /// hold one `δ`, so they are recomputed when the damping changes as well as every `T_inv`
    /// steps; no curvature range is reported.
    NewtonSchulz,
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
    /// How the damped factors are inverted.
    #[config(default = "FactorSolver::HostEigen")]
    pub factor_solver: FactorSolver,
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

impl std::fmt::Display for FactorSolver {
    /// The name on the command line: `host-eigen`, `newton-schulz`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::HostEigen => "host-eigen",
            Self::NewtonSchulz => "newton-schulz",
        })
    }
}

impl KfacConfig {
    /// KFAC with `solver`, and the damping split it needs (the π-split for
    /// [`FactorSolver::NewtonSchulz`]; the exact eigen split otherwise, the default).
    pub fn with_solver_and_split(self, solver: FactorSolver) -> Self {
        let split = match solver {
            FactorSolver::HostEigen => DampingSplit::Eigen,
            FactorSolver::NewtonSchulz => DampingSplit::PiSplit,
        };
        self.with_factor_solver(solver).with_damping_split(split)
    }

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
        if self.factor_solver == FactorSolver::NewtonSchulz
            && self.damping_split != DampingSplit::PiSplit
        {
            return Err(invalid(
                "KfacConfig",
                "factor_solver",
                "newton_schulz",
                "inverts the π-split damped factors: set damping_split = pi_split (the exact \
                 eigen split needs the host eigendecomposition)",
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
    /// `ξ ∉ [0, 1)`, `T_cov = 0`, `T_inv = 0`, `κ ≤ 0`, [`FactorSolver::NewtonSchulz`] without
    /// [`DampingSplit::PiSplit`], and invalid momentum / weight decay.
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
