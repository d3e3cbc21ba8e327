//! Line charts: named curves against a shared x axis (training curves).

use super::*;

/// One named curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points in drawing order; non-finite points (and non-positive ones on a log
    /// axis) break the line.
    pub points: Vec<(f64, f64)>,
}

/// Curves against a common x axis (training curves, interpolation paths).
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Log₁₀ y axis.
    pub log_y: bool,
    /// The curves.
    pub series: Vec<Series>,
}

impl LineChart {
    /// Lay the chart out.
    pub fn render(&self) -> Scene {
        let mut scene = Scene::new();
        let all = || self.series.iter().flat_map(|s| s.points.iter());
        let x = Axis::fit(all().map(|p| p.0), false, LEFT, WIDTH - RIGHT);
        let y = Axis::fit(all().map(|p| p.1), self.log_y, HEIGHT - BOTTOM, TOP);
        frame(
            &mut scene,
            &self.title,
            &x,
            &y,
            &self.x_label,
            &self.y_label,
        );
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let mut run: Vec<(f64, f64)> = Vec::new();
            let flush = |run: &mut Vec<(f64, f64)>, scene: &mut Scene| {
                match run.len() {
                    0 => {}
                    1 => scene.shapes.push(Shape::Circle {
                        x: run[0].0,
                        y: run[0].1,
                        r: 2.5,
                        fill: color.into(),
                    }),
                    _ => scene.shapes.push(Shape::Polyline {
                        points: std::mem::take(run),
                        color: color.into(),
                        width: 2.0,
                    }),
                }
                run.clear();
            };
            for &(px, py) in &s.points {
                if px.is_finite() && py.is_finite() && (!self.log_y || py > 0.0) {
                    run.push((x.map(px), y.map(py)));
                } else {
                    flush(&mut run, &mut scene);
                }
            }
            flush(&mut run, &mut scene);
        }
        if self.series.len() > 1 {
            let names: Vec<&str> = self.series.iter().map(|s| s.name.as_str()).collect();
            legend(&mut scene, &names);
        }
        scene
    }
}
