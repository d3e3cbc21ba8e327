//! A sharded objective: this peer's data is one shard of `N` examples held by a data-parallel
//! group, and every sum over examples is completed by one all-reduce (see
//! [`PeerReduce`](crate::PeerReduce) for the maths).

use super::*;
use crate::reduce::{from_host, to_host};

impl<B: Backend, M: CurvatureModel<B, D>, const D: usize> Objective<B, M, D> {
    /// Make this objective one peer's shard of a data-parallel objective.
    ///
    /// The data given to [`new`](Self::new) is this peer's shard `S_p` (disjoint from the other
    /// peers' shards; sizes may differ). Afterwards `N` is the total over all shards and the
    /// loss, accuracy, gradient, exact Hessian-vector product and GGN product are those of all
    /// `N` examples: each peer sums its shard scaled by the global `1/N` and one
    /// [`PeerReduce::all_reduce_sum`] per product adds the partial sums, so the result equals
    /// the single-process objective up to floating-point summation order, whatever the number
    /// of peers. Everything built on the products — operators, Lanczos, SLQ, spectra — runs
    /// unchanged, redundantly and identically on every peer. Mini-batch products
    /// ([`batch_gradient`](Self::batch_gradient), [`batch_hvp`](Self::batch_hvp)) stay local.
    ///
    /// Every peer must call this, with the same model (the same parameters, or the products
    /// mix different points) and then issue the same sequence of products.
    ///
    /// # Errors
    /// [`CurvatureError::InvalidConfig`] for an objective that is already sharded or a group
    /// whose rank is not below its size; [`CurvatureError::Peer`] if a peer's model has a
    /// different number of parameters, if the collective fails, or if the shard sizes cannot be
    /// exchanged exactly (a shard of more than 2²⁴ examples on an f32 backend).
    pub fn with_peers(mut self, group: Arc<dyn PeerReduce<B>>) -> Result<Self> {
        if self.peers.is_some() {
            return Err(invalid(
                "peers",
                "a second group",
                "the objective is already sharded",
            ));
        }
        let (p, rank) = (group.peers(), group.rank());
        if rank >= p {
            return Err(invalid("rank", rank, "must be below the number of peers"));
        }
        let (shard, dim) = (self.num_examples, self.dim());
        // Slots (2q, 2q + 1) carry peer q's shard size and parameter count: the sum of the
        // peers' slot vectors (zeros elsewhere) is every peer's pair.
        let mut slots = vec![0.0; 2 * p];
        slots[2 * rank] = shard as f64;
        slots[2 * rank + 1] = dim as f64;
        let all = to_host(&group.all_reduce_sum(from_host::<B>(slots, &self.device))?);
        if all.len() != 2 * p || all[2 * rank] != shard as f64 || all[2 * rank + 1] != dim as f64 {
            return Err(CurvatureError::Peer(format!(
                "this peer's shard size {shard} and parameter count {dim} did not survive the \
                 exchange between peers exactly (more than 2^24 examples per shard on an f32 \
                 backend?)"
            )));
        }
        let mut sizes = Vec::with_capacity(p);
        for q in 0..p {
            let (n_q, dim_q) = (all[2 * q], all[2 * q + 1]);
            if dim_q != dim as f64 {
                return Err(CurvatureError::Peer(format!(
                    "peer {q} has a model with {dim_q} parameters, peer {rank} one with {dim}: \
                     every peer needs the same model"
                )));
            }
            if n_q < 1.0 {
                return Err(CurvatureError::Peer(format!("peer {q} has an empty shard")));
            }
            sizes.push(n_q as usize);
        }
        self.num_examples = sizes.iter().sum();
        self.peers = Some((group, sizes));
        Ok(self)
    }

    /// The data-parallel group, if the objective is sharded.
    pub fn peer_group(&self) -> Option<&Arc<dyn PeerReduce<B>>> {
        self.peers.as_ref().map(|(group, _)| group)
    }

    /// The number of examples of each peer's shard (one entry, `N`, when not sharded).
    pub fn shard_sizes(&self) -> Vec<usize> {
        match &self.peers {
            Some((_, sizes)) => sizes.clone(),
            None => vec![self.num_examples],
        }
    }

    /// Examples held by the peers before this one (rank order; 0 when not sharded): where this
    /// shard starts in the data set's order.
    pub fn examples_before_this_shard(&self) -> usize {
        match &self.peers {
            Some((group, sizes)) => sizes[..group.rank()].iter().sum(),
            None => 0,
        }
    }

    /// Complete a per-shard `(value, vector)` sum over the peers with one all-reduce: the
    /// value travels as one more entry of the vector (in the backend's float type).
    pub(super) fn reduce_pair(
        &self,
        value: f64,
        vector: Tensor<B, 1>,
    ) -> Result<(f64, Tensor<B, 1>)> {
        let Some((group, _)) = &self.peers else {
            return Ok((value, vector));
        };
        let n = vector.dims()[0];
        let packed = Tensor::cat(vec![vector, from_host::<B>(vec![value], &self.device)], 0);
        let summed = group.all_reduce_sum(packed)?;
        let value = scalar(summed.clone().slice(n..n + 1));
        Ok((value, summed.slice(0..n)))
    }

    /// Complete an evaluation's shard sums (loss sum, number correct, whether every batch had
    /// class targets) over the peers with one all-reduce.
    pub(super) fn reduce_evaluation(
        &self,
        loss: f64,
        correct: usize,
        classes: bool,
    ) -> Result<(f64, usize, bool)> {
        let Some((group, sizes)) = &self.peers else {
            return Ok((loss, correct, classes));
        };
        let local = vec![loss, correct as f64, if classes { 1.0 } else { 0.0 }];
        let all = to_host(&group.all_reduce_sum(from_host::<B>(local, &self.device))?);
        Ok((
            all[0],
            all[1].round() as usize,
            all[2] == sizes.len() as f64,
        ))
    }
}
