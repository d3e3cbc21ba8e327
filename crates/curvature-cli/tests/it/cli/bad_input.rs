//! Bad input to every command: clear errors, and nothing overwritten.

use super::{assert_fails_with, curvature, rows, text};

#[test]
fn bad_input_gives_clear_errors_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = curvature(&["train", "--out", "a", "--model", "resnet9000"], d);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("unknown model `resnet9000`; valid: logistic, mlp, cnn"),
        "{}",
        text(&o)
    );
    // A conv net on flat data, and a dataset directory without its files.
    let o = curvature(
        &[
            "train", "--out", "a", "--model", "cnn", "--data", "clusters",
        ],
        d,
    );
    assert_fails_with(&o, "convolutional models need image data");
    std::fs::create_dir(d.join("empty")).unwrap();
    for (data, file) in [
        ("cifar10", "data_batch_1.bin"),
        ("fashion-mnist", "train-images-idx3-ubyte"),
    ] {
        let o = curvature(
            &["train", "--out", "a", "--data", data, "--data-dir", "empty"],
            d,
        );
        assert!(
            !o.status.success() && text(&o).contains(file) && text(&o).contains("empty"),
            "{data}: {}",
            text(&o)
        );
        assert!(!d.join("a").exists(), "nothing written for a failed start");
    }
    let o = curvature(&["train", "--out", "a", "--damping=-1"], d);
    assert_fails_with(&o, "damping");
    // A negative number is a value (then refused by validation), not an unknown flag.
    let o = curvature(&["train", "--out", "a", "--lr", "-1"], d);
    assert_fails_with(&o, "lr");
    assert!(!text(&o).contains("unexpected argument"), "{}", text(&o));
    let o = curvature(&["train", "--out", "a", "--divergence-factor", "0.5"], d);
    assert_fails_with(&o, "divergence_factor");
    // RMT auto-damping on a sub-sample of one estimation batch cannot rescale the variance.
    let o = curvature(
        &[
            "train",
            "--quiet",
            "--out",
            "r",
            "--optimizer",
            "kfac",
            "--damping",
            "auto",
            "--rmt-subsample",
            "100",
        ],
        d,
    );
    assert_fails_with(&o, "rmt_subsample = 100");
    // A run that fails before it starts does not claim its directory.
    assert!(!d.join("r/config.json").exists());
    let o = curvature(&["train", "--out", "r", "--rmt-vectors", "0"], d);
    assert_fails_with(&o, "rmt_vectors");
    // The convolution lowering is a closed set.
    let o = curvature(&["train", "--out", "r", "--conv", "fft"], d);
    assert_fails_with(&o, "im2col");
    let quick = [
        "train", "--quiet", "--out", "a", "--epochs", "1", "--model", "logistic",
    ];
    assert!(curvature(&quick, d).status.success());
    let o = curvature(&quick, d);
    assert_fails_with(&o, "already holds a run");
    // A run resumes on the backend and precision it was trained on, not silently elsewhere.
    let default = if cfg!(feature = "flex") {
        "flex f32"
    } else {
        "ndarray f32"
    };
    let o = curvature(&["train", "--resume", "a", "--precision", "f64"], d);
    assert_fails_with(&o, &format!("the run was trained on {default}"));
    // Naming neither continues where it was trained, also off the default backend.
    let on_ndarray = [
        "train",
        "--quiet",
        "--out",
        "n",
        "--epochs",
        "1",
        "--model",
        "logistic",
        "--backend",
        "ndarray",
    ];
    assert!(curvature(&on_ndarray, d).status.success());
    let o = curvature(&["train", "--quiet", "--resume", "n"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    if cfg!(feature = "flex") {
        let o = curvature(&["train", "--resume", "n", "--backend", "flex"], d);
        assert_fails_with(&o, "the run was trained on ndarray f32");
    }
    let mut forced = quick.to_vec();
    forced.push("--force");
    assert!(curvature(&forced, d).status.success());
    // --init-weights: a run started from another run's weights begins where that one ended.
    let o = curvature(
        &[
            "train",
            "--quiet",
            "--out",
            "b",
            "--epochs",
            "1",
            "--model",
            "logistic",
            "--lr",
            "1e-9",
            "--init-weights",
            "a/weights.safetensors",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let first = |dir: &str| rows(&d.join(dir))[1].split(',').nth(4).unwrap().to_string();
    assert_eq!(
        first("a"),
        first("b"),
        "train loss after a 1e-9 step from a's weights"
    );
    let o = curvature(
        &[
            "train",
            "--out",
            "c",
            "--model",
            "mlp",
            "--init-weights",
            "a/weights.safetensors",
        ],
        d,
    );
    assert!(!o.status.success(), "{}", text(&o));
    let o = curvature(&["train", "--resume", "nowhere"], d);
    assert_fails_with(&o, "config.json");
    // Divergence stops with the step number and keeps no bad checkpoint.
    let o = curvature(
        &[
            "train", "--quiet", "--out", "div", "--lr", "1e39", "--model", "logistic", "--epochs",
            "2",
        ],
        d,
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("became NaN at step 1"), "{}", text(&o));
    assert!(
        text(&o).contains("no checkpoint had been written"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("backtrace"), "{}", text(&o));
    // A loss that blows up without becoming NaN (lr 1e6: finite losses in the millions)
    // stops the same way, after the first epoch's checkpoint, which is kept.
    let o = curvature(
        &[
            "train",
            "--quiet",
            "--out",
            "blow",
            "--lr",
            "1e6",
            "--model",
            "logistic",
            "--epochs",
            "3",
            "--batch-size",
            "500",
        ],
        d,
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("× the first loss") && text(&o).contains("divergence_factor"),
        "{}",
        text(&o)
    );
    // ... and with the rule relaxed, the same run finishes.
    let o = curvature(
        &[
            "train",
            "--quiet",
            "--out",
            "blow2",
            "--lr",
            "1e6",
            "--model",
            "logistic",
            "--epochs",
            "1",
            "--batch-size",
            "500",
            "--divergence-factor",
            "1e300",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
}
