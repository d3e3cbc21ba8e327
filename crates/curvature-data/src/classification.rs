//! An in-memory classification dataset and its batching into curvature objectives.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use curvature_core::Batch;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{DataError, Result};

/// Check per-channel normalisation constants: one mean and one positive finite std per channel.
pub(crate) fn check_normalization(channels: usize, mean: &[f32], std: &[f32]) -> Result<()> {
    if mean.len() != channels
        || std.len() != channels
        || std.iter().any(|s| !s.is_finite() || *s <= 0.0)
    {
        return Err(DataError::InvalidArgument {
            name: "mean/std",
            value: format!("{mean:?}/{std:?}"),
            reason: "one mean and one positive std per channel",
        });
    }
    Ok(())
}

/// Examples with a fixed per-example shape and integer class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationData {
    /// All inputs, example after example, row-major within an example.
    pub inputs: Vec<f32>,
    /// Shape of one example, e.g. `[64]` or `[3, 32, 32]`.
    pub example_shape: Vec<usize>,
    /// Class of each example.
    pub labels: Vec<usize>,
    /// Number of classes `K`.
    pub num_classes: usize,
    /// The per-channel normalisation applied to `inputs` ([`normalize`](Self::normalize)),
    /// composed if applied more than once; `None` for raw inputs.
    pub normalization: Option<Normalization>,
}

/// A per-channel affine normalisation `x ← (x − mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// Subtracted per channel.
    pub mean: Vec<f32>,
    /// Divided by per channel (positive).
    pub std: Vec<f32>,
}

impl ClassificationData {
    /// Check consistency and build.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if the input length does not match labels × shape or a
    /// label is out of range.
    pub fn new(
        inputs: Vec<f32>,
        example_shape: Vec<usize>,
        labels: Vec<usize>,
        num_classes: usize,
    ) -> Result<Self> {
        let per: usize = example_shape.iter().product();
        if per == 0 || inputs.len() != per * labels.len() {
            return Err(DataError::InvalidArgument {
                name: "inputs",
                value: format!(
                    "{} values for {} examples of shape {:?}",
                    inputs.len(),
                    labels.len(),
                    example_shape
                ),
                reason: "must hold exactly one example per label",
            });
        }
        if let Some(l) = labels.iter().find(|&&l| l >= num_classes) {
            return Err(DataError::InvalidArgument {
                name: "labels",
                value: l.to_string(),
                reason: "label out of range 0..num_classes",
            });
        }
        Ok(Self {
            inputs,
            example_shape,
            labels,
            num_classes,
            normalization: None,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Values per example.
    pub fn example_len(&self) -> usize {
        self.example_shape.iter().product()
    }

    /// Channels of `[C, …]` examples (1 for flat examples).
    pub fn channels(&self) -> usize {
        if self.example_shape.len() > 1 {
            self.example_shape[0]
        } else {
            1
        }
    }

    /// Per channel, the value a zero (black) pixel of the raw data has in `inputs`:
    /// `−mean[c]/std[c]` after [`normalize`](Self::normalize), else 0. Padding with it keeps
    /// padded borders black whatever the normalisation (torchvision pads before `Normalize`).
    pub fn zero_value(&self) -> Vec<f32> {
        match &self.normalization {
            Some(n) => n.mean.iter().zip(&n.std).map(|(m, s)| -m / s).collect(),
            None => vec![0.0; self.channels()],
        }
    }

    /// Per-channel mean and standard deviation of `[C, …]` examples (channel = first example
    /// dimension; for flat examples a single channel).
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let c = self.channels();
        let plane = self.example_len() / c;
        let mut sum = vec![0.0f64; c];
        let mut sq = vec![0.0f64; c];
        for (k, &v) in self.inputs.iter().enumerate() {
            let ch = (k / plane) % c;
            sum[ch] += v as f64;
            sq[ch] += (v as f64) * (v as f64);
        }
        let count = (self.len() * plane) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| ((q / count - m * m).max(0.0).sqrt()) as f32)
            .collect();
        (mean.into_iter().map(|m| m as f32).collect(), std)
    }

    /// Normalise in place: `x ← (x − mean[c]) / std[c]` per channel (see [`channel_stats`](Self::channel_stats)).
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if the lengths do not match the channel count or a std is
    /// not positive.
    pub fn normalize(&mut self, mean: &[f32], std: &[f32]) -> Result<()> {
        let c = self.channels();
        check_normalization(c, mean, std)?;
        let plane = self.example_len() / c;
        for (k, v) in self.inputs.iter_mut().enumerate() {
            let ch = (k / plane) % c;
            *v = (*v - mean[ch]) / std[ch];
        }
        // ((x − m₁)/s₁ − m₂)/s₂ = (x − (m₁ + m₂ s₁)) / (s₁ s₂)
        self.normalization = Some(match self.normalization.take() {
            None => Normalization {
                mean: mean.to_vec(),
                std: std.to_vec(),
            },
            Some(n) => Normalization {
                mean: (0..c).map(|i| n.mean[i] + mean[i] * n.std[i]).collect(),
                std: (0..c).map(|i| n.std[i] * std[i]).collect(),
            },
        });
        Ok(())
    }

    /// The examples at `indices`, in that order.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn select(&self, indices: &[usize]) -> Self {
        let per = self.example_len();
        let inputs = indices
            .iter()
            .flat_map(|&i| self.inputs[i * per..(i + 1) * per].iter().copied())
            .collect();
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Self {
            inputs,
            example_shape: self.example_shape.clone(),
            labels,
            num_classes: self.num_classes,
            normalization: self.normalization.clone(),
        }
    }

