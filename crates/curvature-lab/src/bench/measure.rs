//! How an operation is timed: the [`Operation`] to time, the [`Measure`] that times it
//! (`curvature bench`'s [`MedianTimer`]; the criterion benches bring their own), and the
//! [`Timing`] it returns.

use std::time::Instant;

use super::BenchOptions;
use crate::error::Result;

/// One operation about to be timed.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    /// Model name (criterion's benchmark group).
    pub model: &'a str,
    /// What is timed (criterion's function id), e.g. `exact hvp` or `lanczos (10 steps)`.
    pub operation: &'a str,
    /// One call is already many HVPs (a Lanczos run, a LanczosOPT update): time fewer calls.
    pub heavy: bool,
}

/// A measurement: the median and the first (warm-up) call's milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Median milliseconds per call.
    pub ms: f64,
    /// Milliseconds of the first call (kernel compilation and autotuning on a GPU), if timed.
    pub first_ms: Option<f64>,
}

impl Timing {
    /// A value computed from measurements (no call of its own).
    pub(super) fn derived(ms: f64) -> Self {
        Self { ms, first_ms: None }
    }
}

/// One operation to time: an untimed set-up, then calls.
///
/// Every closure `FnMut() -> Result<()>` is an operation without set-up.
pub trait Operation {
    /// Untimed set-up (KFAC's first step, which builds the factors and their eigenbases).
    /// A [`Measure`] runs it once before the first call, and only if it times the operation
    /// at all, so that a skipped case costs nothing.
    ///
    /// # Errors
    /// Errors of the set-up.
    fn prepare(&mut self) -> Result<()> {
        Ok(())
    }

    /// One call of the operation; synchronises the device before it returns.
    ///
    /// # Errors
    /// Errors of the operation.
    fn call(&mut self) -> Result<()>;
}

impl<F: FnMut() -> Result<()>> Operation for F {
    fn call(&mut self) -> Result<()> {
        self()
    }
}

/// How each operation is timed. `curvature bench` uses [`MedianTimer`]; the criterion benches
/// in `benches/` drive the very same operations through criterion with their own `Measure`.
pub trait Measure {
    /// Prepare `op` (untimed), time its calls and return their median.
    ///
    /// `Ok(None)` means the harness skipped the operation (criterion's name filter, `--list`):
    /// it should then not prepare it either. The row, and the rows derived from it, are left
    /// out.
    ///
    /// # Errors
    /// The first error of `op`.
    fn measure(&mut self, case: Case<'_>, op: &mut dyn Operation) -> Result<Option<Timing>>;
}

/// Timed calls of a [`Case::heavy`] operation, at most.
const HEAVY_REPEATS: usize = 3;

/// `curvature bench`'s [`Measure`]: `warmup` untimed calls, then the median of `repeats` timed
/// calls (heavy operations: at most one warm-up and `HEAVY_REPEATS` timed calls).
#[derive(Debug, Clone, Copy)]
pub struct MedianTimer {
    /// Untimed calls first.
    pub warmup: usize,
    /// Timed calls.
    pub repeats: usize,
}

impl MedianTimer {
    /// The warm-up and timed calls of `options`.
    pub fn for_options(options: &BenchOptions) -> Self {
        Self {
            warmup: options.warmup,
            repeats: options.repeats,
        }
    }
}

impl Measure for MedianTimer {
    fn measure(&mut self, case: Case<'_>, op: &mut dyn Operation) -> Result<Option<Timing>> {
        op.prepare()?;
        let (warmup, repeats) = if case.heavy {
            (self.warmup.min(1), self.repeats.min(HEAVY_REPEATS))
        } else {
            (self.warmup, self.repeats)
        };
        let mut first_ms = None;
        for _ in 0..warmup {
            let start = Instant::now();
            op.call()?;
            first_ms.get_or_insert(start.elapsed().as_secs_f64() * 1e3);
        }
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let start = Instant::now();
            op.call()?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        Ok(median(&mut times).map(|ms| Timing { ms, first_ms }))
    }
}

/// The median of `times` (`None` if empty).
pub fn median(times: &mut [f64]) -> Option<f64> {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(times[n / 2]),
        _ => Some(0.5 * (times[n / 2 - 1] + times[n / 2])),
    }
}
