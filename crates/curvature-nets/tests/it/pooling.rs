//! The twice-differentiable max pooling against burn's fused `max_pool2d` kernel (an independent
//! implementation: a direct loop over windows with its own arg-max backward), value and
//! gradient, with and without ties — on NdArray f64 (the pooling built from burn's operations)
//! and on Flex (its one-pass custom operations, `pool_maps.rs`) — and, on Flex, the
//! Hessian-vector product through the custom operations against its closed form.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor, TensorData};
use curvature_nets::layers::max_pool2d;

type B = Autodiff<NdArray<f64>>;

fn flat<BB: burn::tensor::backend::Backend, const D: usize>(t: Tensor<BB, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

/// Small integer weights `r` for `Σ r ⊙ pool(x)` (they repeat): every gradient entry is an
/// exact sum in any precision.
fn weights(len: usize) -> Vec<f64> {
    (0..len).map(|i| ((i * 7919) % 13) as f64 - 6.0).collect()
}

/// Value and input gradient of `Σ r ⊙ pool(x)` by ours and by burn's fused kernel.
fn value_and_gradient<BB: AutodiffBackend>(
    x: &Tensor<BB, 4>,
    k: usize,
    ours: bool,
) -> (Vec<f64>, Vec<f64>) {
    let x = x.clone().detach().require_grad();
    let y = if ours {
        max_pool2d(x.clone(), k)
    } else {
        burn::tensor::module::max_pool2d(x.clone(), [k, k], [k, k], [0, 0], [1, 1], false)
    };
    let r = Tensor::<BB, 4>::from_data(
        TensorData::new(weights(y.dims().iter().product()), y.dims()).convert::<BB::FloatElem>(),
        &x.device(),
    );
    let value = flat(y.clone());
    let grads = (y * r).sum().backward();
    (value, flat(x.grad(&grads).unwrap().reshape([-1])))
}

/// Ours against burn's kernel on backend `BB`, random and tied inputs, several window sizes.
fn equals_burns_kernel<BB: AutodiffBackend>() {
    let device = Default::default();
    for (k, shape) in [
        (2, [2, 3, 8, 6]),
        (3, [2, 2, 9, 6]),
        (4, [1, 2, 4, 8]),
        (1, [1, 2, 3, 3]),
    ] {
        let x = Tensor::<BB, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        // Integers 0..3: most windows hold ties, which both break towards the first element
        // in row-major order; plus a window of all zeros, as after a ReLU.
        let n: usize = shape.iter().product();
        let tied = Tensor::<BB, 4>::from_data(
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
            )
            .convert::<BB::FloatElem>(),
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

#[test]
fn max_pooling_equals_burns_kernel_in_value_and_gradient() {
    equals_burns_kernel::<B>();
}

#[cfg(feature = "flex")]
#[test]
fn max_pooling_on_flex_equals_burns_kernel_in_value_and_gradient() {
    equals_burns_kernel::<Autodiff<burn::backend::Flex>>();
}

/// Reverse over reverse through the Flex operations: for `f(x) = Σ_j r_j pool(x)_j²` the
/// gradient is `2 r_j x_{a(j)}` at `a(j)` and the Hessian-vector product `2 r_j v_{a(j)}` at
/// `a(j)` (zero elsewhere), with `a(j)` the position of window `j`'s maximum — found here by a
/// plain loop over the input's values, independently of the layer.
#[cfg(feature = "flex")]
#[test]
fn max_pooling_on_flex_has_the_closed_form_hessian_vector_product() {
    use burn::backend::Flex;
    type Inner = Autodiff<Flex>;
    type Outer = Autodiff<Inner>;
    let device = Default::default();
    let (k, [n, c, h, w]) = (2, [2, 3, 6, 8]);
    let x = Tensor::<Inner, 4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device)
        .require_grad();
    let v = Tensor::<Inner, 4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device);
    let r_values = weights(n * c * (h / k) * (w / k));
    let r = Tensor::<Outer, 4>::from_data(
        TensorData::new(r_values.clone(), [n, c, h / k, w / k]).convert::<f32>(),
        &device,
    );
    let outer = Tensor::<Outer, 4>::from_inner(x.clone()).require_grad();
    let f = (max_pool2d(outer.clone(), k).powi_scalar(2) * r).sum();
    let gradient = outer.grad(&f.backward()).unwrap();
    let hv = x
        .grad(&(gradient.clone() * v.clone()).sum().backward())
        .unwrap();

    let (xs, vs) = (flat(x.inner()), flat(v.inner()));
    let (mut g_ref, mut hv_ref) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
    let mut j = 0;
    for plane in 0..n * c {
        for i in 0..h / k {
            for jj in 0..w / k {
                let cells =
                    (0..k * k).map(|t| plane * h * w + (i * k + t / k) * w + jj * k + t % k);
                let at = cells.fold(None, |best: Option<usize>, cell| match best {
                    Some(b) if xs[b] >= xs[cell] => Some(b),
                    _ => Some(cell),
                });
                let at = at.unwrap();
                g_ref[at] = 2.0 * r_values[j] * xs[at];
                hv_ref[at] = 2.0 * r_values[j] * vs[at];
                j += 1;
            }
        }
    }
    for (what, got, want) in [
        ("gradient", flat(gradient.inner()), g_ref),
        ("hvp", flat(hv), hv_ref),
    ] {
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{what}[{i}]: {a} vs {b}"
            );
        }
    }
}

