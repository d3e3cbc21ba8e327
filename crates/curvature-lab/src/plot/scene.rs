//! A drawing as primitive shapes in pixel coordinates, and writing it as SVG or PNG.

use super::*;

pub(super) const WIDTH: f64 = 760.0;
pub(super) const HEIGHT: f64 = 460.0;
pub(super) const LEFT: f64 = 84.0;
pub(super) const RIGHT: f64 = 24.0;
pub(super) const TOP: f64 = 44.0;
pub(super) const BOTTOM: f64 = 62.0;
/// Text colour.
/// The colour of text and axes.
pub const TEXT: &str = "#000000";
/// Line colours (the "tab10" palette).
pub(super) const PALETTE: [&str; 8] = [
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

pub(super) fn esc(s: &str) -> String {
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

    pub(super) fn line(&mut self, a: (f64, f64), b: (f64, f64), color: &str, width: f64) {
        self.shapes.push(Shape::Polyline {
            points: vec![a, b],
            color: color.into(),
            width,
        });
    }

    pub(super) fn text(
        &mut self,
        x: f64,
        y: f64,
        text: impl Into<String>,
        size: f64,
        anchor: Anchor,
    ) {
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
    pub(super) fn vertical_text(&mut self, x: f64, y: f64, text: impl Into<String>, size: f64) {
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
