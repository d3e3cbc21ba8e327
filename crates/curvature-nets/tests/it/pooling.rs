//! The twice-differentiable max pooling against burn's fused `max_pool2d` kernel (an independent
//! implementation: a direct loop over windows with its own arg-max backward), value and
//! gradient, with and without ties.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Distribution, Tensor, TensorData};
use curvature_core::testing::to_vec;
use curvature_nets::layers::max_pool2d;

type B = Autodiff<NdArray<f64>>;

fn flat<const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

/// Value and input gradient of `Σ r ⊙ pool(x)` by ours and by burn's fused kernel.
fn value_and_gradient(x: &Tensor<B, 4>, k: usize, ours: bool) -> (Vec<f64>, Vec<f64>) {
    let x = x.clone().detach().require_grad();
    let y = if ours {
        max_pool2d(x.clone(), k)
    } else {
        burn::tensor::module::max_pool2d(x.clone(), [k, k], [k, k], [0, 0], [1, 1], false)
    };
    // Small integer weights (they repeat): every gradient entry is an exact sum.
    let weights = (0..y.dims().iter().product::<usize>())
        .map(|i| ((i * 7919) % 13) as f64 - 6.0)
        .collect::<Vec<_>>();
    let r = Tensor::<B, 4>::from_data(TensorData::new(weights, y.dims()), &x.device());
    let value = flat(y.clone());
    let grads = (y * r).sum().backward();
    (value, to_vec(&x.grad(&grads).unwrap().reshape([-1])))
}

#[test]
fn max_pooling_equals_burns_kernel_in_value_and_gradient() {
    let device = Default::default();
    for (k, shape) in [
        (2, [2, 3, 8, 6]),
        (3, [2, 2, 9, 6]),
        (4, [1, 2, 4, 8]),
        (1, [1, 2, 3, 3]),
    ] {
        let x = Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        // Integers 0..3: most windows hold ties, which both break towards the first element
        // in row-major order; plus a window of all zeros, as after a ReLU.
        let n: usize = shape.iter().product();
        let tied = Tensor::<B, 4>::from_data(
            TensorData::new(
                (0..n)
                    .map(|i| {
                        if i < k * shape[3] {
                            0.0
                        } else {
                            ((i * 31 + i / 5) % 3) as f64
                        }
                    })
                    .collect::<Vec<_>>(),
                shape,
            ),
            &device,
        );
        for (x, what) in [(x, "random"), (tied, "tied")] {
            let (ours, ours_grad) = value_and_gradient(&x, k, true);
            let (theirs, theirs_grad) = value_and_gradient(&x, k, false);
            assert_eq!(ours, theirs, "values, k = {k}, {what}");
            assert_eq!(ours_grad, theirs_grad, "gradients, k = {k}, {what}");
        }
    }
}
