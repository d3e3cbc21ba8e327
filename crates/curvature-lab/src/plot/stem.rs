//! The single-vector Lanczos stem plot of Ritz values and weights.

use super::*;

/// The single-vector Lanczos stem plot: a stem at each Ritz value `θ_k` of height `ρ_k`, on a
/// log-scale y axis, optionally with a smoothed density drawn over it.
#[derive(Debug, Clone, PartialEq)]
pub struct StemChart {
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// `(θ_k, ρ_k)`.
    pub stems: Vec<(f64, f64)>,
    /// A smoothed density `(x, p(x))` drawn as a line, if any.
    pub density: Option<Vec<(f64, f64)>>,
}

impl StemChart {
    /// Lay the chart out.
    pub fn render(&self) -> Scene {
        let mut scene = Scene::new();
        let xs = self
            .stems
            .iter()
            .map(|s| s.0)
            .chain(self.density.iter().flatten().map(|p| p.0));
        let x = Axis::fit(xs, false, LEFT, WIDTH - RIGHT);
        let ys = self
            .stems
            .iter()
            .map(|s| s.1)
            .chain(self.density.iter().flatten().map(|p| p.1));
        let y = Axis::fit(ys, true, HEIGHT - BOTTOM, TOP);
        frame(
            &mut scene,
            &self.title,
            &x,
            &y,
            &self.x_label,
            "spectral density (log scale)",
        );
        let base = HEIGHT - BOTTOM;
        for &(t, w) in &self.stems {
            if t.is_finite() && w.is_finite() && w > 0.0 {
                let (px, py) = (x.map(t), y.map(w));
                scene.line((px, base), (px, py), PALETTE[0], 1.5);
                scene.shapes.push(Shape::Circle {
                    x: px,
                    y: py,
                    r: 3.0,
                    fill: PALETTE[0].into(),
                });
            }
        }
        if let Some(density) = &self.density {
            let points: Vec<(f64, f64)> = density
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite() && p.1 > 0.0)
                .map(|&(a, b)| (x.map(a), y.map(b).min(base)))
                .collect();
            scene.shapes.push(Shape::Polyline {
                points,
                color: PALETTE[1].into(),
                width: 1.5,
            });
            legend(&mut scene, &["Ritz weights", "smoothed density"]);
        }
        scene
    }
}
