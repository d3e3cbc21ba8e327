//! `curvature bench`: one-screen timings of every curvature operation and optimiser step, on
//! whichever burn backend the caller picks (NdArray, wgpu or CUDA), for CIFAR-shaped random
//! input `[N, 3, 32, 32]`.
//!
//! For each model it measures, as the median of `repeats` timed calls after `warmup` untimed
//! ones ([`MedianTimer`]; the criterion benches in `benches/` plug in their own [`Measure`]),
//! with the device synchronised after every call. An untimed set-up (KFAC's first step, which
//! builds the factors and their eigenbases) is [`Operation::prepare`], run only for the
//! operations a measure times:
//!
//! | operation | what is timed | ratio to |
//! |---|---|---|
//! | gradient | loss and `∇L` of one batch ([`Objective::gradient`]) | — |
//! | exact HVP | `∇²L·v`, reverse-over-reverse ([`Objective::hvp`]) | gradient |
//! | GGN product | `Jᵀ H_ℓ J v` ([`Objective::ggn_vp`]) | gradient |
//! | FD HVP | `(∇L(θ + εv) − ∇L(θ − εv)) / 2ε` ([`Objective::finite_difference_hessian`]) | gradient |
//! | Lanczos step | `m` steps of [`lanczos`](curvature_core::lanczos()) with full re-orthogonalisation, divided by `m` | gradient |
//! | SGD / Adam step | forward, backward, loss check and update on `Autodiff<B>` | SGD step |
//! | KFAC plain / factors / inversion | the three kinds of KFAC step; amortised over `T_cov = 10`, `T_inv = 100` as `plain + (factors − plain)/10 + (inversion − factors)/100` | SGD step |
//! | LanczosOPT | one update with `k` Lanczos steps | SGD step |
//!
//! Every optimiser row times [`TrainingStep::train_step`], the call `curvature train` makes.
//!
//! plus training throughput (images/s of the SGD step) and, from the measured HVP time, the
//! estimated time of a 100-step Lanczos run over the full CIFAR training set (50 000 images:
//! `100 × ⌈50 000 / N⌉` batch HVPs; re-orthogonalisation not included) with the memory its
//! Krylov basis takes on the device (`100 × P × 4` bytes in f32).
//!
//! The PyTorch script `benches/pytorch/bench.py` measures the same operations on the same
//! shapes and writes the same CSV columns, so the two tables can be compared row by row
//! (`bench.py --compare ours.csv`).

mod measure;
mod network;
mod table;

pub use measure::{Case, Measure, MedianTimer, Operation, Timing, median};
pub use table::{BenchRow, CSV_HEADER, table_header, table_row, three_digits, to_csv, to_table};

use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use curvature_core::testing::random_classification_batch;
use curvature_core::{CurvatureModel, Train, mark_trainable};
use curvature_nets::ConvLowering;

use crate::backend::{BackendChoice, BackendVisitor, on_backend};
use crate::config::TrainConfig;
use crate::error::{LabError, Result, require_positive};
use crate::peers::each_peer;
use crate::setup::{INPUT_RANK, ModelSpec, ModelVisitor, build_model};
use curvature_collective::{PeerGroupConfig, shard_range};
use curvature_core::PeerReduce;
use curvature_optim::{FactorSolver, PeerGroup};
use network::{Recorder, bench_network};

/// The models of the classic table, in order: the MLP 3072-512-512-10, the CNN 16-32,
/// VGG-16-BN and WideResNet-28-10 (what `benches/pytorch/bench.py` also builds).
pub const TABLE_MODELS: [&str; 4] = ["mlp", "cnn", "vgg16-bn", "wrn-28-10"];

