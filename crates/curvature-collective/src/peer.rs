//! One peer of a data-parallel group: its rank, and the collective operations it takes part
//! in, each bounded by the group's time-out.

use std::marker::PhantomData;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_collective::{PeerId, ReduceOperation};
use curvature_core::PeerReduce;

use crate::board::Board;
use crate::error::{CollectiveError, Result};

/// How often a waiting peer looks at the board for peers that stopped.
const POLL: Duration = Duration::from_millis(20);

/// One peer of a group run by [`run_local`](crate::run_local): pass it (in an `Arc`) to
/// [`Objective::with_peers`](curvature_core::Objective::with_peers).
///
/// Its [`all_reduce_sum`](PeerReduce::all_reduce_sum) is deterministic and identical on every
/// peer: each peer places its vector `t_q` (length `n`) in slot `q` of a zero vector of length
/// `p·n`, burn-collective's all-reduce adds the slot vectors (exactly: every entry is one
/// `t_q` plus zeros), and every peer adds the `p` slots in the order `0, 1, …, p−1`. burn's
/// own tree all-reduce adds in the order the peers arrive, which differs from run to run in
/// the last bits; the slots cost `p` times the vector's memory and traffic instead.
pub struct Peer<B: Backend> {
    rank: usize,
    peers: usize,
    device: B::Device,
    board: Arc<Board>,
    timeout: Duration,
    /// The first collective error this peer met: the cause of its work's failure, reported
    /// instead of whatever the work made of it.
    failure: Mutex<Option<CollectiveError>>,
    /// Collective calls made and the time spent in them.
    traffic: Mutex<Traffic>,
    _backend: PhantomData<B>,
}

/// A peer's collective calls so far: how many, how many floats, and the wall time spent in
/// them — transfer, summation, and waiting for slower peers (the synchronisation cost of data
/// parallelism).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Traffic {
    /// All-reduce calls.
    pub calls: usize,
    /// Floats this peer contributed (its vectors' lengths; the slot vectors sent are `p` times longer).
    pub floats: usize,
    /// Wall time inside the calls.
    pub time: Duration,
}

impl<B: Backend> std::fmt::Debug for Peer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Peer {{ rank: {}, peers: {} }}", self.rank, self.peers)
    }
}

impl<B: Backend> Peer<B> {
    pub(crate) fn new(
        rank: usize,
        peers: usize,
        device: B::Device,
        board: Arc<Board>,
        timeout: Duration,
    ) -> Self {
        Self {
            rank,
            peers,
            device,
            board,
            timeout,
            failure: Mutex::new(None),
            traffic: Mutex::new(Traffic::default()),
            _backend: PhantomData,
        }
    }

    /// This peer's device.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    fn id(&self) -> PeerId {
        PeerId(self.rank as u32)
    }

    /// Register with burn-collective's local server (every peer of the group must).
    pub(crate) fn register(&self) -> Result<()> {
        let config = burn_collective::CollectiveConfig::default().with_num_devices(self.peers);
        let (id, device) = (self.id(), self.device.clone());
        self.bounded("registration", move || {
            burn_collective::register::<B>(id, device, config)
        })
    }

    /// Leave burn-collective's group.
    pub(crate) fn finish(&self) -> Result<()> {
        let id = self.id();
        self.bounded("finish", move || {
            burn_collective::finish_collective::<B>(id)
        })
    }

    /// Run one collective call of burn-collective on a helper thread (its calls block without
    /// a time-out) and wait for it, looking at the board for peers that stopped before
    /// reaching it and giving up after the group's time-out.
    fn bounded<T: Send + 'static>(
        &self,
        operation: &'static str,
        call: impl FnOnce() -> std::result::Result<T, burn_collective::CollectiveError> + Send + 'static,
    ) -> Result<T> {
        self.wait_for(operation, call).inspect_err(|e| {
            self.failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(|| e.clone());
        })
    }

    /// This peer's all-reduce calls so far.
    pub fn traffic(&self) -> Traffic {
        *self.traffic.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first collective error this peer met, if any.
    pub(crate) fn take_failure(&self) -> Option<CollectiveError> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn wait_for<T: Send + 'static>(
        &self,
        operation: &'static str,
        call: impl FnOnce() -> std::result::Result<T, burn_collective::CollectiveError> + Send + 'static,
    ) -> Result<T> {
        let count = self.board.enter(self.rank);
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name(format!("collective-{}", self.rank))
            .spawn(move || {
                // The receiver is gone only if this peer already gave up.
                let _ = tx.send(call());
            })
            .map_err(|e| self.burn_error(operation, e))?;
        let start = Instant::now();
        loop {
            match rx.recv_timeout(POLL) {
                Ok(result) => return result.map_err(|e| self.burn_error(operation, e)),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.burn_error(operation, "the helper thread died"));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if let Some((rank, reason)) = self.board.stopped_before(count) {
                return Err(CollectiveError::PeerLeft {
                    rank,
                    waiting: self.rank,
                    operation,
                    reason,
                });
            }
            if start.elapsed() >= self.timeout {
                return Err(CollectiveError::Timeout {
                    waiting: self.rank,
                    operation,
                    missing: self.board.missing(count),
                    seconds: self.timeout.as_secs_f64(),
                });
            }
        }
    }

    fn burn_error(&self, operation: &'static str, e: impl std::fmt::Debug) -> CollectiveError {
        CollectiveError::Burn {
            rank: self.rank,
            operation,
            message: format!("{e:?}"),
        }
    }

    /// `Σ_q t_q` in the fixed order `q = 0, 1, …` (see the [type docs](Self)).
    ///
    /// # Errors
    /// As [`bounded`](Self::bounded): a peer that stopped, a time-out, burn-collective's errors.
    pub fn all_reduce(&self, t: Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        let (p, n) = (self.peers, t.dims()[0]);
        if p == 1 {
            return Ok(t);
        }
        let zeros = |len: usize| Tensor::<B, 1>::zeros([len], &self.device);
        let mut parts = Vec::with_capacity(3);
        if self.rank > 0 {
            parts.push(zeros(self.rank * n));
        }
        parts.push(t);
        if self.rank + 1 < p {
            parts.push(zeros((p - 1 - self.rank) * n));
        }
        let start = Instant::now();
        let slots = Tensor::cat(parts, 0).into_primitive().tensor();
        let id = self.id();
        let summed = self.bounded("all-reduce", move || {
            burn_collective::all_reduce::<B>(id, slots, ReduceOperation::Sum)
        })?;
        let all = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(summed));
        let sum = (1..p).fold(all.clone().slice(0..n), |acc, q| {
            acc + all.clone().slice(q * n..(q + 1) * n)
        });
        let mut traffic = self.traffic.lock().unwrap_or_else(PoisonError::into_inner);
        traffic.calls += 1;
        traffic.floats += n;
        traffic.time += start.elapsed();
        Ok(sum)
    }
}

impl<B: Backend> PeerReduce<B> for Peer<B> {
    fn peers(&self) -> usize {
        self.peers
    }
    fn rank(&self) -> usize {
        self.rank
    }
    fn all_reduce_sum(&self, t: Tensor<B, 1>) -> curvature_core::Result<Tensor<B, 1>> {
        Ok(self.all_reduce(t)?)
    }
}
