//! burn's Flex backend (built with its SIMD kernels and rayon threads) gives bit-identical
//! results whatever the thread count, and run after run: the exact HVP and gradient of a
//! batch-normalised CNN on a CIFAR-shaped batch (large enough for Flex's parallel paths: its
//! GEMMs and convolutions split their outputs between threads), and a 5 M-element dot product
//! through `reduce::dot` (Flex's own parallel sum starts at 4 M elements and is *not*
//! reproducible across thread counts — a CI run caught it — so `dot` sums fixed pieces).
//! The reference is the 1-thread result: the same code on one thread cannot depend on how work
//! is split between threads; every run also gets freshly allocated inputs, so kernels whose
//! result depended on alignment would show too.

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use curvature_core::reduce::dot;
use curvature_core::{Batch, Loss, Objective};
use curvature_nets::SimpleCnnConfig;

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

#[test]
fn flex_results_do_not_depend_on_the_thread_count() {
    let device = Default::default();
    let model = SimpleCnnConfig::new(3, [32, 32], vec![16, 32], 10)
        .init::<B>(&device)
        .unwrap();
    let inputs = Tensor::<B, 4>::random([64, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let labels: Vec<usize> = (0..64).map(|i| i * 7 % 10).collect();
    let batch = Batch::classification(inputs, &labels, 10).unwrap();
    let dim = curvature_core::ParamLayout::of_model(&model).unwrap().dim();
    let v = Tensor::<B, 1>::random([dim], Distribution::Normal(0.0, 1.0), &device);
    let long = Tensor::<B, 1>::random([5_000_000], Distribution::Normal(0.0, 1.0), &device);
    // Built inside the pool: an objective holds a data source that is not `Sync`.
    let run = || {
        let objective =
            Objective::new(model.clone(), Loss::CrossEntropy, vec![batch.clone()]).unwrap();
        let (_, g) = objective.gradient().unwrap();
        let hv = objective.hvp(&(v.clone() * 1.0)).unwrap();
        let x = long.clone() * 1.0;
        let d = dot(&x, &x.clone().flip([0]));
        (bits(g), bits(hv), d.to_bits())
    };
    let reference = in_pool(1, run);
    for threads in [2, 2, 3] {
        let again = in_pool(threads, run);
        assert!(again.0 == reference.0, "gradient at {threads} threads");
        assert!(again.1 == reference.1, "HVP at {threads} threads");
        assert!(
            again.2 == reference.2,
            "5 M-element dot at {threads} threads"
        );
    }
}