/// The configuration `curvature bench` builds model `name` from: any name of
/// [`MODELS`](crate::config::MODELS) (logistic, mlp, cnn, vgg16, vgg16-bn, `preresnet-<depth>`,
/// `wrn-<depth>-<k>`), with the MLP's hidden widths 512-512 and the CNN's channels 16-32, seed 0.
pub fn bench_config(name: &str, conv: ConvLowering) -> TrainConfig {
    TrainConfig {
        model: name.to_string(),
        conv,
        hidden: vec![512, 512],
        channels: vec![16, 32],
        seed: 0,
        ..TrainConfig::default()
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Model names (see [`bench_config`]), in order.
    pub models: Vec<String>,
    /// Batch size `N`.
    pub batch: usize,
    /// Timed calls per operation (the median is reported).
    pub repeats: usize,
    /// Untimed calls before timing (kernel compilation, autotuning, allocator warm-up).
    pub warmup: usize,
    /// Lanczos steps `m` of the Lanczos row.
    pub lanczos_steps: usize,
    /// Lanczos steps `k` of the LanczosOPT row.
    pub lanczos_opt_rank: usize,
    /// Measure KFAC's inversion step (a host eigendecomposition of every factor; ≈ 50 s for
    /// VGG-16-BN's factors of up to 4609 × 4609 on a 2-core CPU).
    pub kfac_inversion: bool,
    /// Skip the curvature rows (gradient, HVP, GGN, finite differences, Lanczos): optimiser
    /// steps only.
    pub skip_curvature: bool,
    /// Skip the optimiser rows (curvature operations only).
    pub skip_optimisers: bool,
    /// Skip KFAC: its first step eigendecomposes every Kronecker factor on the host (≈ 50 s
    /// for VGG-16-BN on a 2-core CPU; WRN-28-10 has seven 5761 × 5761 factors).
    pub skip_kfac: bool,
    /// Input image shape `[C, H, W]` (CIFAR's `[3, 32, 32]` by default, the shape the
    /// papers' CIFAR models are built for); the dense models see it flattened.
    pub image: [usize; 3],
    /// How the convolutions are computed ([`ConvLowering`]).
    pub conv: ConvLowering,
    /// How KFAC inverts its damped factors (the π-split with [`FactorSolver::NewtonSchulz`]).
    pub kfac_solver: FactorSolver,
    /// Data parallelism: every operation timed on peer 0 of this group (threads, one per
    /// device), each peer holding its share of the batch of `batch` examples and every product
    /// and step completed by the all-reduce (`None`: one process). Timed by [`MedianTimer`] on
    /// every peer, whatever measure [`run_with`] is given.
    pub peers: Option<PeerGroupConfig>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            models: vec!["mlp".into(), "cnn".into()],
            batch: 128,
            repeats: 10,
            warmup: 2,
            lanczos_steps: 10,
            lanczos_opt_rank: 5,
            kfac_inversion: true,
            skip_curvature: false,
            skip_optimisers: false,
            skip_kfac: false,
            image: [3, 32, 32],
            conv: ConvLowering::Auto,
            kfac_solver: FactorSolver::HostEigen,
            peers: None,
        }
    }
}

impl BenchOptions {
    fn validate(&self) -> Result<()> {
        if self.skip_curvature && self.skip_optimisers {
            return Err(LabError::InvalidConfig {
                field: "skip_curvature",
                value: "true".into(),
                reason: "with skip_optimisers as well nothing is left to measure",
            });
        }
        require_positive(&[
            ("batch", self.batch),
            ("repeats", self.repeats),
            ("lanczos_steps", self.lanczos_steps),
            ("lanczos_opt_rank", self.lanczos_opt_rank),
            ("image channels", self.image[0]),
            ("image height", self.image[1]),
            ("image width", self.image[2]),
        ])?;
        if self.models.is_empty() {
            return Err(LabError::InvalidConfig {
                field: "models",
                value: "[]".into(),
                reason: "name at least one model",
            });
        }
        for name in &self.models {
            ModelSpec::parse(name)?;
        }
        if let Some(group) = &self.peers {
            group.validate()?;
            shard_range(self.batch, group.total_peers(), 0)?;
        }
        Ok(())
    }
}

