//! RMT auto-damping as an observer: before a step that is due for it, re-estimate the
//! Hessian variance on the RMT sub-sample and set δ (Granziol & Baskerville §7;
//! [`RmtDamping`]). The damping state itself is in the checkpointed [`State`], so a resumed
//! run re-estimates at the same steps with the same vectors.

use super::*;

/// Re-estimates RMT auto-damping's δ when it is due.
pub(super) struct RmtEstimator<'a, BB: Backend, const D: usize> {
    /// Seed, vectors and sub-sample of the Hessian-variance estimate (the vectors are drawn
    /// afresh at every re-estimate, seeded by the step count).
    base: HessianVarianceConfig,
    /// The sub-sample it is estimated on.
    data: &'a [Batch<BB, D>],
    /// With data parallelism, the group (each peer estimates on its share of the batches).
    group: Option<&'a PeerGroup<BB>>,
}

impl<'a, BB: Backend, const D: usize> RmtEstimator<'a, BB, D> {
    pub(super) fn new(
        config: &TrainConfig,
        data: &'a [Batch<BB, D>],
        group: Option<&'a PeerGroup<BB>>,
    ) -> Self {
        Self {
            base: HessianVarianceConfig::new()
                .with_seed(config.seed)
                .with_vectors(config.rmt_vectors)
                .with_max_examples(config.rmt_subsample),
            data,
            group,
        }
    }
}

impl<BB: Backend, M, const D: usize> Observer<BB, M> for RmtEstimator<'_, BB, D>
where
    M: AutodiffModule<Autodiff<BB>>,
    M::InnerModule: CurvatureModel<BB, D>,
{
    fn before_step(&mut self, run: &mut Run<BB, M>) -> Result<()> {
        let Some(rmt) = &mut run.state.rmt else {
            return Ok(());
        };
        let model = &run.model;
        rmt.step_estimating(&self.base, |cfg| {
            let objective = group_objective(model.valid(), self.data, self.group)?;
            Ok(curvature_core::hessian_variance(&objective, cfg)?)
        })?;
        Ok(())
    }
}
