//! Updating batch-norm running statistics from ordinary forward passes, for any model.
//!
//! [`BatchNorm::forward`](crate::BatchNorm::forward) is pure (curvature evaluation must not
//! mutate the model). Inside [`with_running_stats`], every `BatchNorm` forward in
//! [`BatchNormMode::Train`] also updates its running statistics from its input, so a training
//! loop updates them for any `curvature-nets` model without model-specific code:
//!
//! ```ignore
//! let logits = with_running_stats(StatsUpdate::Momentum, || model.output(x, BatchNormMode::Train));
//! ```
//!
//! [`recompute_running_stats`] re-estimates them from scratch with one pass over the data —
//! what an iterate-averaged model (SWA, Gadam) needs, since its averaged weights never produced
//! the statistics it holds (Izmailov et al. 2018; PyTorch's `swa_utils.update_bn`).

use std::cell::Cell;

use burn::tensor::backend::Backend;
use curvature_core::{BatchNormMode, BatchSource, Network};

use crate::error::{NetsError, Result};

/// How a batch-norm forward inside [`with_running_stats`] updates the running statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsUpdate {
    /// `running ← (1 − m)·running + m·batch` with the layer's momentum `m` (training).
    Momentum,
    /// Equal-weight cumulative average: this is the `batch`-th batch (from 0), `m = 1/(batch + 1)`;
    /// batch 0 overwrites the old statistics.
    Average {
        /// Index of the current batch.
        batch: usize,
    },
}

thread_local! {
    static ACTIVE: Cell<Option<StatsUpdate>> = const { Cell::new(None) };
}

/// Restores the previous mode even if the closure panics.
struct Restore(Option<StatsUpdate>);

impl Drop for Restore {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(self.0));
    }
}

/// Run `forward` with batch-norm running-statistics updates switched on (see the
/// [module docs](self)).
pub fn with_running_stats<R>(update: StatsUpdate, forward: impl FnOnce() -> R) -> R {
    let _restore = Restore(ACTIVE.with(|a| a.replace(Some(update))));
    forward()
}

/// The momentum to use for a batch-norm forward now, if updates are on.
pub(crate) fn active_momentum(layer_momentum: f64) -> Option<f64> {
    ACTIVE.with(|a| a.get()).map(|u| match u {
        StatsUpdate::Momentum => layer_momentum,
        StatsUpdate::Average { batch } => 1.0 / (batch + 1) as f64,
    })
}

/// Re-estimate every batch norm's running statistics of `model` as the equal-weight average
/// over the batches of `data` of the batch means and unbiased variances (one forward pass in
/// training mode per batch; no gradients).
///
/// # Errors
/// Errors of the data source; [`NetsError::InvalidConfig`] for empty data.
pub fn recompute_running_stats<B: Backend, M: Network<B, D>, const D: usize>(
    model: &M,
    data: &dyn BatchSource<B, D>,
) -> Result<()> {
    if data.num_examples() == 0 {
        return Err(crate::error::invalid(
            "recompute_running_stats",
            "data",
            0,
            "needs at least one batch",
        ));
    }
    let mut index = 0;
    data.try_for_each(&mut |batch| {
        with_running_stats(StatsUpdate::Average { batch: index }, || {
            model.output(batch.inputs.clone(), BatchNormMode::Train)
        });
        index += 1;
        Ok(())
    })
    .map_err(NetsError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchNormConfig;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, Tensor};

    type B = NdArray<f64>;

    #[test]
    fn updates_happen_only_inside_the_scope_and_average_equally() {
        let dev = Default::default();
        let bn = BatchNormConfig::new(2).init::<B>(&dev).unwrap();
        let x1 = Tensor::<B, 2>::random([8, 2], Distribution::Normal(3.0, 1.0), &dev);
        let x2 = Tensor::<B, 2>::random([8, 2], Distribution::Normal(-1.0, 2.0), &dev);
        bn.forward(x1.clone(), BatchNormMode::Train);
        let v = |t: Tensor<B, 1>| t.into_data().iter::<f64>().collect::<Vec<_>>();
        assert_eq!(
            v(bn.running_mean.value_sync()),
            vec![0.0, 0.0],
            "pure outside a scope"
        );
        for (i, x) in [&x1, &x2].into_iter().enumerate() {
            with_running_stats(StatsUpdate::Average { batch: i }, || {
                bn.forward(x.clone(), BatchNormMode::Train)
            });
        }
        let expected = (x1.clone().mean_dim(0) + x2.mean_dim(0))
            .mul_scalar(0.5)
            .reshape([2]);
        let diff: f64 = (bn.running_mean.value_sync() - expected)
            .abs()
            .max()
            .into_scalar();
        assert!(diff < 1e-14, "{diff}");
        // Eval-mode forwards inside a scope do not update.
        let before = v(bn.running_var.value_sync());
        with_running_stats(StatsUpdate::Momentum, || {
            bn.forward(x1.clone(), BatchNormMode::Eval)
        });
        assert_eq!(v(bn.running_var.value_sync()), before);
        ACTIVE.with(|a| assert!(a.get().is_none()));
    }
}
