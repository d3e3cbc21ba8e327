//! A sharded objective on 1, 2 and 3 peers equals the single-process objective.
//!
//! The reference is independent of the sharding: the single-process [`Objective`] over all
//! `N` examples in its own batches (itself checked against dense f64 Hessians and Richardson
//! finite differences in curvature-core's tests). The sharded runs split the same examples
//! into unequal, differently batched shards, so a wrong weighting (per-shard means, `1/N_p`
//! instead of `1/N`), an L2 term added once per peer, or a missing all-reduce changes the
//! numbers far beyond summation-order rounding (≈1e-16 in f64).

use std::sync::Arc;

use burn::backend::NdArray;
use burn::tensor::Tensor;
use curvature_collective::{PeerGroupConfig, run_local};
use curvature_core::testing::{assert_rel_close, from_slice, to_vec};
use curvature_core::*;
use curvature_data::{ClassificationData, optdigits};
use curvature_nets::{Activation, Mlp, MlpConfig};

type B = NdArray<f64>;

/// Summation order only: f64 rounding of sums over ≤ 300 examples.
const TOL: f64 = 1e-12;
const N: usize = 300;
const L2: f64 = 1e-3;

fn data() -> ClassificationData {
    optdigits().unwrap().take(N)
}

/// The model of every run: one seeded initialisation, whose parameters are then loaded into
/// each run's objective (so the runs cannot differ by their weights).
fn model() -> Mlp<B> {
    MlpConfig::new(64, vec![12], 10)
        .with_activation(Activation::Tanh)
        .init::<B>(&Default::default())
        .unwrap()
}

/// The parameters every run uses.
fn params() -> Vec<f64> {
    let batches = data()
        .take(10)
        .batches::<B, 2>(10, &Default::default())
        .unwrap();
    to_vec(
        &Objective::new(model(), Loss::CrossEntropy, batches)
            .unwrap()
            .params(),
    )
}

/// An objective over `batches` at the parameters `w`.
fn objective_at(w: &[f64], batches: Vec<Batch<B, 2>>) -> Result<Objective<B, Mlp<B>, 2>> {
    let mut objective = Objective::new(model(), Loss::CrossEntropy, batches)?.with_l2(L2)?;
    objective.set_params(from_slice(w, objective.device()))?;
    Ok(objective)
}

/// What each run reports: loss, accuracy, gradient, Hv, Gv, and 12 Lanczos Ritz values.
#[derive(Debug, Clone, PartialEq)]
struct Products {
    loss: f64,
    accuracy: f64,
    gradient: Vec<f64>,
    hv: Vec<f64>,
    gv: Vec<f64>,
    ritz: Vec<f64>,
}

fn products(objective: &Objective<B, Mlp<B>, 2>) -> Result<Products> {
    let evaluation = objective.evaluate()?;
    let (loss, gradient) = objective.gradient()?;
    assert!((loss - evaluation.loss).abs() <= 1e-12 * loss.abs());
    let v = gaussian_vector::<B>(objective.dim(), 7, objective.device());
    let run = lanczos(&objective.hessian(), &LanczosConfig::new().with_steps(12))?;
    Ok(Products {
        loss,
        accuracy: evaluation.accuracy.unwrap(),
        gradient: to_vec(&gradient),
        hv: to_vec(&objective.hvp(&v)?),
        gv: to_vec(&objective.ggn_vp(&v)?),
        ritz: run.ritz_values,
    })
}

fn single_process(w: &[f64]) -> Products {
    let device = Default::default();
    let objective = objective_at(w, data().batches::<B, 2>(100, &device).unwrap()).unwrap();
    products(&objective).unwrap()
}

/// Shards of `sizes` consecutive examples, each in batches of 64 (the last one partial).
fn sharded(w: &[f64], sizes: &[usize]) -> Vec<Products> {
    assert_eq!(sizes.iter().sum::<usize>(), N);
    let starts: Vec<usize> = sizes
        .iter()
        .scan(0, |s, n| {
            *s += n;
            Some(*s - n)
        })
        .collect();
    let devices = vec![Default::default(); sizes.len()];
    run_local::<B, _, _, _>(&PeerGroupConfig::new(sizes.len()), &devices, |peer| {
        let rank = peer.rank();
        let indices: Vec<usize> = (starts[rank]..starts[rank] + sizes[rank]).collect();
        let shard = data()
            .select(&indices)
            .batches::<B, 2>(64, peer.device())
            .unwrap();
        let objective = objective_at(w, shard)?.with_peers(peer.clone())?;
        assert_eq!(objective.num_examples(), N);
        assert_eq!(objective.shard_sizes(), sizes);
        products(&objective)
    })
    .unwrap()
}

