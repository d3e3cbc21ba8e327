//! The dense layer on Flex (`dense_on_flex.rs`: `x Wᵀ` and its two adjoints as `gemm` calls
//! into buffers of our own, recorded at every `Autodiff` level) against the same layer on
//! NdArray f64, whose products are burn's `matmul` on ndarray — an independent implementation
//! — in value, gradient (`Autodiff<Flex>`, a training step) and Hessian-vector product
//! (`Autodiff<Autodiff<Flex>>`).
//!
//! `f(x, W, b) = Σ r ⊙ (x Wᵀ + b)²` with small integer inputs, weights, bias, directions and
//! `r`: with `|x| ≤ 2`, `|W|, |b|, |u|, |v| ≤ 1`, `|r| ≤ 2`, `I ≤ 150`, `O ≤ 200`, `N ≤ 240`
//! every value, gradient and HVP element (and every partial sum of one) is an integer below
//! 2²⁴ (the largest, `H_WW`'s `Σ_n 2r(ẏ x + y u)`, stays under 1.5·10⁶), where f32 adds and
//! multiplies integers without rounding; so Flex can and must equal the f64 reference exactly
//! (1e-10 relative). A wrong stride, a swapped operand or a missed adjoint moves results by
//! O(1).

#![cfg(feature = "flex")]

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use curvature_nets::layers::Dense;

use super::{flat, integers};

/// `(examples N, inputs I, outputs O, x given as a transposed view)`.
type Case = (usize, usize, usize, bool);

const CASES: [Case; 4] = [
    (5, 7, 3, false),
    // `x` a transposed view: the product reads it through its strides.
    (6, 4, 9, true),
    // Large enough that every product is split between rayon's threads
    // (`m·n·k = 240·200·150 ≥ 192³`).
    (240, 150, 200, false),
    (240, 150, 200, true),
];

fn tensor<B: Backend, const D: usize>(values: Vec<f64>, dims: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(
        TensorData::new(values, dims).convert::<B::FloatElem>(),
        &Default::default(),
    )
}

/// `x` of the case, `[N, I]`, built as a transposed view of its `[I, N]` transpose if asked.
fn input<B: Backend>((n, i, _, transposed): Case) -> Tensor<B, 2> {
    let values = integers(n * i, 2, 1);
    if !transposed {
        return tensor(values, [n, i]);
    }
    let t: Vec<f64> = (0..i * n).map(|k| values[(k % n) * i + k / n]).collect();
    tensor::<B, 2>(t, [i, n]).transpose()
}

fn dense<B: Backend>(w: Tensor<B, 2>, b: Tensor<B, 1>) -> Dense<B> {
    Dense {
        weight: Param::from_tensor(w),
        bias: Some(Param::from_tensor(b)),
    }
}

/// `f = Σ r ⊙ y²` for the layer's output `y`.
fn objective<B: Backend>(y: Tensor<B, 2>) -> Tensor<B, 1> {
    let dims = y.dims();
    let r = tensor::<B, 2>(integers(dims[0] * dims[1], 2, 5), dims);
    (y.powi_scalar(2) * r).sum()
}

/// `[y, ∇ₓf, ∇_W f, ∇_b f]` on `Autodiff<K>` (one level: a training step's gradient).
fn gradient<K: Backend>(case: Case) -> [Vec<f64>; 4] {
    let (_, i, o, _) = case;
    let x = input::<Autodiff<K>>(case).require_grad();
    let layer = dense::<Autodiff<K>>(
        tensor(integers(o * i, 1, 2), [o, i]),
        tensor(integers(o, 1, 6), [o]),
    );
    let y = layer.forward(x.clone());
    let grads = objective(y.clone()).backward();
    [
        flat(y),
        flat(x.grad(&grads).unwrap()),
        flat(layer.weight.grad(&grads).unwrap()),
        flat(layer.bias.as_ref().unwrap().grad(&grads).unwrap()),
    ]
}

/// `[H (u, v, w)]` in `x`, `W` and `b`, by reverse over reverse on `Autodiff<Autodiff<K>>`.
fn hvp<K: Backend>(case: Case) -> [Vec<f64>; 3] {
    type Inner<K> = Autodiff<K>;
    type Outer<K> = Autodiff<Autodiff<K>>;
    let (n, i, o, _) = case;
    let x = input::<Inner<K>>(case).require_grad();
    let weight = tensor::<Inner<K>, 2>(integers(o * i, 1, 2), [o, i]).require_grad();
    let bias = tensor::<Inner<K>, 1>(integers(o, 1, 6), [o]).require_grad();
    let (u, v, w) = (
        tensor::<Inner<K>, 2>(integers(n * i, 1, 3), [n, i]),
        tensor::<Inner<K>, 2>(integers(o * i, 1, 4), [o, i]),
        tensor::<Inner<K>, 1>(integers(o, 1, 7), [o]),
    );
    let layer = dense::<Outer<K>>(
        Tensor::from_inner(weight.clone()),
        Tensor::from_inner(bias.clone()),
    );
    let outer_x = Tensor::<Outer<K>, 2>::from_inner(x.clone()).require_grad();
    let grads = objective(layer.forward(outer_x.clone())).backward();
    let grad_x = outer_x.grad(&grads).unwrap();
    let grad_w = layer.weight.grad(&grads).unwrap();
    let grad_b = layer.bias.as_ref().unwrap().grad(&grads).unwrap();
    let directional = (grad_x * u).sum() + (grad_w * v).sum() + (grad_b * w).sum();
    let second = directional.backward();
    [
        flat(x.grad(&second).unwrap()),
        flat(weight.grad(&second).unwrap()),
        flat(bias.grad(&second).unwrap()),
    ]
}

#[test]
fn flex_dense_layer_has_ndarrays_value_gradient_and_hvp() {
    for case in CASES {
        let ours = gradient::<Flex>(case).into_iter().chain(hvp::<Flex>(case));
        let reference = gradient::<NdArray<f64>>(case)
            .into_iter()
            .chain(hvp::<NdArray<f64>>(case));
        let names = [
            "value", "∇ₓ", "∇_W", "∇_b", "HVP in x", "HVP in W", "HVP in b",
        ];
        for (what, (a, b)) in names.iter().zip(ours.zip(reference)) {
            // Exact arithmetic on both sides (module docs).
            super::assert_close_to_scale(&a, &b, 1e-10, &format!("{case:?}: {what}"));
        }
    }
}
