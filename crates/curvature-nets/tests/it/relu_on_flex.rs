//! ReLU on Flex (`relu_on_flex.rs`: one threaded pass forward, one backward in place) against
//! the definition computed on the host — `max(x, 0)` and `∂x = r · 1[x > 0]` for
//! `f = Σ r ⊙ relu(x)` — and against burn's own `relu` on Flex bit for bit, on `Flex` and
//! `Autodiff<Flex>`: over several tasks with a short last one, exact zeros (gradient 0, as
//! burn), and a transposed view as input.

#![cfg(feature = "flex")]

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use curvature_nets::layers::relu;

/// `[3, 5, 71, 97]`: 103 305 values, three tasks of 2¹⁵ and a short fourth.
const DIMS: [usize; 4] = [3, 5, 71, 97];

/// Values in `{-3, …, 3} / 2`, a seventh of them exactly zero.
fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + salt * 104_729 + i / 5) % 7) as f32 / 2.0 - 1.5)
        .collect()
}

fn tensor<B: Backend>(values: Vec<f32>, dims: [usize; 4]) -> Tensor<B, 4> {
    Tensor::from_data(TensorData::new(values, dims), &Default::default())
}

fn host<B: Backend>(t: Tensor<B, 4>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

/// `(relu(x), ∂/∂x Σ r ⊙ relu(x))` on `Autodiff<Flex>` with `activation`, for `x` given as is
/// or as the transposed view of its transpose.
fn value_and_gradient(
    activation: fn(Tensor<Autodiff<Flex>, 4>) -> Tensor<Autodiff<Flex>, 4>,
    transposed: bool,
) -> (Vec<f32>, Vec<f32>) {
    let n: usize = DIMS.iter().product();
    let x = if transposed {
        let [a, b, c, d] = DIMS;
        let t: Tensor<Autodiff<Flex>, 4> = tensor(values(n, 1), [a, b, d, c]);
        t.swap_dims(2, 3)
    } else {
        tensor(values(n, 1), DIMS)
    }
    .require_grad();
    let r = tensor::<Autodiff<Flex>>(values(n, 2), DIMS);
    let y = activation(x.clone());
    let grads = (y.clone() * r).sum().backward();
    (host(y), host(x.grad(&grads).unwrap()))
}

#[test]
fn flex_relu_is_the_definition_and_burns_relu_bit_for_bit() {
    let n: usize = DIMS.iter().product();
    let r = values(n, 2);
    for transposed in [false, true] {
        let x: Vec<f32> = {
            let v = values(n, 1);
            if transposed {
                // Element (i, j, k, l) of the view is element (i, j, l, k) of the buffer.
                let [_, _, c, d] = DIMS;
                (0..n)
                    .map(|e| {
                        let (ij, k, l) = (e / (c * d), (e / d) % c, e % d);
                        v[ij * c * d + l * c + k]
                    })
                    .collect()
            } else {
                v
            }
        };
        let (y, dx) = value_and_gradient(relu, transposed);
        // The definition, on the host.
        for i in 0..n {
            assert_eq!(y[i], x[i].max(0.0), "value [{i}], transposed {transposed}");
            let expected = if x[i] > 0.0 { r[i] } else { 0.0 };
            assert_eq!(dx[i], expected, "gradient [{i}], transposed {transposed}");
        }
        // burn's own operations, bit for bit.
        let (y_burn, dx_burn) = value_and_gradient(burn::tensor::activation::relu, transposed);
        assert_eq!(y, y_burn);
        assert_eq!(dx, dx_burn);
    }
    // Bare Flex (inference).
    let x = tensor::<Flex>(values(n, 1), DIMS);
    assert_eq!(
        host(relu(x.clone())),
        host(burn::tensor::activation::relu(x))
    );
}
