//! `curvature bench` and `curvature verify`.

use super::{assert_fails_with, curvature, read_json, text};

/// `curvature bench` on NdArray prints every row and writes the CSV of the PyTorch script's
/// columns; a GPU backend the binary was built without is refused with the rebuild command.
#[test]
fn bench_prints_the_table_and_writes_csv() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = curvature(
        &[
            "bench",
            "--models",
            "mlp",
            "--batch",
            "4",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--lanczos-steps",
            "2",
            "--lanczos-opt-rank",
            "2",
            "--no-kfac",
            "--image",
            "1,8,8",
            "--csv",
            "b.csv",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read_to_string(d.join("b.csv")).unwrap();
    assert!(csv.starts_with("model,params,operation,ms,ratio,baseline,note,first_ms"));
    for op in [
        "gradient",
        "exact hvp",
        "ggn product",
        "lanczos step",
        "sgd step",
    ] {
        assert!(csv.contains(&format!(",{op},")), "{op} missing: {csv}");
    }
    if !cfg!(feature = "cuda") {
        let o = curvature(&["bench", "--backend", "cuda"], d);
        assert!(!o.status.success());
        assert!(text(&o).contains("--features cuda"), "{}", text(&o));
    }
    let o = curvature(&["bench", "--image", "3,32"], d);
    assert_fails_with(&o, "expected three sizes C,H,W");
    // `curvature tune` has nothing to tune on a CPU backend, nor in a build without autotuning.
    let o = curvature(&["tune", "--backend", "ndarray"], d);
    assert_fails_with(&o, "autotuning applies to the GPU backends");
    if cfg!(feature = "wgpu") && !cfg!(feature = "autotune") {
        let o = curvature(&["tune", "--backend", "wgpu"], d);
        assert_fails_with(&o, "built without autotuning");
        assert!(
            text(&o).contains("--features wgpu,autotune"),
            "{}",
            text(&o)
        );
    }
    let o = curvature(&["bench", "--models", "resnet"], d);
    assert!(!o.status.success());
    assert!(text(&o).contains("wrn-<depth>-<k>"), "{}", text(&o));
    // Any model name of `train`: a residual network on the CIFAR-shaped input.
    let o = curvature(
        &[
            "bench",
            "--models",
            "preresnet-8",
            "--batch",
            "2",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--lanczos-steps",
            "2",
            "--no-optimisers",
            "--csv",
            "r.csv",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read_to_string(d.join("r.csv")).unwrap();
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.starts_with("\"preresnet-8\",") || l.starts_with("preresnet-8,")),
        "{csv}"
    );
    assert!(csv.contains("exact hvp"), "{csv}");
}

/// `curvature bench --peers 2`: every row measured on two peers sharing the batch (KFAC's
/// factor step included, whose factors are all-reduced), the header saying so; a batch the
/// peers cannot share is refused before anything is timed.
#[test]
fn bench_on_two_peers_times_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = curvature(
        &[
            "bench",
            "--backend",
            "ndarray",
            "--models",
            "mlp",
            "--batch",
            "6",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--lanczos-steps",
            "2",
            "--lanczos-opt-rank",
            "2",
            "--no-kfac-inversion",
            "--image",
            "1,8,8",
            "--peers",
            "2",
            "--csv",
            "p.csv",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 data-parallel peers"), "{}", text(&o));
    let csv = std::fs::read_to_string(d.join("p.csv")).unwrap();
    for op in [
        "gradient",
        "exact hvp",
        "lanczos step",
        "sgd step",
        "adam step",
        "kfac factor step",
        "lanczos-opt step (k=2)",
    ] {
        assert!(
            csv.contains(&format!(",{op},")) || csv.contains(&format!(",\"{op}\",")),
            "{op} missing: {csv}"
        );
    }
    let o = curvature(&["bench", "--batch", "1", "--peers", "2"], d);
    assert_fails_with(&o, "more peers than items");
}

/// `curvature verify` on NdArray against itself: every comparison printed and written, every
/// error exactly 0 (the same computation twice), exit 0; bad sizes and names refused.
#[test]
fn verify_prints_every_comparison_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = curvature(
        &[
            "verify", "--model", "mlp", "--hidden", "8", "--json", "v.json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    for row in [
        "gradient",
        "Hv (seed 2)",
        "top Ritz values",
        "kfac: update of 2 steps",
    ] {
        assert!(out.contains(row), "{out}");
    }
    assert!(out.contains("all 11 agree"), "{out}");
    let json = read_json(&d.join("v.json"));
    let comparisons = json["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 11, "{json}");
    for c in comparisons {
        assert_eq!(c["relative_error"].as_f64(), Some(0.0), "{c}");
    }
    assert_fails_with(&curvature(&["verify", "--examples", "0"], d), "examples");
    assert_fails_with(
        &curvature(&["verify", "--optimizers", "sgd,nope"], d),
        "possible values",
    );
}
