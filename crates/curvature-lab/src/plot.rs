//! Plots of runs and spectra, written without a plotting dependency.
//!
//! A chart ([`LineChart`], [`StemChart`], [`Heatmap`]) lays itself out as a [`Scene`] of
//! primitive shapes in pixel coordinates; [`save`] writes the scene as SVG (`.svg`) or as PNG
//! (`.png`, rasterised by [`crate::raster`] with an embedded font). The
//! charts follow the papers' figures: training curves against epochs, the single-vector Lanczos
//! stem plot of Ritz values and weights on a log-scale y axis (Granziol et al., *Towards
//! understanding the true loss surface…*, Figs. 1–3) with an optional Gaussian-smoothed
//! density, and the heat map of a hyper-parameter grid (Granziol & Baskerville, Fig. 4).

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Result, io, write_atomic};

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 460.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 62.0;
/// Text colour.
/// The colour of text and axes.
pub const TEXT: &str = "#000000";
/// Line colours (the "tab10" palette).
const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// Horizontal text alignment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Anchor {
    /// Left edge at `x`.
    Start,
    /// Centred on `x`.
    Middle,
    /// Right edge at `x`.
    End,
}

/// A primitive in pixel coordinates (origin top left).
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A connected line.
    Polyline {
        /// Vertices.
        points: Vec<(f64, f64)>,
        /// CSS colour.
        color: String,
        /// Stroke width.
        width: f64,
    },
    /// A filled rectangle.
    Rect {
        /// Left.
        x: f64,
        /// Top.
        y: f64,
        /// Width.
        w: f64,
        /// Height.
        h: f64,
        /// CSS colour.
        fill: String,
    },
    /// A filled circle.
    Circle {
        /// Centre x.
        x: f64,
        /// Centre y.
        y: f64,
        /// Radius.
        r: f64,
        /// CSS colour.
        fill: String,
    },
    /// A line of text (baseline at `y`), optionally rotated by −90° about `(x, y)`.
    Text {
        /// Anchor x.
        x: f64,
        /// Baseline y.
        y: f64,
        /// Content.
        text: String,
        /// Font size in pixels.
        size: f64,
        /// Alignment.
        anchor: Anchor,
        /// Rotated to read bottom-up (y-axis labels).
        vertical: bool,
        /// CSS colour.
        color: String,
    },
}

/// A drawing: a size and shapes painted in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// Width in pixels.
    pub width: f64,
    /// Height in pixels.
    pub height: f64,
    /// Shapes, back to front.
    pub shapes: Vec<Shape>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Default for Scene {
    fn default() -> Self {
        Self::new()
    }
}

impl Scene {
    /// An empty scene of the default size.
    pub fn new() -> Self {
        Self {
            width: WIDTH,
            height: HEIGHT,
            shapes: vec![Shape::Rect {
                x: 0.0,
                y: 0.0,
                w: WIDTH,
                h: HEIGHT,
                fill: "white".into(),
            }],
        }
    }

    fn line(&mut self, a: (f64, f64), b: (f64, f64), color: &str, width: f64) {
        self.shapes.push(Shape::Polyline {
            points: vec![a, b],
            color: color.into(),
            width,
        });
    }

    fn text(&mut self, x: f64, y: f64, text: impl Into<String>, size: f64, anchor: Anchor) {
        self.shapes.push(Shape::Text {
            x,
            y,
            text: text.into(),
            size,
            anchor,
            vertical: false,
            color: TEXT.into(),
        });
    }

    /// A y-axis label: centred on `y`, reading bottom-up.
    fn vertical_text(&mut self, x: f64, y: f64, text: impl Into<String>, size: f64) {
        self.shapes.push(Shape::Text {
            x,
            y,
            text: text.into(),
            size,
            anchor: Anchor::Middle,
            vertical: true,
            color: TEXT.into(),
        });
    }

