//! `curvature_lab::raster`.

use curvature_lab::plot::{Anchor, Scene, Shape};
use curvature_lab::raster::*;
use tiny_skia::{Color, Pixmap};

fn blank(width: f64, height: f64) -> Scene {
    Scene {
        width,
        height,
        shapes: vec![Shape::Rect {
            x: 0.0,
            y: 0.0,
            w: width,
            h: height,
            fill: "white".into(),
        }],
    }
}

/// Bounding box `(x0, y0, x1, y1)` of the pixels darker than mid-grey.
fn ink(p: &Pixmap) -> Option<(u32, u32, u32, u32)> {
    let mut bb: Option<(u32, u32, u32, u32)> = None;
    for y in 0..p.height() {
        for x in 0..p.width() {
            let c = p.pixel(x, y).unwrap();
            if u32::from(c.red()) + u32::from(c.green()) + u32::from(c.blue()) < 384 {
                bb = Some(match bb {
                    None => (x, y, x, y),
                    Some((a, b, c, d)) => (a.min(x), b.min(y), c.max(x), d.max(y)),
                });
            }
        }
    }
    bb
}

#[test]
fn colours_parse_and_bad_ones_are_named() {
    assert_eq!(
        parse_color("#ff8000").unwrap(),
        Color::from_rgba8(255, 128, 0, 255)
    );
    assert_eq!(
        parse_color("#f80").unwrap(),
        Color::from_rgba8(255, 136, 0, 255)
    );
    assert_eq!(parse_color("white").unwrap(), Color::WHITE);
    for bad in ["red", "#12345", "#gg0000", "#ééé"] {
        let e = parse_color(bad).unwrap_err();
        assert!(e.0.contains(bad), "{e}");
    }
}

#[test]
fn shapes_land_where_the_scene_puts_them() {
    let mut scene = blank(100.0, 50.0);
    scene.shapes.push(Shape::Rect {
        x: 10.0,
        y: 10.0,
        w: 20.0,
        h: 10.0,
        fill: "#ff0000".into(),
    });
    scene.shapes.push(Shape::Polyline {
        points: vec![(50.0, 40.0), (90.0, 40.0)],
        color: "#0000ff".into(),
        width: 2.0,
    });
    let p = render(&scene, 2.0).unwrap();
    assert_eq!((p.width(), p.height()), (200, 100));
    let px = |x, y| {
        let c = p.pixel(x, y).unwrap();
        (c.red(), c.green(), c.blue())
    };
    assert_eq!(px(40, 30), (255, 0, 0), "inside the rectangle");
    assert_eq!(px(70, 30), (255, 255, 255), "right of the rectangle");
    assert_eq!(px(140, 80), (0, 0, 255), "on the 4-px line at y = 80");
    assert_eq!(px(140, 70), (255, 255, 255), "above the line");
}

#[test]
fn text_is_drawn_anchored_and_rotated_like_svg() {
    let size = 20.0;
    let w = text_width("λ_max 1e-3", size).unwrap();
    assert!(w > 60.0 && w < 140.0, "{w}");
    for (anchor, x0) in [
        (Anchor::Start, 150.0),
        (Anchor::Middle, 150.0 - w / 2.0),
        (Anchor::End, 150.0 - w),
    ] {
        let mut scene = blank(300.0, 100.0);
        scene.shapes.push(Shape::Text {
            x: 150.0,
            y: 60.0,
            text: "λ_max 1e-3".into(),
            size,
            anchor,
            vertical: false,
            color: "#000000".into(),
        });
        let (a, b, c, d) = ink(&render(&scene, 1.0).unwrap()).expect("text has ink");
        // Side bearings are a few pixels at 20 px; the underscore descends below y.
        assert!(
            (f64::from(a) - x0).abs() < 4.0,
            "{anchor:?}: left {a} vs {x0}"
        );
        assert!(
            (f64::from(c) - (x0 + w)).abs() < 4.0,
            "{anchor:?}: right {c}"
        );
        assert!(
            b > 40 && b < 50 && d > 58 && d < 66,
            "{anchor:?}: rows {b}..{d}"
        );
    }
    let mut scene = blank(100.0, 300.0);
    scene.shapes.push(Shape::Text {
        x: 50.0,
        y: 150.0,
        text: "eigenvalue".into(),
        size,
        anchor: Anchor::Middle,
        vertical: true,
        color: "black".into(),
    });
    let (a, b, c, d) = ink(&render(&scene, 1.0).unwrap()).unwrap();
    assert!(d - b > 3 * (c - a), "reads bottom-up: {a},{b},{c},{d}");
    // Rotated by −90°, ascenders point left of the baseline x = 50 and the g's descender
    // right of it (DejaVu: ascender ≈ 0.76 em, descender ≈ 0.24 em).
    assert!(
        (33..=38).contains(&a),
        "ascenders left of the baseline: {a}"
    );
    assert!(
        (52..=56).contains(&c),
        "descender right of the baseline: {c}"
    );
    assert!((f64::from(b + d) / 2.0 - 150.0).abs() < 3.0, "centred on y");
}

#[test]
fn bad_scenes_are_refused_and_pngs_are_pngs() {
    assert!(render(&blank(100.0, 100.0), 0.0).is_err());
    assert!(render(&blank(100_000.0, 10.0), 1.0).is_err());
    let mut scene = blank(10.0, 10.0);
    scene.shapes.push(Shape::Circle {
        x: 5.0,
        y: 5.0,
        r: 2.0,
        fill: "tomato".into(),
    });
    assert!(render(&scene, 1.0).unwrap_err().0.contains("tomato"));
    let png = to_png(&blank(30.0, 20.0), 2.0).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, at bytes 16..24.
    assert_eq!(&png[16..24], &[0, 0, 0, 60, 0, 0, 0, 40]);
}
