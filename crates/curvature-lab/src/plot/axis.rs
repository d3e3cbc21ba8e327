//! Axes (linear or log₁₀ with round ticks), the frame of a chart and its legend.

use super::*;

/// An axis: a data range mapped onto a pixel range, linear or log₁₀.
#[derive(Debug, Clone, Copy)]
pub struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    p0: f64,
    p1: f64,
}

impl Axis {
    /// Cover `values` (finite; positive ones only when `log`), padded a little.
    pub fn fit(values: impl Iterator<Item = f64>, log: bool, p0: f64, p1: f64) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            let v = if log { v.log10() } else { v };
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-12 * (1.0 + lo.abs()) {
            let pad = if log { 0.5 } else { 0.5 * lo.abs().max(1e-12) };
            (lo, hi) = (lo - pad, hi + pad);
        }
        let pad = 0.04 * (hi - lo);
        Self {
            lo: lo - pad,
            hi: hi + pad,
            log,
            p0,
            p1,
        }
    }

    /// The pixel coordinate of data value `v`.
    pub fn map(&self, v: f64) -> f64 {
        let t = if self.log { v.log10() } else { v };
        self.p0 + (t - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)
    }

    /// Tick positions (data values) and labels.
    pub fn ticks(&self) -> Vec<(f64, String)> {
        if self.log {
            let (a, b) = (self.lo.ceil() as i32, self.hi.floor() as i32);
            if b - a >= 2 {
                let stride = ((b - a) / 8 + 1).max(1);
                return (a..=b)
                    .filter(|e| (e - a) % stride == 0)
                    .map(|e| (10f64.powi(e), format!("1e{e}")))
                    .collect();
            }
            // Less than two decades: 1-2-5 steps inside each decade, or every digit when the
            // range is narrower still.
            let in_range = |mantissas: &[f64]| -> Vec<(f64, i32, f64)> {
                (self.lo.floor() as i32..=self.hi.ceil() as i32)
                    .flat_map(|e| mantissas.iter().map(move |&m| (m, e, m * 10f64.powi(e))))
                    .filter(|&(_, _, v)| (self.lo..=self.hi).contains(&v.log10()))
                    .collect()
            };
            let mut ticks = in_range(&[1.0, 2.0, 5.0]);
            if ticks.len() < 3 {
                ticks = in_range(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
            }
            return ticks
                .into_iter()
                .map(|(m, e, v)| {
                    let label = if (-3..=4).contains(&e) {
                        format!("{v:.*}", (-e).max(0) as usize)
                    } else {
                        format!("{m}e{e}")
                    };
                    (v, label)
                })
                .collect();
        }
        let raw = (self.hi - self.lo) / 6.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * mag);
        let first = (self.lo / step).ceil() as i64;
        let last = (self.hi / step).floor() as i64;
        (first..=last)
            .map(|i| {
                let v = i as f64 * step;
                (v, number(v, step))
            })
            .collect()
    }
}

/// A tick label: plain decimals for moderate numbers, scientific otherwise.
pub(super) fn number(v: f64, step: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e5).contains(&a) {
        let decimals = (-step.log10().floor()).max(0.0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.1e}")
    }
}

/// The frame, ticks, grid and labels shared by the charts.
pub(super) fn frame(
    scene: &mut Scene,
    title: &str,
    x: &Axis,
    y: &Axis,
    x_label: &str,
    y_label: &str,
) {
    let (l, r, t, b) = (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM);
    for (v, label) in y.ticks() {
        let py = y.map(v);
        scene.line((l, py), (r, py), "#e6e6e6", 1.0);
        scene.text(l - 6.0, py + 4.0, label, 11.0, Anchor::End);
    }
    for (v, label) in x.ticks() {
        let px = x.map(v);
        scene.line((px, t), (px, b), "#e6e6e6", 1.0);
        scene.text(px, b + 16.0, label, 11.0, Anchor::Middle);
    }
    scene.shapes.push(Shape::Polyline {
        points: vec![(l, t), (r, t), (r, b), (l, b), (l, t)],
        color: "#333333".into(),
        width: 1.0,
    });
    scene.text(WIDTH / 2.0, 26.0, title, 15.0, Anchor::Middle);
    scene.text((l + r) / 2.0, HEIGHT - 18.0, x_label, 13.0, Anchor::Middle);
    scene.vertical_text(20.0, (t + b) / 2.0, y_label, 13.0);
}

pub(super) fn legend(scene: &mut Scene, names: &[&str]) {
    let (r, t) = (WIDTH - RIGHT, TOP);
    let w = 14.0 + 7.0 * names.iter().map(|n| n.chars().count()).max().unwrap_or(0) as f64;
    for (i, name) in names.iter().enumerate() {
        let y = t + 16.0 + 16.0 * i as f64;
        let color = PALETTE[i % PALETTE.len()];
        scene.line((r - w - 28.0, y - 4.0), (r - w - 10.0, y - 4.0), color, 2.5);
        scene.text(r - w - 4.0, y, *name, 12.0, Anchor::Start);
    }
}
