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
    ] {
        assert!(out.join(f).exists(), "{f} missing: {}", text(&o));
    }
    assert!(text(&o).contains("quickstart-1"));
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
            ],
        ),
    ] {
        let common = |epochs: &str, out: &str| -> Vec<String> {
            let mut a: Vec<String> = [
                "train",
                "--quiet",
                "--model",
                "mlp",
                "--hidden",
                "16",
                "--batch-size",
                "200",
                "--epochs",
                epochs,
                "--out",
                out,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
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
    }
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
        text(&o).contains("unknown model `resnet9000`; valid: logistic, mlp"),
        "{}",
        text(&o)
    );
    let o = curvature(&["train", "--out", "a", "--damping=-1"], d);
    assert!(
        !o.status.success() && text(&o).contains("damping"),
        "{}",
        text(&o)
    );
    let quick = [
        "train", "--quiet", "--out", "a", "--epochs", "1", "--model", "logistic",
    ];
    assert!(curvature(&quick, d).status.success());
    let o = curvature(&quick, d);
    assert!(
        !o.status.success() && text(&o).contains("already holds a run"),
        "{}",
        text(&o)
    );
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
    assert!(
        !o.status.success() && text(&o).contains("config.json"),
        "{}",
        text(&o)
    );
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
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("dense.json")).unwrap()).unwrap();
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
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("lanczos.json")).unwrap()).unwrap();
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
    let lmax = json["lambda_max"].as_f64().unwrap();
    assert!(
        (lmax - scale).abs() <= 1e-3 * scale,
        "Lanczos λ_max {lmax} vs dense {scale}"
    );
    let o = curvature(&["spectrum", "--run", "r", "--operator", "fisher"], d);
    assert!(
        text(&o).contains("unknown operator `fisher`; valid: hessian, ggn, hessian-minus-ggn"),
        "{}",
        text(&o)
    );
}