    /// The scene as an SVG document.
    pub fn to_svg(&self) -> String {
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
            w = self.width,
            h = self.height
        );
        for shape in &self.shapes {
            match shape {
                Shape::Polyline {
                    points,
                    color,
                    width,
                } => {
                    let pts: Vec<String> = points
                        .iter()
                        .map(|(x, y)| format!("{x:.2},{y:.2}"))
                        .collect();
                    let _ = writeln!(
                        s,
                        "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\" stroke-linejoin=\"round\"/>",
                        pts.join(" ")
                    );
                }
                Shape::Rect { x, y, w, h, fill } => {
                    let _ = writeln!(
                        s,
                        "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{w:.2}\" height=\"{h:.2}\" fill=\"{fill}\"/>"
                    );
                }
                Shape::Circle { x, y, r, fill } => {
                    let _ = writeln!(
                        s,
                        "<circle cx=\"{x:.2}\" cy=\"{y:.2}\" r=\"{r}\" fill=\"{fill}\"/>"
                    );
                }
                Shape::Text {
                    x,
                    y,
                    text,
                    size,
                    anchor,
                    vertical,
                    color,
                } => {
                    let anchor = match anchor {
                        Anchor::Start => "start",
                        Anchor::Middle => "middle",
                        Anchor::End => "end",
                    };
                    let rotate = if *vertical {
                        format!(" transform=\"rotate(-90 {x:.2} {y:.2})\"")
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        s,
                        "<text x=\"{x:.2}\" y=\"{y:.2}\" font-size=\"{size}\" text-anchor=\"{anchor}\" fill=\"{color}\"{rotate}>{}</text>",
                        esc(text)
                    );
                }
            }
        }
        s.push_str("</svg>\n");
        s
    }
}

/// Device pixels per scene pixel in PNG files (a 760×460 chart becomes 1520×920).
pub const PNG_SCALE: f64 = 2.0;

/// Write a scene to `path`; the extension picks the format: `.svg`, or `.png` rendered by
/// [`crate::raster`] at [`PNG_SCALE`]. The file is written to a temporary name and renamed, so
/// an interrupted run never leaves half a plot.
///
/// # Errors
/// Another extension (the message names the supported ones) and file errors.
pub fn save(scene: &Scene, path: &Path) -> Result<()> {
    let ext = check_format(path)?;
    let bytes = match ext {
        "svg" => scene.to_svg().into_bytes(),
        _ => crate::raster::to_png(scene, PNG_SCALE).map_err(|e| io(path, e))?,
    };
    write_atomic(path, &bytes)
}

/// The plot format `path` names by its extension: `"svg"` or `"png"` (any case).
///
/// # Errors
/// Any other extension, with a message naming the supported ones — checked before a long
/// computation whose result is to be drawn.
pub fn check_format(path: &Path) -> Result<&'static str> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Ok("svg"),
        Some("png") => Ok("png"),
        _ => Err(io(
            path,
            "unsupported plot format: use a file ending in .svg or .png",
        )),
    }
}

/// Write `scene` as both `dir/stem.svg` and `dir/stem.png`.
///
/// # Errors
/// As [`save`].
pub fn save_both(scene: &Scene, dir: &Path, stem: &str) -> Result<()> {
    save(scene, &dir.join(format!("{stem}.svg")))?;
    save(scene, &dir.join(format!("{stem}.png")))
}

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
fn number(v: f64, step: f64) -> String {
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
fn frame(scene: &mut Scene, title: &str, x: &Axis, y: &Axis, x_label: &str, y_label: &str) {
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

fn legend(scene: &mut Scene, names: &[&str]) {
    let (r, t) = (WIDTH - RIGHT, TOP);
    let w = 14.0 + 7.0 * names.iter().map(|n| n.chars().count()).max().unwrap_or(0) as f64;
    for (i, name) in names.iter().enumerate() {
        let y = t + 16.0 + 16.0 * i as f64;
        let color = PALETTE[i % PALETTE.len()];
        scene.line((r - w - 28.0, y - 4.0), (r - w - 10.0, y - 4.0), color, 2.5);
        scene.text(r - w - 4.0, y, *name, 12.0, Anchor::Start);
    }
}

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
fn ramp(t: f64) -> String {
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
