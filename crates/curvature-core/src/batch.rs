//! Batches of data and the sources that yield them.
//!
//! Every curvature operator evaluates over **all** the data of its objective, batch by batch,
//! in the order the source yields them: `L = Σ_j (B_j/N) L_j`, so repeated applications are
//! deterministic as long as the source is.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::error::{CurvatureError, Result};

/// What a batch is compared against.
#[derive(Debug, Clone)]
pub enum Targets<B: Backend> {
    /// Class indices, stored as the labels and as a one-hot matrix `[N, K]`.
    Classes {
        /// Class index of each example.
        labels: Vec<usize>,
        /// One-hot encoding `[N, K]`.
        one_hot: Tensor<B, 2>,
    },
    /// Real-valued targets `[N, K]` (regression).
    Values(Tensor<B, 2>),
}

impl<B: Backend> Targets<B> {
    /// The target matrix `[N, K]` used by the loss (one-hot for classes).
    pub fn matrix(&self) -> &Tensor<B, 2> {
        match self {
            Targets::Classes { one_hot, .. } => one_hot,
            Targets::Values(v) => v,
        }
    }
}

/// One batch: inputs `[N, ...]` (rank `D`) and targets.
#[derive(Debug, Clone)]
pub struct Batch<B: Backend, const D: usize> {
    /// Inputs; the first dimension is the batch.
    pub inputs: Tensor<B, D>,
    /// Targets for the `N` examples.
    pub targets: Targets<B>,
}

impl<B: Backend, const D: usize> Batch<B, D> {
    /// A classification batch from inputs and class indices in `0..num_classes`.
    ///
    /// # Errors
    /// [`CurvatureError::InvalidBatch`] if the batch is empty, the number of labels differs from
    /// the batch size, a label is out of range, or an input is NaN/±∞.
    pub fn classification(
        inputs: Tensor<B, D>,
        labels: &[usize],
        num_classes: usize,
    ) -> Result<Self> {
        let n = inputs.dims()[0];
        if n == 0 {
            return Err(CurvatureError::InvalidBatch("empty batch".into()));
        }
        if labels.len() != n {
            return Err(CurvatureError::InvalidBatch(format!(
                "{} labels for {} inputs",
                labels.len(),
                n
            )));
        }
        if num_classes == 0 {
            return Err(CurvatureError::InvalidBatch(
                "num_classes must be at least 1".into(),
            ));
        }
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l >= num_classes) {
            return Err(CurvatureError::InvalidBatch(format!(
                "label {l} of example {i} is out of range 0..{num_classes}"
            )));
        }
        check_finite(&inputs, "inputs")?;
        let mut one_hot = vec![0.0f64; n * num_classes];
        for (i, &l) in labels.iter().enumerate() {
            one_hot[i * num_classes + l] = 1.0;
        }
        let one_hot =
            Tensor::from_data(TensorData::new(one_hot, [n, num_classes]), &inputs.device());
        Ok(Self {
            inputs,
            targets: Targets::Classes {
                labels: labels.to_vec(),
                one_hot,
            },
        })
    }

    /// A regression batch from inputs and real targets `[N, K]`.
    ///
    /// # Errors
    /// [`CurvatureError::InvalidBatch`] if the batch is empty, the batch sizes differ, or an
    /// input or target is NaN/±∞.
    pub fn regression(inputs: Tensor<B, D>, targets: Tensor<B, 2>) -> Result<Self> {
        let n = inputs.dims()[0];
        if n == 0 {
            return Err(CurvatureError::InvalidBatch("empty batch".into()));
        }
        if targets.dims()[0] != n {
            return Err(CurvatureError::InvalidBatch(format!(
                "{} target rows for {} inputs",
                targets.dims()[0],
                n
            )));
        }
        check_finite(&inputs, "inputs")?;
        check_finite(&targets, "targets")?;
        Ok(Self {
            inputs,
            targets: Targets::Values(targets),
        })
    }

    /// Number of examples `N` in the batch.
    pub fn len(&self) -> usize {
        self.inputs.dims()[0]
    }

    /// Always `false`: constructors reject empty batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of output columns `K` the model must produce.
    pub fn num_outputs(&self) -> usize {
        self.targets.matrix().dims()[1]
    }

    /// The examples `rows` of this batch (inputs, labels and targets), in order: a data-parallel
    /// peer's share of a global batch.
    ///
    /// # Errors
    /// [`CurvatureError::InvalidBatch`] for an empty range or one that runs past the batch.
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Result<Self> {
        if rows.is_empty() || rows.end > self.len() {
            return Err(CurvatureError::InvalidBatch(format!(
                "rows {rows:?} of a batch of {} examples (the range must be non-empty and inside the batch)",
                self.len()
            )));
        }
        let (start, len) = (rows.start, rows.len());
        let targets = match &self.targets {
            Targets::Classes { labels, one_hot } => Targets::Classes {
                labels: labels[rows].to_vec(),
                one_hot: one_hot.clone().narrow(0, start, len),
            },
            Targets::Values(v) => Targets::Values(v.clone().narrow(0, start, len)),
        };
        Ok(Self {
            inputs: self.inputs.clone().narrow(0, start, len),
            targets,
        })
    }
}

