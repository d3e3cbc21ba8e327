//! Sums across peers: what a sharded [`Objective`](crate::Objective) needs from a collective.
//!
//! Data parallelism splits the `N` examples into disjoint shards, one per peer (a thread per
//! device, or a process per machine). Every quantity of the objective is a sum over examples,
//!
//! `L = (1/N) Σ_p Σ_{i ∈ shard p} ℓ_i`, `∇L = (1/N) Σ_p Σ_{i ∈ p} ∇ℓ_i`, `Hv = (1/N) Σ_p Σ_{i ∈ p} ∇²ℓ_i v`,
//!
//! so each peer computes its shard's partial sum scaled by the *global* `1/N` (unequal shards
//! are weighted by their sizes automatically) and one all-reduce adds the partial sums. A
//! [`PeerReduce`] is that all-reduce; `curvature-collective` implements it on burn's
//! `burn-collective`.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::error::Result;

/// An all-reduce (sum) between the peers of a data-parallel group.
///
/// Contract, relied upon by [`Objective::with_peers`](crate::Objective::with_peers) and by
/// everything built on it (Lanczos, SLQ, the optimisers): every peer calls
/// [`all_reduce_sum`](Self::all_reduce_sum) the same number of times with vectors of the same
/// length, and every peer receives **the same bits**, independent of the order in which the
/// peers arrive — so algorithms that run redundantly on every peer (a Lanczos basis, an
/// optimiser's state) stay identical on all of them, and a rerun is bit-identical.
pub trait PeerReduce<B: Backend> {
    /// Number of peers `p ≥ 1`.
    fn peers(&self) -> usize;
    /// This peer's index in `0..p`.
    fn rank(&self) -> usize;
    /// `Σ_q t_q` over the peers `q` (each peer passes its own `t_q`).
    ///
    /// # Errors
    /// [`CurvatureError::Peer`](crate::CurvatureError::Peer) when a peer failed, left or did
    /// not answer within the group's time-out.
    fn all_reduce_sum(&self, t: Tensor<B, 1>) -> Result<Tensor<B, 1>>;
}
