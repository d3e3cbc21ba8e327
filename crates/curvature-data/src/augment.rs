//! Data augmentation for images — random crop with zero padding and horizontal flip, the
//! standard CIFAR recipe — and reproducible augmented streams for the "true Hessian"
//! experiments (Granziol et al., *Towards understanding the true loss surface*, §6).

use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use curvature_core::{Batch, BatchSource, CurvatureError, derive_seed};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::classification::{ClassificationData, check_normalization};
use crate::error::{DataError, Result};

/// Random crop of the zero-padded image and an optional horizontal flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augmentation {
    /// Zero padding on each side before cropping back to the original size (4 for CIFAR).
    pub pad: usize,
    /// Flip horizontally with probability ½.
    pub flip: bool,
}

impl Augmentation {
    /// The CIFAR recipe: 4-pixel padding, random 32×32 crop, horizontal flip.
    pub fn cifar() -> Self {
        Self { pad: 4, flip: true }
    }

    /// Augment one `[C, H, W]` image into `out` (appended); padding is 0.
    pub fn apply(&self, image: &[f32], shape: [usize; 3], rng: &mut impl Rng, out: &mut Vec<f32>) {
        self.apply_padded(image, shape, &[], rng, out);
    }

    /// [`apply`](Self::apply) with padding `fill[c]` in channel `c` (0 where `fill` is
    /// empty): the value black has in normalised data
    /// ([`ClassificationData::zero_value`]).
    pub fn apply_padded(
        &self,
        image: &[f32],
        [c, h, w]: [usize; 3],
        fill: &[f32],
        rng: &mut impl Rng,
        out: &mut Vec<f32>,
    ) {
        let dy = rng.random_range(0..=2 * self.pad) as isize - self.pad as isize;
        let dx = rng.random_range(0..=2 * self.pad) as isize - self.pad as isize;
        let flip = self.flip && rng.random::<bool>();
        for ch in 0..c {
            let plane = &image[ch * h * w..(ch + 1) * h * w];
            let pad = fill.get(ch).copied().unwrap_or(0.0);
            for y in 0..h {
                let sy = y as isize + dy;
                for x in 0..w {
                    let xo = if flip { w - 1 - x } else { x };
                    let sx = xo as isize + dx;
                    let v = if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                        plane[sy as usize * w + sx as usize]
                    } else {
                        pad
                    };
                    out.push(v);
                }
            }
        }
    }

    /// Every example of `data` (images `[C, H, W]`) augmented once, in order: example `i`
    /// with its own generator seeded `derive_seed(seed, i)`, padded with black
    /// ([`ClassificationData::zero_value`]). One call per epoch with a per-epoch `seed` gives
    /// training-time augmentation that does not depend on batch order, so resumed runs see the
    /// same images.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for non-image examples.
    pub fn augment_all(&self, data: &ClassificationData, seed: u64) -> Result<ClassificationData> {
        let [c, h, w] = match data.example_shape[..] {
            [c, h, w] => [c, h, w],
            _ => {
                return Err(DataError::InvalidArgument {
                    name: "data",
                    value: format!("{:?}", data.example_shape),
                    reason: "augmentation needs [C, H, W] images",
                });
            }
        };
        let per = data.example_len();
        let fill = data.zero_value();
        let mut inputs = Vec::with_capacity(data.inputs.len());
        for (i, image) in data.inputs.chunks_exact(per).enumerate() {
            let mut rng = StdRng::seed_from_u64(derive_seed(seed, i as u64));
            self.apply_padded(image, [c, h, w], &fill, &mut rng, &mut inputs);
        }
        Ok(ClassificationData {
            inputs,
            example_shape: data.example_shape.clone(),
            labels: data.labels.clone(),
            num_classes: data.num_classes,
            normalization: data.normalization.clone(),
        })
    }
}

