//! PNG rendering of a plot [`Scene`]: anti-aliased shapes with `tiny-skia` and text drawn from
//! the glyph outlines of an embedded font, so a PNG looks the same on every machine (no system
//! fonts, no C libraries).
//!
//! The font is a subset of DejaVu Sans (Latin, Greek, arithmetic and mathematical symbols,
//! super- and subscripts: every character the charts use; see `assets/LICENSE-DejaVu.txt`).
//! A character outside it is drawn as the font's missing-glyph box. Text follows SVG's model:
//! `size` is the em size in pixels, `y` the baseline, the anchor aligns the advance width, and a
//! vertical label is rotated by −90° about its anchor — so the PNG and the SVG of a scene agree.

use tiny_skia::{
    Color, FillRule, LineCap, LineJoin, Paint, PathBuilder, Pixmap, Rect, Stroke, Transform,
};
use ttf_parser::{Face, GlyphId, OutlineBuilder};

use crate::plot::{Anchor, Scene, Shape};

/// DejaVu Sans, subset (70 kB).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// Why a scene could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError(pub String);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The embedded font.
fn face() -> Result<Face<'static>, RenderError> {
    Face::parse(FONT, 0).map_err(|e| RenderError(format!("embedded font: {e}")))
}

/// A CSS colour of the forms the charts use: `#rrggbb`, `#rgb`, `white`, `black`.
///
/// # Errors
/// Any other form.
pub fn parse_color(css: &str) -> Result<Color, RenderError> {
    let bad = || {
        RenderError(format!(
            "unsupported colour `{css}` (use #rrggbb, #rgb, white or black)"
        ))
    };
    let hex = |s: &str| u8::from_str_radix(s, 16).map_err(|_| bad());
    let (r, g, b) = match css.trim() {
        "white" => (255, 255, 255),
        "black" => (0, 0, 0),
        s if s.starts_with('#') && s.len() == 7 && s.is_ascii() => {
            (hex(&s[1..3])?, hex(&s[3..5])?, hex(&s[5..7])?)
        }
        s if s.starts_with('#') && s.len() == 4 && s.is_ascii() => {
            let d = |i: usize| hex(&s[i..=i]).map(|v| v * 17);
            (d(1)?, d(2)?, d(3)?)
        }
        _ => return Err(bad()),
    };
    Ok(Color::from_rgba8(r, g, b, 255))
}

fn paint(css: &str) -> Result<Paint<'static>, RenderError> {
    let mut p = Paint::default();
    p.set_color(parse_color(css)?);
    p.anti_alias = true;
    Ok(p)
}

/// Glyph outlines in font units, shifted right by the pen position.
struct Outline {
    builder: PathBuilder,
    pen: f32,
}

impl OutlineBuilder for Outline {
    fn move_to(&mut self, x: f32, y: f32) {
        self.builder.move_to(x + self.pen, y);
    }
    fn line_to(&mut self, x: f32, y: f32) {
        self.builder.line_to(x + self.pen, y);
    }
    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        self.builder.quad_to(x1 + self.pen, y1, x + self.pen, y);
    }
    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        self.builder
            .cubic_to(x1 + self.pen, y1, x2 + self.pen, y2, x + self.pen, y);
    }
    fn close(&mut self) {
        self.builder.close();
    }
}

/// The glyphs of `text` and its advance width, in font units.
fn layout(face: &Face<'_>, text: &str) -> (Vec<(GlyphId, f32)>, f32) {
    let mut pen = 0.0_f32;
    let glyphs = text
        .chars()
        .map(|c| {
            let id = face.glyph_index(c).unwrap_or(GlyphId(0));
            let at = pen;
            pen += f32::from(face.glyph_hor_advance(id).unwrap_or(0));
            (id, at)
        })
        .collect();
    (glyphs, pen)
}

/// The advance width of `text` at `size` pixels per em (what an SVG `text-anchor` aligns).
///
/// # Errors
/// Only if the embedded font were unreadable.
pub fn text_width(text: &str, size: f64) -> Result<f64, RenderError> {
    let face = face()?;
    let (_, width) = layout(&face, text);
    Ok(f64::from(width) * size / f64::from(face.units_per_em()))
}

/// Render `scene` at `scale` device pixels per scene pixel (2 gives a sharp image on high-DPI
/// screens and in papers).
///
/// # Errors
/// A scene larger than 16 384 px a side, a non-positive scale, or an unsupported colour.
pub fn render(scene: &Scene, scale: f64) -> Result<Pixmap, RenderError> {
    let (w, h) = (scene.width * scale, scene.height * scale);
    if !(scale > 0.0 && w >= 1.0 && h >= 1.0 && w <= 16_384.0 && h <= 16_384.0) {
        return Err(RenderError(format!(
            "cannot render a {}×{} scene at scale {scale} (1 to 16384 pixels a side)",
            scene.width, scene.height
        )));
    }
    let mut pixmap = Pixmap::new(w.round() as u32, h.round() as u32)
        .ok_or_else(|| RenderError("could not allocate the image".into()))?;
    let face = face()?;
    let base = Transform::from_scale(scale as f32, scale as f32);
    for shape in &scene.shapes {
        match shape {
            Shape::Rect { x, y, w, h, fill } => {
                if let Some(rect) = Rect::from_xywh(*x as f32, *y as f32, *w as f32, *h as f32) {
                    pixmap.fill_rect(rect, &paint(fill)?, base, None);
                }
            }
            Shape::Circle { x, y, r, fill } => {
                if let Some(path) = PathBuilder::from_circle(*x as f32, *y as f32, *r as f32) {
                    pixmap.fill_path(&path, &paint(fill)?, FillRule::Winding, base, None);
                }
            }
            Shape::Polyline {
                points,
                color,
                width,
            } => {
                let mut pb = PathBuilder::new();
                for (i, &(x, y)) in points.iter().enumerate() {
                    if i == 0 {
                        pb.move_to(x as f32, y as f32);
                    } else {
                        pb.line_to(x as f32, y as f32);
                    }
                }
                if let Some(path) = pb.finish() {
                    let stroke = Stroke {
                        width: *width as f32,
                        line_cap: LineCap::Butt,
                        line_join: LineJoin::Round,
                        ..Stroke::default()
                    };
                    pixmap.stroke_path(&path, &paint(color)?, &stroke, base, None);
                }
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
                let (glyphs, width) = layout(&face, text);
                let em = *size as f32 / f32::from(face.units_per_em());
                let shift = match anchor {
                    Anchor::Start => 0.0,
                    Anchor::Middle => -0.5 * width * em,
                    Anchor::End => -width * em,
                };
                let mut outline = Outline {
                    builder: PathBuilder::new(),
                    pen: 0.0,
                };
                for (id, at) in glyphs {
                    outline.pen = at;
                    face.outline_glyph(id, &mut outline);
                }
                let Some(path) = outline.builder.finish() else {
                    continue; // blanks only
                };
                let mut t = base.pre_translate(*x as f32, *y as f32);
                if *vertical {
                    t = t.pre_rotate(-90.0);
                }
                let t = t.pre_translate(shift, 0.0).pre_scale(em, -em);
                pixmap.fill_path(&path, &paint(color)?, FillRule::Winding, t, None);
            }
        }
    }
    Ok(pixmap)
}

/// Render `scene` (see [`render`]) and encode it as PNG.
///
/// # Errors
/// As [`render`], or a PNG encoder failure.
pub fn to_png(scene: &Scene, scale: f64) -> Result<Vec<u8>, RenderError> {
    render(scene, scale)?
        .encode_png()
        .map_err(|e| RenderError(format!("PNG encoding: {e}")))
}
