//! KFAC: Kronecker-factored approximate curvature (Martens & Grosse, *Optimizing Neural Networks
//! with Kronecker-factored Approximate Curvature*, ICML 2015) for the [`Dense`] layers, and KFC
//! (Grosse & Martens, *A Kronecker-factored approximate Fisher matrix for convolution layers*,
//! ICML 2016) for the [`Conv2d`] layers of `curvature-nets` models — and for any layer of your
//! own that implements [`DenseTap`] or [`Conv2dTap`] (`curvature_core::tap`).
//!
//! # The approximation
//!
//! For a layer `s = W ã` with input `ã = [a; 1]` (the bias as a last column of `W`) and
//! pre-activation gradient `g = ∂ℓ/∂s`, the Fisher block of `vec W` is `E[(g gᵀ) ⊗ (ã ãᵀ)]`,
//! approximated by the Kronecker product of two small factors,
//!
//! ```text
//! F_W ≈ G ⊗ A,   A = (1/N) Σ_n ã_n ã_nᵀ,   G = (1/N) Σ_n g_n g_nᵀ.
//! ```
//!
//! For a convolution the sums also run over the `T` output positions `t` (the input patch
//! `ã_{n,t}` is one column of `unfold(a)`): `A = (1/N) Σ_{n,t} ã ãᵀ`, `G = (1/(NT)) Σ_{n,t} g gᵀ`
//! (KFC's spatially uncorrelated derivatives). The `g` are read from zero "probe" leaves that
//! [`curvature_core::tap`] adds to every tapped layer's output. Which output gradient they carry is the
//! [`FisherEstimate`]: labels **sampled** from the model's predictive distribution (the true
//! Fisher, = the GGN for cross-entropy and squared error; one extra forward/backward on factor
//! steps), the batch's **empirical** labels (free, but not a curvature matrix), or the **exact**
//! expectation over the `K` outputs (`K` backward passes; for tests and small models).
//!
//! Factors are exponential moving averages `A ← ξA + (1−ξ)A_batch` updated every `T_cov` steps
//! and eigendecomposed, `A = U_A S_A U_Aᵀ`, `G = U_G S_G U_Gᵀ`, every `T_inv` steps. With the
//! layer gradient `V = [∇_W, ∇_b]` (`[out, in + 1]`) the update direction is
//!
//! ```text
//! Eigen:   Δ = U_G [ (U_Gᵀ V U_A) ⊘ (s_G s_Aᵀ + δ) ] U_Aᵀ          = (G ⊗ A + δI)⁻¹ vec V
//! PiSplit: Δ = (G + (√δ/π) I)⁻¹ V (A + π√δ I)⁻¹,  π = √((tr A / dim A) / (tr G / dim G))
//! ```
//!
//! The [`FactorSolver`] says how: the eigendecompositions above, on the host in f64
//! ([`FactorSolver::HostEigen`], the default), or — for the π-split — the two damped inverses
//! on the device by Newton–Schulz iteration ([`FactorSolver::NewtonSchulz`], matrix products
//! only: for GPUs, where copying factors to the host and eigendecomposing them there is the
//! slow part).
//!
//! [`DampingSplit::Eigen`] damps the Kronecker product *exactly* — `δ` is a shift of the
//! curvature eigenvalues, the quantity the RMT policy estimates — and a new `δ` takes effect at
//! once, without a new decomposition. [`DampingSplit::PiSplit`] is Martens & Grosse's §6.3
//! factored Tikhonov damping (adds a cross term `δ`-dependent in `A` and `G`).
//! Optionally the update is rescaled by KL clipping (Ba, Grosse & Martens 2017):
//! `ν = min(1, √(κ / (α² Σ_l ⟨Δ_l, V_l⟩)))`.
//!
//! The directions then go through SGD with momentum and decoupled weight decay
//! ([`Sgd`]): `z ← ρz + Δ`, `w ← w(1 − αλ) − αz`. Parameters of other layers
//! (batch norm, grouped convolutions, ...) take the plain gradient in the same SGD — the
//! "fall back to SGD" rule.

use std::time::Instant;

use burn::config::Config;
use burn::module::{AutodiffModule, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, Optimizer};
use burn::record::Record;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData, activation};
use curvature_core::reduce::{has_non_finite, scalar, sum_in_fixed_order, to_host};
#[cfg(doc)]
use curvature_core::tap::{Conv2dTap, DenseTap};
use curvature_core::tap::{Tap, tap};
use curvature_core::{Loss, Targets, derive_seed};
#[cfg(doc)]
use curvature_nets::{Conv2d, Dense};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::damping::DampingPolicy;
use crate::data_parallel::{PeerGroup, all_reduce_step};
use crate::error::{OptimError, Result as OResult, invalid};
use crate::observe::{Observers, StepObserver, StepReport, StepTimings};
use crate::sgd::{Sgd, SgdConfig};
use crate::weight_decay::WeightDecayMode;

mod config;
mod layer;
mod newton_schulz;
mod record;
mod statistics;

