//! `curvature_core::layout::contiguous` on Flex: a transposed matrix (the gradient of a weight
//! used as `x Wᵀ`) comes back in the standard layout with every element where the index
//! arithmetic `out[r][c] = stored[c][r]` puts it — checked element by element against that
//! formula on sizes that are and are not multiples of the 32×32 blocks — and other views
//! (a slice, a 3-D permutation) go through the general copy with the same values. And
//! curvature-nets' `Dense` hands back its weight's gradient contiguous, with the value of the
//! closed form `∂/∂W Σ (x Wᵀ + b) = 1ᵀ x` per row, so no copy is needed at all.

use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};
use curvature_core::layout::contiguous;

type B = Flex;

fn is_contiguous<const D: usize>(t: &Tensor<B, D>) -> bool {
    let primitive: FlexTensor = t.clone().into_primitive().tensor();
    primitive.layout().is_contiguous() && primitive.layout().start_offset() == 0
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

#[test]
fn transposed_matrices_come_back_row_major_with_every_element_in_place() {
    let device = Default::default();
    for [rows, cols] in [[2, 3], [32, 32], [37, 70], [300, 129], [1, 7], [7, 1]] {
        // Stored as the `[cols, rows]` matrix `s[c][r] = 1000 c + r`, viewed transposed.
        let stored: Vec<f32> = (0..cols)
            .flat_map(|c| (0..rows).map(move |r| (1000 * c + r) as f32))
            .collect();
        let t =
            Tensor::<B, 2>::from_data(TensorData::new(stored, [cols, rows]), &device).transpose();
        assert_eq!(t.dims(), [rows, cols]);
        let want: Vec<f32> = (0..rows)
            .flat_map(|r| (0..cols).map(move |c| (1000 * c + r) as f32))
            .collect();
        let got = contiguous(t);
        assert!(is_contiguous(&got), "{rows}×{cols}: still a view");
        assert_eq!(got.dims(), [rows, cols]);
        assert_eq!(values(got), want, "{rows}×{cols}");
    }
}

#[test]
fn other_views_are_copied_with_their_values_and_contiguous_tensors_kept() {
    let device = Default::default();
    let data: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32).collect();
    let x = Tensor::<B, 3>::from_data(TensorData::new(data, [2, 3, 4]), &device);
    // A permutation: out[k][i][j] = x[i][j][k], checked against the index formula.
    let p = x.clone().permute([2, 0, 1]);
    let want: Vec<f32> = (0..4)
        .flat_map(|k| (0..2).flat_map(move |i| (0..3).map(move |j| (i * 12 + j * 4 + k) as f32)))
        .collect();
    let got = contiguous(p);
    assert!(is_contiguous(&got));
    assert_eq!(values(got), want);
    // A slice of a transposed matrix: not the whole buffer, so not the block path.
    let m = Tensor::<B, 2>::from_data(
        TensorData::new((0..20).map(|i| i as f32).collect::<Vec<_>>(), [4, 5]),
        &device,
    );
    let s = m.transpose().narrow(0, 1, 3); // rows 1..4 of the 5×4 transpose
    let want: Vec<f32> = (1..4)
        .flat_map(|r| (0..4).map(move |c| (c * 5 + r) as f32))
        .collect();
    assert_eq!(values(contiguous(s)), want);
    // A contiguous tensor is returned as it is.
    assert_eq!(values(contiguous(x.clone())), values(x));
}

#[test]
fn a_dense_layers_weight_gradient_is_contiguous_and_equals_the_closed_form() {
    type AB = Autodiff<B>;
    let device = Default::default();
    let dense = curvature_nets::DenseConfig::new(5, 3)
        .init::<AB>(&device)
        .unwrap();
    let x: Vec<f32> = (0..4 * 5).map(|i| (i as f32 * 0.37).sin()).collect();
    let x = Tensor::<AB, 2>::from_data(TensorData::new(x.clone(), [4, 5]), &device);
    let grads = dense.forward(x.clone()).sum().backward();
    let g = dense
        .weight
        .grad(&grads)
        .expect("the weight has a gradient");
    assert!(is_contiguous(&g), "the weight gradient is a strided view");
    // Independent reference: the sum of all outputs is Σ_n Σ_o (x_n · W_o + b_o), whose
    // derivative with respect to W_oi is Σ_n x_ni for every output o.
    let x = values(x.inner());
    let column_sums: Vec<f32> = (0..5).map(|i| (0..4).map(|n| x[n * 5 + i]).sum()).collect();
    let got = values(g);
    for o in 0..3 {
        for i in 0..5 {
            assert!(
                (got[o * 5 + i] - column_sums[i]).abs() < 1e-5,
                "W[{o}][{i}]"
            );
        }
    }
}
