//! The real Fashion-MNIST from the system copy, end to end.

use super::{curvature, read_json, rows, text};

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
