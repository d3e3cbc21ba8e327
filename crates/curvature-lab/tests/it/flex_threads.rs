//! burn's Flex backend (built with its SIMD kernels and rayon threads) gives bit-identical
//! results whatever the thread count, and run after run: the exact HVP and gradient of a
//! batch-normalised CNN on a CIFAR-shaped batch (large enough for Flex's parallel paths: its
//! GEMMs and convolutions split their outputs between threads) and of an MLP whose dense
//! products `gemm` splits between threads (`dense_on_flex.rs`), and a 5 M-element dot product
//! through `reduce::dot` (Flex's own parallel sum starts at 4 M elements and is *not*
//! reproducible across thread counts — a CI run caught it — so `dot` sums fixed pieces).
//! The reference is the 1-thread result: the same code on one thread cannot depend on how work
//! is split between threads; every run also gets freshly allocated inputs, so kernels whose
//! result depended on alignment would show too.

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use curvature_core::reduce::dot;
use curvature_core::{Batch, CurvatureModel, Loss, Objective};
use curvature_nets::{MlpConfig, SimpleCnnConfig};

type B = Flex;

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn bits(t: Tensor<B, 1>) -> Vec<u32> {
    t.into_data()
        .iter::<f32>()
        .map(f32::to_bits)
        .collect::<Vec<_>>()
}

/// `(gradient, HVP)` bits of `model` on `batch` in a pool of `threads`, for direction `v`.
fn derivatives<M, const D: usize>(
    threads: usize,
    model: &M,
    batch: &Batch<B, D>,
    v: &Tensor<B, 1>,
) -> (Vec<u32>, Vec<u32>)
where
    M: CurvatureModel<B, D> + Send + Sync,
{
    // Built inside the pool: an objective holds a data source that is not `Sync`.
    in_pool(threads, || {
        let objective =
            Objective::new(model.clone(), Loss::CrossEntropy, vec![batch.clone()]).unwrap();
        let (_, g) = objective.gradient().unwrap();
        let hv = objective.hvp(&(v.clone() * 1.0)).unwrap();
        (bits(g), bits(hv))
    })
}

/// A batch of `n` examples of `shape` with labels `7i mod 10`, and a direction for `model`.
fn batch_and_direction<M: CurvatureModel<B, D>, const D: usize>(
    model: &M,
    shape: [usize; D],
) -> (Batch<B, D>, Tensor<B, 1>) {
    let device = Default::default();
    let inputs = Tensor::<B, D>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let labels: Vec<usize> = (0..shape[0]).map(|i| i * 7 % 10).collect();
    let batch = Batch::classification(inputs, &labels, 10).unwrap();
    let dim = curvature_core::ParamLayout::of_model(model).unwrap().dim();
    let v = Tensor::<B, 1>::random([dim], Distribution::Normal(0.0, 1.0), &device);
    (batch, v)
}

#[test]
fn flex_results_do_not_depend_on_the_thread_count() {
    let device = Default::default();
    let cnn = SimpleCnnConfig::new(3, [32, 32], vec![16, 32], 10)
        .init::<B>(&device)
        .unwrap();
    let (cnn_batch, cnn_v) = batch_and_direction(&cnn, [64, 3, 32, 32]);
    // Dense products large enough that `gemm` splits them between threads
    // (64·512·3072 multiply-adds ≥ 192³, `dense_on_flex.rs`).
    let mlp = MlpConfig::new(3072, vec![512], 10)
        .init::<B>(&device)
        .unwrap();
    let (mlp_batch, mlp_v) = batch_and_direction(&mlp, [64, 3072]);
    let long = Tensor::<B, 1>::random([5_000_000], Distribution::Normal(0.0, 1.0), &device);
    let long_dot = |threads| {
        in_pool(threads, || {
            let x = long.clone() * 1.0;
            dot(&x, &x.clone().flip([0])).to_bits()
        })
    };
    let reference = (
        derivatives(1, &cnn, &cnn_batch, &cnn_v),
        derivatives(1, &mlp, &mlp_batch, &mlp_v),
        long_dot(1),
    );
    for threads in [2, 2, 3] {
        let (cnn_again, mlp_again) = (
            derivatives(threads, &cnn, &cnn_batch, &cnn_v),
            derivatives(threads, &mlp, &mlp_batch, &mlp_v),
        );
        for (what, again, reference) in [
            ("CNN", cnn_again, &reference.0),
            ("MLP", mlp_again, &reference.1),
        ] {
            assert!(
                again.0 == reference.0,
                "{what} gradient at {threads} threads"
            );
            assert!(again.1 == reference.1, "{what} HVP at {threads} threads");
        }
        assert!(
            long_dot(threads) == reference.2,
            "5 M-element dot at {threads} threads"
        );
    }
}
