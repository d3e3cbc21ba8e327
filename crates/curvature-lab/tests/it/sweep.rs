//! `curvature_lab::sweep`.

use serde_json::json;

use std::path::PathBuf;

use curvature_lab::sweep::*;
use curvature_lab::{EpochMetrics, Metric, OptimizerKind, RunOptions, TrainConfig};

#[test]
fn table_values_set_several_keys_and_label_their_points() {
    let base = TrainConfig::default();
    let named = json!({"name": "gadam-slow", "optimizer": "gadam", "lr": 0.003});
    let c = with_key(&base, "optimizer", &named).unwrap();
    assert_eq!((c.optimizer, c.lr), (OptimizerKind::Gadam, 0.003));
    assert_eq!(label("optimizer", &named), "gadam-slow");
    let plain = json!({"optimizer": "sgd", "lr": 0.1});
    assert_eq!(label("optimizer", &plain), "sgd");
    let all = label("run", &plain);
    assert!(
        all.contains("lr=0.1") && all.contains("optimizer=sgd"),
        "{all}"
    );
    let e = with_key(&base, "optimizer", &json!({"lrr": 1}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown configuration key"), "{e}");
}

#[test]
fn points_with_the_same_label_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let axes = vec![(
        "damping".to_string(),
        vec![
            json!({"damping": "auto", "damping_floor": 1e-4}),
            json!({"damping": "auto", "damping_floor": 1e-3}),
        ],
    )];
    let base = TrainConfig {
        optimizer: OptimizerKind::Kfac,
        ..Default::default()
    };
    let e = sweep(
        &base,
        &axes,
        &out,
        Metric::ValAccuracy,
        RunOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("same label") && e.contains("damping=auto"),
        "{e}"
    );
    assert!(!out.exists(), "nothing written");
}

/// A finished (or, with `None`, diverged) run of a hand-made grid point.
fn cell(point: &[(&str, serde_json::Value)], val_acc: Option<f64>, lmax: f64) -> SweepCell {
    let last = val_acc.map(|a| EpochMetrics {
        epoch: 1,
        step: 1,
        lr: 0.1,
        damping: None,
        train_loss: 0.5,
        train_accuracy: 1.0,
        val_loss: 1.0 - a,
        val_accuracy: a,
        seconds: 0.0,
    });
    SweepCell {
        point: point
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        dir: PathBuf::new(),
        history: last.iter().cloned().collect(),
        last,
        status: String::new(),
        lambda_max: Some(lmax),
    }
}

#[test]
fn a_seed_axis_is_summarised_as_mean_and_sample_std_per_setting() {
    let dir = tempfile::tempdir().unwrap();
    let axes = vec![
        ("weight_decay".to_string(), vec![json!(0.0), json!(0.01)]),
        ("seed".to_string(), vec![json!(1), json!(2), json!(3)]),
    ];
    let (a, b) = (json!(0.0), json!(0.01));
    let cells = vec![
        cell(
            &[("weight_decay", a.clone()), ("seed", json!(1))],
            Some(0.90),
            1.0,
        ),
        cell(
            &[("weight_decay", a.clone()), ("seed", json!(2))],
            Some(0.92),
            2.0,
        ),
        cell(&[("weight_decay", a), ("seed", json!(3))], Some(0.97), 6.0),
        cell(
            &[("weight_decay", b.clone()), ("seed", json!(1))],
            Some(0.95),
            10.0,
        ),
        cell(
            &[("weight_decay", b.clone()), ("seed", json!(2))],
            None,
            99.0,
        ),
        cell(&[("weight_decay", b), ("seed", json!(3))], Some(0.97), 12.0),
    ];
    write_summary(&axes, &cells, dir.path(), Metric::ValAccuracy).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("summary-over-seeds.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    let col = |name: &str| rows[0].iter().position(|c| *c == name).unwrap();
    let num = |r: usize, name: &str| rows[r][col(name)].parse::<f64>().unwrap();
    // Worked by hand: val acc {0.90, 0.92, 0.97}: mean 0.93, deviations −0.03, −0.01,
    // 0.04, sample variance (9 + 1 + 16)e-4 / 2 = 1.3e-3, std 0.036056; λ_max {1, 2, 6}:
    // mean 3, variance (4 + 1 + 9) / 2 = 7, std 2.645751.
    assert_eq!(
        (rows[1][0], rows[1][col("seeds")], rows[1][col("finished")]),
        ("0.0", "3", "3")
    );
    assert!((num(1, "val_accuracy_mean") - 0.93).abs() < 1e-6);
    assert!((num(1, "val_accuracy_std") - 0.036056).abs() < 1e-6);
    assert!((num(1, "lambda_max_mean") - 3.0).abs() < 1e-6);
    assert!((num(1, "lambda_max_std") - 2.645751).abs() < 1e-6);
    // The diverged seed counts in `seeds`, not in `finished`, and not in the statistics
    // (its λ_max of 99 included). {0.95, 0.97}: mean 0.96, std 0.014142; λ_max {10, 12}.
    assert_eq!(
        (rows[2][col("seeds")], rows[2][col("finished")]),
        ("3", "2")
    );
    assert!((num(2, "val_accuracy_mean") - 0.96).abs() < 1e-6);
    assert!((num(2, "val_accuracy_std") - 0.014142).abs() < 1e-6);
    assert!((num(2, "lambda_max_mean") - 11.0).abs() < 1e-6);
    let md = std::fs::read_to_string(dir.path().join("summary-over-seeds.md")).unwrap();
    assert!(
        md.contains("| 0.01 | 2/3 |") && md.contains("96.00 ± 1.41 %"),
        "{md}"
    );
    assert!(dir.path().join("heatmap.png").exists());
    // Fig. 4's maps: mean validation errors 7 % (wd 0) and 4 % (wd 0.01, its two finished
    // seeds) are 3 and 0 points from the best; training accuracy is 100 % everywhere.
    let svg = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let gap = svg("heatmap-val-error-gap.svg");
    assert!(gap.contains(">3.000<") && gap.contains(">0.000<"), "{gap}");
    assert!(!svg("heatmap-train-error-gap.svg").contains(">3.000<"));
    // Figs. 5–6: one curve per setting, named by the non-seed axes.
    let curves = svg("curves-val-error.svg");
    assert!(
        curves.contains("weight_decay=0.0<") && curves.contains("weight_decay=0.01<"),
        "{curves}"
    );
    for stem in [
        "heatmap-train-error-gap",
        "heatmap-val-error-gap",
        "curves-train-error",
        "curves-val-error",
    ] {
        assert!(dir.path().join(format!("{stem}.png")).exists(), "{stem}");
    }

    // Without a seed axis there is no seed summary (the cells' points then have no seed:
    // rows and header must have one width, which the csv crate enforces).
    let other = tempfile::tempdir().unwrap();
    let unseeded = [
        cell(&[("weight_decay", json!(0.0))], Some(0.9), 1.0),
        cell(&[("weight_decay", json!(0.01))], Some(0.95), 2.0),
    ];
    write_summary(&axes[..1], &unseeded, other.path(), Metric::ValAccuracy).unwrap();
    assert!(other.path().join("summary.csv").exists());
    assert!(!other.path().join("summary-over-seeds.csv").exists());
    // Cells whose points do not match the axes are refused, not written as a broken table.
    let e = write_summary(&axes[..1], &cells[..2], other.path(), Metric::ValAccuracy)
        .unwrap_err()
        .to_string();
    assert!(e.contains("summary.csv"), "{e}");
}

/// A grid value with a comma (`hidden = [32, 16]`) stays one CSV field: the tables go through
/// the `csv` crate, and a standard CSV reader (the same crate's, RFC 4180) gets every row
/// back with the header's width and the label intact.
#[test]
fn labels_with_commas_stay_one_csv_field() {
    let dir = tempfile::tempdir().unwrap();
    let (wide, narrow) = (json!([32, 16]), json!([64]));
    let axes = vec![
        ("hidden".to_string(), vec![wide.clone(), narrow.clone()]),
        ("seed".to_string(), vec![json!(0), json!(1)]),
    ];
    let cells = vec![
        cell(
            &[("hidden", wide.clone()), ("seed", json!(0))],
            Some(0.9),
            1.0,
        ),
        cell(&[("hidden", wide), ("seed", json!(1))], None, 1.0),
        cell(
            &[("hidden", narrow.clone()), ("seed", json!(0))],
            Some(0.8),
            2.0,
        ),
        cell(&[("hidden", narrow), ("seed", json!(1))], Some(0.7), 3.0),
    ];
    write_summary(&axes, &cells, dir.path(), Metric::ValAccuracy).unwrap();
    for (file, rows) in [("summary.csv", 4), ("summary-over-seeds.csv", 2)] {
        let mut reader = csv::Reader::from_path(dir.path().join(file)).unwrap();
        let width = reader.headers().unwrap().len();
        let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        assert_eq!(records.len(), rows, "{file}");
        assert!(records.iter().all(|r| r.len() == width), "{file}");
        assert_eq!(&records[0][0], "[32,16]", "{file}");
    }
    let text = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
    assert!(
        text.lines().nth(1).unwrap().starts_with("\"[32,16]\","),
        "{text}"
    );
}

#[test]
fn grid_values_on_the_command_line_select_a_presets_named_entries() {
    // The preset's own table (optimizers-cnn-fashion-mnist): `run` is not a configuration key,
    // so its values can only name entries.
    let preset = curvature_lab::preset("optimizers-cnn-fashion-mnist").unwrap();
    let mut axes = preset.grid();
    override_axis(
        &mut axes,
        &preset.train,
        "run",
        vec![json!("kfac-auto"), json!("adam-d")],
    )
    .unwrap();
    let run = &axes.iter().find(|(k, _)| k == "run").unwrap().1;
    let names: Vec<String> = run.iter().map(|v| label("run", v)).collect();
    assert_eq!(names, ["kfac-auto", "adam-d"]);
    let c = with_key(&preset.train, "run", &run[0]).unwrap();
    assert_eq!(c.optimizer, OptimizerKind::Kfac);
    assert_eq!(
        c.rmt_subsample, 1280,
        "the entry's own settings come with it"
    );

    let e = override_axis(
        &mut preset.grid(),
        &preset.train,
        "run",
        vec![json!("lbfgs")],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("lbfgs") && e.contains("sgd, adam") && e.contains("kfac-auto"),
        "{e}"
    );

    // A configuration key's axis: a plain value replaces the entries, a label selects one.
    let mut axes = vec![(
        "optimizer".to_string(),
        vec![
            json!({"optimizer": "sgd", "lr": 0.05}),
            json!({"optimizer": "adam", "lr": 1e-3}),
        ],
    )];
    let base = TrainConfig::default();
    override_axis(
        &mut axes,
        &base,
        "optimizer",
        vec![json!("adam"), json!("kfac")],
    )
    .unwrap();
    assert_eq!(
        axes[0].1,
        [json!({"optimizer": "adam", "lr": 1e-3}), json!("kfac")]
    );
    // A new axis is added as given.
    override_axis(&mut axes, &base, "seed", vec![json!(0), json!(1)]).unwrap();
    assert_eq!(axes[1], ("seed".to_string(), vec![json!(0), json!(1)]));
}

#[test]
fn a_directory_another_process_writes_into_is_refused_until_it_lets_go() {
    use curvature_lab::dir_lock::DirLock;
    let dir = tempfile::tempdir().unwrap();
    let quick = TrainConfig {
        model: "logistic".into(),
        epochs: 1,
        spectrum_every: 0,
        ..Default::default()
    };
    let axes = vec![("seed".to_string(), vec![json!(0), json!(1)])];
    let out = dir.path().join("sweep");
    let options = || RunOptions {
        progress: curvature_lab::progress::ProgressMode::Quiet,
        ..Default::default()
    };
    // The operating system's lock is per open file: a second acquisition in this process
    // conflicts exactly as another process's would.
    let held = DirLock::acquire(&out).unwrap();
    let e = sweep(&quick, &axes, &out, Metric::ValAccuracy, options())
        .unwrap_err()
        .to_string();
    let pid = format!("pid {}", std::process::id());
    assert!(
        e.contains("in use by another curvature process") && e.contains(&pid),
        "{e}"
    );
    assert!(!out.join("seed=0").exists(), "nothing ran");
    // A single run, from scratch or resumed, respects the lock of its directory.
    let run = dir.path().join("run");
    let run_lock = DirLock::acquire(&run).unwrap();
    let e = curvature_lab::train(&quick, &run, options())
        .unwrap_err()
        .to_string();
    assert!(e.contains("in use"), "{e}");
    assert!(!run.join("config.json").exists());
    drop(run_lock);
    curvature_lab::train(&quick, &run, options()).unwrap();
    let _again = DirLock::acquire(&run).unwrap();
    let e = curvature_lab::resume(&run, options())
        .unwrap_err()
        .to_string();
    assert!(e.contains("in use"), "{e}");
    // Released (as on the holder's exit, however it exits), the same sweep runs.
    drop(held);
    let cells = sweep(&quick, &axes, &out, Metric::ValAccuracy, options()).unwrap();
    assert_eq!(cells.len(), 2);
    assert!(cells.iter().all(|c| c.last.is_some()));
}
