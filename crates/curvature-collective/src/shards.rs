//! Which part of the data and which device each peer gets.

use std::ops::Range;

// burn's prelude names cubecl's `Device` trait (which has `from_id`) `DeviceOps`.
use burn::prelude::DeviceOps as FromDeviceId;
use burn::tensor::backend::{Backend, DeviceId, DeviceOps};

use crate::error::{CollectiveError, Result};

/// Peer `rank`'s contiguous share of `len` items (examples, or whole batches) split as evenly
/// as possible between `peers`: `[⌊rank·len/p⌋, ⌊(rank+1)·len/p⌋)`. The shares are disjoint
/// and cover `0..len` in rank order.
///
/// Splitting *whole batches* keeps every batch as the single-process objective has it, so
/// batch-dependent models (batch norm in train mode) give the same objective on any number of
/// peers.
///
/// # Errors
/// [`CollectiveError::InvalidConfig`] when there are fewer items than peers (a peer would hold
/// nothing) or `rank ≥ peers`.
pub fn shard_range(len: usize, peers: usize, rank: usize) -> Result<Range<usize>> {
    if rank >= peers {
        return Err(CollectiveError::InvalidConfig {
            field: "rank",
            value: rank.to_string(),
            reason: "must be below the number of peers",
        });
    }
    if len < peers {
        return Err(CollectiveError::InvalidConfig {
            field: "peers",
            value: peers.to_string(),
            reason: "more peers than items (batches) to share: use fewer peers or smaller batches",
        });
    }
    Ok(rank * len / peers..(rank + 1) * len / peers)
}

/// One device per peer: `base` for peer 0 and the next device indices of the same kind for
/// the others (GPUs `i, i+1, …`). CPU backends have one device, which every peer shares.
pub fn peer_devices<B: Backend>(base: &B::Device, peers: usize) -> Vec<B::Device> {
    let id = base.id();
    (0..peers)
        .map(|q| {
            <B::Device as FromDeviceId>::from_id(DeviceId {
                type_id: id.type_id,
                index_id: id
                    .index_id
                    .saturating_add(u16::try_from(q).unwrap_or(u16::MAX)),
            })
        })
        .collect()
}
