//! `curvature train --peers N`: data-parallel training equals one process on the same global
//! batches; checkpoints come from peer 0 and a resume needs the same number of peers.
//!
//! The reference is the single-process run of the same command (`--peers 1`), whose training
//! loop, optimisers and RMT damping are checked against independent references elsewhere; the
//! two-peer run shares every global batch of 200 (the last of 100) between two threads and sums
//! the gradient, the RMT Hessian variance, the spectra and the evaluation across them. In f64 the
//! two differ by summation order only (≈1e-16 relative per sum), far below what a wrong
//! weighting or a missed all-reduce would change.

use std::path::Path;

use super::{AUTO_DAMPING, assert_fails_with, curvature, refs, rows, text, train_mlp};

/// Every number of a CSV file written by a run, row by row (`skip_last`: without the wall-clock
/// column of `metrics.csv`).
fn numbers(path: &Path, skip_last: bool) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .skip(1)
        .map(|l| {
            let fields: Vec<&str> = l.split(',').collect();
            let keep = fields.len() - usize::from(skip_last);
            fields[..keep]
                .iter()
                .filter_map(|f| f.parse::<f64>().ok())
                .collect()
        })
        .collect()
}

fn assert_close(got: &[Vec<f64>], want: &[Vec<f64>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: rows");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len(), "{what}: columns");
        for (a, b) in g.iter().zip(w) {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1e-300),
                "{what}: {a} vs {b}\n{got:?}\n{want:?}"
            );
        }
    }
}

#[test]
fn two_peers_train_like_one_process_and_resume_only_with_two() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |peers: &str, epochs: usize, out: &str| -> Vec<String> {
        // RMT auto-damping: the Hessian variance of the sub-sample, sharded.
        let extra: Vec<String> = AUTO_DAMPING
            .iter()
            .chain(&[
                // The Hessian spectrum after every epoch, sharded.
                "--spectrum-every",
                "1",
                "--spectrum-steps",
                "8",
                "--peers",
                peers,
            ])
            .map(|s| s.to_string())
            .collect();
        train_mlp(out, epochs, &extra)
    };
    for (peers, out) in [("1", "one"), ("2", "two")] {
        let o = curvature(&refs(&run(peers, 2, out)), d);
        assert!(o.status.success(), "{peers} peers: {}", text(&o));
    }
    let (one, two) = (d.join("one"), d.join("two"));
    assert_close(
        &numbers(&two.join("metrics.csv"), true),
        &numbers(&one.join("metrics.csv"), true),
        "metrics.csv",
    );
    for file in ["rmt.csv", "spectra.csv"] {
        assert_close(
            &numbers(&two.join(file), false),
            &numbers(&one.join(file), false),
            file,
        );
    }
    // The RMT re-estimates happened (several, at the steps one process re-estimates at).
    assert!(numbers(&two.join("rmt.csv"), false).len() >= 4);

    // Interrupted after one epoch (extended to two, as a longer run stopped after one): a
    // resume on another number of peers is refused, on two it continues exactly.
    let o = curvature(&refs(&run("2", 1, "part")), d);
    assert!(o.status.success(), "{}", text(&o));
    let part = d.join("part");
    let cfg = part.join("config.json");
    let c = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"epochs\": 1", "\"epochs\": 2");
    std::fs::write(&cfg, c).unwrap();
    let o = curvature(&["train", "--quiet", "--resume", "part"], d);
    assert_fails_with(&o, "the run was trained on 2");
    assert!(text(&o).contains("--peers"), "{}", text(&o));
    let o = curvature(&["train", "--quiet", "--resume", "part", "--peers", "2"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(rows(&part), rows(&two), "resumed metrics");
    assert_eq!(
        std::fs::read(part.join("weights.safetensors")).unwrap(),
        std::fs::read(two.join("weights.safetensors")).unwrap(),
        "resumed weights"
    );
}

#[test]
fn peers_that_cannot_share_every_batch_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 1 500 training examples in batches of 1 499: the last global batch has one example.
    let o = curvature(
        &[
            "train",
            "--quiet",
            "--model",
            "logistic",
            "--epochs",
            "1",
            "--batch-size",
            "1499",
            "--peers",
            "2",
            "--out",
            "run",
        ],
        dir.path(),
    );
    assert_fails_with(&o, "the smallest global batch has 1 examples");
    assert!(!dir.path().join("run").exists(), "nothing left behind");
    let o = curvature(
        &[
            "train", "--quiet", "--model", "logistic", "--peers", "0", "--out", "run",
        ],
        dir.path(),
    );
    assert_fails_with(&o, "peers = 0");
}