fn check_finite<B: Backend, const D: usize>(t: &Tensor<B, D>, what: &str) -> Result<()> {
    if crate::reduce::has_non_finite(t) {
        return Err(CurvatureError::InvalidBatch(format!(
            "{what} contain NaN or infinite values"
        )));
    }
    Ok(())
}

/// A re-iterable source of batches covering a dataset.
///
/// Implemented by `Vec<Batch>` (fixed batches) and [`BatchStream`] (batches produced on the fly
/// by a closure, for datasets that do not fit in memory or augmented streams).
pub trait BatchSource<B: Backend, const D: usize> {
    /// Total number of examples `N` over all batches.
    fn num_examples(&self) -> usize;
    /// Call `f` on every batch, in a deterministic order, stopping at the first error.
    fn try_for_each(&self, f: &mut dyn FnMut(&Batch<B, D>) -> Result<()>) -> Result<()>;
    /// The first batch (used to validate shapes without a pass over all the data).
    fn first(&self) -> Result<Batch<B, D>>;
}

impl<B: Backend, const D: usize> BatchSource<B, D> for Vec<Batch<B, D>> {
    fn num_examples(&self) -> usize {
        self.iter().map(Batch::len).sum()
    }
    fn try_for_each(&self, f: &mut dyn FnMut(&Batch<B, D>) -> Result<()>) -> Result<()> {
        self.iter().try_for_each(f)
    }
    fn first(&self) -> Result<Batch<B, D>> {
        self.as_slice()
            .first()
            .cloned()
            .ok_or_else(|| CurvatureError::InvalidData("no batches".into()))
    }
}

/// Batches produced by a factory closure each time the data is traversed.
///
/// The factory must yield the same batches every time (for example by seeding its shuffling
/// and augmentation); the stream checks that every traversal covers exactly `num_examples`.
pub struct BatchStream<F> {
    factory: F,
    num_examples: usize,
}

impl<F> BatchStream<F> {
    /// A stream of `num_examples` examples, produced by `factory()` on each traversal.
    pub fn new(num_examples: usize, factory: F) -> Self {
        Self {
            factory,
            num_examples,
        }
    }
}

impl<B, const D: usize, F, I> BatchSource<B, D> for BatchStream<F>
where
    B: Backend,
    F: Fn() -> I,
    I: IntoIterator<Item = Result<Batch<B, D>>>,
{
    fn num_examples(&self) -> usize {
        self.num_examples
    }
    fn try_for_each(&self, f: &mut dyn FnMut(&Batch<B, D>) -> Result<()>) -> Result<()> {
        let mut seen = 0;
        for batch in (self.factory)() {
            let batch = batch?;
            seen += batch.len();
            if seen > self.num_examples {
                break;
            }
            f(&batch)?;
        }
        if seen != self.num_examples {
            let yielded = if seen > self.num_examples {
                format!("more than {}", self.num_examples)
            } else {
                seen.to_string()
            };
            return Err(CurvatureError::InvalidData(format!(
                "batch stream announced {} examples but yielded {yielded}",
                self.num_examples
            )));
        }
        Ok(())
    }
    fn first(&self) -> Result<Batch<B, D>> {
        (self.factory)().into_iter().next().unwrap_or_else(|| {
            Err(CurvatureError::InvalidData(
                "the batch stream is empty".into(),
            ))
        })
    }
}
