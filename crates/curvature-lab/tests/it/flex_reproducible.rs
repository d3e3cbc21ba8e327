//! burn's Flex backend, built with its SIMD kernels, gives bit-identical results run after
//! run: the exact HVP and gradient of a batch-normalised CNN on a CIFAR-shaped batch, and a
//! 5 M-element dot product (the size of Lanczos' dots on VGG-16), each computed three times on
//! freshly allocated tensors and compared bit for bit. (With Flex's `rayon` feature the dot
//! product differed between thread counts; that feature is off.)

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use curvature_core::{Batch, Loss, Objective};
use curvature_nets::SimpleCnnConfig;

type B = Flex;

fn bits(t: Tensor<B, 1>) -> Vec<u32> {
    t.into_data()
        .iter::<f32>()
        .map(f32::to_bits)
        .collect::<Vec<_>>()
}

#[test]
fn flex_results_are_reproducible_bit_for_bit() {
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
    let run = || {
        // Fresh copies: other allocations, so alignment-dependent kernels would show.
        let objective =
            Objective::new(model.clone(), Loss::CrossEntropy, vec![batch.clone()]).unwrap();
        let (_, g) = objective.gradient().unwrap();
        let hv = objective.hvp(&(v.clone() * 1.0)).unwrap();
        let x = long.clone() * 1.0;
        let dot = (x.clone() * x.flip([0])).sum();
        (bits(g), bits(hv), bits(dot))
    };
    let reference = run();
    for _ in 0..2 {
        let again = run();
        assert!(again.0 == reference.0, "gradient");
        assert!(again.1 == reference.1, "HVP");
        assert!(again.2 == reference.2, "5 M-element dot");
    }
}
