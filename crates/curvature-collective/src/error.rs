//! The error type of `curvature-collective`.

/// Everything that can go wrong in a data-parallel group.
///
/// A failure names the peer it comes from; a peer that waits for one that failed, left or
/// never answered reports that peer rather than hanging.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CollectiveError {
    /// A configuration value is out of its valid range.
    #[error("invalid configuration: {field} = {value}: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// Its value, formatted.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// Peer `rank`'s own work failed (its error, or its panic message).
    #[error("peer {rank} failed: {message}")]
    PeerFailed {
        /// The peer whose work failed.
        rank: usize,
        /// Its error.
        message: String,
    },
    /// A peer stopped (with an error or a panic) before reaching a collective operation the
    /// others were waiting in.
    #[error("peer {rank} stopped before the {operation} that peer {waiting} waits in: {reason}")]
    PeerLeft {
        /// The peer that stopped.
        rank: usize,
        /// The peer that noticed.
        waiting: usize,
        /// The collective operation.
        operation: &'static str,
        /// Why it stopped.
        reason: String,
    },
    /// Peers did not reach a collective operation within the time-out.
    #[error(
        "time-out after {seconds} s: peer {waiting} waited in the {operation} for peer(s) {missing:?}, which never reached it"
    )]
    Timeout {
        /// The peer that waited.
        waiting: usize,
        /// The collective operation.
        operation: &'static str,
        /// The peers that did not arrive.
        missing: Vec<usize>,
        /// The time-out.
        seconds: f64,
    },
    /// Several nodes: a connection to another node broke — a node stopped (killed, crashed,
    /// machine lost) or cannot be reached — so burn-collective's call failed before the
    /// time-out. Like [`Timeout`](Self::Timeout) it names the peers this peer lost: a peer
    /// cannot see which remote peers are still alive, so it names every peer of the other nodes.
    #[error(
        "peer {waiting} lost the other node(s) in the {operation}: peer(s) {missing:?} stopped or cannot be reached (burn-collective: {message})"
    )]
    NodeLost {
        /// The peer that noticed.
        waiting: usize,
        /// The collective operation.
        operation: &'static str,
        /// The peers of the other nodes.
        missing: Vec<usize>,
        /// burn-collective's error, formatted.
        message: String,
    },
    /// burn-collective reported an error.
    #[error("burn-collective failed in the {operation} of peer {rank}: {message}")]
    Burn {
        /// The peer.
        rank: usize,
        /// The collective operation.
        operation: &'static str,
        /// burn-collective's error, formatted.
        message: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, CollectiveError>;

impl From<CollectiveError> for curvature_core::CurvatureError {
    fn from(e: CollectiveError) -> Self {
        curvature_core::CurvatureError::Peer(e.to_string())
    }
}
