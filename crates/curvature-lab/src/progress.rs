//! Progress output for long loops: a redrawn bar on a terminal, a few plain lines otherwise
//! (logs, CI), nothing with `--quiet`. Everything goes to stderr so stdout stays parseable.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature_core::LinearOperator;

/// Seconds between plain progress lines.
const LINE_INTERVAL_S: f64 = 10.0;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Choose: a bar when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// A bar redrawn in place.
    Bar,
    /// A plain line every 10 seconds while the loop runs (silent for short loops).
    Lines,
    /// Nothing.
    Quiet,
}

impl ProgressMode {
    fn resolve(self) -> Self {
        match self {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Lines,
            m => m,
        }
    }
}

/// A counter over `total` units of work with a label and a free-form status.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: usize,
    done: usize,
    mode: ProgressMode,
    start: Instant,
    last_line: Instant,
}

impl Progress {
    /// Start counting.
    pub fn new(label: impl Into<String>, total: usize, mode: ProgressMode) -> Self {
        Self {
            label: label.into(),
            total: total.max(1),
            done: 0,
            mode: mode.resolve(),
            start: Instant::now(),
            last_line: Instant::now(),
        }
    }

    /// Units done so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// Count `n` more units and show `status` (e.g. the current loss).
    pub fn advance(&mut self, n: usize, status: &str) {
        self.done = (self.done + n).min(self.total);
        let secs = self.start.elapsed().as_secs_f64();
        match self.mode {
            ProgressMode::Bar => {
                const W: usize = 28;
                let filled = W * self.done / self.total;
                let eta = if self.done > 0 {
                    secs / self.done as f64 * (self.total - self.done) as f64
                } else {
                    0.0
                };
                eprint!(
                    "\r\x1b[2K{} [{}{}] {}/{} {:.0}s<{:.0}s {}",
                    self.label,
                    "#".repeat(filled),
                    ".".repeat(W - filled),
                    self.done,
                    self.total,
                    secs,
                    eta,
                    status
                );
                let _ = std::io::stderr().flush();
            }
            ProgressMode::Lines => {
                if self.last_line.elapsed().as_secs_f64() >= LINE_INTERVAL_S {
                    self.last_line = Instant::now();
                    eprintln!(
                        "{} {}/{} ({:.0}s) {}",
                        self.label, self.done, self.total, secs, status
                    );
                }
            }
            ProgressMode::Quiet | ProgressMode::Auto => {}
        }
    }

    /// End the bar's line (a no-op in the other modes).
    pub fn finish(&mut self) {
        if self.mode == ProgressMode::Bar {
            eprintln!();
        }
    }
}

/// A linear operator that advances a [`Progress`] on every product: progress for Lanczos and
/// SLQ, whose loops live in `curvature-core`.
pub struct Counted<'a, A> {
    /// The operator.
    pub inner: &'a A,
    /// The counter (one unit per product).
    pub progress: std::cell::RefCell<Progress>,
}

impl<B: Backend, A: LinearOperator<B>> LinearOperator<B> for Counted<'_, A> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn device(&self) -> B::Device {
        self.inner.device()
    }
    fn apply(&self, v: &Tensor<B, 1>) -> curvature_core::Result<Tensor<B, 1>> {
        let out = self.inner.apply(v);
        self.progress.borrow_mut().advance(1, "");
        out
    }
}

/// A flag raised by Ctrl-C (or by a caller) and polled between steps.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// A fresh, lowered flag.
    pub fn new() -> Self {
        Self::default()
    }
    /// Raise it.
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether it was raised.
    pub fn raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
