//! Heat maps of a hyper-parameter grid.

use super::*;

/// A grid of values (e.g. final loss over learning rate × damping), coloured on a log or
/// linear scale; missing cells (diverged runs) are grey with a cross.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Column labels.
    pub x_ticks: Vec<String>,
    /// Row labels (drawn bottom to top).
    pub y_ticks: Vec<String>,
    /// `values[row][column]`.
    pub values: Vec<Vec<Option<f64>>>,
    /// Colour on a log₁₀ scale (for positive values).
    pub log: bool,
}

/// Viridis-like colour ramp, `t ∈ [0, 1]`.
pub(super) fn ramp(t: f64) -> String {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + f * (q - p)).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

impl Heatmap {
    /// Lay the chart out.
    pub fn render(&self) -> Scene {
        let mut scene = Scene::new();
        let (l, r, t, b) = (LEFT + 30.0, WIDTH - RIGHT - 20.0, TOP, HEIGHT - BOTTOM);
        let rows = self.values.len().max(1);
        let cols = self.values.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let (cw, ch) = ((r - l) / cols as f64, (b - t) / rows as f64);
        let scale = |v: f64| if self.log { v.max(1e-300).log10() } else { v };
        let finite: Vec<f64> = self
            .values
            .iter()
            .flatten()
            .flatten()
            .copied()
            .filter(|v| v.is_finite() && (!self.log || *v > 0.0))
            .map(scale)
            .collect();
        let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for (i, row) in self.values.iter().enumerate() {
            // Row 0 at the bottom, like an axis.
            let y0 = b - (i + 1) as f64 * ch;
            for (j, v) in row.iter().enumerate() {
                let x0 = l + j as f64 * cw;
                let (fill, label, ink) = match v {
                    Some(v) if v.is_finite() && (!self.log || *v > 0.0) => {
                        let t = if hi > lo {
                            (scale(*v) - lo) / (hi - lo)
                        } else {
                            0.5
                        };
                        // White labels on the dark (purple and blue) end of the ramp.
                        let ink = if t < 0.45 { "#ffffff" } else { TEXT };
                        (ramp(t), format!("{v:.3}"), ink)
                    }
                    _ => ("#bbbbbb".to_string(), "×".to_string(), TEXT),
                };
                scene.shapes.push(Shape::Rect {
                    x: x0 + 1.0,
                    y: y0 + 1.0,
                    w: cw - 2.0,
                    h: ch - 2.0,
                    fill,
                });
                scene.shapes.push(Shape::Text {
                    x: x0 + cw / 2.0,
                    y: y0 + ch / 2.0 + 4.0,
                    text: label,
                    size: 11.0,
                    anchor: Anchor::Middle,
                    vertical: false,
                    color: ink.into(),
                });
            }
        }
        for (j, label) in self.x_ticks.iter().enumerate() {
            scene.text(
                l + (j as f64 + 0.5) * cw,
                b + 16.0,
                label.clone(),
                11.0,
                Anchor::Middle,
            );
        }
        for (i, label) in self.y_ticks.iter().enumerate() {
            scene.text(
                l - 6.0,
                b - (i as f64 + 0.5) * ch + 4.0,
                label.clone(),
                11.0,
                Anchor::End,
            );
        }
        scene.text(WIDTH / 2.0, 26.0, self.title.clone(), 15.0, Anchor::Middle);
        scene.text(
            (l + r) / 2.0,
            HEIGHT - 18.0,
            self.x_label.clone(),
            13.0,
            Anchor::Middle,
        );
        scene.vertical_text(20.0, (t + b) / 2.0, self.y_label.clone(), 13.0);
        scene
    }
}
