//! What the peers of one process know about each other: how many collective operations each
//! has entered, and which have stopped. A peer waiting in an operation reads it to report the
//! peer that will never come instead of waiting forever.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// One peer's line on the board.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerState {
    /// Collective operations entered so far (registration included).
    pub entered: u64,
    /// Why the peer stopped, once it has.
    pub stopped: Option<String>,
}

/// The shared board of a local group.
#[derive(Debug)]
pub(crate) struct Board {
    peers: Mutex<Vec<PeerState>>,
}

impl Board {
    pub fn new(peers: usize) -> Self {
        Self {
            peers: Mutex::new(vec![PeerState::default(); peers]),
        }
    }

    /// The board, readable even after a peer panicked while holding it.
    pub fn lock(&self) -> MutexGuard<'_, Vec<PeerState>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Record that `rank` entered one more operation; returns its count.
    pub fn enter(&self, rank: usize) -> u64 {
        let mut board = self.lock();
        board[rank].entered += 1;
        board[rank].entered
    }

    /// Record that `rank` stopped, and why.
    pub fn stop(&self, rank: usize, reason: String) {
        self.lock()[rank].stopped.get_or_insert(reason);
    }

    /// A peer that stopped before entering operation number `count`, with its reason.
    pub fn stopped_before(&self, count: u64) -> Option<(usize, String)> {
        self.lock().iter().enumerate().find_map(|(q, s)| {
            (s.entered < count)
                .then(|| s.stopped.clone().map(|r| (q, r)))
                .flatten()
        })
    }

    /// The peers that have not entered operation number `count`.
    pub fn missing(&self, count: u64) -> Vec<usize> {
        self.lock()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.entered < count)
            .map(|(q, _)| q)
            .collect()
    }
}
