//! The batches of a run: each epoch's shuffled (and augmented) training batches, and the fixed
//! sets it is evaluated and measured on.

use super::*;

/// Mixed into the seed of the per-epoch augmentation, so it is independent of the shuffling.
const AUGMENT_STREAM: u64 = 0x5EED_A116;

/// Training examples (the first ones) on which the spectra during training are measured.
const SPECTRUM_EXAMPLES: usize = 10_000;

/// The fixed batches of a run, loaded once.
pub(super) struct LoopData<BB: Backend, const D: usize> {
    /// Every validation example, in batches of up to 1000: the validation metrics.
    pub(super) val: Vec<Batch<BB, D>>,
    /// Every training example (unshuffled, unaugmented), in batches of up to 1000: the
    /// training metrics, and the pass that recomputes an averaged model's batch-norm
    /// statistics.
    pub(super) train_eval: Vec<Batch<BB, D>>,
    /// The spectra recorded during training (with `spectrum_every`): the first
    /// `SPECTRUM_EXAMPLES` training examples in batches of 128.
    pub(super) spectrum: Option<Vec<Batch<BB, D>>>,
    /// The RMT re-estimates (with `damping = auto`): the first `rmt_subsample` training
    /// examples in batches of 128 (damping paper §7: 10 000), shared with `spectrum` when they
    /// are the same examples.
    pub(super) rmt: Option<Vec<Batch<BB, D>>>,
}

impl<BB: Backend, const D: usize> LoopData<BB, D> {
    /// The batches `config` asks for (`rmt`: whether RMT auto-damping is on).
    pub(super) fn load(
        config: &TrainConfig,
        train: &ClassificationData,
        val: &ClassificationData,
        rmt: bool,
        device: &BB::Device,
    ) -> Result<Self> {
        let first_batches = |n: usize| train.take(n).batches::<BB, D>(128.min(train.len()), device);
        let spectrum = match config.spectrum_every {
            0 => None,
            _ => Some(first_batches(SPECTRUM_EXAMPLES)?),
        };
        let same_examples =
            config.rmt_subsample.min(train.len()) == SPECTRUM_EXAMPLES.min(train.len());
        let rmt = match (rmt, &spectrum) {
            (false, _) => None,
            (true, Some(shared)) if same_examples => Some(shared.clone()),
            (true, _) => Some(first_batches(config.rmt_subsample)?),
        };
        Ok(Self {
            val: val.batches::<BB, D>(val.len().min(1000), device)?,
            train_eval: train.batches::<BB, D>(train.len().min(1000), device)?,
            spectrum,
            rmt,
        })
    }
}

/// The training batches of epoch `epoch` (0-based): a fixed permutation per `(seed, epoch)`,
/// so a resumed run sees the same batches, and with augmentation a fresh draw per
/// `(seed, epoch)`. With a `group`, this peer's share of every global batch: its contiguous
/// rows ([`shard_range`]) of the batch one process would take.
pub(super) fn epoch_batches<BB: Backend, const D: usize>(
    config: &TrainConfig,
    train: &ClassificationData,
    epoch: usize,
    device: &BB::Device,
    group: Option<&PeerGroup<BB>>,
) -> Result<Vec<Batch<BB, D>>> {
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(curvature_core::derive_seed(config.seed, epoch as u64));
    order.shuffle(&mut rng);
    let augmentation = match train.example_shape[..] {
        [_, h, w] => config.augmentation(h.min(w)),
        _ => None,
    };
    let epoch_data = match &augmentation {
        Some(a) => std::borrow::Cow::Owned(a.augment_all(
            train,
            curvature_core::derive_seed(config.seed ^ AUGMENT_STREAM, epoch as u64),
        )?),
        None => std::borrow::Cow::Borrowed(train),
    };
    let batch_size = config.batch_size.min(train.len());
    match group {
        Some(g) if g.peers() > 1 => order
            .chunks(batch_size)
            .map(|global| {
                let share = &global[shard_range(global.len(), g.peers(), g.rank())?];
                let batch = epoch_data
                    .select(share)
                    .batches::<BB, D>(share.len(), device)?;
                Ok(batch.into_iter().next().expect("one batch"))
            })
            .collect(),
        _ => Ok(epoch_data
            .select(&order)
            .batches::<BB, D>(batch_size, device)?),
    }
}