/// A reproducible stream of `len` augmented examples drawn epoch by epoch from a dataset
/// (each epoch a seeded permutation, each example augmented with its own seeded generator),
/// in batches, as a [`BatchSource`] for curvature objectives. Padding is black in the original
/// pixel scale: for data already normalised ([`ClassificationData::normalize`]) it is the
/// normalised value of black, and optional per-channel normalisation
/// ([`with_normalization`](Self::with_normalization)) is applied after augmentation (as
/// torchvision's `Normalize` after `RandomCrop`).
pub struct AugmentedStream<B: Backend> {
    data: Arc<ClassificationData>,
    augmentation: Augmentation,
    len: usize,
    batch_size: usize,
    seed: u64,
    normalization: Option<(Vec<f32>, Vec<f32>)>,
    device: B::Device,
}

impl<B: Backend> AugmentedStream<B> {
    /// `len` augmented examples of `data` (images `[C, H, W]`) in batches of `batch_size`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for an empty dataset, non-image examples, or zero sizes.
    pub fn new(
        data: Arc<ClassificationData>,
        augmentation: Augmentation,
        len: usize,
        batch_size: usize,
        seed: u64,
        device: &B::Device,
    ) -> Result<Self> {
        if data.example_shape.len() != 3 || data.is_empty() {
            return Err(DataError::InvalidArgument {
                name: "data",
                value: format!("{:?}", data.example_shape),
                reason: "needs a non-empty dataset of [C, H, W] images",
            });
        }
        if len == 0 || batch_size == 0 {
            return Err(DataError::InvalidArgument {
                name: "len/batch_size",
                value: format!("{len}/{batch_size}"),
                reason: "must be positive",
            });
        }
        Ok(Self {
            data,
            augmentation,
            len,
            batch_size,
            seed,
            normalization: None,
            device: device.clone(),
        })
    }

    /// Normalise each channel as `(x − mean[c]) / std[c]` after augmentation.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if the lengths differ from the channel count or a std is
    /// not positive.
    pub fn with_normalization(mut self, mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        let c = self.data.example_shape[0];
        check_normalization(c, &mean, &std)?;
        self.normalization = Some((mean, std));
        Ok(self)
    }

    /// The batch starting at stream position `start` (reproducible: depends only on the seed).
    ///
    /// # Errors
    /// `start` at or past the end of the stream.
    pub fn batch(&self, start: usize) -> std::result::Result<Batch<B, 4>, CurvatureError> {
        if start >= self.len {
            return Err(CurvatureError::InvalidData(format!(
                "batch start {start} is past the end of a stream of {} examples",
                self.len
            )));
        }
        let n = self.data.len();
        let shape = [
            self.data.example_shape[0],
            self.data.example_shape[1],
            self.data.example_shape[2],
        ];
        let per = self.data.example_len();
        let end = (start + self.batch_size).min(self.len);
        let mut inputs = Vec::with_capacity((end - start) * per);
        let mut labels = Vec::with_capacity(end - start);
        let mut epoch_perm: Option<(usize, Vec<usize>)> = None;
        let fill = self.data.zero_value();
        for i in start..end {
            let (epoch, pos) = (i / n, i % n);
            if epoch_perm.as_ref().is_none_or(|(e, _)| *e != epoch) {
                let mut perm: Vec<usize> = (0..n).collect();
                perm.shuffle(&mut StdRng::seed_from_u64(derive_seed(
                    self.seed,
                    epoch as u64,
                )));
                epoch_perm = Some((epoch, perm));
            }
            let idx = epoch_perm.as_ref().expect("set above").1[pos];
            let mut rng = StdRng::seed_from_u64(derive_seed(self.seed ^ 0xA5A5_A5A5, i as u64));
            self.augmentation.apply_padded(
                &self.data.inputs[idx * per..(idx + 1) * per],
                shape,
                &fill,
                &mut rng,
                &mut inputs,
            );
            labels.push(self.data.labels[idx]);
        }
        if let Some((mean, std)) = &self.normalization {
            let plane = shape[1] * shape[2];
            for (k, v) in inputs.iter_mut().enumerate() {
                let ch = (k / plane) % shape[0];
                *v = (*v - mean[ch]) / std[ch];
            }
        }
        let data = TensorData::new(inputs, [end - start, shape[0], shape[1], shape[2]]);
        Batch::classification(
            Tensor::from_data(data, &self.device),
            &labels,
            self.data.num_classes,
        )
    }
}

