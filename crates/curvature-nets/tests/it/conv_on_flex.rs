//! The convolution on Flex (`ConvLowering::GemmGrad`: one matrix product per example over its
//! patches for the output and the unit-stride input gradient, `conv_patches.rs`) against burn's
//! own `conv2d` on NdArray f64 — an independent implementation (direct loops over windows) —
//! in value, gradient and Hessian-vector product, over strides, padding, dilation and
//! rectangular kernels.
//!
//! `f(x, W) = Σ r ⊙ (W ⋆ x)²` with small integer inputs, kernels and weights `r`: values and
//! derivatives are integers of at most ~10⁶, below 2²⁴, where f32 adds and multiplies integers
//! without rounding; so the f32 lowering can and must equal the f64 reference exactly —
//! asserted to 1e-10 relative, #22's bar for a lowering (a wrong patch index moves results by
//! O(1) relative).

#![cfg(feature = "flex")]

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use curvature_nets::layers::{Conv2d, ConvLowering};

use super::{flat, integers};

/// `[cin, cout, kernel, stride, padding, dilation, input H×W]`.
type Geometry = (
    usize,
    usize,
    [usize; 2],
    [usize; 2],
    [usize; 2],
    [usize; 2],
    [usize; 2],
);

const GEOMETRIES: [Geometry; 8] = [
    // The bundled CNN's shapes, scaled down: 3×3, padding 1.
    (3, 4, [3, 3], [1, 1], [1, 1], [1, 1], [8, 8]),
    // Stride 2 with a dropped row (the transposed convolution's output padding).
    (3, 5, [3, 3], [2, 2], [1, 1], [1, 1], [7, 9]),
    // Rectangular kernel, dilation, asymmetric padding.
    (4, 3, [3, 2], [1, 1], [2, 0], [2, 1], [9, 8]),
    // Stride on one axis only, dilation on the other.
    (2, 3, [2, 3], [1, 2], [0, 1], [1, 2], [6, 7]),
    // 1×1 kernel, padding beyond the kernel's reach (input gradient by the transposed
    // convolution).
    (2, 3, [1, 1], [1, 1], [1, 1], [1, 1], [5, 6]),
    // Kernel as large as the padded input: one output position.
    (2, 2, [5, 5], [1, 1], [1, 1], [1, 1], [3, 3]),
    // Padding wider than the input row on one side.
    (1, 2, [3, 3], [1, 1], [3, 3], [1, 1], [2, 4]),
    // Large stride, 5×5.
    (2, 2, [5, 5], [3, 3], [2, 2], [1, 1], [11, 10]),
];

/// `(W ⋆ x, ∇ₓf, ∇_W f, Hₓₓu + HₓW V, H_Wx u + H_WW V)` on backend `K` with lowering
/// `lowering`, by reverse over reverse (`Autodiff<Autodiff<K>>`).
fn derivatives<K: Backend>(
    geometry: Geometry,
    examples: usize,
    lowering: ConvLowering,
) -> [Vec<f64>; 5] {
    type Inner<K> = Autodiff<K>;
    type Outer<K> = Autodiff<Autodiff<K>>;
    let (cin, cout, kernel, stride, padding, dilation, [h, w]) = geometry;
    let device = Default::default();
    let tensor = |values: Vec<f64>, dims: [usize; 4]| {
        Tensor::<Inner<K>, 4>::from_data(
            TensorData::new(values, dims).convert::<K::FloatElem>(),
            &device,
        )
    };
    let x_dims = [examples, cin, h, w];
    let w_dims = [cout, cin, kernel[0], kernel[1]];
    let n_x: usize = x_dims.iter().product();
    let n_w: usize = w_dims.iter().product();
    let x = tensor(integers(n_x, 3, 1), x_dims).require_grad();
    let weight = tensor(integers(n_w, 2, 2), w_dims).require_grad();
    let u = tensor(integers(n_x, 2, 3), x_dims);
    let v = tensor(integers(n_w, 2, 4), w_dims);
    let conv = Conv2d::<Outer<K>> {
        weight: Param::from_tensor(Tensor::from_inner(weight.clone())),
        bias: None,
        stride,
        padding,
        dilation,
        groups: 1,
        lowering,
    };
    let outer_x = Tensor::<Outer<K>, 4>::from_inner(x.clone()).require_grad();
    let y = conv.forward(outer_x.clone());
    let y_dims = y.dims();
    let r = Tensor::<Outer<K>, 4>::from_data(
        TensorData::new(integers(y_dims.iter().product(), 6, 5), y_dims).convert::<K::FloatElem>(),
        &device,
    );
    let grads = (y.clone().powi_scalar(2) * r).sum().backward();
    let grad_x = outer_x.grad(&grads).unwrap();
    let grad_w = conv.weight.val().grad(&grads).unwrap();
    let directional = (grad_x.clone() * u).sum() + (grad_w.clone() * v).sum();
    let second = directional.backward();
    [
        flat(y),
        flat(grad_x),
        flat(grad_w),
        flat(x.grad(&second).unwrap()),
        flat(weight.grad(&second).unwrap()),
    ]
}

#[test]
fn flex_convolution_has_burns_value_gradient_and_hvp() {
    // Two examples each, and 19 (three of the weight gradient's tasks of 8, the last one
    // short) for the first geometry.
    let cases = GEOMETRIES
        .iter()
        .map(|&g| (g, 2))
        .chain([(GEOMETRIES[0], 19)]);
    for (geometry, examples) in cases {
        let ours = derivatives::<Flex>(geometry, examples, ConvLowering::GemmGrad);
        let reference = derivatives::<NdArray<f64>>(geometry, examples, ConvLowering::Burn);
        for (what, (a, b)) in ["value", "∇ₓ", "∇_W", "HVP in x", "HVP in W"]
            .iter()
            .zip(ours.iter().zip(&reference))
        {
            // The reference is burn's `conv2d` on NdArray f64; exact arithmetic on both sides.
            let what = format!("{geometry:?}, N = {examples}: {what}");
            super::assert_close_to_scale(a, b, 1e-10, &what);
        }
    }
}
