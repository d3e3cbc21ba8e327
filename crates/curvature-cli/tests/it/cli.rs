//! End-to-end tests of the `curvature` binary: quickstart, train + resume continuing
//! bit-identically, divergence and bad input.

use std::path::Path;
use std::process::{Command, Output};

fn curvature(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_curvature"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Metrics rows without the wall-clock column.
fn rows(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

/// The command failed and its output names `needle`.
fn assert_fails_with(o: &Output, needle: &str) {
    assert!(
        !o.status.success() && text(o).contains(needle),
        "{}",
        text(o)
    );
}

/// A JSON file the binary wrote.
fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn quickstart_runs_with_no_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let o = curvature(&[], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let out = dir.path().join("curvature-runs/quickstart-1");
    for f in [
        "config.json",
        "metrics.csv",
        "weights.safetensors",
        "summary.json",
        "spectra.csv",
        "plots/spectrum.svg",
        "plots/spectrum.png",
    ] {
        assert!(out.join(f).exists(), "{f} missing: {}", text(&o));
    }
    assert!(text(&o).contains("quickstart-1"));
    let line = text(&o)
        .lines()
        .find(|l| l.starts_with("Hessian of the training loss"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no spectrum line: {}", text(&o)));
    let lambda_max: f64 = line
        .split("λ_max ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(lambda_max.is_finite() && lambda_max > 0.0, "{line}");
    assert_eq!(rows(&out).len(), 11, "header + 10 epochs");
}

#[test]
fn resumed_runs_continue_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, extra) in [
        ("sgd", vec!["--optimizer", "sgd", "--lr", "0.05"]),
        (
            "adam_auto",
            vec![
                "--optimizer",
                "adam",
                "--lr",
                "0.005",
                "--damping",
                "auto",
                "--damping-interval",
                "3",
            ],
        ),
        (
            "lanczos_opt",
            vec![
                "--optimizer",
                "lanczos-opt",
                "--lr",
                "0.5",
                "--damping",
                "0.1",
                "--rank",
                "5",
            ],
        ),
        (
            "kfac_auto",
            vec![
                "--optimizer",
                "kfac",
                "--lr",
                "0.05",
                "--damping",
                "auto",
                "--damping-interval",
                "3",
                // A sub-sample of its own (not the spectra's 10 000), two vectors.
                "--rmt-subsample",
                "512",
                "--rmt-vectors",
                "2",
            ],
        ),
        (
            // A batch-normalised CNN on the 8×8 digit images (running statistics are part of
            // the checkpoint).
            "cnn_kfac",
            vec![
                "--model",
                "cnn",
                "--channels",
                "4,8",
                "--optimizer",
                "kfac",
                "--lr",
                "0.05",
                "--damping",
                "0.1",
            ],
        ),
        (
            // Gadam (Adam + decoupled weight decay + iterate averaging from epoch 1, eq. 13
            // schedule) on crops and flips drawn anew each epoch: the average and the
            // augmentation stream are part of the resumed state.
            "cnn_gadam_augmented",
            vec![
                "--model",
                "cnn",
                "--channels",
                "4,8",
                "--optimizer",
                "gadam",
                "--lr",
                "0.003",
                "--weight-decay",
                "0.01",
                "--average-from",
                "1",
                "--schedule",
                "averaging-decay",
                "--augment",
                "crop-flip",
            ],
        ),
    ] {
        let model: &[&str] = if extra.contains(&"--model") {
            &[]
        } else {
            &["--model", "mlp", "--hidden", "16"]
        };
        let common = |epochs: &str, out: &str| -> Vec<String> {
            let mut a: Vec<String> = ["train", "--quiet"]
                .iter()
                .chain(model)
                .map(|s| s.to_string())
                .collect();
            a.extend(
                ["--batch-size", "200", "--epochs", epochs, "--out", out]
                    .iter()
                    .map(|s| s.to_string()),
            );
            a.extend(extra.iter().map(|s| s.to_string()));
            a
        };
        let full = format!("{name}_full");
        let part = format!("{name}_part");
        let o = curvature(&refs(&common("4", &full)), d);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let o = curvature(&refs(&common("2", &part)), d);
        assert!(o.status.success(), "{name}: {}", text(&o));
        // Extend the interrupted run to 4 epochs and resume it.
        let cfg = d.join(&part).join("config.json");
        let c = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("\"epochs\": 2", "\"epochs\": 4");
        std::fs::write(&cfg, c).unwrap();
        if name == "sgd" {
            // A crash between the two renames of the checkpoint swap leaves only
            // checkpoint.old (complete): resume takes it back.
            let run = d.join(&part);
            std::fs::rename(run.join("checkpoint"), run.join("checkpoint.old")).unwrap();
        }
        let o = curvature(&["train", "--quiet", "--resume", &part], d);
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert_eq!(
            rows(&d.join(&part)),
            rows(&d.join(&full)),
            "{name}: metrics"
        );
        assert_eq!(
            std::fs::read(d.join(&part).join("weights.safetensors")).unwrap(),
            std::fs::read(d.join(&full).join("weights.safetensors")).unwrap(),
            "{name}: final weights"
        );
        if extra.contains(&"auto") {
            // Every RMT re-estimate is logged (4 epochs × 8 steps / interval 3 = 10), and the
            // resumed run's log is the uninterrupted one's.
            let log = std::fs::read_to_string(d.join(&full).join("rmt.csv")).unwrap();
            let lines: Vec<&str> = log.lines().collect();
            assert!(lines[0].starts_with("step,batch_variance,"), "{log}");
            assert_eq!(lines.len(), 1 + 10, "{name}: {log}");
            assert!(
                lines[1..]
                    .iter()
                    .all(|l| l.split(',').all(|f| !f.is_empty())),
                "{name}: per-example variances and standard errors: {log}"
            );
            assert_eq!(
                std::fs::read_to_string(d.join(&part).join("rmt.csv")).unwrap(),
                log,
                "{name}: rmt.csv"
            );
        }
    }
    // The spectrum of the trained CNN, from its run directory. The spectra here are over a
    // seeded subset of 300 of the run's 1 500 training examples (5× faster; the same code).
    let o = curvature(
        &[
            "spectrum",
            "--quiet",
            "--run",
            "cnn_kfac_full",
            "--steps",
            "8",
            "--train-size",
            "300",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("λ_max"), "{}", text(&o));
    // A finished run's checkpoint holds its final weights: the same spectrum as --run. An
    // averaged run's checkpoint holds the raw iterate, its weights the average: different.
    let spectrum_json = |source: &str, dir: &str, extra: &[&str]| -> serde_json::Value {
        let out = format!("{dir}-{source}{}.json", extra.len());
        let mut args = vec![
            "spectrum",
            "--quiet",
            source,
            dir,
            "--steps",
            "8",
            "--train-size",
            "300",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--json", &out]);
        let o = curvature(&args, d);
        assert!(o.status.success(), "{}", text(&o));
        read_json(&d.join(&out))
    };
    assert_eq!(
        spectrum_json("--checkpoint", "cnn_kfac_full", &[]),
        spectrum_json("--run", "cnn_kfac_full", &[])
    );
    assert_eq!(
        spectrum_json("--checkpoint", "cnn_kfac_full/checkpoint", &[]),
        spectrum_json("--run", "cnn_kfac_full", &[])
    );
    assert_ne!(
        spectrum_json("--checkpoint", "cnn_gadam_augmented_full", &[])["lambda_max"],
        spectrum_json("--run", "cnn_gadam_augmented_full", &[])["lambda_max"]
    );
    // Over 300 augmented training examples: another operator than the plain training set's,
    // reproducible from the seed.
    let augmented = spectrum_json("--run", "cnn_kfac_full", &["--augmented", "300"]);
    assert_ne!(
        augmented["lambda_max"],
        spectrum_json("--run", "cnn_kfac_full", &[])["lambda_max"]
    );
    assert_eq!(
        augmented,
        spectrum_json(
            "--run",
            "cnn_kfac_full",
            &["--augmented", "300", "--seed", "0"]
        )
    );
}

/// Ctrl-C (SIGINT) stops a run with a checkpoint of its last step and exit status 130;
/// `--resume` then finishes it exactly like an uninterrupted run.
#[test]
fn ctrl_c_checkpoints_and_resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = |out: &'static str| {
        vec![
            "train",
            "--quiet",
            "--hidden",
            "64",
            "--batch-size",
            "10",
            "--epochs",
            "40",
            "--optimizer",
            "adam",
            "--lr",
            "0.002",
            "--out",
            out,
        ]
    };
    let child = Command::new(env!("CARGO_BIN_EXE_curvature"))
        .args(args("cut"))
        .current_dir(d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first epoch is on disk.
    let metrics = d.join("cut/metrics.csv");
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 2 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(text(&out).contains("--resume"), "{}", text(&out));
    let state = std::fs::read_to_string(d.join("cut/checkpoint/state.json")).unwrap();
    assert!(
        !state.contains("\"epochs_done\": 40"),
        "stopped early: {state}"
    );
    assert!(!d.join("cut/weights.safetensors").exists());
    let o = curvature(&["train", "--quiet", "--resume", "cut"], d);
    assert!(o.status.success(), "{}", text(&o));
    let o = curvature(
        &refs(
            &args("whole")
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        ),
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(rows(&d.join("cut")), rows(&d.join("whole")));
    assert_eq!(
        std::fs::read(d.join("cut/weights.safetensors")).unwrap(),
        std::fs::read(d.join("whole/weights.safetensors")).unwrap()
    );
}

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
    let quick = [
        "train", "--quiet", "--out", "a", "--epochs", "1", "--model", "logistic",
    ];
    assert!(curvature(&quick, d).status.success());
    let o = curvature(&quick, d);
    assert_fails_with(&o, "already holds a run");
    // A run resumes on the backend and precision it was trained on, not silently elsewhere.
    let o = curvature(&["train", "--resume", "a", "--precision", "f64"], d);
    assert_fails_with(&o, "the run was trained on ndarray f32");
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

#[test]
fn dense_spectrum_agrees_with_the_library_reference_and_json_has_the_documented_fields() {
    use burn::backend::NdArray;
    use curvature_core::{DenseReferenceConfig, Loss, Objective, dense_matrix, dense_spectrum};
    use curvature_nets::{LogisticRegressionConfig, load_safetensors, module_path};
    type B = NdArray<f32>;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = [
        "train", "--quiet", "--out", "r", "--model", "logistic", "--epochs", "2", "--seed", "3",
    ];
    assert!(curvature(&run, d).status.success());
    let o = curvature(
        &["spectrum", "--run", "r", "--dense", "--json", "dense.json"],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let json = read_json(&d.join("dense.json"));
    let got: Vec<f64> = json["eigenvalues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // The library's reference, built here independently from the run's files: the same
    // split (seed 3, 297 held out), the weights file, batches of 256.
    let device = Default::default();
    let (train, _) = curvature_data::optdigits().unwrap().split(297, 3).unwrap();
    let model = LogisticRegressionConfig::optdigits()
        .init::<B>(&device)
        .unwrap();
    let (model, unused) =
        load_safetensors(model, d.join("r/weights.safetensors"), &module_path).unwrap();
    assert!(unused.is_empty());
    let objective = Objective::new(
        model,
        Loss::CrossEntropy,
        train.batches::<B, 2>(256, &device).unwrap(),
    )
    .unwrap();
    let h = dense_matrix(&objective.hessian(), DenseReferenceConfig::default()).unwrap();
    let expected = dense_spectrum(&h).eigenvalues;
    assert_eq!(got.len(), 650);
    // Same computation in the same precision: identical up to summation order (none here).
    let scale = expected.last().unwrap().abs();
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() <= 1e-9 * scale, "{g} vs {e}");
    }
    // `--precision f64` (NdArray f64) computes the same eigenvalues from the same f32
    // weights; the difference is f32 rounding of the Hessian entries (≈1e-7 relative to
    // λ_max), so 1e-5 · λ_max bounds it with margin and would catch a wrong backend or model.
    let o = curvature(
        &[
            "spectrum",
            "--run",
            "r",
            "--dense",
            "--precision",
            "f64",
            "--json",
            "dense64.json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let json = read_json(&d.join("dense64.json"));
    assert_eq!(json["bn_mode"], "train", "{json}");
    let got64 = json["eigenvalues"].as_array().unwrap();
    assert_eq!(got64.len(), 650);
    for (g, e) in got64.iter().zip(&expected) {
        let g = g.as_f64().unwrap();
        assert!((g - e).abs() <= 1e-5 * scale, "f64 {g} vs f32 {e}");
    }
    // A GPU backend this binary was built without is refused with the rebuild command.
    if !cfg!(feature = "cuda") {
        let o = curvature(&["spectrum", "--run", "r", "--backend", "cuda"], d);
        assert_fails_with(&o, "--features cuda");
    }
    // Lanczos JSON: the field names of the spectrum summary.
    let o = curvature(
        &[
            "spectrum",
            "--run",
            "r",
            "--steps",
            "30",
            "--json",
            "lanczos.json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let json = read_json(&d.join("lanczos.json"));
    for key in [
        "lambda_max",
        "lambda_min",
        "trace",
        "frobenius",
        "degenerate_mass",
        "negative_mass",
        "estimators",
    ] {
        assert!(json.get(key).is_some(), "missing `{key}` in {json}");
    }
    // What was measured: the defaults of `spectrum`.
    assert_eq!(json["operator"], "hessian", "{json}");
    assert_eq!(json["split"], "train", "{json}");
    assert_eq!(json["bn_mode"], "train", "{json}");
    assert!(json["block"].is_null(), "{json}");
    let lmax = json["lambda_max"].as_f64().unwrap();
    assert!(
        (lmax - scale).abs() <= 1e-3 * scale,
        "Lanczos λ_max {lmax} vs dense {scale}"
    );
    // Default settings (4 vectors, 80 steps): trace and Frobenius norm within three printed
    // standard errors of the dense eigenvalues' (an independent, exact computation).
    let o = curvature(&["spectrum", "--run", "r", "--json", "default.json"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("±"), "{}", text(&o));
    let json = read_json(&d.join("default.json"));
    assert_eq!(json["num_vectors"].as_u64(), Some(4));
    let exact_trace: f64 = expected.iter().sum();
    let exact_fro = expected.iter().map(|e| e * e).sum::<f64>().sqrt();
    for (key, exact) in [("trace", exact_trace), ("frobenius", exact_fro)] {
        let (est, se) = (
            json[key].as_f64().unwrap(),
            json[format!("{key}_stderr")].as_f64().unwrap(),
        );
        assert!(se > 0.0, "{key}: a stochastic estimate has an error bar");
        assert!(
            (est - exact).abs() <= 3.0 * se + 1e-6 * exact,
            "{key} {est} ± {se} vs dense {exact}"
        );
    }
    // Unknown names are refused by the enums' parsers with the valid ones listed.
    let o = curvature(&["spectrum", "--run", "r", "--operator", "fisher"], d);
    assert_fails_with(&o, "'fisher'");
    assert!(
        text(&o).contains("[possible values: hessian, ggn, hessian-minus-ggn]"),
        "{}",
        text(&o)
    );
    let sweep = ["sweep", "--preset", "kfac-grid-mini", "--out", "x"];
    for (args, needle) in [
        (
            vec!["spectrum", "--run", "r", "--outliers", "gaps"],
            "[possible values: mp, gap]",
        ),
        (vec!["train", "--out", "x", "--optimizer", "adan"], "adam-d"),
        ([&sweep[..], &["--metric", "acc"]].concat(), "val_accuracy"),
        (
            [&sweep[..], &["--grid", "optimizer=sgd,adan"]].concat(),
            "unknown variant `adan`",
        ),
    ] {
        assert_fails_with(&curvature(&args, d), needle);
    }
    // `val` is another name of the held-out split; the gap rule is the other outlier rule.
    let o = curvature(
        &[
            "spectrum",
            "--run",
            "r",
            "--split",
            "val",
            "--steps",
            "4",
            "--outliers",
            "gap",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("(gap rule)"), "{}", text(&o));
}

/// `variance` equals the library's `hessian_variance` on the same objective; `interpolate`
/// reproduces both end points' losses and writes CSV and plots; `spectrum --block --plot`
/// and `train --spectrum-every` write their files; bad ranges and blocks are clear errors.
#[test]
fn variance_interpolate_block_spectra_and_plots() {
    use burn::backend::NdArray;
    use curvature_core::{HessianVarianceConfig, Loss, Objective, hessian_variance};
    use curvature_nets::{LogisticRegressionConfig, load_safetensors, module_path};
    type B = NdArray<f32>;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = |out: &str, batch: &str, epochs: &str| {
        let o = curvature(
            &[
                "train",
                "--quiet",
                "--out",
                out,
                "--model",
                "logistic",
                "--batch-size",
                batch,
                "--epochs",
                epochs,
                "--spectrum-every",
                "2",
                "--spectrum-steps",
                "10",
            ],
            d,
        );
        assert!(o.status.success(), "{}", text(&o));
    };
    train("a", "20", "2");
    train("b", "2000", "4");
    for f in [
        "plots/loss.svg",
        "plots/loss.png",
        "plots/accuracy.svg",
        "plots/accuracy.png",
        "plots/lr-damping.svg",
        "plots/lr-damping.png",
        "plots/spectrum.svg",
        "plots/spectrum.png",
        "spectra/epoch-0002.json",
        "spectra/epoch-0002.svg",
        "spectra/epoch-0002.png",
    ] {
        assert!(d.join("b").join(f).exists(), "{f}");
    }
    let spectra = std::fs::read_to_string(d.join("b/spectra.csv")).unwrap();
    assert_eq!(
        spectra.lines().count(),
        3,
        "header + epochs 2 and 4: {spectra}"
    );
    // Every row reads back with the outlier check the summary computed.
    let records = curvature_lab::train::RunPaths { out: d.join("b") }
        .read_spectra()
        .unwrap();
    assert_eq!(records.len(), 2, "{spectra}");
    for r in &records {
        let check = r.outlier_check.expect("recorded");
        assert!(
            check.bulk_misfit.is_some() && check.eigenvalues_allowed >= 0.0,
            "{check:?}"
        );
    }

    // variance vs the library, built independently (seed 0 split, 297 held out, batches 128).
    let o = curvature(&["variance", "--run", "a", "--json", "v.json"], d);
    assert!(o.status.success(), "{}", text(&o));
    let json = read_json(&d.join("v.json"));
    let device = Default::default();
    let (data, _) = curvature_data::optdigits().unwrap().split(297, 0).unwrap();
    let model = LogisticRegressionConfig::optdigits()
        .init::<B>(&device)
        .unwrap();
    let (model, _) =
        load_safetensors(model, d.join("a/weights.safetensors"), &module_path).unwrap();
    let objective = Objective::new(
        model,
        Loss::CrossEntropy,
        data.batches::<B, 2>(128, &device).unwrap(),
    )
    .unwrap();
    let expected = hessian_variance(&objective, &HessianVarianceConfig::new()).unwrap();
    let got = json["batch_variance"].as_f64().unwrap();
    assert!(
        (got - expected.batch_variance).abs() <= 1e-12 * expected.batch_variance.abs().max(1e-30),
        "{got} vs {}",
        expected.batch_variance
    );
    assert_eq!(json["estimator"].as_str(), Some("unbiased"));
    assert_eq!(json["per_vector"].as_array().map(Vec::len), Some(4));
    assert!(json["batch_variance_stderr"].as_f64().unwrap() > 0.0);
    // δ* for the run's training batch (20) from the 1 500 training examples.
    let damping = json["optimal_damping"].as_f64().unwrap();
    let want = expected.damping_for(20, Some(1500)).unwrap();
    assert!(
        (damping - want).abs() <= 1e-12 * want,
        "{damping} vs {want}"
    );
    assert_eq!(json["train_batch_size"].as_u64(), Some(20));
    assert_eq!(json["batches"].as_u64(), Some(12));
    assert!(text(&o).contains("±"), "{}", text(&o));

    // One batch holding the whole sub-sample: no noise, a variance of exactly 0, and no
    // per-example variance to rescale; Algorithm 1 as printed stays positive (its bias).
    let o = curvature(
        &[
            "variance",
            "--run",
            "a",
            "--batch-size",
            "2000",
            "--json",
            "one.json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let one = read_json(&d.join("one.json"));
    assert_eq!(one["batches"].as_u64(), Some(1));
    assert_eq!(one["batch_variance"].as_f64(), Some(0.0), "{one}");
    assert!(one["optimal_damping"].is_null());
    assert!(
        text(&o).contains("not estimable from a single batch"),
        "{}",
        text(&o)
    );
    let o = curvature(
        &[
            "variance",
            "--run",
            "a",
            "--batch-size",
            "2000",
            "--estimator",
            "as-printed",
            "--json",
            "printed.json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        read_json(&d.join("printed.json"))["batch_variance"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let o = curvature(&["variance", "--run", "a", "--estimator", "paper"], d);
    assert_fails_with(&o, "possible values: unbiased, as-printed");
    let o = curvature(&["variance", "--run", "a", "--vectors", "0"], d);
    assert_fails_with(&o, "vectors");

    // interpolate: α = 0 and α = 1 are the two runs' own final losses.
    let o = curvature(
        &[
            "interpolate",
            "--from-run",
            "a",
            "--to-run",
            "b",
            "--range",
            "0:1",
            "--points",
            "3",
            "--out",
            "line",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read_to_string(d.join("line/interpolation.csv")).unwrap();
    let val_loss = |line: &str| line.split(',').nth(3).unwrap().parse::<f64>().unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    for (line, run) in [(lines[1], "a"), (lines[3], "b")] {
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(d.join(run).join("summary.json")).unwrap(),
        )
        .unwrap();
        let expected = summary["val_loss"].as_f64().unwrap();
        assert!(
            (val_loss(line) - expected).abs() < 1e-5,
            "{line} vs {expected}"
        );
    }
    assert!(d.join("line/interpolation-loss.svg").exists());
    assert!(d.join("line/interpolation-accuracy.png").exists());
    let o = curvature(
        &[
            "interpolate",
            "--from-run",
            "a",
            "--to-run",
            "b",
            "--range",
            "1:0",
            "--out",
            "x",
        ],
        d,
    );
    assert_fails_with(&o, "START < END");

    // A layer block: P = 640 weights of the logistic regression, and a stem plot.
    let o = curvature(
        &[
            "spectrum",
            "--run",
            "a",
            "--block",
            "linear.weight",
            "--dense",
            "--plot",
            "w.svg",
            "--smooth",
            "--json",
            "w.json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let json = read_json(&d.join("w.json"));
    assert_eq!(json["num_params"].as_u64(), Some(640));
    let svg = std::fs::read_to_string(d.join("w.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<circle"));
    let o = curvature(&["spectrum", "--run", "a", "--block", "fc9"], d);
    assert_fails_with(&o, "valid: linear.weight, linear.bias");
    let o = curvature(&["spectrum", "--run", "a", "--plot", "p.jpg"], d);
    assert_fails_with(&o, ".svg or .png");
    let o = curvature(&["spectrum", "--run", "a", "--plot", "p.png"], d);
    assert!(o.status.success(), "{}", text(&o));
    let png = std::fs::read(d.join("p.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

/// Three representative presets run end to end as two-epoch sweeps and write their summary
/// tables and heat maps: a table-valued axis with KFAC/Adam and RMT auto-damping
/// (`auto-damping-mini`), a CNN with augmentation, Gadam's iterate averaging and a seed axis
/// (`gadam-vs-sgd-mini`), and LanczosOPT over a numeric lr × damping grid
/// (`lanczosopt-grid-mini`). Every other preset is parsed and validated by
/// `curvature_lab::presets`' tests (model, data, optimiser and grid keys). A second run
/// reuses finished runs; an unknown preset lists the valid names.
#[test]
fn representative_presets_run_at_a_tiny_size() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = curvature(&["presets"], d);
    assert!(o.status.success(), "{}", text(&o));
    let listing = String::from_utf8_lossy(&o.stdout).to_string();
    let all: Vec<&str> = listing
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .collect();
    let names: Vec<&str> = all
        .iter()
        .copied()
        .filter(|n| n.ends_with("-mini"))
        .collect();
    assert!(names.len() >= 11, "{listing}");
    // The L2-sharpness presets run three seeds (summarised over seeds like gadam's below).
    let (mut preset, mut l2_minis) = ("", 0);
    for line in listing.lines() {
        if !line.starts_with(' ') {
            preset = line;
        } else if preset.starts_with("l2-sharpness")
            && preset.ends_with("-mini")
            && line.trim_start().starts_with("grid:")
        {
            assert!(line.contains("seed ∈ {0, 1, 2}"), "{preset}: {line}");
            l2_minis += 1;
        }
    }
    assert_eq!(l2_minis, 4, "{listing}");
    // A full-size preset without its dataset files says which files and where to get them.
    assert!(all.contains(&"lanczosopt-mnist"), "{listing}");
    let o = curvature(
        &["sweep", "--preset", "lanczosopt-mnist", "--out", "full"],
        d,
    );
    assert!(
        !o.status.success()
            && text(&o).contains("train-images-idx3-ubyte")
            && text(&o).contains("data/mnist"),
        "{}",
        text(&o)
    );
    let names = [
        "lanczosopt-grid-mini",
        "auto-damping-mini",
        "gadam-vs-sgd-mini",
    ];
    for name in names {
        assert!(all.contains(&name), "{listing}");
        let out = format!("runs/{name}");
        let o = curvature(
            &[
                "--quiet",
                "sweep",
                "--preset",
                name,
                "--set",
                "epochs=2",
                "--set",
                "spectrum_every=0",
                "--out",
                &out,
            ],
            d,
        );
        assert!(o.status.success(), "{name}: {}", text(&o));
        let out = d.join(&out);
        let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
        let runs = std::fs::read_dir(&out)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count();
        assert!(runs >= 2, "{name}: a grid has at least two points");
        assert_eq!(summary.lines().count(), runs + 1, "{name}: {summary}");
        assert!(
            summary.lines().skip(1).all(|l| l.ends_with(",ok")),
            "{summary}"
        );
        assert!(out.join("summary.md").exists() && out.join("heatmap.svg").exists());
        assert!(out.join("heatmap.png").exists(), "{name}");
        // The presets with a seed axis are summarised over their seeds as well.
        let seeded = summary
            .lines()
            .next()
            .unwrap()
            .split(',')
            .any(|c| c == "seed");
        assert_eq!(
            out.join("summary-over-seeds.md").exists(),
            seeded,
            "{name}: {summary}"
        );
        if name.starts_with("gadam") {
            assert!(seeded, "{name} runs three seeds");
        }
    }
    // Running again reuses every finished run.
    let o = curvature(
        &[
            "sweep",
            "--preset",
            names[0],
            "--set",
            "epochs=2",
            "--set",
            "spectrum_every=0",
            "--out",
            &format!("runs/{}", names[0]),
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("already finished"), "{}", text(&o));
    // ... but not when the configuration changed since.
    let o = curvature(
        &[
            "sweep",
            "--preset",
            names[0],
            "--set",
            "epochs=3",
            "--set",
            "spectrum_every=0",
            "--out",
            &format!("runs/{}", names[0]),
        ],
        d,
    );
    assert_fails_with(&o, "another configuration");
    let o = curvature(&["sweep", "--preset", "no-such", "--out", "x"], d);
    assert!(!o.status.success());
    assert!(text(&o).contains("kfac-grid-mini"), "{}", text(&o));
    // A `--grid` value that names none of a preset's table entries lists them, before any run.
    let o = curvature(
        &[
            "sweep",
            "--preset",
            "optimizers-cnn-fashion-mnist",
            "--grid",
            "run=adam-e",
            "--out",
            "none",
        ],
        d,
    );
    assert_fails_with(
        &o,
        "names none of the axis' entries (sgd, adam, adam-d, kfac",
    );
    assert!(!d.join("none").exists());
}

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

/// The real Fashion-MNIST of Debian's `dataset-fashion-mnist`, found without `--data-dir`
/// (the working directory has no `data/`): train, spectrum and variance end to end on a few
/// hundred images. Skips, saying so, where the package is absent (`.ci/run` installs it).
#[test]
fn real_fashion_mnist_end_to_end_from_the_system_copy() {
    if curvature_data::locate(curvature_data::DownloadableDataset::FashionMnist).is_err() {
        eprintln!("skipped: no Fashion-MNIST (apt-get install dataset-fashion-mnist)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = curvature(
        &[
            "train",
            "--quiet",
            "--out",
            "fm",
            "--data",
            "fashion-mnist",
            "--model",
            "logistic",
            "--train-size",
            "300",
            "--test-size",
            "200",
            "--batch-size",
            "50",
            "--lr",
            "0.1",
            "--epochs",
            "3",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let config = read_json(&d.join("fm/config.json"));
    assert_eq!(config["data"].as_str(), Some("fashion-mnist"));
    // Ten balanced classes: chance is 10 %; three epochs on 300 images do far better.
    let last = rows(&d.join("fm")).pop().unwrap();
    let header = std::fs::read_to_string(d.join("fm/metrics.csv")).unwrap();
    let columns: Vec<&str> = header.lines().next().unwrap().split(',').collect();
    let at = columns.iter().position(|c| *c == "val_accuracy").unwrap();
    let accuracy: f64 = last.split(',').nth(at).unwrap().parse().unwrap();
    assert!(accuracy > 0.4, "validation accuracy {accuracy}: {last}");

    let o = curvature(&["spectrum", "--run", "fm", "--json", "s.json"], d);
    assert!(o.status.success(), "{}", text(&o));
    let s = read_json(&d.join("s.json"));
    assert_eq!(s["num_params"].as_u64(), Some(7_850));
    let (trace, se) = (
        s["trace"].as_f64().unwrap(),
        s["trace_stderr"].as_f64().unwrap(),
    );
    assert!(trace > 0.0 && se > 0.0 && se < trace, "{trace} ± {se}");
    assert!(s["lambda_max"].as_f64().unwrap() > 0.0);
    assert!(text(&o).contains("±"), "{}", text(&o));

    let o = curvature(&["variance", "--run", "fm", "--json", "v.json"], d);
    assert!(o.status.success(), "{}", text(&o));
    let v = read_json(&d.join("v.json"));
    assert_eq!(v["estimator"].as_str(), Some("unbiased"));
    assert!(v["batch_variance"].as_f64().unwrap().is_finite());
    assert!(v["optimal_damping"].as_f64().unwrap() >= 0.0, "{v}");
    assert_eq!(v["train_batch_size"].as_u64(), Some(50));
}

/// `--steps` ends a run at an exact step count, mid-epoch, with a spectrum after the last
/// epoch; `--classes 3` trains a 3-class model (optdigits' digits 0–2). Counted by hand: 537
/// examples of digits 0–2, 297 of them held out, 240 left in batches of 100 = 3 steps per
/// epoch, so 8 steps take 3 epochs (steps 3, 6, 8); logistic regression on 64 pixels and 3
/// classes has 64 × 3 + 3 = 195 parameters.
#[test]
fn a_step_budget_ends_mid_epoch_and_classes_keep_the_first_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = curvature(
        &[
            "train",
            "--quiet",
            "--out",
            "budget",
            "--model",
            "logistic",
            "--classes",
            "3",
            "--batch-size",
            "100",
            "--steps",
            "8",
            "--spectrum-every",
            "100",
            "--spectrum-steps",
            "5",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let steps: Vec<String> = rows(&d.join("budget"))
        .iter()
        .skip(1)
        .map(|r| r.split(',').take(2).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(steps, ["1,3", "2,6", "3,8"]);
    let config = read_json(&d.join("budget/config.json"));
    assert_eq!(
        (config["epochs"].as_u64(), config["steps"].as_u64()),
        (Some(3), Some(8))
    );
    // The spectrum after the last epoch, though 3 is no multiple of 100.
    let spectra = std::fs::read_to_string(d.join("budget/spectra.csv")).unwrap();
    assert_eq!(spectra.lines().count(), 2, "{spectra}");
    assert!(
        spectra.lines().nth(1).unwrap().starts_with("3,8,"),
        "{spectra}"
    );
    let o = curvature(&["spectrum", "--run", "budget", "--json", "s.json"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        read_json(&d.join("s.json"))["num_params"].as_u64(),
        Some(195)
    );
    assert_fails_with(
        &curvature(&["train", "--out", "x", "--steps", "0"], d),
        "steps",
    );
}