/// NaNs on Flex: a window holding a NaN outputs NaN and sends its gradient to its first NaN in
/// row-major order (PyTorch's rule); other windows to their first maximum. The reference is a
/// plain loop over each window's cells.
#[cfg(feature = "flex")]
#[test]
fn max_pooling_on_flex_lets_the_first_nan_win() {
    use burn::backend::Flex;
    type BB = Autodiff<Flex>;
    let device = Default::default();
    for (k, [n, c, h, w]) in [(2, [1, 2, 6, 8]), (3, [1, 1, 6, 9])] {
        let len = n * c * h * w;
        // Small integers (ties) with NaNs at every fifth and seventh cell: windows with none,
        // one and two NaNs in every position.
        let xs: Vec<f64> = (0..len)
            .map(|i| {
                if i % 5 == 3 || i % 7 == 1 {
                    f64::NAN
                } else {
                    ((i * 13) % 4) as f64
                }
            })
            .collect();
        let x = Tensor::<BB, 4>::from_data(
            TensorData::new(xs.clone(), [n, c, h, w]).convert::<f32>(),
            &device,
        );
        let (value, grad) = value_and_gradient(&x, k, true);
        let r = weights(value.len());
        let (mut v_ref, mut g_ref) = (Vec::new(), vec![0.0; len]);
        for plane in 0..n * c {
            for i in 0..h / k {
                for j in 0..w / k {
                    let cells: Vec<usize> = (0..k * k)
                        .map(|t| plane * h * w + (i * k + t / k) * w + j * k + t % k)
                        .collect();
                    let at = cells
                        .iter()
                        .copied()
                        .find(|&q| xs[q].is_nan())
                        .unwrap_or_else(|| {
                            cells
                                .iter()
                                .copied()
                                .fold(cells[0], |b, q| if xs[q] > xs[b] { q } else { b })
                        });
                    g_ref[at] = r[v_ref.len()];
                    v_ref.push(xs[at]);
                }
            }
        }
        assert_eq!(value.len(), v_ref.len());
        for (q, (a, b)) in value.iter().zip(&v_ref).enumerate() {
            assert!(
                a == b || (a.is_nan() && b.is_nan()),
                "k = {k}: value[{q}]: {a} vs {b}"
            );
        }
        assert_eq!(grad, g_ref, "k = {k}: gradient");
    }
}
