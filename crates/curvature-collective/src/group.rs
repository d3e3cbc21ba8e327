//! A data-parallel group: one thread per peer (one per device) in this process, connected by
//! burn-collective's local server — and, across machines, this process as one node of several
//! connected through burn-collective's global orchestrator ([`NodeConfig`]).

use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use burn::config::Config;
use burn::tensor::backend::Backend;

use crate::board::Board;
use crate::error::{CollectiveError, Result as CResult};
use crate::peer::{Peer, PeerPlace};

/// Configuration of a data-parallel group.
#[derive(Config, Debug)]
pub struct PeerGroupConfig {
    /// Number of peers `p ≥ 1` (threads, one per device).
    pub peers: usize,
    /// Seconds a peer waits in a collective operation for the others before it gives up with
    /// [`CollectiveError::Timeout`] naming the peers that never arrived. A peer that stops
    /// (error or panic) is noticed within milliseconds, without waiting for the time-out.
    #[config(default = 600.0)]
    pub timeout_secs: f64,
    /// This process as one node of a multi-machine group (`None`: this process is the whole
    /// group). Every node runs `peers` peers.
    pub node: Option<NodeConfig>,
}

/// This process as node `node_rank` of `nodes` processes (machines), connected through
/// burn-collective's global orchestrator (`curvature orchestrator --port P`, or
/// [`run_orchestrator`](crate::run_orchestrator), on one of them).
///
/// Every node runs the same number of peers `p`; the group has `K·p` peers, and the peers of
/// node `i` have the global ranks `i·p, …, i·p + p − 1`. Sums go through burn-collective's
/// two-level all-reduce (within the node, then a ring between the nodes' tensor data services).
#[derive(Config, Debug, PartialEq)]
pub struct NodeConfig {
    /// Number of nodes `K ≥ 1`.
    pub nodes: usize,
    /// This node's index `i` in `0..K`.
    pub node_rank: usize,
    /// The orchestrator's address, `HOST:PORT`.
    pub orchestrator: String,
    /// This machine's address as the other nodes reach it (a host name or IP address).
    pub host: String,
    /// The port of this node's tensor data service (the other nodes download from it).
    pub data_port: u16,
}

impl NodeConfig {
    /// Check the configuration.
    ///
    /// # Errors
    /// [`CollectiveError::InvalidConfig`] for no nodes, a rank outside `0..nodes`, an
    /// orchestrator address that is not `HOST:PORT`, an empty host, or port 0.
    pub fn validate(&self) -> CResult<()> {
        let invalid = |field, value: String, reason| {
            Err(CollectiveError::InvalidConfig {
                field,
                value,
                reason,
            })
        };
        if self.nodes == 0 {
            return invalid("nodes", "0".into(), "must be at least 1");
        }
        if self.node_rank >= self.nodes {
            return invalid(
                "node_rank",
                self.node_rank.to_string(),
                "must be below the number of nodes (node ranks are 0, 1, …, nodes − 1)",
            );
        }
        let port = self
            .orchestrator
            .rsplit_once(':')
            .and_then(|(host, port)| (!host.is_empty()).then_some(port))
            .and_then(|port| port.parse::<u16>().ok());
        if !matches!(port, Some(p) if p > 0) {
            return invalid(
                "orchestrator",
                self.orchestrator.clone(),
                "must be HOST:PORT, e.g. 10.0.0.1:3100 (where `curvature orchestrator --port 3100` runs)",
            );
        }
        if self.host.is_empty() || self.host.contains("://") {
            return invalid(
                "host",
                self.host.clone(),
                "must be this machine's host name or IP address as the other nodes reach it",
            );
        }
        if self.data_port == 0 {
            return invalid("data_port", "0".into(), "must be a free TCP port");
        }
        Ok(())
    }

    /// The orchestrator's websocket address.
    pub(crate) fn orchestrator_url(&self) -> String {
        format!("ws://{}", self.orchestrator)
    }

    /// This node's websocket address.
    pub(crate) fn node_url(&self) -> String {
        format!("ws://{}:{}", self.host, self.data_port)
    }
}

/// Run burn-collective's global orchestrator on `port` until the process is stopped (Ctrl-C or
/// SIGTERM): the rendezvous of the nodes of multi-machine groups ([`NodeConfig`]).
///
/// # Errors
/// [`CollectiveError::Burn`] when the asynchronous runtime cannot be started. (The orchestrator
/// logs its own errors, such as a port already in use, and returns.)
pub fn run_orchestrator(port: u16) -> CResult<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CollectiveError::Burn {
            rank: 0,
            operation: "orchestrator",
            message: e.to_string(),
        })?;
    runtime.block_on(burn_collective::start_global_orchestrator(port));
    Ok(())
}