pub use config::{DampingSplit, FactorSolver, FisherEstimate, KfacConfig};

pub use layer::KroneckerFactors;
use layer::{
    Eigen, FactorPair, Inverses, Layer, LayerStats, batch_factors, inner_tap, probe_grad, supported,
};
pub use record::{KfacEigenRecord, KfacInverseRecord, KfacLayerRecord, KfacRecord};

/// The KFAC optimiser (see the [module docs](self)).
pub struct Kfac<AB: AutodiffBackend, M: AutodiffModule<AB>> {
    config: KfacConfig,
    sgd: OptimizerAdaptor<Sgd, M, AB>,
    layers: Vec<Layer<AB::InnerBackend>>,
    steps: usize,
    observers: Observers,
    peers: Option<PeerGroup<Inner<AB>>>,
}

type Inner<AB> = <AB as AutodiffBackend>::InnerBackend;

/// The record of the SGD inside [`Kfac`].
pub type SgdRecord<AB, M> = <OptimizerAdaptor<Sgd, M, AB> as Optimizer<M, AB>>::Record;

impl<AB: AutodiffBackend, M: AutodiffModule<AB>> Kfac<AB, M> {
    /// This optimiser as one peer of the data-parallel `group`: every [`step`](Self::step)
    /// takes the peer's share of a global batch; the gradient, and on factor steps the batch
    /// factors `A` and `G`, are made the global batch's by one all-reduce
    /// ([`data_parallel`](crate::data_parallel)), and every peer then decomposes the same factors
    /// and takes the same step (the decomposition is repeated on every peer rather than done
    /// once and broadcast: it needs no communication, and a broadcast would cost the peers the
    /// same wall time waiting). With [`FisherEstimate::Sampled`] each peer draws its own labels
    /// (peer 0 the single-process stream), so the factors are an equally valid but different
    /// Monte-Carlo estimate than one process's; the empirical and exact estimates are the global
    /// batch's.
    pub fn with_peers(mut self, group: PeerGroup<Inner<AB>>) -> Self {
        self.peers = Some(group);
        self
    }