/// What [`run`] reports while it works.
#[derive(Debug)]
pub enum BenchEvent<'a> {
    /// [`run_on`] built the backend: its type and device (`Debug`), before any measurement.
    Backend {
        /// The burn backend type.
        backend: &'a str,
        /// The device.
        device: &'a str,
    },
    /// A measurement is about to start (a one-line description).
    Starting(&'a str),
    /// A row was measured.
    Row(&'a BenchRow),
}

/// Run the benchmark on `device` with [`MedianTimer`], reporting each measurement to
/// `progress` as it starts and each row as soon as it is measured (so a run cut short still
/// leaves its rows).
///
/// # Errors
/// Invalid options, and any error of the operations measured.
pub fn run<B: Backend>(
    device: &B::Device,
    options: &BenchOptions,
    progress: &mut dyn FnMut(BenchEvent<'_>),
) -> Result<Vec<BenchRow>> {
    let mut timer = MedianTimer::for_options(options);
    run_with::<B>(device, options, &mut timer, progress)
}

/// [`run`] on the backend `choice` names: the one place the benchmark's generic code is
/// instantiated for every backend of this build (NdArray f32/f64, wgpu, CUDA), next to the
/// other commands', which share its models and optimisers. `measure` replaces the
/// [`MedianTimer`] (the criterion benches pass theirs).
///
/// # Errors
/// A backend this build lacks, and the errors of [`run_with`].
pub fn run_on(
    choice: &BackendChoice,
    options: &BenchOptions,
    measure: Option<&mut dyn Measure>,
    progress: &mut dyn FnMut(BenchEvent<'_>),
) -> Result<Vec<BenchRow>> {
    let mut timer = MedianTimer::for_options(options);
    let measure = match measure {
        Some(m) => m,
        None => &mut timer,
    };
    on_backend(
        choice,
        RunOn {
            options,
            measure,
            progress,
        },
    )?
}

/// [`run_on`]'s work on one backend.
struct RunOn<'a, 'p> {
    options: &'a BenchOptions,
    measure: &'a mut (dyn Measure + 'p),
    progress: &'a mut (dyn FnMut(BenchEvent<'_>) + 'p),
}

impl BackendVisitor for RunOn<'_, '_> {
    type Output = Result<Vec<BenchRow>>;
    fn visit<BB: Backend>(self, device: BB::Device) -> Result<Self::Output> {
        (self.progress)(BenchEvent::Backend {
            backend: std::any::type_name::<BB>(),
            device: &format!("{device:?}"),
        });
        Ok(run_with::<BB>(
            &device,
            self.options,
            self.measure,
            self.progress,
        ))
    }
}

/// [`run`] with another way of timing (`options.warmup` and `options.repeats` are then the
/// measure's business): the criterion benches in `benches/` call this.
///
/// # Errors
/// Invalid options, and any error of the operations measured.
pub fn run_with<B: Backend>(
    device: &B::Device,
    options: &BenchOptions,
    measure: &mut dyn Measure,
    progress: &mut dyn FnMut(BenchEvent<'_>),
) -> Result<Vec<BenchRow>> {
    options.validate()?;
    let mut rows = Vec::new();
    // `validate` parsed every model name. Every model takes the [C, H, W] images (the dense
    // ones flatten them).
    for name in &options.models {
        if options.peers.as_ref().is_some_and(|g| g.total_peers() > 1) {
            let visitor = PeerBenchVisitor {
                name,
                options,
                rows: &mut rows,
                progress: &mut *progress,
            };
            let config = bench_config(name, options.conv);
            build_model::<B, _>(&config, &options.image, 10, device, visitor)?;
            continue;
        }
        let visitor = BenchVisitor {
            options,
            rec: Recorder {
                model: name,
                params: 0,
                batch: options.batch,
                rows: &mut rows,
                progress: &mut *progress,
                measure: &mut *measure,
            },
        };
        build_model::<B, _>(
            &bench_config(name, options.conv),
            &options.image,
            10,
            device,
            visitor,
        )?;
    }
    Ok(rows)
}

/// Times one model, whichever network type its name builds.
struct BenchVisitor<'a> {
    options: &'a BenchOptions,
    rec: Recorder<'a>,
}

impl ModelVisitor for BenchVisitor<'_> {
    type Output = ();
    fn visit<BB: Backend, M: CurvatureModel<BB, INPUT_RANK>>(
        self,
        model: M,
        device: &BB::Device,
    ) -> Result<()> {
        let shape = batch_shape(self.options);
        let batch = random_classification_batch::<BB, INPUT_RANK>(shape, 10, 0, device);
        let model = Train::<BB, M>::from_inner(mark_trainable(model));
        bench_network(model, batch, device, self.options, self.rec, None)
    }
}