    /// The examples of the first `k` classes (labels `0..k`), in their order, as a `k`-class
    /// dataset: e.g. the 2-, 5- and 10-class problems on which Sagun et al. (2018, §3) count
    /// the Hessian's outliers.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if `k < 2` or `k > num_classes`.
    pub fn first_classes(&self, k: usize) -> Result<Self> {
        if k < 2 || k > self.num_classes {
            return Err(DataError::InvalidArgument {
                name: "classes",
                value: k.to_string(),
                reason: "must lie in 2..=num_classes (the dataset's number of classes)",
            });
        }
        let kept: Vec<usize> = (0..self.len()).filter(|&i| self.labels[i] < k).collect();
        Ok(Self {
            num_classes: k,
            ..self.select(&kept)
        })
    }

    /// The first `n` examples (all if fewer).
    pub fn take(&self, n: usize) -> Self {
        self.select(&(0..n.min(self.len())).collect::<Vec<_>>())
    }

    /// Seeded shuffle, then split into `(train, test)` with `test_len` test examples.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if `test_len` is 0 or not smaller than the dataset.
    pub fn split(&self, test_len: usize, seed: u64) -> Result<(Self, Self)> {
        if test_len == 0 || test_len >= self.len() {
            return Err(DataError::InvalidArgument {
                name: "test_len",
                value: test_len.to_string(),
                reason: "must be positive and smaller than the dataset",
            });
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut StdRng::seed_from_u64(seed));
        let (test, train) = idx.split_at(test_len);
        Ok((self.select(train), self.select(test)))
    }

    /// Consecutive batches of `batch_size` (the last one may be smaller) as rank-`D` tensors
    /// `[B, example_shape…]`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for `batch_size = 0` or a rank `D` that is not
    /// `1 + example_shape.len()`; batch validation errors.
    pub fn batches<B: Backend, const D: usize>(
        &self,
        batch_size: usize,
        device: &B::Device,
    ) -> Result<Vec<Batch<B, D>>> {
        if batch_size == 0 {
            return Err(DataError::InvalidArgument {
                name: "batch_size",
                value: "0".into(),
                reason: "must be positive",
            });
        }
        if D != 1 + self.example_shape.len() {
            return Err(DataError::InvalidArgument {
                name: "D",
                value: D.to_string(),
                reason: "tensor rank must be 1 + the rank of one example",
            });
        }
        let per = self.example_len();
        (0..self.len())
            .step_by(batch_size)
            .map(|start| {
                let end = (start + batch_size).min(self.len());
                let mut shape = vec![end - start];
                shape.extend(&self.example_shape);
                let data = TensorData::new(self.inputs[start * per..end * per].to_vec(), shape);
                Ok(Batch::classification(
                    Tensor::<B, D>::from_data(data, device),
                    &self.labels[start..end],
                    self.num_classes,
                )?)
            })
            .collect()
    }
}