impl<B: Backend> BatchSource<B, 4> for AugmentedStream<B> {
    fn num_examples(&self) -> usize {
        self.len
    }
    fn try_for_each(
        &self,
        f: &mut dyn FnMut(&Batch<B, 4>) -> std::result::Result<(), CurvatureError>,
    ) -> std::result::Result<(), CurvatureError> {
        (0..self.len)
            .step_by(self.batch_size)
            .try_for_each(|start| f(&self.batch(start)?))
    }
    fn first(&self) -> std::result::Result<Batch<B, 4>, CurvatureError> {
        self.batch(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Augmentation only moves and copies values: the normalised and the raw path may differ
    /// by one rounding of `(x − m)/s`.
    const ROUNDING: f32 = 1e-6;

    fn images() -> ClassificationData {
        // 3 examples of [2, 4, 4] with values in 1..=96 (no zeros, so padding is visible).
        let inputs = (1..=96).map(|v| v as f32).collect();
        ClassificationData::new(inputs, vec![2, 4, 4], vec![0, 1, 0], 2).unwrap()
    }

    #[test]
    fn normalising_twice_composes_and_black_maps_to_its_normalised_value() {
        let mut d = images();
        assert_eq!(d.zero_value(), vec![0.0, 0.0]);
        d.normalize(&[1.0, 2.0], &[2.0, 4.0]).unwrap();
        d.normalize(&[0.5, -1.0], &[3.0, 0.5]).unwrap();
        let n = d.normalization.clone().unwrap();
        // (x − 1)/2 then (y − 0.5)/3  =  (x − 2)/6;   (x − 2)/4 then (y + 1)/0.5  =  (x + 2)/2
        assert_eq!(n.mean, vec![2.0, -2.0]);
        assert_eq!(n.std, vec![6.0, 2.0]);
        assert_eq!(d.zero_value(), vec![-2.0 / 6.0, 1.0]);
        // The composed normalisation reproduces the data from the raw values.
        let raw = images();
        for (k, (&x, &y)) in raw.inputs.iter().zip(&d.inputs).enumerate() {
            let ch = (k / 16) % 2;
            assert!((y - (x - n.mean[ch]) / n.std[ch]).abs() < ROUNDING);
        }
    }

    #[test]
    fn augmenting_normalised_data_equals_normalising_augmented_raw_data() {
        let aug = Augmentation { pad: 2, flip: true };
        let raw = images();
        let (mean, std) = ([10.0, 50.0], [5.0, 20.0]);
        let mut normalised = raw.clone();
        normalised.normalize(&mean, &std).unwrap();
        for seed in [3, 4] {
            let mut expected = aug.augment_all(&raw, seed).unwrap();
            expected.normalize(&mean, &std).unwrap();
            let got = aug.augment_all(&normalised, seed).unwrap();
            assert_eq!(got.labels, raw.labels);
            assert_eq!(got.example_shape, raw.example_shape);
            for (a, b) in got.inputs.iter().zip(&expected.inputs) {
                assert!((a - b).abs() < ROUNDING, "{a} vs {b}");
            }
            // Deterministic per seed, different across seeds.
            assert_eq!(aug.augment_all(&normalised, seed).unwrap(), got);
        }
        assert_ne!(
            aug.augment_all(&raw, 3).unwrap().inputs,
            aug.augment_all(&raw, 4).unwrap().inputs
        );
    }

    #[test]
    fn augment_all_refuses_flat_examples() {
        let flat = ClassificationData::new(vec![1.0; 8], vec![4], vec![0, 1], 2).unwrap();
        let err = Augmentation::cifar().augment_all(&flat, 0).unwrap_err();
        assert!(err.to_string().contains("[C, H, W]"), "{err}");
    }
}
