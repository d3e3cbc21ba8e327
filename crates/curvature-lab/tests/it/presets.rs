//! `curvature_lab::presets`.

use curvature_lab::presets::*;

#[test]
fn every_preset_parses_and_validates() {
    let all = presets().unwrap();
    // Every file of presets/ is bundled, under its file name.
    let mut files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/presets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|f| f.strip_suffix(".toml").map(str::to_string))
        .collect();
    files.sort();
    let mut names: Vec<String> = all.iter().map(|p| p.name.clone()).collect();
    names.sort();
    assert_eq!(names, files);
    for p in &all {
        // Every grid point is a valid run (the base alone need not be: a grid over
        // `optimizer` may supply what its damping needs).
        let mut points = vec![p.train.clone()];
        for (key, values) in p.grid() {
            points = points
                .iter()
                .flat_map(|c| {
                    let key = &key;
                    values.iter().map(move |v| {
                        curvature_lab::sweep::with_key(c, key, v)
                            .unwrap_or_else(|e| panic!("{key}: {e}"))
                    })
                })
                .collect();
        }
        assert!(points.len() >= 2, "{}: a grid of at least two runs", p.name);
        for c in &points {
            c.validate().unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
        assert!(!p.description.is_empty() && !p.paper.is_empty());
        for then in &p.then {
            assert!(
                then.starts_with("curvature ") && then.contains("{out}"),
                "{}: {then}",
                p.name
            );
        }
    }
    assert!(
        preset("nope")
            .unwrap_err()
            .to_string()
            .contains("kfac-grid-mini")
    );
}