    /// Add an observer that receives every step's [`StepReport`].
    pub fn observe(&mut self, observer: impl StepObserver + 'static) {
        self.observers.push(observer);
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The current factors `(A, G)` of the layer whose weight is `weight`, if it is
    /// preconditioned and has seen a factor update.
    pub fn factors(&self, weight: ParamId) -> Option<KroneckerFactors<Inner<AB>>> {
        self.layers
            .iter()
            .find(|l| l.weight == weight)
            .map(|l| (l.a.clone(), l.g.clone()))
    }

    /// One KFAC step on the current batch. `forward` is the closure that re-evaluates the
    /// model's outputs `[N, K]` (it may be called several times: see [`FisherEstimate`]);
    /// `loss` and `targets` define the mini-batch loss `(1/N) Σ ℓ(z_n, y_n)`.
    ///
    /// # Errors
    /// A non-positive learning rate, targets whose shape does not match the outputs, a
    /// non-finite loss or factor, or a layer that changed shape; in every case the model is
    /// returned untouched with the error.
    pub fn step(
        &mut self,
        model: M,
        lr: f64,
        damping: &dyn DampingPolicy,
        loss: Loss,
        targets: &Targets<Inner<AB>>,
        mut forward: impl FnMut(&M) -> Tensor<AB, 2>,
    ) -> std::result::Result<(M, StepReport), (M, OptimError)> {
        let start = Instant::now();
        if !(lr.is_finite() && lr > 0.0) {
            return Err((model, invalid("Kfac::step", "lr", lr, "must be positive")));
        }
        let delta = damping.damping();
        if !(delta.is_finite() && delta > 0.0) {
            return Err((
                model,
                invalid("Kfac::step", "damping", delta, "must be positive"),
            ));
        }
        let factor_step = self.steps.is_multiple_of(self.config.cov_interval);
        let empirical = factor_step && self.config.fisher == FisherEstimate::Empirical;

        // Loss and gradient (tapped when the empirical Fisher reuses this pass).
        let (outputs, taps) = if empirical {
            tap::<AB, _>(|| forward(&model))
        } else {
            (forward(&model), Vec::new())
        };
        let y = targets.matrix();
        if outputs.dims() != y.dims() {
            let msg = format!(
                "KFAC: outputs {:?} do not match targets {:?}",
                outputs.dims(),
                y.dims()
            );
            return Err((model, OptimError::InvalidInput(msg)));
        }
        let n = outputs.dims()[0] as f64;
        let mean = loss
            .sum(outputs, Tensor::from_inner(y.clone()))
            .mul_scalar(1.0 / n);
        let mut value = scalar(mean.clone());
        // With peers the global loss is checked, by every peer together, once it is known.
        if self.peers.is_none() && !value.is_finite() {
            return Err((model, OptimError::NonFiniteLoss(value)));
        }
        let backward = mean.backward();

        // Factor statistics.
        let curvature_start = Instant::now();
        let stats = if empirical {
            Some(self.stats_from(&taps, &backward, n))
        } else {
            None
        };
        let mut grads = GradientsParams::from_grads(backward, &model);
        let mut stats = match (factor_step, stats) {
            (false, _) => None,
            (true, Some(s)) => Some(s),
            (true, None) => Some(self.fisher_stats(&model, loss, &mut forward)),
        };
        if let Some(group) = &self.peers {
            let shared = stats
                .transpose()
                .and_then(|s| share_step(group.as_ref(), &model, grads, s, value, n as usize));
            match shared {
                Ok((g, s, v)) => (grads, stats, value) = (g, s.map(Ok), v),
                Err(e) => return Err((model, e)),
            }
            if !value.is_finite() {
                return Err((model, OptimError::NonFiniteLoss(value)));
            }
        }
        let mut refreshed = false;
        if let Some(stats) = stats {
            match stats.and_then(|s| self.update_factors(s)) {
                Ok(()) => refreshed = true,
                Err(e) => return Err((model, e)),
            }
        }
        let solver = self.config.factor_solver;
        if self.steps.is_multiple_of(self.config.inv_interval)
            || self.layers.iter().any(|l| !l.is_solved(solver, delta))
        {
            for layer in &mut self.layers {
                if let Err(e) = layer.solve(solver, delta) {
                    return Err((model, e));
                }
            }
            refreshed = true;
        }
        let curvature = curvature_start.elapsed();

        // Precondition.
        let predict = self.config.predict_change;
        let mut directions = Vec::with_capacity(self.layers.len());
        let (mut kl, mut quadratic) = (0.0, 0.0);
        for layer in &self.layers {
            let Some(v) = layer.gradient(&grads) else {
                continue;
            };
            let d = layer.precondition(v.clone(), delta, self.config.damping_split);
            if self.config.kl_clip.is_some() || predict {
                kl += scalar(sum_in_fixed_order(d.clone() * v));
            }
            if predict {
                let gda = layer.g.clone().matmul(d.clone()).matmul(layer.a.clone());
                quadratic += scalar(sum_in_fixed_order(d.clone() * gda));
            }
            directions.push((layer, d));
        }
        let nu = match self.config.kl_clip {
            Some(kappa) if kl > 0.0 => (kappa / (lr * lr * kl)).sqrt().min(1.0),
            _ => 1.0,
        };
        // q(s) − q(0) = ⟨∇L, s⟩ + ½ sᵀ(G ⊗ A)s for the preconditioned step s = −αν d.
        let step_size = lr * nu;
        let predicted_change =
            predict.then(|| -step_size * kl + 0.5 * step_size * step_size * quadratic);
        for (layer, d) in directions {
            layer.register(&mut grads, if nu < 1.0 { d.mul_scalar(nu) } else { d });
        }
        let model = self.sgd.step(lr, model, grads);

        let range = self
            .layers
            .iter()
            .filter_map(|l| l.eigen.as_ref().map(|e| e.range))
            .fold(None, |acc: Option<(f64, f64)>, (hi, lo)| {
                Some(acc.map_or((hi, lo), |(a, b)| (a.max(hi), b.min(lo))))
            });
        let report = StepReport {
            optimizer: "kfac",
            step: self.steps,
            loss: value,
            lr,
            damping: Some(delta),
            curvature_range: range,
            curvature_ratio: range.map(|(hi, lo)| crate::curvature_lr_ratio(hi, lo, delta)),
            predicted_change,
            refreshed,
            timings: StepTimings {
                total: start.elapsed(),
                curvature,
            },
        };
        self.steps += 1;
        self.observers.notify(&report);
        Ok((model, report))
    }
}

/// The global batch's gradient, batch factors (on factor steps) and loss from this peer's
/// share of `examples` examples ([`all_reduce_step`]: `A` and `G` are per-example means, so
/// they are weighted by the shares' sizes like the gradient).
fn share_step<AB: AutodiffBackend, M: AutodiffModule<AB>>(
    group: &dyn curvature_core::PeerReduce<Inner<AB>>,
    model: &M,
    grads: GradientsParams,
    stats: Option<LayerStats<AB>>,
    loss: f64,
    examples: usize,
) -> OResult<(GradientsParams, Option<LayerStats<AB>>, f64)> {
    let flat = |t: &Tensor<Inner<AB>, 2>| {
        let len = t.shape().num_elements();
        t.clone().reshape([len])
    };
    let extra = stats
        .iter()
        .flatten()
        .flat_map(|(_, (a, g))| [flat(a), flat(g)])
        .collect();
    let global = all_reduce_step(group, model, grads, extra, loss, examples)?;
    let mut shared = global.extra.into_iter();
    let stats = stats.map(|stats| {
        stats
            .into_iter()
            .map(|(tap, (a, g))| {
                let (sa, sg) = (shared.next(), shared.next());
                let a = sa.map_or(a.clone(), |t| t.reshape(a.dims()));
                let g = sg.map_or(g.clone(), |t| t.reshape(g.dims()));
                (tap, (a, g))
            })
            .collect()
    });
    Ok((global.grads, stats, global.loss))
}
