//! One integration-test binary for the crate (one link of burn instead of one per file).

mod batch_norm_on_flex;
mod conv_on_flex;
mod dense_on_flex;
mod layers_hvp;
mod model_sizes;
mod pooling;
mod relu_on_flex;

// `tests/weights.rs` is a binary of its own: its f64 NdArray models would meet this binary's f32
// ones (`model_sizes`), and burn 0.21's NdArray keeps one float dtype per process
// (`TypeMismatch("expected F64, got F32")` when they share one).
mod drop_in;
mod tap;

/// Integers in `[-m, m]` from a fixed sequence (no random generator: both backends of a
/// Flex test read the same numbers).
#[cfg(feature = "flex")]
fn integers(len: usize, m: usize, salt: usize) -> Vec<f64> {
    (0..len)
        .map(|i| ((i * 7919 + salt * 104_729 + i / 3) % (2 * m + 1)) as f64 - m as f64)
        .collect()
}

/// A tensor's elements in row-major order, as f64.
#[cfg(feature = "flex")]
fn flat<B: burn::tensor::backend::Backend, const D: usize>(
    t: burn::tensor::Tensor<B, D>,
) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

/// Every element of `ours` within `tol · max(1, max|reference|)` of `reference` (equal lengths);
/// the message names `what`, the index and both values. The Flex tests compare f32 against an
/// f64 reference this way: a wrong index or formula moves an element by O(1) of the scale.
#[cfg(feature = "flex")]
fn assert_close_to_scale(ours: &[f64], reference: &[f64], tol: f64, what: &str) {
    assert_eq!(ours.len(), reference.len(), "{what}: lengths");
    let scale = reference.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (p, q)) in ours.iter().zip(reference).enumerate() {
        assert!(
            (p - q).abs() <= tol * scale,
            "{what}[{i}]: {p} (Flex) vs {q} (reference)"
        );
    }
}
