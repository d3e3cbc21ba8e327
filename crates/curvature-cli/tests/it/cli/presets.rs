//! `curvature sweep --preset`: representative presets end to end.

use super::{assert_fails_with, curvature, text};

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
