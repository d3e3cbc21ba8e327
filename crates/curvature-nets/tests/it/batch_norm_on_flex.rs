//! Batch normalisation on Flex (f32; the statistics and scaling written with burn's operations,
//! which Flex runs with its own kernels) against the same layer on NdArray f64 — another
//! backend's kernels in another precision — in value, gradient and Hessian-vector product with
//! respect to the input, `γ` and `β`, for rank-4 and rank-2 inputs in training mode, one and
//! two autodiff levels.
//!
//! `f = Σ r ⊙ BN(x)²` with channels of different means and spreads; f32 against f64, so the
//! tolerance is f32 rounding (a kernel or formula that is wrong moves results by O(1)
//! relative).

#![cfg(feature = "flex")]

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use curvature_core::BatchNormMode;
use curvature_nets::layers::BatchNormConfig;

/// A fixed sequence in `[-1, 1]` (both backends read the same numbers).
fn values(len: usize, salt: usize) -> Vec<f64> {
    (0..len)
        .map(|i| (((i * 7919 + salt * 104_729) % 2001) as f64 - 1000.0) / 1000.0)
        .collect()
}

/// The input: channel `ch` has mean ≈ 2·ch − 1 and spread ≈ 1 + ch/2.
fn input(dims: &[usize]) -> Vec<f64> {
    let (n, c) = (dims[0], dims[1]);
    let len: usize = dims.iter().product();
    let inner_size = len / (n * c);
    values(len, 1)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = (i / inner_size) % c;
            (2.0 * ch as f64 - 1.0) + v * (1.0 + ch as f64 / 2.0)
        })
        .collect()
}

/// `v` as a tensor of shape `dims` on backend `B`, in its float type.
fn tensor<B: Backend, const D: usize>(v: Vec<f64>, dims: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(
        TensorData::new(v, dims).convert::<B::FloatElem>(),
        &Default::default(),
    )
}

fn flat<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

/// `(BN(x), ∇ₓf, ∇_γ f, ∇_β f, H·(u, v_γ, v_β) in x, γ, β)` on backend `K` by reverse over
/// reverse, for an input of shape `dims` (channels on axis 1).
fn derivatives<K: Backend, const D: usize>(dims: [usize; D]) -> [Vec<f64>; 7] {
    type Inner<K> = Autodiff<K>;
    type Outer<K> = Autodiff<Autodiff<K>>;
    let device = Default::default();
    let c = dims[1];
    let len: usize = dims.iter().product();
    let vector = |v: Vec<f64>| tensor::<Inner<K>, 1>(v, [c]);
    let x = tensor::<Inner<K>, D>(input(&dims), dims).require_grad();
    let gamma = vector(values(c, 2).iter().map(|v| 1.0 + v).collect()).require_grad();
    let beta = vector(values(c, 3)).require_grad();
    let (u, v_gamma, v_beta) = (
        tensor::<Inner<K>, D>(values(len, 4), dims),
        vector(values(c, 5)),
        vector(values(c, 6)),
    );
    let mut bn = BatchNormConfig::new(c).init::<Outer<K>>(&device).unwrap();
    bn.weight = Param::from_tensor(Tensor::from_inner(gamma.clone()));
    bn.bias = Param::from_tensor(Tensor::from_inner(beta.clone()));
    let outer_x = Tensor::<Outer<K>, D>::from_inner(x.clone()).require_grad();
    let y = bn.forward(outer_x.clone(), BatchNormMode::Train);
    let r = tensor::<Outer<K>, D>(values(len, 7), dims);
    let grads = (y.clone().powi_scalar(2) * r).sum().backward();
    let g_x = outer_x.grad(&grads).unwrap();
    let g_gamma = bn.weight.val().grad(&grads).unwrap();
    let g_beta = bn.bias.val().grad(&grads).unwrap();
    let directional = (g_x.clone() * u).sum()
        + (g_gamma.clone() * v_gamma).sum()
        + (g_beta.clone() * v_beta).sum();
    let second = directional.backward();
    [
        flat(y),
        flat(g_x),
        flat(g_gamma),
        flat(g_beta),
        flat(x.grad(&second).unwrap()),
        flat(gamma.grad(&second).unwrap()),
        flat(beta.grad(&second).unwrap()),
    ]
}

/// `(BN(x), ∇ₓf, ∇_γ f, ∇_β f, running mean, running variance)` on `Autodiff<K>` alone (a
/// training step's gradient; on Flex the layer's own operation, `batch_norm_on_flex.rs`).
fn gradient<K: Backend, const D: usize>(dims: [usize; D]) -> [Vec<f64>; 6] {
    let device = Default::default();
    let c = dims[1];
    let len: usize = dims.iter().product();
    let t = |v: Vec<f64>| tensor::<Autodiff<K>, D>(v, dims);
    let vector = |v: Vec<f64>| tensor::<Autodiff<K>, 1>(v, [c]);
    let mut bn = BatchNormConfig::new(c)
        .init::<Autodiff<K>>(&device)
        .unwrap();
    bn.weight = Param::from_tensor(vector(values(c, 2).iter().map(|v| 1.0 + v).collect()));
    bn.bias = Param::from_tensor(vector(values(c, 3)));
    let x = t(input(&dims)).require_grad();
    let y = bn.forward(x.clone(), BatchNormMode::Train);
    let grads = (y.clone().powi_scalar(2) * t(values(len, 7)))
        .sum()
        .backward();
    [
        flat(y),
        flat(x.grad(&grads).unwrap()),
        flat(bn.weight.val().grad(&grads).unwrap()),
        flat(bn.bias.val().grad(&grads).unwrap()),
        flat(bn.running_mean.value()),
        flat(bn.running_var.value()),
    ]
}

fn assert_close(ours: &[Vec<f64>; 7], reference: &[Vec<f64>; 7], what: &str) {
    let names = [
        "value",
        "∇ₓ",
        "∇_γ",
        "∇_β",
        "HVP in x",
        "HVP in γ",
        "HVP in β",
    ];
    for (name, (a, b)) in names.iter().zip(ours.iter().zip(reference)) {
        // The reference is the layer on NdArray f64.
        super::assert_close_to_scale(a, b, 2e-5, &format!("{what}: {name}"));
    }
}

#[test]
fn flex_batch_norm_has_the_value_gradient_and_hvp_of_burns_operations() {
    assert_close(
        &derivatives::<Flex, 4>([5, 3, 4, 6]),
        &derivatives::<NdArray<f64>, 4>([5, 3, 4, 6]),
        "[5, 3, 4, 6]",
    );
    assert_close(
        &derivatives::<Flex, 2>([9, 4]),
        &derivatives::<NdArray<f64>, 2>([9, 4]),
        "[9, 4]",
    );
    // One level, where Flex runs the layer as one operation: planes whose length is or is not a
    // multiple of the 8 lanes of its sums, and enough planes of 64 for several tasks on
    // rayon's pool.
    let names = [
        "value",
        "∇ₓ",
        "∇_γ",
        "∇_β",
        "running mean",
        "running variance",
    ];
    for dims in [[5, 3, 4, 6], [37, 9, 8, 8], [3, 2, 5, 7]] {
        let (ours, reference) = (gradient::<Flex, 4>(dims), gradient::<NdArray<f64>, 4>(dims));
        for (name, (a, b)) in names.iter().zip(ours.iter().zip(&reference)) {
            super::assert_close_to_scale(a, b, 2e-5, &format!("one level {dims:?}: {name}"));
        }
    }
}
