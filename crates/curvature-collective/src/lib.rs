//! # curvature-collective
//!
//! Data-parallel curvature on burn's own collective, [`burn_collective`]: the data set is split
//! into disjoint shards, one per peer (a thread per device), each peer evaluates its shard and
//! one all-reduce per product completes
//!
//! `L = (1/N) Σ_p Σ_{i ∈ S_p} ℓ_i`, `∇L`, `Hv = ∇(vᵀ∇L)` (Pearlmutter 1994) and
//! `Gv = Jᵀ H_ℓ J v` (Schraudolph 2002),
//!
//! with `N = Σ_p |S_p|`, so unequal shards are weighted by their sizes. Everything built on the
//! products (Lanczos, SLQ, spectra) runs unchanged and identically on every peer: each peer
//! holds the whole Lanczos basis (`m·P` floats per peer) and no vector is ever broadcast — the
//! only traffic is one all-reduce of `P + 1` floats per product.
//!
//! ```no_run
//! use std::sync::Arc;
//! use burn::backend::NdArray;
//! use curvature_collective::{PeerGroupConfig, run_local};
//! use curvature_core::{Batch, Loss, Objective, PeerReduce, LanczosConfig, lanczos};
//! # fn shard(rank: usize) -> Vec<Batch<NdArray<f64>, 2>> { unimplemented!() }
//! # fn model() -> curvature_nets::Mlp<NdArray<f64>> { unimplemented!() }
//! type B = NdArray<f64>;
//! let ritz = run_local::<B, _, _, _>(&PeerGroupConfig::new(2), &[Default::default(), Default::default()], |peer| {
//!     let rank = peer.rank();
//!     let objective = Objective::new(model(), Loss::CrossEntropy, shard(rank))?.with_peers(peer)?;
//!     let run = lanczos(&objective.hessian(), &LanczosConfig::new().with_steps(20))?;
//!     curvature_core::Result::Ok(run.ritz_values)
//! })?;
//! # Ok::<(), curvature_collective::CollectiveError>(())
//! ```
//!
//! Failures do not hang: a peer that stops is noticed by the others within milliseconds, and a
//! peer that never reaches an operation is reported after [`PeerGroupConfig::timeout_secs`].
#![warn(missing_docs)]

mod board;
mod error;
mod group;
mod peer;
mod shards;

pub use error::{CollectiveError, Result};
pub use group::{NodeConfig, PeerGroupConfig, run_local, run_orchestrator};
pub use peer::{Peer, Traffic};
pub use shards::{peer_devices, shard_range};
