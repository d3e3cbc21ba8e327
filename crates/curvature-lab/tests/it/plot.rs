//! `curvature_lab::plot`.

use curvature_lab::plot::*;

#[test]
fn axes_map_ends_and_ticks_are_round_numbers() {
    let a = Axis::fit([0.0, 10.0].into_iter(), false, 0.0, 100.0);
    assert!(a.map(0.0) > 0.0 && a.map(10.0) < 100.0);
    assert!((a.map(5.0) - 50.0).abs() < 1e-9);
    let ticks: Vec<String> = a.ticks().into_iter().map(|t| t.1).collect();
    assert_eq!(ticks, ["0", "2", "4", "6", "8", "10"]);
    let g = Axis::fit([1e-4, 0.5, -1.0].into_iter(), true, 100.0, 0.0);
    assert!(
        g.map(1e-4) < 100.0 && g.map(0.5) > 0.0,
        "log axis ignores -1"
    );
    let ticks: Vec<String> = g.ticks().into_iter().map(|t| t.1).collect();
    assert_eq!(ticks, ["1e-4", "1e-3", "1e-2", "1e-1"]);
    // Less than two decades: 1-2-5 ticks in plain decimals, or every digit.
    let l = Axis::fit([0.3, 2.5].into_iter(), true, 100.0, 0.0);
    let ticks: Vec<String> = l.ticks().into_iter().map(|t| t.1).collect();
    assert_eq!(ticks, ["0.5", "1", "2"]);
    let n = Axis::fit([2.1e-7, 3.9e-7].into_iter(), true, 100.0, 0.0);
    let ticks: Vec<String> = n.ticks().into_iter().map(|t| t.1).collect();
    assert_eq!(ticks, ["3e-7"], "a single digit tick in a narrow range");
    let w = Axis::fit([0.2, 0.9].into_iter(), true, 100.0, 0.0);
    let ticks: Vec<String> = w.ticks().into_iter().map(|t| t.1).collect();
    assert_eq!(
        ticks,
        ["0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
    );
}

#[test]
fn charts_draw_their_data_and_svg_is_well_formed() {
    let chart = LineChart {
        title: "loss <train>".into(),
        x_label: "epoch".into(),
        y_label: "loss".into(),
        log_y: true,
        series: vec![
            Series {
                name: "train".into(),
                points: vec![(1.0, 1.0), (2.0, 0.5), (3.0, f64::NAN), (4.0, 0.1)],
            },
            Series {
                name: "val".into(),
                points: vec![(1.0, 1.2), (2.0, 0.7)],
            },
        ],
    };
    let scene = chart.render();
    let lines = scene
        .shapes
        .iter()
        .filter(|s| matches!(s, Shape::Polyline { width, .. } if *width == 2.0))
        .count();
    let dots = scene
        .shapes
        .iter()
        .filter(|s| matches!(s, Shape::Circle { .. }))
        .count();
    assert_eq!((lines, dots), (2, 1), "NaN splits the train curve");
    let svg = scene.to_svg();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("loss &lt;train&gt;"), "text is escaped");
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());

    let stems = StemChart {
        title: "Hessian".into(),
        x_label: "eigenvalue".into(),
        stems: vec![(-0.1, 0.01), (0.0, 0.9), (3.0, 0.0), (5.0, 0.09)],
        density: None,
    }
    .render();
    let circles = stems
        .shapes
        .iter()
        .filter(|s| matches!(s, Shape::Circle { .. }))
        .count();
    assert_eq!(circles, 3, "zero weights have no stem on a log axis");

    let heat = Heatmap {
        title: "grid".into(),
        x_label: "δ".into(),
        y_label: "lr".into(),
        x_ticks: vec!["a".into(), "b".into(), "c".into()],
        y_ticks: vec!["1".into()],
        values: vec![vec![Some(0.1), None, Some(10.0)]],
        log: true,
    }
    .render();
    assert!(heat.to_svg().contains("×"), "missing cells are marked");
    let label_color = |label: &str| {
        heat.shapes.iter().find_map(|s| match s {
            Shape::Text { text, color, .. } if text == label => Some(color.clone()),
            _ => None,
        })
    };
    assert_eq!(label_color("0.100").as_deref(), Some("#ffffff"), "on dark");
    assert_eq!(label_color("10.000").as_deref(), Some(TEXT), "on light");
}

#[test]
fn svg_and_png_are_written_and_other_formats_refused() {
    let dir = std::env::temp_dir().join(format!("curvature-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = save(&Scene::new(), &dir.join("a.jpg")).unwrap_err();
    assert!(e.to_string().contains(".svg or .png"), "{e}");
    save(&Scene::new(), &dir.join("a.svg")).unwrap();
    save(&Scene::new(), &dir.join("a.PNG")).unwrap();
    let png = std::fs::read(dir.join("a.PNG")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.PNG", "a.svg"], "no temporary files left");
    std::fs::remove_dir_all(&dir).unwrap();
}
