//! Data-parallel training on 1, 2 and 3 peers equals single-process training on the same global
//! batches.
//!
//! The reference is independent of the data parallelism: the optimiser stepped in one process on
//! each whole global batch (whose gradient is burn's backpropagation of the batch mean, and whose
//! optimisers are checked against PyTorch's formulas and golden values in curvature-optim's
//! tests). The data-parallel runs give each peer an unequal share of every global batch (61 or
//! 57 examples split 30/31, 20/20/21, …), so a per-share mean instead of the size-weighted one,
//! a missing all-reduce, or KFAC factors left per peer would move the weights far beyond f64
//! summation-order rounding.

use std::sync::Arc;

use burn::backend::ndarray::NdArrayDevice;
use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use curvature_collective::{PeerGroupConfig, run_local, shard_range};
use curvature_core::testing::{assert_rel_close, from_slice, to_vec};
use curvature_core::*;
use curvature_data::optdigits;
use curvature_nets::{Activation, Mlp, MlpConfig};
use curvature_optim::{
    AdamConfig, AveragingSchedule, FisherEstimate, FixedDamping, KfacConfig, LanczosOptConfig,
    OptimizerConfig, SgdConfig, TrainingStep, WeightDecayMode,
};

type B = NdArray<f64>;
type TrainMlp = Mlp<Autodiff<B>>;

/// Summation order only (f64), carried through a few steps of the optimiser.
const TOL: f64 = 1e-12;
/// Global batches of 61 examples (the last of 57): 4 steps over 240 examples.
const EXAMPLES: usize = 240;
const BATCH: usize = 61;

fn global_batches(device: &NdArrayDevice) -> Vec<Batch<B, 2>> {
    optdigits()
        .unwrap()
        .take(EXAMPLES)
        .batches::<B, 2>(BATCH, device)
        .unwrap()
}

/// The model of every run at the parameters `w` (one seeded draw, loaded into each run).
fn model_at(w: &[f64], device: &NdArrayDevice) -> TrainMlp {
    let mlp = MlpConfig::new(64, vec![12], 10)
        .with_activation(Activation::Tanh)
        .init::<B>(device)
        .unwrap();
    let batch = global_batches(device).swap_remove(0);
    let mut objective = Objective::new(mlp, Loss::CrossEntropy, vec![batch]).unwrap();
    objective.set_params(from_slice(w, device)).unwrap();
    TrainMlp::from_inner(mark_trainable(objective.model()))
}

fn initial_params() -> Vec<f64> {
    let device = Default::default();
    let mlp = MlpConfig::new(64, vec![12], 10)
        .with_activation(Activation::Tanh)
        .init::<B>(&device)
        .unwrap();
    let batch = global_batches(&device).swap_remove(0);
    to_vec(
        &Objective::new(mlp, Loss::CrossEntropy, vec![batch])
            .unwrap()
            .params(),
    )
}

/// The final parameters and every step's loss.
#[derive(Debug, Clone, PartialEq)]
struct Trained {
    params: Vec<f64>,
    losses: Vec<f64>,
}

fn flat(model: &TrainMlp) -> Vec<f64> {
    let inner = model.valid();
    to_vec(
        &ParamLayout::of_model(&inner)
            .unwrap()
            .flatten(&inner)
            .unwrap(),
    )
}

/// `config` stepped over the global batches, `peers = None` in one process, else as peer
/// `rank` of the group on its share of every batch.
fn train(
    config: &OptimizerConfig,
    w: &[f64],
    group: Option<Arc<curvature_collective::Peer<B>>>,
) -> std::result::Result<Trained, String> {
    let device = match &group {
        Some(peer) => *peer.device(),
        None => Default::default(),
    };
    let mut opt = config.init::<B, TrainMlp>().map_err(|e| e.to_string())?;
    let share = |batch: &Batch<B, 2>| match &group {
        None => Ok(batch.clone()),
        Some(peer) => {
            let rows = shard_range(batch.len(), peer.peers(), peer.rank()).unwrap();
            batch.rows(rows)
        }
    };
    if let Some(peer) = &group {
        opt = opt.with_peers(peer.clone()).map_err(|e| e.to_string())?;
    }
    let damping = FixedDamping::new(0.05).unwrap();
    let mut model = model_at(w, &device);
    let mut losses = Vec::new();
    for (lr, batch) in [0.1, 0.05].iter().cycle().zip(global_batches(&device)) {
        let local = share(&batch).map_err(|e| e.to_string())?;
        let (stepped, report) = opt
            .train_step(model, &local, Loss::CrossEntropy, *lr, &damping)
            .map_err(|(_, e)| e.to_string())?;
        model = stepped;
        losses.push(report.loss);
    }
    Ok(Trained {
        params: flat(&model),
        losses,
    })
}

