//! A peer that fails, panics or never arrives stops the group with an error naming it, within
//! bounded time, instead of hanging the others.

use std::time::{Duration, Instant};

use burn::backend::NdArray;
use burn::tensor::Tensor;
use curvature_collective::{CollectiveError, PeerGroupConfig, run_local};
use curvature_core::PeerReduce;

type B = NdArray<f64>;

fn devices(n: usize) -> Vec<burn::backend::ndarray::NdArrayDevice> {
    vec![Default::default(); n]
}

/// Peer `bad` does `misbehave` instead of the all-reduce; the others all-reduce.
fn group_with_bad_peer(
    timeout_secs: f64,
    bad: usize,
    misbehave: impl Fn() -> Result<(), String> + Sync,
) -> (CollectiveError, Duration) {
    let start = Instant::now();
    let err = run_local::<B, _, _, _>(
        &PeerGroupConfig::new(3).with_timeout_secs(timeout_secs),
        &devices(3),
        |peer| {
            if peer.rank() == bad {
                return misbehave();
            }
            let t = Tensor::<B, 1>::ones([4], peer.device());
            peer.all_reduce(t).map(|_| ()).map_err(|e| e.to_string())
        },
    )
    .unwrap_err();
    (err, start.elapsed())
}

#[test]
fn a_peer_that_fails_is_named_and_the_others_do_not_wait_for_the_timeout() {
    let (err, took) = group_with_bad_peer(60.0, 1, || Err("out of memory (simulated)".into()));
    assert_eq!(
        err,
        CollectiveError::PeerFailed {
            rank: 1,
            message: "out of memory (simulated)".into()
        }
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn a_peer_that_panics_is_named() {
    let (err, took) = group_with_bad_peer(60.0, 2, || panic!("device lost (simulated)"));
    match &err {
        CollectiveError::PeerFailed { rank: 2, message } => {
            assert!(message.contains("device lost (simulated)"), "{message}");
        }
        other => panic!("expected peer 2's panic, got {other}"),
    }
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn a_peer_that_never_arrives_times_out_with_its_rank() {
    // Peer 2 is stuck (a hung device) for longer than the time-out.
    let (err, took) = group_with_bad_peer(0.5, 2, || {
        std::thread::sleep(Duration::from_secs(2));
        Ok(())
    });
    match &err {
        CollectiveError::Timeout {
            operation: "all-reduce",
            missing,
            ..
        } => assert_eq!(missing, &vec![2]),
        other => panic!("expected a time-out naming peer 2, got {other}"),
    }
    assert!(err.to_string().contains("[2]"), "{err}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn a_group_runs_after_a_failed_one() {
    let _ = group_with_bad_peer(60.0, 0, || Err("first group fails".into()));
    let sums = run_local::<B, _, _, _>(&PeerGroupConfig::new(2), &devices(2), |peer| {
        let t = Tensor::<B, 1>::from_floats([peer.rank() as f64 + 1.0], peer.device());
        peer.all_reduce(t).map(|s| s.into_scalar())
    })
    .unwrap();
    assert_eq!(sums, vec![3.0, 3.0]);
}

#[test]
fn invalid_groups_are_refused() {
    let ok = |_| Ok::<(), String>(());
    let err = run_local::<B, _, _, _>(&PeerGroupConfig::new(0), &devices(0), ok).unwrap_err();
    assert!(matches!(
        err,
        CollectiveError::InvalidConfig { field: "peers", .. }
    ));
    let err = run_local::<B, _, _, _>(
        &PeerGroupConfig::new(2).with_timeout_secs(f64::NAN),
        &devices(2),
        ok,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        CollectiveError::InvalidConfig {
            field: "timeout_secs",
            ..
        }
    ));
    let err = run_local::<B, _, _, _>(&PeerGroupConfig::new(2), &devices(3), ok).unwrap_err();
    assert!(matches!(
        err,
        CollectiveError::InvalidConfig {
            field: "devices",
            ..
        }
    ));
}
