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

mod axis;
mod heatmap;
mod line;
mod scene;
mod stem;

pub use axis::*;
pub use heatmap::*;
pub use line::*;
pub use scene::*;
pub use stem::*;
