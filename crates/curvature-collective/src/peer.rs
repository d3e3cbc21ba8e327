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
use crate::group::NodeConfig;

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
    /// Index on this process's board.
    local: usize,
    peers: usize,
    /// With several processes (nodes), this one's place among them.
    node: Option<NodeConfig>,
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

/// Where a peer stands in its group: its global rank, its index in this process, and the
/// number of peers of the whole group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerPlace {
    pub(crate) rank: usize,
    pub(crate) local: usize,
    pub(crate) peers: usize,
}

impl<B: Backend> Peer<B> {
    pub(crate) fn new(
        place: PeerPlace,
        device: B::Device,
        board: Arc<Board>,
        timeout: Duration,
        node: Option<NodeConfig>,
    ) -> Self {
        Self {
            rank: place.rank,
            local: place.local,
            peers: place.peers,
            node,
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

    /// Register with burn-collective's local server (every peer of the group must) and, on
    /// several nodes, with the orchestrator; then check that the group has as many peers as
    /// this node expects (every node must run the same number).
    pub(crate) fn register(&self) -> Result<()> {
        let local = self.board.lock().len();
        let mut config = burn_collective::CollectiveConfig::default().with_num_devices(local);
        if let Some(node) = &self.node {
            let address = |s: String| {
                s.parse::<burn_communication::Address>()
                    .map_err(|e| self.burn_error("registration", format!("{e:?}")))
            };
            config = config
                .with_num_nodes(node.nodes as u32)
                .with_global_address(address(node.orchestrator_url())?)
                .with_node_address(address(node.node_url())?)
                .with_data_service_port(node.data_port);
        }
        let (id, device) = (self.id(), self.device.clone());
        self.bounded("registration", move || {
            burn_collective::register::<B>(id, device, config)
        })?;
        if let Some(node) = &self.node {
            // Each peer adds one: the group's size, whatever each node thinks it is. (Padded
            // to one entry per node: the ring between nodes splits a vector into K slices.)
            let one = Tensor::<B, 1>::ones([1], &self.device);
            let padding = Tensor::<B, 1>::zeros([node.nodes.saturating_sub(1)], &self.device);
            let one = Tensor::cat(vec![one, padding], 0).into_primitive().tensor();
            let id = self.id();
            let count = self.bounded("count of peers", move || {
                burn_collective::all_reduce::<B>(id, one, ReduceOperation::Sum)
            })?;
            let count =
                Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(count)).narrow(0, 0, 1);
            let count = curvature_core::reduce::scalar(count).round() as usize;
            if count != self.peers {
                return Err(CollectiveError::InvalidConfig {
                    field: "peers",
                    value: format!(
                        "{} per node on {} nodes (the group has {count} peers)",
                        local,
                        self.peers / local.max(1)
                    ),
                    reason: "every node must run the same number of peers (--peers)",
                });
            }
        }
        Ok(())
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
        let count = self.board.enter(self.local);
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
                Ok(result) => return result.map_err(|e| self.call_error(operation, Some(e))),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.call_error(operation, None));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if let Some((local, reason)) = self.board.stopped_before(count) {
                return Err(CollectiveError::PeerLeft {
                    rank: self.rank - self.local + local,
                    waiting: self.rank,
                    operation,
                    reason,
                });
            }
            if start.elapsed() >= self.timeout {
                return Err(CollectiveError::Timeout {
                    waiting: self.rank,
                    operation,
                    missing: self.missing(count),
                    seconds: self.timeout.as_secs_f64(),
                });
            }
        }
    }

    /// The peers that have not reached operation number `count`, as far as this process can
    /// tell: its own peers that have not entered it, or — when all of them have and the group
    /// spans several nodes — every peer of the other nodes (a peer cannot see which of them
    /// arrived).
    fn missing(&self, count: u64) -> Vec<usize> {
        let first = self.rank - self.local;
        let local: Vec<usize> = self
            .board
            .missing(count)
            .into_iter()
            .map(|q| first + q)
            .collect();
        match (&self.node, local.is_empty()) {
            (Some(_), true) => self.other_nodes_peers(),
            _ => local,
        }
    }

    /// The global ranks of the peers that run in other processes (nodes).
    fn other_nodes_peers(&self) -> Vec<usize> {
        let first = self.rank - self.local;
        let here = first..first + self.board.lock().len();
        (0..self.peers).filter(|r| !here.contains(r)).collect()
    }

    /// burn-collective's error `e` in `operation`, or, on several nodes, the loss of a node
    /// when `e` is how a broken connection shows: its local server gone (its tasks panic when
    /// a connection breaks), a peer lost in a download, the orchestrator or the server unable
    /// to answer. `e` is `None` when the helper thread running the call died.
    fn call_error(
        &self,
        operation: &'static str,
        e: Option<burn_collective::CollectiveError>,
    ) -> CollectiveError {
        // burn-collective does not export the type of `Global`'s payload
        // (`GlobalCollectiveError`): its variant is read from the debug form.
        let lost = match &e {
            None | Some(burn_collective::CollectiveError::LocalServerMissing) => true,
            Some(burn_collective::CollectiveError::Global(g)) => {
                let name = format!("{g:?}");
                [
                    "PeerLost",
                    "Server",
                    "OrchestratorUnreachable",
                    "WrongOrchestratorResponse",
                ]
                .iter()
                .any(|v| name.starts_with(v))
            }
            Some(_) => false,
        };
        let message = e.map_or_else(
            || "the helper thread died".to_string(),
            |e| format!("{e:?}"),
        );
        if self.node.is_some() && lost {
            return CollectiveError::NodeLost {
                waiting: self.rank,
                operation,
                missing: self.other_nodes_peers(),
                message,
            };
        }
        self.burn_error(operation, message)
    }

    fn burn_error(&self, operation: &'static str, e: impl std::fmt::Display) -> CollectiveError {
        CollectiveError::Burn {
            rank: self.rank,
            operation,
            message: e.to_string(),
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
