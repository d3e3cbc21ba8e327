//! `curvature verify`: the same curvature computations on a backend and on a reference backend
//! (NdArray on the CPU), from the same weights (seeded, or loaded from a file) and the same
//! batch, compared number by number.
//!
//! A GPU backend computes in a different order (tiled reductions, other convolution
//! algorithms) and through other kernels, so before trusting a spectrum or a training run on a
//! new device, check that it computes the same quantities as the CPU:
//!
//! - the loss and its gradient `g`;
//! - exact Hessian-vector products `Hv` and Gauss–Newton products `Gv` for two seeded
//!   Gaussian vectors (generated on the host, identical on both backends);
//! - the three largest Ritz values of `lanczos_steps` Lanczos steps on `H`;
//! - for each optimiser, the update `θ_k − θ_0` of `steps` steps (the update rather than the
//!   parameters, so that a wrong step cannot hide in the bulk of unchanged weights).
//!
//! Each is compared by its relative error `‖a − b‖ / ‖b‖` against a tolerance of the precision:
//! f32 sums in another order agree to ~1e-6 per product (measured ≤ 1.4e-6 on lavapipe,
//! 2026-11-23), so the f32 tolerance is 1e-5; Ritz values amplify the per-product rounding by
//! the conditioning of the Krylov basis, hence 1e-3.

use std::fmt;
use std::path::PathBuf;

use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use curvature_core::reduce::{relative_error, to_host};
use curvature_core::{
    CurvatureModel, LanczosConfig, Loss, Objective, Train, gaussian_vector, mark_trainable,
};
use serde::Serialize;

use crate::backend::BackendChoice;
use crate::config::TrainConfig;
use crate::error::{LabError, Result, invalid, require_positive};
use crate::names::{OptimizerKind, Precision, SplitKind};
use crate::optimizer::RunOptimizer;
use crate::setup::{INPUT_RANK, ModelVisitor, load_weights, split, with_model};

/// What to compare.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// Model, data, seed and the optimisers' hyperparameters (`lr`, `momentum`, `damping`, …).
    pub config: TrainConfig,
    /// Weights (safetensors, PyTorch names, or a checkpoint directory); `None` = the seeded
    /// initialisation.
    pub weights: Option<PathBuf>,
    /// The backend under test.
    pub backend: BackendChoice,
    /// The reference (NdArray, same precision, by default).
    pub reference: BackendChoice,
    /// Training examples in the batch (the first ones of the training split).
    pub examples: usize,
    /// Lanczos steps for the Ritz values.
    pub lanczos_steps: usize,
    /// Optimiser steps per optimiser.
    pub steps: usize,
    /// The optimisers whose updates are compared.
    pub optimizers: Vec<OptimizerKind>,
}

impl VerifyRequest {
    /// Compare `backend` with NdArray at the same precision: 16 examples, 10 Lanczos steps, two
    /// steps each of SGD, Adam and KFAC with `config`'s hyperparameters.
    pub fn new(config: TrainConfig, backend: BackendChoice) -> Self {
        let reference = BackendChoice {
            precision: backend.precision,
            ..BackendChoice::default()
        };
        Self {
            config,
            weights: None,
            backend,
            reference,
            examples: 16,
            lanczos_steps: 10,
            steps: 2,
            optimizers: vec![OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::Kfac],
        }
    }
}

/// One compared quantity.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// What was compared (`gradient`, `Hv (seed 1)`, `kfac: update of 2 steps`, …).
    pub quantity: String,
    /// `‖backend − reference‖ / ‖reference‖` (absolute when the reference is zero).
    pub relative_error: f64,
    /// The largest relative error accepted.
    pub tolerance: f64,
}

impl Comparison {
    /// Whether the backend agrees (a NaN error does not).
    pub fn passed(&self) -> bool {
        self.relative_error <= self.tolerance
    }
}

/// Every comparison of one [`verify`] run.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The backend under test.
    pub backend: String,
    /// The reference backend.
    pub reference: String,
    /// Parameters of the model.
    pub num_params: usize,
    /// The comparisons, in the order of the module docs.
    pub comparisons: Vec<Comparison>,
}

impl VerifyReport {
    /// Whether every comparison passed.
    pub fn passed(&self) -> bool {
        self.comparisons.iter().all(Comparison::passed)
    }

    /// The comparisons that failed.
    pub fn failures(&self) -> Vec<&Comparison> {
        self.comparisons.iter().filter(|c| !c.passed()).collect()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} against {} ({} parameters)",
            self.backend, self.reference, self.num_params
        )?;
        writeln!(
            f,
            "{:<36} {:>14} {:>10}",
            "quantity", "relative error", "tolerance"
        )?;
        for c in &self.comparisons {
            writeln!(
                f,
                "{:<36} {:>14.2e} {:>10.0e}  {}",
                c.quantity,
                c.relative_error,
                c.tolerance,
                if c.passed() { "ok" } else { "FAILED" }
            )?;
        }
        let failed = self.failures().len();
        if failed == 0 {
            write!(f, "all {} agree", self.comparisons.len())
        } else {
            write!(f, "{failed} of {} disagree", self.comparisons.len())
        }
    }
}

/// Tolerances of one precision: (products and updates, Ritz values).
fn tolerances(precision: Precision) -> (f64, f64) {
    match precision {
        Precision::F32 => (1e-5, 1e-3),
        // f64 sums in another order: ~1e-15 per product.
        Precision::F64 => (1e-10, 1e-8),
    }
}

