//! End-to-end tests of the `curvature` binary, one module per command (or concern), and the
//! helpers they share.

mod bad_input;
mod bench;
mod fashion_mnist;
mod nodes;
mod presets;
mod spectrum;
mod train;
mod train_peers;

use std::path::Path;
use std::process::{Command, Output};

/// RMT auto-damping re-estimated every 3 steps on a sub-sample of its own (not the spectra's
/// 10 000) with two vectors: the flags of the tests that train with a learned damping.
pub(crate) const AUTO_DAMPING: [&str; 8] = [
    "--damping",
    "auto",
    "--damping-interval",
    "3",
    "--rmt-subsample",
    "512",
    "--rmt-vectors",
    "2",
];

pub(crate) fn curvature(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_curvature"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Metrics rows without the wall-clock column.
pub(crate) fn rows(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

/// The command failed and its output names `needle`.
pub(crate) fn assert_fails_with(o: &Output, needle: &str) {
    assert!(
        !o.status.success() && text(o).contains(needle),
        "{}",
        text(o)
    );
}

/// A JSON file the binary wrote.
pub(crate) fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The numbers of a JSON array the binary wrote (e.g. a summary's `eigenvalues`).
pub(crate) fn numbers(array: &serde_json::Value) -> Vec<f64> {
    array
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {array}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// Ascending eigenvalues `got` equal `want` to `tol · |λ_max|` (the last of `want`).
pub(crate) fn assert_spectrum_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of eigenvalues");
    let scale = want.last().expect("eigenvalues").abs();
    for (g, e) in got.iter().zip(want) {
        assert!((g - e).abs() <= tol * scale, "{what}: {g} vs {e}");
    }
}

pub(crate) fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `curvature train` of a small f64 MLP with Adam for `epochs` epochs into `out`, then `extra`.
pub(crate) fn train_mlp(out: &str, epochs: usize, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--quiet",
        "--precision",
        "f64",
        "--model",
        "mlp",
        "--hidden",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "0.005",
        "--batch-size",
        "200",
        "--epochs",
        &epochs.to_string(),
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend_from_slice(extra);
    args
}

/// `curvature spectrum` of the dense f64 logistic-regression Hessian (batches of 200) into
/// `json`, then `extra`.
pub(crate) fn dense_logistic_spectrum<'a>(json: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "spectrum",
        "--quiet",
        "--model",
        "logistic",
        "--precision",
        "f64",
        "--dense",
        "--batch-size",
        "200",
        "--json",
        json,
    ];
    args.extend_from_slice(extra);
    args
}