fn on_peers(config: &OptimizerConfig, w: &[f64], peers: usize) -> Vec<Trained> {
    let devices = vec![Default::default(); peers];
    let group = PeerGroupConfig::new(peers).with_timeout_secs(120.0);
    run_local::<B, _, _, _>(&group, &devices, |peer| train(config, w, Some(peer))).unwrap()
}

fn assert_same_training(config: &OptimizerConfig, what: &str, tol: f64) {
    let w = initial_params();
    let want = train(config, &w, None).unwrap();
    // The run moved the weights: the comparison is not of untouched initial values.
    let moved = want
        .params
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(moved > 1e-3, "{what}: the weights barely moved ({moved})");
    for peers in [1, 2, 3] {
        let runs = on_peers(config, &w, peers);
        let label = format!("{what} on {peers} peers");
        assert_rel_close(&runs[0].params, &want.params, tol, &label);
        assert_rel_close(
            &runs[0].losses,
            &want.losses,
            tol,
            &format!("{label}: losses"),
        );
        for (rank, run) in runs.iter().enumerate().skip(1) {
            assert_eq!(run, &runs[0], "{label}: peer {rank} differs from peer 0");
        }
    }
}

#[test]
fn sgd_with_momentum_and_weight_decay_equals_one_process() {
    let config = OptimizerConfig::Sgd(SgdConfig::new().with_momentum(0.9).with_weight_decay(1e-3));
    assert_same_training(&config, "SGD", TOL);
}

#[test]
fn adam_and_adamw_equal_one_process() {
    let adam = OptimizerConfig::Adam(AdamConfig::new().with_weight_decay(1e-3));
    assert_same_training(&adam, "Adam", TOL);
    let adamw = OptimizerConfig::Adam(
        AdamConfig::new()
            .with_weight_decay(1e-2)
            .with_weight_decay_mode(WeightDecayMode::Decoupled),
    );
    // Averaged (Gadam): every peer averages the same iterates.
    let gadam = OptimizerConfig::Averaged {
        inner: Box::new(adamw),
        schedule: AveragingSchedule {
            start: 2,
            frequency: 1,
        },
    };
    assert_same_training(&gadam, "AdamW averaged", TOL);
}

#[test]
fn kfac_with_the_empirical_and_exact_fisher_equals_one_process() {
    // The factors are all-reduced at every refresh (cov_interval 1) and decomposed on every
    // peer; with the empirical or exact Fisher they are the global batch's, so the whole step is.
    for fisher in [FisherEstimate::Empirical, FisherEstimate::Exact] {
        let config = OptimizerConfig::Kfac(
            KfacConfig::new()
                .with_momentum(0.5)
                .with_weight_decay(1e-3)
                .with_fisher(fisher),
        );
        assert_same_training(&config, &format!("KFAC ({fisher:?} Fisher)"), TOL);
    }
}

#[test]
fn lanczos_opt_on_the_sharded_operator_equals_one_process() {
    let config = OptimizerConfig::LanczosOpt(LanczosOptConfig::new().with_rank(5));
    assert_same_training(&config, "LanczosOPT", TOL);
}

#[test]
fn kfac_with_sampled_labels_stays_identical_on_every_peer() {
    // Sampled labels are drawn per peer (a different Monte-Carlo draw than one process's), so
    // only the agreement between peers and a finite, decreasing loss are asserted here.
    let config = OptimizerConfig::Kfac(KfacConfig::new().with_fisher(FisherEstimate::Sampled));
    let w = initial_params();
    let runs = on_peers(&config, &w, 2);
    assert_eq!(runs[0], runs[1]);
    let single = train(&config, &w, None).unwrap();
    let last = *runs[0].losses.last().unwrap();
    assert!(
        last.is_finite() && last < runs[0].losses[0],
        "{:?}",
        runs[0].losses
    );
    let (got, want) = (runs[0].losses[0], single.losses[0]);
    assert!(
        (got - want).abs() <= TOL * want,
        "the first loss is the global batch's: {got} vs {want}"
    );
}