/// Every network takes `[N, C, H, W]`: the batch dimension, then the shape of one example
/// (`options.image`, which the model was built for).
fn batch_shape(options: &BenchOptions) -> [usize; INPUT_RANK] {
    let mut shape = [options.batch; INPUT_RANK];
    shape[1..].copy_from_slice(&options.image);
    shape
}

/// An event of a peer's [`Recorder`], sent to the calling thread (which reports it).
enum Sent {
    Starting(String),
    Row(BenchRow),
}

/// Times one model on the peers of `options.peers`: every peer times the same operations on
/// its share of the batch, and peer 0's rows and progress are reported (live, from this
/// thread, while the peers work).
struct PeerBenchVisitor<'a, 'p> {
    name: &'a str,
    options: &'a BenchOptions,
    rows: &'a mut Vec<BenchRow>,
    progress: &'a mut (dyn FnMut(BenchEvent<'_>) + 'p),
}

impl ModelVisitor for PeerBenchVisitor<'_, '_> {
    type Output = ();
    fn visit<BB: Backend, M: CurvatureModel<BB, INPUT_RANK>>(
        self,
        model: M,
        device: &BB::Device,
    ) -> Result<()> {
        let (options, name) = (self.options, self.name);
        let group = options.peers.as_ref().expect("a group");
        let shape = batch_shape(options);
        let (tx, rx) = std::sync::mpsc::channel::<Sent>();
        std::thread::scope(|scope| {
            let peers = scope.spawn(move || {
                let tx = tx;
                each_peer::<BB, _, _>(group, device, model, |peer, model| {
                    let (rank, dev) = (peer.rank(), peer.device().clone());
                    // The global batch (the same seed on every peer), then this peer's rows.
                    let batch = random_classification_batch::<BB, INPUT_RANK>(shape, 10, 0, &dev);
                    let share = batch.rows(shard_range(batch.len(), peer.peers(), rank)?)?;
                    let model = Train::<BB, M>::from_inner(mark_trainable(model.fork(&dev)));
                    let mut forward = |event: BenchEvent<'_>| {
                        // Peer 0 reports; the calling thread is gone only if it panicked.
                        let sent = match event {
                            BenchEvent::Starting(line) => Sent::Starting(line.to_string()),
                            BenchEvent::Row(row) => Sent::Row(row.clone()),
                            BenchEvent::Backend { .. } => return,
                        };
                        if rank == 0 {
                            let _ = tx.send(sent);
                        }
                    };
                    let (mut timer, mut rows) = (MedianTimer::for_options(options), Vec::new());
                    let rec = Recorder {
                        model: name,
                        params: 0,
                        batch: options.batch,
                        rows: &mut rows,
                        progress: &mut forward,
                        measure: &mut timer,
                    };
                    bench_network(
                        model,
                        share,
                        &dev,
                        options,
                        rec,
                        Some(peer as PeerGroup<BB>),
                    )?;
                    Ok(rows)
                })
            });
            for sent in rx {
                match sent {
                    Sent::Starting(line) => (self.progress)(BenchEvent::Starting(&line)),
                    Sent::Row(row) => {
                        self.rows.push(row);
                        (self.progress)(BenchEvent::Row(self.rows.last().expect("just pushed")));
                    }
                }
            }
            // Peer 0's rows arrived through the channel; this is the group's outcome.
            peers
                .join()
                .expect("the peers' thread catches their panics")
                .map(|_| ())
        })
    }
}
