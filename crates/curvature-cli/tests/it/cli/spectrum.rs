//! `curvature spectrum`, `variance` and `interpolate`: against the library's references,
//! with their files and plots.

use super::{
    assert_fails_with, assert_spectrum_close, curvature, dense_logistic_spectrum, numbers,
    read_json, text,
};

/// The backend the command computes on when none is named (f32): the library's references
/// below are built on it, so that they are the same computation.
#[cfg(feature = "flex")]
type B = burn::backend::Flex;
#[cfg(not(feature = "flex"))]
type B = burn::backend::NdArray<f32>;

#[test]
fn dense_spectrum_agrees_with_the_library_reference_and_json_has_the_documented_fields() {
    use curvature_core::{DenseReferenceConfig, Loss, Objective, dense_matrix, dense_spectrum};
    use curvature_nets::{LogisticRegressionConfig, load_safetensors, module_path};
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
    let got = numbers(&json["eigenvalues"]);
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
    use curvature_core::{HessianVarianceConfig, Loss, Objective, hessian_variance};
    use curvature_nets::{LogisticRegressionConfig, load_safetensors, module_path};
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

/// `--peers N` shares the batches between N peers and sums every product across them: the
/// dense logistic-regression Hessian in f64 (exact eigenvalues, well conditioned) is that of
/// one peer up to summation order. The reference is the one-peer run of the same command,
/// whose own agreement with the library's independent dense reference is checked above.
#[test]
fn spectrum_on_two_and_three_peers_equals_one_peer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let eigenvalues = |peers: &str| {
        let file = format!("dense{peers}.json");
        let o = curvature(&dense_logistic_spectrum(&file, &["--peers", peers]), d);
        assert!(o.status.success(), "{}", text(&o));
        let json = read_json(&d.join(&file));
        if peers != "1" {
            assert!(
                text(&o).contains(&format!("data parallel: {peers} peers")),
                "{}",
                text(&o)
            );
            let shards = json["data_parallel"]["shard_examples"].as_array().unwrap();
            assert_eq!(shards.len().to_string(), peers);
        }
        numbers(&json["eigenvalues"])
    };
    let one = eigenvalues("1");
    for peers in ["2", "3"] {
        let what = format!("{peers} peers");
        assert_spectrum_close(&eigenvalues(peers), &one, 1e-12, &what);
    }
}

#[test]
fn peers_that_cannot_share_the_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = curvature(&["spectrum", "--model", "logistic", "--peers", "0"], d);
    assert_fails_with(&o, "peers = 0");
    // 1 500 training examples in one batch: nothing for a second peer.
    let o = curvature(
        &[
            "spectrum",
            "--model",
            "logistic",
            "--batch-size",
            "5000",
            "--peers",
            "2",
        ],
        d,
    );
    assert_fails_with(&o, "more peers than items (batches) to share");
    let o = curvature(
        &[
            "spectrum",
            "--model",
            "logistic",
            "--augmented",
            "100",
            "--peers",
            "2",
        ],
        d,
    );
    assert_fails_with(&o, "use --peers 1 with --augmented");
}

/// `variance --peers 2` merges the peers' accumulators into the one-peer estimate over the same
/// batches (f64: summation order only).
#[test]
fn variance_on_two_peers_equals_one_peer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |peers: &str| {
        let file = format!("v{peers}.json");
        let o = curvature(
            &[
                "variance",
                "--model",
                "logistic",
                "--precision",
                "f64",
                "--batch-size",
                "100",
                "--max-examples",
                "700",
                "--vectors",
                "3",
                "--peers",
                peers,
                "--json",
                &file,
            ],
            d,
        );
        assert!(o.status.success(), "{}", text(&o));
        read_json(&d.join(&file))
    };
    let (one, two) = (run("1"), run("2"));
    assert!(one["data_parallel"].is_null(), "{one}");
    assert_eq!(two["data_parallel"]["peers"], 2, "{two}");
    assert_eq!(one["batches"], two["batches"]);
    for key in [
        "batch_variance",
        "per_example_variance",
        "mean_squared_norm",
    ] {
        let (a, b) = (one[key].as_f64().unwrap(), two[key].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-12 * a.abs(), "{key}: {a} vs {b}");
    }
}