fn assert_matches(got: &Products, want: &Products, what: &str) {
    assert!(
        (got.loss - want.loss).abs() <= TOL * want.loss.abs(),
        "{what}: loss {} vs {}",
        got.loss,
        want.loss
    );
    assert_eq!(got.accuracy, want.accuracy, "{what}: accuracy");
    assert_rel_close(
        &got.gradient,
        &want.gradient,
        TOL,
        &format!("{what}: gradient"),
    );
    assert_rel_close(&got.hv, &want.hv, TOL, &format!("{what}: Hv"));
    assert_rel_close(&got.gv, &want.gv, TOL, &format!("{what}: Gv"));
    // Ritz values: relative to the largest |θ| (Lanczos amplifies rounding mildly).
    let scale = want.ritz.iter().fold(0.0f64, |m, t| m.max(t.abs()));
    for (a, b) in got.ritz.iter().zip(&want.ritz) {
        assert!(
            (a - b).abs() <= TOL * scale,
            "{what}: Ritz value {a} vs {b}"
        );
    }
}

#[test]
fn one_two_and_three_peers_with_unequal_shards_equal_one_process() {
    let w = params();
    let want = single_process(&w);
    for sizes in [vec![N], vec![110, 190], vec![50, 131, 119]] {
        let runs = sharded(&w, &sizes);
        let what = format!("{} peers, shards {sizes:?}", sizes.len());
        assert_matches(&runs[0], &want, &what);
        // Every peer holds the same numbers, bit for bit (the all-reduce's contract).
        for (rank, run) in runs.iter().enumerate().skip(1) {
            assert_eq!(run, &runs[0], "{what}: peer {rank} differs from peer 0");
        }
    }
    // Two runs of the same group are bit-identical (fixed summation order).
    assert_eq!(sharded(&w, &[110, 190])[0], sharded(&w, &[110, 190])[0]);
}

#[test]
fn peers_with_different_models_are_refused() {
    let devices = vec![Default::default(); 2];
    let err = run_local::<B, _, _, _>(&PeerGroupConfig::new(2), &devices, |peer| {
        let hidden = if peer.rank() == 0 { 12 } else { 13 };
        let device = *peer.device();
        let model = MlpConfig::new(64, vec![hidden], 10)
            .init::<B>(&device)
            .unwrap();
        let shard = data().take(20).batches::<B, 2>(20, &device).unwrap();
        Objective::new(model, Loss::CrossEntropy, shard)?
            .with_peers(peer as Arc<dyn PeerReduce<B>>)
            .map(|_| ())
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("parameters") && err.contains("every peer needs the same model"),
        "{err}"
    );
}

#[test]
fn the_vector_sum_adds_in_rank_order_and_every_peer_gets_it() {
    // Independent reference: the sum written out by hand.
    let devices = vec![Default::default(); 3];
    let sums = run_local::<B, _, _, _>(&PeerGroupConfig::new(3), &devices, |peer| {
        let q = peer.rank() as f64;
        let t = Tensor::<B, 1>::from_floats([1.0 + q, 10.0 * q, -q], peer.device());
        curvature_collective::Result::Ok(to_vec(&peer.all_reduce(t)?))
    })
    .unwrap();
    for s in sums {
        assert_eq!(s, vec![6.0, 30.0, -3.0]);
    }
}

/// The batches of shard `rank` of `sizes` (consecutive examples, batches of 64).
fn shard_batches(sizes: &[usize], rank: usize) -> Vec<Batch<B, 2>> {
    let start: usize = sizes[..rank].iter().sum();
    let indices: Vec<usize> = (start..start + sizes[rank]).collect();
    data()
        .select(&indices)
        .batches::<B, 2>(64, &Default::default())
        .unwrap()
}

#[test]
fn the_hessian_variance_of_shards_equals_one_process_over_the_same_batches() {
    // Reference: one process over the concatenation of the shards' batches (the variance
    // depends on the batches, so both sides must see the same ones), through the unsharded
    // Welford accumulation; the peers merge theirs with Chan's update instead.
    let w = params();
    for sizes in [vec![110, 190], vec![50, 131, 119]] {
        let all: Vec<Batch<B, 2>> = (0..sizes.len())
            .flat_map(|q| shard_batches(&sizes, q))
            .collect();
        let single = objective_at(&w, all).unwrap();
        // All examples, and a cut inside the second shard (150 < 110 + 190).
        for max_examples in [N, 150] {
            let config = HessianVarianceConfig::new()
                .with_vectors(3)
                .with_max_examples(max_examples);
            let want = hessian_variance(&single, &config).unwrap();
            let devices = vec![Default::default(); sizes.len()];
            let got =
                run_local::<B, _, _, _>(&PeerGroupConfig::new(sizes.len()), &devices, |peer| {
                    let objective = objective_at(&w, shard_batches(&sizes, peer.rank()))?
                        .with_peers(peer.clone())?;
                    hessian_variance(&objective, &config)
                })
                .unwrap();
            let what = format!("shards {sizes:?}, max_examples {max_examples}");
            for g in &got {
                assert_eq!(
                    (g.batches, g.examples),
                    (want.batches, want.examples),
                    "{what}"
                );
                assert_rel_close(
                    &g.per_vector,
                    &want.per_vector,
                    TOL,
                    &format!("{what}: σ²(v)"),
                );
                assert!(
                    (g.mean_squared_norm - want.mean_squared_norm).abs()
                        <= TOL * want.mean_squared_norm,
                    "{what}: mean ‖H_i v‖²"
                );
                assert_eq!(g.per_vector, got[0].per_vector, "{what}: peers differ");
            }
        }
    }
}
