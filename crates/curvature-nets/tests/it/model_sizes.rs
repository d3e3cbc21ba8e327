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

// The papers' models at full size are counted from their shapes (`num_params`, nothing
// allocated); the counts come from the papers and PyTorch (SPEC §4), so they are independent of
// the code. `counts_from_shapes_equal_the_allocated_models` ties `num_params` to the weights
// `init` really allocates, on reduced sizes of every model and option.

#[test]
fn vgg16_counts() {
    assert_eq!(VggConfig::vgg16(100, false).num_params(), 15_291_300);
    // VGG-16-BN: + 2 per BN channel (64·2 + 128·2 + 256·3 + 512·6 = 4 224 channels).
    assert_eq!(
        VggConfig::vgg16(100, true).num_params(),
        15_291_300 + 2 * 4_224
    );
    assert_eq!(
        VggConfig::vgg16(10, false).num_params(),
        15_291_300 - 90 * 513
    );
}

#[test]
fn preresnet_counts() {
    let device = Default::default();
    assert_eq!(PreResNetConfig::preresnet110(100).num_params(), 1_169_972);
    assert_eq!(PreResNetConfig::preresnet110(10).num_params(), 1_146_842);
    assert_eq!(PreResNetConfig::preresnet164(100).num_params(), 1_726_388);
    // Basic blocks: PreResNet-20 (n = 3) on CIFAR-10 has ≈0.27 M parameters.
    let basic = PreResNetConfig::new(20, 10).with_block(ResidualBlock::Basic);
    assert_eq!(basic.num_params(), 272_282);
    assert_eq!(trainable(&basic.init::<B>(&device).unwrap()), 272_282);
    assert!(
        PreResNetConfig::new(100, 10).init::<B>(&device).is_err(),
        "100 is not 9n + 2"
    );
}

#[test]
fn wide_resnet_counts() {
    let device = Default::default();
    assert_eq!(WideResNetConfig::wrn28x10(100).num_params(), 36_546_980);
    assert_eq!(
        WideResNetConfig::wrn28x10(100)
            .with_conv_bias(false)
            .num_params(),
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
    assert_eq!(AllCnnConfig::new(100).num_params(), 1_387_108);
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

/// `num_params` (from the configuration's shapes) equals the parameters `init` allocates, for
/// every model and every option that changes the count, at reduced sizes.
#[test]
fn counts_from_shapes_equal_the_allocated_models() {
    let device = Default::default();
    let check = |name: &str, from_shapes: usize, allocated: usize| {
        assert_eq!(from_shapes, allocated, "{name}: num_params vs allocated");
    };
    let mut vgg = VggConfig::vgg16(7, false);
    vgg.layers = vec![
        VggLayer::Conv(4),
        VggLayer::Pool,
        VggLayer::Conv(6),
        VggLayer::Conv(5),
        VggLayer::Pool,
    ];
    vgg.image_size = [8, 12];
    vgg.classifier_width = 9;
    for bn in [false, true] {
        let c = VggConfig {
            batch_norm: bn,
            ..vgg.clone()
        };
        check(
            "vgg",
            c.num_params(),
            trainable(&c.init::<B>(&device).unwrap()),
        );
    }
    // Two blocks per stage: depth 6·2 + 2 (basic), 9·2 + 2 (bottleneck).
    for (block, depth) in [(ResidualBlock::Basic, 14), (ResidualBlock::Bottleneck, 20)] {
        let c = PreResNetConfig::new(depth, 5)
            .with_block(block)
            .with_widths([3, 5, 4]);
        check(
            "preresnet",
            c.num_params(),
            trainable(&c.init::<B>(&device).unwrap()),
        );
    }
    for bias in [false, true] {
        let c = WideResNetConfig::new(16, 1, 6).with_conv_bias(bias);
        check(
            "wrn",
            c.num_params(),
            trainable(&c.init::<B>(&device).unwrap()),
        );
    }
    for bn in [false, true] {
        let c = AllCnnConfig {
            in_channels: 2,
            widths: [3, 5],
            num_classes: 4,
            batch_norm: bn,
            conv: ConvLowering::Auto,
        };
        check(
            "all-cnn",
            c.num_params(),
            trainable(&c.init::<B>(&device).unwrap()),
        );
        let c = SimpleCnnConfig::new(2, [8, 4], vec![3, 5], 4).with_batch_norm(bn);
        check(
            "cnn",
            c.num_params(),
            trainable(&c.init::<B>(&device).unwrap()),
        );
    }
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
