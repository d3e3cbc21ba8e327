//! The KFAC taps of the bundled layers (`curvature_core::tap`, implemented by `Dense` and
//! `Conv2d`): probes carry the pre-activation gradients (checked against the hand-derived
//! chain rule) and leave the outputs unchanged.
use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use curvature_core::tap::{Tap, tap};
use curvature_nets::{Conv2dConfig, DenseConfig};

type B = NdArray<f64>;
type AB = Autodiff<B>;

#[test]
fn probes_carry_pre_activation_gradients_and_leave_outputs_unchanged() {
    let dev = Default::default();
    let l1 = DenseConfig::new(3, 4).init::<AB>(&dev).unwrap();
    let l2 = DenseConfig::new(4, 2).init::<AB>(&dev).unwrap();
    let x = Tensor::<AB, 2>::random([5, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let plain = l2.forward(l1.forward(x.clone()).tanh());
    let (y, taps) = tap::<AB, _>(|| l2.forward(l1.forward(x.clone()).tanh()));
    assert_eq!(taps.len(), 2);
    let diff = (y.clone() - plain).abs().max().into_scalar();
    assert_eq!(diff, 0.0);
    // L = Σ y²/2: ∂L/∂s₂ = y, and ∂L/∂s₁ = (y W₂) ⊙ (1 − tanh²(s₁)).
    let grads = (y.clone() * y.clone()).sum().mul_scalar(0.5).backward();
    let Tap::Dense { probe: p2, .. } = &taps[1] else {
        panic!()
    };
    let Tap::Dense {
        probe: p1, input, ..
    } = &taps[0]
    else {
        panic!()
    };
    let g2 = p2.grad(&grads).unwrap();
    let y_inner = y.inner();
    assert!((g2.clone() - y_inner).abs().max().into_scalar() < 1e-14);
    let s1 = l1.valid().forward(input.clone().inner());
    let expected = g2.matmul(l2.valid().weight.val()) * (s1.tanh().powi_scalar(2).neg() + 1.0);
    let g1 = p1.grad(&grads).unwrap();
    assert!((g1 - expected).abs().max().into_scalar() < 1e-14);
    // Forwards on another backend are not tapped; the tape is gone afterwards.
    let (_, none) = tap::<B, _>(|| l1.valid().forward(x.clone().inner()));
    assert_eq!(
        none.len(),
        1,
        "the plain-backend tap sees the plain forward"
    );
    let (_, other) = tap::<B, _>(|| l1.forward(x.clone()));
    assert!(
        other.is_empty(),
        "an autodiff forward is not on the tapped backend"
    );
}

#[test]
fn conv_taps_record_geometry() {
    let dev = Default::default();
    let conv = Conv2dConfig::new([2, 3], [3, 3])
        .with_padding([1, 1])
        .with_stride([2, 2])
        .init::<AB>(&dev)
        .unwrap();
    let x = Tensor::<AB, 4>::ones([1, 2, 5, 5], &dev);
    let (y, taps) = tap::<AB, _>(|| conv.forward(x.clone()));
    let Tap::Conv2d {
        probe, geometry, ..
    } = &taps[0]
    else {
        panic!()
    };
    assert_eq!(probe.dims(), y.dims());
    assert_eq!((geometry.kernel, geometry.stride), ([3, 3], [2, 2]));
}
