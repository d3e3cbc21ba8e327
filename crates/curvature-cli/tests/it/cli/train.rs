//! `curvature train`: the quickstart, resumption continuing bit-identically (after a
//! checkpoint and after Ctrl-C), and step budgets.

use std::process::Command;

use super::{AUTO_DAMPING, assert_fails_with, curvature, read_json, refs, rows, text};

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
    let kfac_auto = [
        ["--optimizer", "kfac", "--lr", "0.05"].as_slice(),
        &AUTO_DAMPING,
    ]
    .concat();
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
        ("kfac_auto", kfac_auto.clone()),
        (
            // KFAC's damped inverses by Newton–Schulz iteration under a damping that changes
            // every 3 steps: the inverses (and the δ they hold) are part of the checkpoint.
            "kfac_newton_schulz_auto",
            [kfac_auto.as_slice(), &["--kfac-solver", "newton-schulz"]].concat(),
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
