//! Data-parallel optimiser steps: each peer of a group computes the loss and gradient of its
//! share of the global mini-batch, one all-reduce makes them the global batch's, and every peer
//! applies the same update to the same model.
//!
//! For a global batch `S = ∪_q S_q` of `N = Σ_q n_q` examples split between the peers `q`,
//!
//! ```text
//! L_S = (1/N) Σ_q Σ_{i ∈ S_q} ℓ_i = (1/N) Σ_q n_q L_q,      ∇L_S = (1/N) Σ_q n_q ∇L_q,
//! ```
//!
//! where `L_q` is the mean loss of peer `q`'s share. Each peer sends `[n_q ∇L_q, n_q X_q,
//! n_q L_q, n_q]` (with `X_q` any further per-example means a step needs, e.g. KFAC's Kronecker
//! factors `A = (1/N) Σ ã ãᵀ`, `G = (1/N) Σ g gᵀ`) in **one** all-reduce and divides the sum
//! by `N`, so unequal shares are weighted by their sizes and the result is the global batch's
//! up to the floating-point order of the sum. The group's [`PeerReduce`] returns the same bits
//! on every peer, so optimiser states (moments, factors, Ritz pairs) stay identical on all peers
//! without ever being broadcast.
//!
//! burn-optim's own `GradientsParams::all_reduce` is not used: it issues one collective call per
//! parameter tensor and sums in arrival order; here the whole step is one call, summed in rank
//! order by the group.
//!
//! Batch norm in train mode normalises each peer's share by the share's own statistics (as
//! PyTorch's `DistributedDataParallel` without `SyncBatchNorm`), so for models with batch norm a
//! data-parallel step is a step on the shares' statistics, not the global batch's.

use std::sync::Arc;

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use curvature_core::PeerReduce;
use curvature_core::reduce::{from_host, to_host};

use crate::error::{OptimError, Result};

/// A data-parallel group an optimiser takes its steps in (see the [module docs](self));
/// `curvature_collective::Peer` is one.
pub type PeerGroup<B> = Arc<dyn PeerReduce<B>>;

/// The global batch's gradient, further means and loss, as every peer of the group has them.
pub(crate) struct GlobalStep<B: Backend> {
    /// `∇L_S`, for the parameters that have a gradient.
    pub(crate) grads: GradientsParams,
    /// The further means `X_S`, in the order given.
    pub(crate) extra: Vec<Tensor<B, 1>>,
    /// `L_S`.
    pub(crate) loss: f64,
}

/// Turn this peer's share — its `examples` examples' mean `loss`, gradient `grads` of `model`
/// and further means `extra` — into the global batch's with one all-reduce (see the
/// [module docs](self)).
///
/// Every peer must call this with the same model architecture and `extra` of the same lengths.
///
/// # Errors
/// The group's ([`CurvatureError::Peer`](curvature_core::CurvatureError::Peer): a peer failed,
/// left or timed out); [`OptimError::InvalidInput`] for a share without examples.
pub(crate) fn all_reduce_step<AB: AutodiffBackend, M: AutodiffModule<AB>>(
    group: &dyn PeerReduce<AB::InnerBackend>,
    model: &M,
    mut grads: GradientsParams,
    extra: Vec<Tensor<AB::InnerBackend, 1>>,
    loss: f64,
    examples: usize,
) -> Result<GlobalStep<AB::InnerBackend>> {
    if examples == 0 {
        return Err(OptimError::InvalidInput(format!(
            "peer {} of a data-parallel step has no examples",
            group.rank()
        )));
    }
    let mut gather = Gather::<AB> {
        grads: &grads,
        parts: Vec::new(),
    };
    model.visit(&mut gather);
    let mut parts = gather.parts;
    let Some(device) = parts.first().or(extra.first()).map(Tensor::device) else {
        return Err(OptimError::InvalidInput(
            "a data-parallel step without any gradient".into(),
        ));
    };
    let lengths: Vec<usize> = extra.iter().map(|t| t.dims()[0]).collect();
    let n = examples as f64;
    parts.extend(extra);
    parts.push(from_host(vec![loss, 1.0], &device));
    let local = Tensor::cat(parts, 0).mul_scalar(n);
    let sum = group.all_reduce_sum(local)?;
    let len = sum.dims()[0];
    let tail = to_host(&sum.clone().narrow(0, len - 2, 2));
    let total = tail[1];
    let sum = sum.narrow(0, 0, len - 2).div_scalar(total);
    // Scatter back in the order gathered.
    let mut scatter = Scatter::<AB> {
        grads: &mut grads,
        flat: sum.clone(),
        offset: 0,
    };
    model.visit(&mut scatter);
    let mut offset = scatter.offset;
    let extra = lengths
        .into_iter()
        .map(|l| {
            let t = sum.clone().narrow(0, offset, l);
            offset += l;
            t
        })
        .collect();
    Ok(GlobalStep {
        grads,
        extra,
        loss: tail[0] / total,
    })
}

/// The gradients of the trainable parameters, flattened, in visiting order.
struct Gather<'a, AB: AutodiffBackend> {
    grads: &'a GradientsParams,
    parts: Vec<Tensor<AB::InnerBackend, 1>>,
}

impl<AB: AutodiffBackend> ModuleVisitor<AB> for Gather<'_, AB> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if let Some(g) = self.grads.get::<AB::InnerBackend, D>(param.id) {
            let len = g.shape().num_elements();
            self.parts.push(g.reshape([len]));
        }
    }
}

/// Registers the slices of `flat` as the gradients, in the order [`Gather`] read them.
struct Scatter<'a, AB: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    flat: Tensor<AB::InnerBackend, 1>,
    offset: usize,
}

impl<AB: AutodiffBackend> ModuleVisitor<AB> for Scatter<'_, AB> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if let Some(g) = self.grads.get::<AB::InnerBackend, D>(param.id) {
            let dims = g.dims();
            let len = g.shape().num_elements();
            let slice = self.flat.clone().narrow(0, self.offset, len);
            self.grads
                .register::<AB::InnerBackend, D>(param.id, slice.reshape(dims));
            self.offset += len;
        }
    }
}