/// Compute every quantity of the module docs on `request.backend` and on `request.reference`
/// and compare them.
///
/// # Errors
/// Invalid sizes or configuration, a backend this build lacks, and the computations' own
/// errors (e.g. a non-finite loss).
pub fn verify(request: &VerifyRequest) -> Result<VerifyReport> {
    request.config.validate()?;
    require_positive(&[
        ("examples", request.examples),
        ("lanczos_steps", request.lanczos_steps),
        ("steps", request.steps),
    ])?;
    let data = split(&request.config, SplitKind::Train)?;
    let n = request.examples.min(data.len());
    let first: Vec<usize> = (0..n).collect();
    let data = data.select(&first);
    let (example, k) = (data.example_shape.clone(), data.num_classes);
    let measure = |backend: &BackendChoice| {
        with_model(
            &request.config,
            backend,
            &example,
            k,
            Measure {
                request,
                data: &data,
            },
        )
    };
    let tested = measure(&request.backend)?;
    let reference = measure(&request.reference)?;
    let both_f64 = [request.backend.precision, request.reference.precision] == [Precision::F64; 2];
    let (tol, ritz_tol) = tolerances(if both_f64 {
        Precision::F64
    } else {
        Precision::F32
    });
    let mut comparisons = Vec::new();
    let mut compare = |quantity: String, a: &[f64], b: &[f64], tolerance: f64| {
        comparisons.push(Comparison {
            quantity,
            relative_error: relative_error(a, b),
            tolerance,
        });
    };
    compare(
        "initial weights".into(),
        &tested.weights,
        &reference.weights,
        tol,
    );
    compare("loss".into(), &[tested.loss], &[reference.loss], tol);
    compare(
        "gradient".into(),
        &tested.gradient,
        &reference.gradient,
        tol,
    );
    for (i, seed) in VECTOR_SEEDS.iter().enumerate() {
        compare(
            format!("Hv (seed {seed})"),
            &tested.hv[i],
            &reference.hv[i],
            tol,
        );
        compare(
            format!("Gv (seed {seed})"),
            &tested.gv[i],
            &reference.gv[i],
            tol,
        );
    }
    compare(
        format!("top Ritz values ({} steps)", request.lanczos_steps),
        &tested.ritz,
        &reference.ritz,
        ritz_tol,
    );
    for ((kind, a), (_, b)) in tested.updates.iter().zip(&reference.updates) {
        compare(
            format!("{kind}: update of {} steps", request.steps),
            a,
            b,
            tol,
        );
    }
    Ok(VerifyReport {
        backend: request.backend.to_string(),
        reference: request.reference.to_string(),
        num_params: tested.weights.len(),
        comparisons,
    })
}

/// The seeds of the probe vectors of `Hv` and `Gv`.
const VECTOR_SEEDS: [u64; 2] = [1, 2];

/// Everything measured on one backend, on the host.
struct Measured {
    weights: Vec<f64>,
    loss: f64,
    gradient: Vec<f64>,
    hv: Vec<Vec<f64>>,
    gv: Vec<Vec<f64>>,
    ritz: Vec<f64>,
    updates: Vec<(OptimizerKind, Vec<f64>)>,
}

/// [`verify`]'s work on one backend.
struct Measure<'a> {
    request: &'a VerifyRequest,
    data: &'a curvature_data::ClassificationData,
}

impl ModelVisitor for Measure<'_> {
    type Output = Measured;
    fn visit<BB: Backend, M: CurvatureModel<BB, INPUT_RANK>>(
        self,
        model: M,
        device: &BB::Device,
    ) -> Result<Measured> {
        let request = self.request;
        let model = match &request.weights {
            Some(path) => load_weights(model, path)?,
            None => model,
        };
        let batch = self
            .data
            .batches::<BB, INPUT_RANK>(self.data.len(), device)?
            .into_iter()
            .next()
            .ok_or_else(|| invalid("examples", 0, "the training split is empty"))?;
        let objective = Objective::new(model.clone(), Loss::CrossEntropy, vec![batch.clone()])?;
        let weights = to_host(&objective.params());
        let (loss, gradient) = objective.gradient()?;
        let (mut hv, mut gv) = (Vec::new(), Vec::new());
        for seed in VECTOR_SEEDS {
            let v = gaussian_vector::<BB>(objective.dim(), seed, device);
            hv.push(to_host(&objective.hvp(&v)?));
            gv.push(to_host(&objective.ggn_vp(&v)?));
        }
        let decomposition = curvature_core::lanczos(
            &objective.hessian(),
            &LanczosConfig::new().with_steps(request.lanczos_steps),
        )?;
        let ritz = decomposition.top_k(3).iter().map(|e| e.value).collect();
        let mut updates = Vec::new();
        for &kind in &request.optimizers {
            let mut config = request.config.clone();
            config.optimizer = kind;
            let mut opt = RunOptimizer::<BB, Train<BB, M>>::new(&config, batch.len())?;
            let mut trained = Train::<BB, M>::from_inner(mark_trainable(model.clone()));
            for _ in 0..request.steps {
                trained = opt
                    .step(trained, config.lr, &batch, None)
                    .map_err(|(_, e)| LabError::from(e))?
                    .0;
            }
            let after = Objective::new(trained.valid(), Loss::CrossEntropy, vec![batch.clone()])?;
            let update = to_host(&after.params())
                .iter()
                .zip(&weights)
                .map(|(a, b)| a - b)
                .collect();
            updates.push((kind, update));
        }
        Ok(Measured {
            weights,
            loss,
            gradient: to_host(&gradient),
            hv,
            gv,
            ritz,
            updates,
        })
    }
}
