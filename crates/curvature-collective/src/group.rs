//! A local data-parallel group: one thread per peer (one per device) in this process,
//! connected by burn-collective's local server.

use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use burn::config::Config;
use burn::tensor::backend::Backend;

use crate::board::Board;
use crate::error::{CollectiveError, Result as CResult};
use crate::peer::Peer;

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
        Ok(())
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
                .map(|(rank, device)| {
                    let peer = Arc::new(Peer::new(rank, p, device.clone(), board.clone(), timeout));
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
                                    message: format!("panicked: {}", panic_message(&*payload)),
                                })
                            });
                            let reason = match &outcome {
                                Ok(_) => "it finished its work".to_string(),
                                Err(e) => e.to_string(),
                            };
                            board.stop(rank, reason);
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

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}
