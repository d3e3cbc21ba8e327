//! burn `Dataset` / `Batcher` implementations, so the datasets feed burn's `DataLoader`.

use std::sync::Mutex;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use burn::tensor::{Device, Tensor, TensorData};
use curvature_core::Batch;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::augment::Augmentation;
use crate::classification::ClassificationData;

/// One example: its values (row-major over the example shape) and class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationItem {
    /// Input values.
    pub input: Vec<f32>,
    /// Class index.
    pub label: usize,
}

impl Dataset<ClassificationItem> for ClassificationData {
    fn get(&self, index: usize) -> Option<ClassificationItem> {
        (index < ClassificationData::len(self)).then(|| {
            let per = self.example_len();
            ClassificationItem {
                input: self.inputs[index * per..(index + 1) * per].to_vec(),
                label: self.labels[index],
            }
        })
    }
    fn len(&self) -> usize {
        ClassificationData::len(self)
    }
}

/// Batches [`ClassificationItem`]s into rank-`D` [`Batch`]es (`[N, example_shape…]`),
/// optionally augmenting images (`[C, H, W]` examples) with a seeded generator.
pub struct ClassificationBatcher<const D: usize> {
    example_shape: Vec<usize>,
    num_classes: usize,
    augmentation: Option<(Augmentation, Mutex<StdRng>)>,
}

impl<const D: usize> ClassificationBatcher<D> {
    /// A batcher for examples shaped like `data`'s.
    ///
    /// # Panics
    /// If `D != 1 + data.example_shape.len()` (a programmer error).
    pub fn new(data: &ClassificationData) -> Self {
        assert_eq!(
            D,
            1 + data.example_shape.len(),
            "batch rank D must be 1 + the example rank"
        );
        Self {
            example_shape: data.example_shape.clone(),
            num_classes: data.num_classes,
            augmentation: None,
        }
    }

    /// Augment every image with `augmentation`, reproducibly from `seed`.
    pub fn with_augmentation(mut self, augmentation: Augmentation, seed: u64) -> Self {
        self.augmentation = Some((augmentation, Mutex::new(StdRng::seed_from_u64(seed))));
        self
    }
}

impl<B: Backend, const D: usize> Batcher<B, ClassificationItem, Batch<B, D>>
    for ClassificationBatcher<D>
{
    /// # Panics
    /// On an empty item list or items that do not match the dataset's shape (burn's
    /// `DataLoader` never produces either for a dataset built by this crate).
    fn batch(&self, items: Vec<ClassificationItem>, device: &Device<B>) -> Batch<B, D> {
        let per: usize = self.example_shape.iter().product();
        let mut inputs = Vec::with_capacity(items.len() * per);
        match &self.augmentation {
            Some((aug, rng)) if self.example_shape.len() == 3 => {
                let shape = [
                    self.example_shape[0],
                    self.example_shape[1],
                    self.example_shape[2],
                ];
                let mut rng = rng.lock().expect("augmentation RNG poisoned");
                items
                    .iter()
                    .for_each(|it| aug.apply(&it.input, shape, &mut *rng, &mut inputs));
            }
            _ => items
                .iter()
                .for_each(|it| inputs.extend_from_slice(&it.input)),
        }
        let mut shape = vec![items.len()];
        shape.extend(&self.example_shape);
        let labels: Vec<usize> = items.iter().map(|it| it.label).collect();
        Batch::classification(
            Tensor::from_data(TensorData::new(inputs, shape), device),
            &labels,
            self.num_classes,
        )
        .expect("items of a validated dataset form a valid batch")
    }
}