impl PeerGroupConfig {
    /// Check the configuration.
    ///
    /// # Errors
    /// [`CollectiveError::InvalidConfig`] for zero peers, more peers than burn-collective's
    /// 32-bit peer ids, or a time-out that is not a positive finite number of seconds.
    pub fn validate(&self) -> CResult<()> {
        if self.peers == 0 || u32::try_from(self.peers).is_err() {
            return Err(CollectiveError::InvalidConfig {
                field: "peers",
                value: self.peers.to_string(),
                reason: "must be at least 1 (and fit in 32 bits)",
            });
        }
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            return Err(CollectiveError::InvalidConfig {
                field: "timeout_secs",
                value: self.timeout_secs.to_string(),
                reason: "must be a positive number of seconds",
            });
        }
        match &self.node {
            Some(node) => node.validate(),
            None => Ok(()),
        }
    }

    /// The number of peers of the whole group: `peers` times the number of nodes.
    pub fn total_peers(&self) -> usize {
        self.peers * self.node.as_ref().map_or(1, |n| n.nodes)
    }

    /// The global rank of this process's first peer.
    pub fn first_rank(&self) -> usize {
        self.peers * self.node.as_ref().map_or(0, |n| n.node_rank)
    }
}

/// burn-collective keeps one local server per backend type and process: one group at a time.
static ONE_GROUP_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Run `work` on `config.peers` peers, one thread each, peer `q` on `devices[q]`, and return
/// their results in rank order.
///
/// Each peer registers with burn-collective (all registrations complete together), runs
/// `work(peer)` and leaves. Groups in one process run one after another (burn-collective
/// keeps one server per backend and process).
///
/// With [`PeerGroupConfig::node`] this process is one node of a multi-machine group: its peers
/// have the global ranks `first_rank() + q`, registration also waits for the other nodes
/// (through the orchestrator), and the results returned are this node's peers'.
///
/// # Errors
/// [`CollectiveError::InvalidConfig`] for an invalid config or a device list of the wrong
/// length. When peers fail, the error of the peer that failed **first** (the cause; the
/// others fail because it stopped): the collective error its work met, if any (a
/// [`Timeout`](CollectiveError::Timeout) naming the peers that never arrived, ...), else its
/// own error or panic as [`CollectiveError::PeerFailed`].
pub fn run_local<B, T, E, F>(
    config: &PeerGroupConfig,
    devices: &[B::Device],
    work: F,
) -> CResult<Vec<T>>
where
    B: Backend,
    T: Send,
    E: Display,
    F: Fn(Arc<Peer<B>>) -> std::result::Result<T, E> + Sync,
{
    config.validate()?;
    let p = config.peers;
    let (total, first) = (config.total_peers(), config.first_rank());
    if devices.len() != p {
        return Err(CollectiveError::InvalidConfig {
            field: "devices",
            value: devices.len().to_string(),
            reason: "there must be one device per peer",
        });
    }
    let _one = ONE_GROUP_AT_A_TIME
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    // Forget what an earlier group that failed left half done.
    burn_collective::reset_collective::<B>();
    let board = Arc::new(Board::new(p));
    let timeout = Duration::from_secs_f64(config.timeout_secs);
    let outcomes: Vec<std::result::Result<T, (Instant, CollectiveError)>> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = devices
                .iter()
                .enumerate()
                .map(|(local, device)| {
                    let rank = first + local;
                    let peer = Arc::new(Peer::new(
                        PeerPlace {
                            rank,
                            local,
                            peers: total,
                        },
                        device.clone(),
                        board.clone(),
                        timeout,
                        config.node.clone(),
                    ));
                    let (board, work) = (board.clone(), &work);
                    std::thread::Builder::new()
                        .name(format!("peer-{rank}"))
                        .spawn_scoped(scope, move || {
                            let outcome = catch_unwind(AssertUnwindSafe(|| {
                                peer.register()?;
                                let out = work(peer.clone()).map_err(|e| {
                                    peer.take_failure().unwrap_or_else(|| {
                                        CollectiveError::PeerFailed {
                                            rank,
                                            message: e.to_string(),
                                        }
                                    })
                                })?;
                                peer.finish()?;
                                Ok(out)
                            }))
                            .unwrap_or_else(|payload| {
                                Err(CollectiveError::PeerFailed {
                                    rank,
                                    message: format!(
                                        "panicked: {}",
                                        curvature_core::panic_message(&*payload)
                                    ),
                                })
                            });
                            let reason = match &outcome {
                                Ok(_) => "it finished its work".to_string(),
                                Err(e) => e.to_string(),
                            };
                            board.stop(local, reason);
                            outcome.map_err(|e| (Instant::now(), e))
                        })
                })
                .collect::<std::io::Result<_>>()
                .expect("spawning a peer thread");
            handles
                .into_iter()
                .map(|h| h.join().expect("peer threads catch their panics"))
                .collect()
        });
    let first_failure = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err())
        .min_by_key(|(at, _)| *at)
        .map(|(_, e)| e.clone());
    match first_failure {
        Some(e) => Err(e),
        None => outcomes
            .into_iter()
            .map(|o| o.map_err(|(_, e)| e))
            .collect(),
    }
}
