//! Data parallelism for the commands: one objective per peer over its share of the data's
//! batches, summed across the peers (`curvature_collective`), and what peer 0 reports of it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use burn::tensor::backend::Backend;
use curvature_collective::{
    CollectiveError, Peer, PeerGroupConfig, peer_devices, run_local, shard_range,
};
use curvature_core::{Batch, BatchNormMode, CurvatureModel, Loss, Objective, PeerReduce};
use curvature_data::ClassificationData;
use curvature_optim::PeerGroup;
use serde::Serialize;

use crate::error::{LabError, Result};
use crate::setup::INPUT_RANK;

/// What the group did, as peer 0 saw it.
#[derive(Debug, Clone, Serialize)]
pub struct DataParallel {
    /// Number of peers.
    pub peers: usize,
    /// Examples of each peer's shard.
    pub shard_examples: Vec<usize>,
    /// Peer 0's all-reduce calls during the measurement.
    pub all_reduce_calls: usize,
    /// Peer 0's wall time in them (transfer, sum, waiting for the others).
    pub all_reduce_seconds: f64,
    /// Peer 0's wall time for the whole measurement.
    pub wall_seconds: f64,
}

impl DataParallel {
    /// One line for the command's output.
    pub fn line(&self) -> String {
        format!(
            "  data parallel: {} peers, shards of {:?} examples; peer 0 spent {:.3} s of {:.3} s \
             ({:.1} %) in {} all-reduces (transfer, sum, waiting for the others)\n",
            self.peers,
            self.shard_examples,
            self.all_reduce_seconds,
            self.wall_seconds,
            100.0 * self.all_reduce_seconds / self.wall_seconds,
            self.all_reduce_calls
        )
    }
}

/// `work(peer, model)` on every peer of `group`: one thread per peer, peer `q` on the `q`-th of
/// [`peer_devices`]`(device)` with its own copy of `model` (move it to `peer.device()`).
/// Returns peer 0's result.
///
/// # Errors
/// The group's (a peer that stops or times out, named); when the first failure is a peer's own
/// error, that error itself (a divergence, an interrupt, a file that cannot be written), not
/// only its message.
pub(crate) fn each_peer<BB, M, T>(
    group: &PeerGroupConfig,
    device: &BB::Device,
    model: M,
    work: impl Fn(Arc<Peer<BB>>, M) -> Result<T> + Sync,
) -> Result<T>
where
    BB: Backend,
    M: Clone + Send,
    T: Send,
{
    let (p, first) = (group.peers, group.first_rank());
    let models: Vec<Mutex<Option<M>>> = (0..p).map(|_| Mutex::new(Some(model.clone()))).collect();
    let errors: Vec<Mutex<Option<LabError>>> = (0..p).map(|_| Mutex::new(None)).collect();
    let results = run_local::<BB, _, _, _>(group, &peer_devices::<BB>(device, p), |peer| {
        let local = peer.rank() - first;
        let model = models[local]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .expect("one model per peer");
        work(peer, model).map_err(|e| {
            let message = e.to_string();
            *errors[local].lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
            message
        })
    });
    match results {
        Ok(results) => Ok(results.into_iter().next().expect("at least one peer")),
        Err(CollectiveError::PeerFailed { rank, message }) => Err(rank
            .checked_sub(first)
            .and_then(|local| errors.get(local))
            .and_then(|e| e.lock().unwrap_or_else(PoisonError::into_inner).take())
            .unwrap_or(LabError::Collective(CollectiveError::PeerFailed {
                rank,
                message,
            }))),
        Err(e) => Err(e.into()),
    }
}

/// `work(rank, objective)` on every peer of `group`, where `objective` is `model` with the
/// cross-entropy loss over the peer's share of `data`'s batches of `batch_size`: contiguous
/// ranges of whole batches in rank order (the single-process batches, so batch norm in train
/// mode sees the same ones), summed across the peers. Returns peer 0's result and what the
/// group did.
///
/// # Errors
/// Fewer batches than peers, the group's errors (a peer that fails, stops or times out) and
/// `work`'s.
pub(crate) fn on_peers<BB, M, T>(
    group: &PeerGroupConfig,
    data: &ClassificationData,
    batch_size: usize,
    model: M,
    device: &BB::Device,
    bn_mode: BatchNormMode,
    work: impl Fn(usize, Objective<BB, M, INPUT_RANK>) -> Result<T> + Sync,
) -> Result<(T, DataParallel)>
where
    BB: Backend,
    M: CurvatureModel<BB, INPUT_RANK>,
    T: Send,
{
    let p = group.total_peers();
    let batch_size = batch_size.min(data.len());
    let num_batches = data.len().div_ceil(batch_size);
    // Fail before starting threads when the batches cannot be shared.
    shard_range(num_batches, p, 0)?;
    each_peer::<BB, _, _>(group, device, model, |peer, model| {
        let rank = peer.rank();
        let batches = shard_range(num_batches, p, rank)?;
        let examples: Vec<usize> =
            (batches.start * batch_size..(batches.end * batch_size).min(data.len())).collect();
        let shard = data
            .select(&examples)
            .batches::<BB, INPUT_RANK>(batch_size, peer.device())?;
        let objective = Objective::new(model.fork(peer.device()), Loss::CrossEntropy, shard)?
            .with_bn_mode(bn_mode)
            .with_peers(peer.clone())?;
        let shard_examples = objective.shard_sizes();
        // The measurement's own calls: not the exchange of shard sizes in `with_peers`.
        let (before, start) = (peer.traffic(), Instant::now());
        let out = work(rank, objective)?;
        let after = peer.traffic();
        Ok((
            out,
            DataParallel {
                peers: p,
                shard_examples,
                all_reduce_calls: after.calls - before.calls,
                all_reduce_seconds: (after.time - before.time).as_secs_f64(),
                wall_seconds: start.elapsed().as_secs_f64(),
            },
        ))
    })
}

/// An objective of `model` (cross-entropy) over `batches` as this peer of `group` sees it:
/// with a group of `p` peers and at least `p` batches, over the peer's contiguous share of
/// whole batches summed across the group ([`Objective::with_peers`]); otherwise (one process,
/// or fewer batches than peers) over all of them — the same numbers, computed by every peer.
/// Every peer must call it at the same point with the same number of batches.
///
/// # Errors
/// The objective's ([`Objective::new`]) and the group's.
pub(crate) fn group_objective<BB, M, const D: usize>(
    model: M,
    batches: &[Batch<BB, D>],
    group: Option<&PeerGroup<BB>>,
) -> curvature_core::Result<Objective<BB, M, D>>
where
    BB: Backend,
    M: CurvatureModel<BB, D>,
{
    match group {
        Some(g) if g.peers() > 1 && batches.len() >= g.peers() => {
            let share = shard_range(batches.len(), g.peers(), g.rank())?;
            Objective::new(model, Loss::CrossEntropy, batches[share].to_vec())?
                .with_peers(g.clone())
        }
        _ => Objective::new(model, Loss::CrossEntropy, batches.to_vec()),
    }
}
