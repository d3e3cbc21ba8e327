//! Parameter counts of the papers' models at full size equal the papers' numbers (SPEC §4).
//! f32 in this process (NdArray has one float dtype per process).

use burn::backend::NdArray;
use burn::tensor::Tensor;
use curvature_core::{BatchNormMode, ParamLayout};
use curvature_nets::*;

type B = NdArray<f32>;

fn trainable<
    M: burn::module::Module<B> + burn::module::HasAutodiffModule<burn::backend::Autodiff<B>>,
>(
    m: &M,
) -> usize {
    ParamLayout::of_model(m).unwrap().dim()
}

#[test]
fn vgg16_counts() {
    let device = Default::default();
    assert_eq!(
        trainable(&VggConfig::vgg16(100, false).init::<B>(&device).unwrap()),
        15_291_300
    );
    // VGG-16-BN: + 2 per BN channel (64·2 + 128·2 + 256·3 + 512·6 = 4 224 channels).
    assert_eq!(
        trainable(&VggConfig::vgg16(100, true).init::<B>(&device).unwrap()),
        15_291_300 + 2 * 4_224
    );
    assert_eq!(
        trainable(&VggConfig::vgg16(10, false).init::<B>(&device).unwrap()),
        15_291_300 - 90 * 513
    );
}

#[test]
fn preresnet_counts() {
    let device = Default::default();
    assert_eq!(
        trainable(
            &PreResNetConfig::preresnet110(100)
                .init::<B>(&device)
                .unwrap()
        ),
        1_169_972
    );
    assert_eq!(
        trainable(
            &PreResNetConfig::preresnet110(10)
                .init::<B>(&device)
                .unwrap()
        ),
        1_146_842
    );
    assert_eq!(
        trainable(
            &PreResNetConfig::preresnet164(100)
                .init::<B>(&device)
                .unwrap()
        ),
        1_726_388
    );
    // Basic blocks: PreResNet-20 (n = 3) on CIFAR-10 has ≈0.27 M parameters.
    let basic = PreResNetConfig::new(20, 10)
        .with_block(ResidualBlock::Basic)
        .init::<B>(&device)
        .unwrap();
    assert_eq!(trainable(&basic), 272_282);
    assert!(
        PreResNetConfig::new(100, 10).init::<B>(&device).is_err(),
        "100 is not 9n + 2"
    );
}

#[test]
fn wide_resnet_counts() {
    let device = Default::default();
    assert_eq!(
        trainable(&WideResNetConfig::wrn28x10(100).init::<B>(&device).unwrap()),
        36_546_980
    );
    assert_eq!(
        trainable(
            &WideResNetConfig::wrn28x10(100)
                .with_conv_bias(false)
                .init::<B>(&device)
                .unwrap()
        ),
        36_536_884
    );
    assert!(
        WideResNetConfig::new(27, 10, 100)
            .init::<B>(&device)
            .is_err()
    );
    assert!(
        WideResNetConfig::wrn28x10(100)
            .with_dropout(1.0)
            .init::<B>(&device)
            .is_err()
    );
}

#[test]
fn all_cnn_and_mnist_counts() {
    let device = Default::default();
    assert_eq!(
        trainable(&AllCnnConfig::new(100).init::<B>(&device).unwrap()),
        1_387_108
    );
    assert_eq!(
        trainable(
            &LogisticRegressionConfig::mnist()
                .init::<B>(&device)
                .unwrap()
        ),
        7_850
    );
    assert_eq!(
        trainable(&MlpConfig::mnist().init::<B>(&device).unwrap()),
        79_510
    );
}

#[test]
fn forward_shapes_on_cifar_input() {
    let device = Default::default();
    let x = Tensor::<B, 4>::zeros([2, 3, 32, 32], &device);
    assert_eq!(
        VggConfig::vgg16(100, true)
            .init::<B>(&device)
            .unwrap()
            .forward(x.clone(), BatchNormMode::Eval)
            .dims(),
        [2, 100]
    );
    assert_eq!(
        AllCnnConfig::new(100)
            .init::<B>(&device)
            .unwrap()
            .forward(x.clone(), BatchNormMode::Eval)
            .dims(),
        [2, 100]
    );
    let small = PreResNetConfig::new(11, 10).init::<B>(&device).unwrap();
    assert_eq!(
        small.forward(x.clone(), BatchNormMode::Train).dims(),
        [2, 10]
    );
    let wrn = WideResNetConfig::new(10, 1, 10)
        .with_dropout(0.3)
        .init::<B>(&device)
        .unwrap();
    assert_eq!(wrn.forward(x.clone(), BatchNormMode::Eval).dims(), [2, 10]);
    assert_eq!(wrn.forward_train(x).dims(), [2, 10]);
}
