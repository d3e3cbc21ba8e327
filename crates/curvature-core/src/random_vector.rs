//! Seeded random probe vectors, generated on the host (reproducible on every backend) and
//! uploaded to the device.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// `v ~ N(0, I_P)` from a seed.
pub fn gaussian_vector<B: Backend>(dim: usize, seed: u64, device: &B::Device) -> Tensor<B, 1> {
    let mut rng = StdRng::seed_from_u64(seed);
    let v: Vec<f64> = (0..dim).map(|_| rng.sample(StandardNormal)).collect();
    Tensor::from_data(TensorData::new(v, [dim]), device)
}

/// Rademacher vector (entries ±1 with probability ½) from a seed.
pub fn rademacher_vector<B: Backend>(dim: usize, seed: u64, device: &B::Device) -> Tensor<B, 1> {
    let mut rng = StdRng::seed_from_u64(seed);
    let v: Vec<f64> = (0..dim)
        .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
        .collect();
    Tensor::from_data(TensorData::new(v, [dim]), device)
}

/// Derive the seed of the `i`-th probe from a base seed (SplitMix64 mixing, so that
/// consecutive probes are independent streams).
pub fn derive_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i.wrapping_add(1)));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
