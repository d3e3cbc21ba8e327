//! Momentum SGD on Flex — one threaded pass per tensor (`sgd_on_flex.rs`) — against burn's
//! own tensor operations (the generic code path, run on `Autodiff<Flex>`, whose operations are
//! burn-flex's separate scaling, addition and subtraction kernels), bit for bit: plain and
//! Nesterov momentum, with L2 weight decay, at 1 and 3 threads; a parameter tensor that
//! another handle shares is not overwritten (copy on write), and the update equals PyTorch's
//! formula computed on the host. (NdArray f32 cannot serve as the reference here: it shares
//! its per-device default precision with the NdArray f64 of the other tests in this process.)

use burn::backend::{Autodiff, Flex};
use burn::optim::SimpleOptimizer;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use curvature_optim::{SgdConfig, SgdState};

/// `n` values of mixed signs and magnitudes (10⁻³ to 10²), so that roundings differ between
/// orders of operations.
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|i| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let unit = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            unit * 10f32.powi((i % 6) as i32 - 3)
        })
        .collect()
}

/// `(w, z)` after two steps of `config`'s SGD from `(w, g, z)` on backend `B`, as bits.
fn two_steps<B: Backend>(
    config: &SgdConfig,
    data: &[Vec<f32>; 3],
    dims: [usize; 2],
) -> Vec<Vec<u32>> {
    let dev = Default::default();
    let t = |v: &Vec<f32>| Tensor::<B, 2>::from_data(TensorData::new(v.clone(), dims), &dev);
    let sgd = config.build().unwrap();
    let (mut w, g, mut z) = (t(&data[0]), t(&data[1]), t(&data[2]));
    for lr in [0.1, 0.03] {
        let (w1, state) = sgd.step(lr, w, g.clone(), Some(SgdState { velocity: z }));
        w = w1;
        z = state.unwrap().velocity;
    }
    [w, z]
        .into_iter()
        .map(|t| {
            t.into_data()
                .to_vec::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect()
        })
        .collect()
}

#[test]
fn sgd_on_flex_equals_burns_operations_bit_for_bit() {
    // 3 × 33 335 elements: several tasks of 2¹⁵ elements and a remainder.
    let dims = [3, 33_335];
    let n = dims[0] * dims[1];
    let data = [values(n, 1), values(n, 2), values(n, 3)];
    for (nesterov, decay) in [(false, 0.0), (true, 0.0), (false, 1e-2)] {
        let config = SgdConfig::new()
            .with_momentum(0.9)
            .with_nesterov(nesterov)
            .with_weight_decay(decay);
        let reference = two_steps::<Autodiff<Flex>>(&config, &data, dims);
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let flex = pool.install(|| two_steps::<Flex>(&config, &data, dims));
            for (name, (a, b)) in ["weights", "velocity"]
                .iter()
                .zip(flex.iter().zip(&reference))
            {
                let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
                assert_eq!(
                    differ, 0,
                    "nesterov {nesterov}, decay {decay}, {threads} threads: {differ} of {n} {name} differ"
                );
            }
        }
    }
}

#[test]
fn a_shared_parameter_is_not_overwritten() {
    let dev = Default::default();
    let (w0, g0) = (values(1000, 4), values(1000, 5));
    let t = |v: &Vec<f32>| Tensor::<Flex, 1>::from_data(TensorData::new(v.clone(), [1000]), &dev);
    let (w, g, z) = (t(&w0), t(&g0), t(&g0));
    let shared = w.clone();
    let sgd = SgdConfig::new().with_momentum(0.5).build().unwrap();
    let (stepped, _) = sgd.step(0.1, w, g, Some(SgdState { velocity: z }));
    assert_eq!(
        shared.into_data().to_vec::<f32>().unwrap(),
        w0,
        "the other handle's values"
    );
    let moved = stepped.into_data().to_vec::<f32>().unwrap();
    // z = 0.5 g + g, w = w − 0.1 z: a host loop in f32 with the same roundings.
    for i in 0..1000 {
        let z = g0[i] * 0.5 + g0[i];
        assert_eq!(
            moved[i].to_bits(),
            (w0[i] - z * 0.1f32).to_bits(),
            "element {i}"
        );
    }
}
