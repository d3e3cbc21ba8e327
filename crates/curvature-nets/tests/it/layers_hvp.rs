//! Every layer and model of curvature-nets: exact HVP against an f64 finite-difference
//! reference, so that a regression in burn's double differentiation is caught.

use burn::backend::NdArray;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use curvature_core::testing::{
    assert_rel_close, random_classification_batch, richardson_hvp, to_vec,
};
use curvature_core::{
    Batch, BatchNormMode, CurvatureModel, FiniteDifferenceHessian, LinearOperator, Loss, Network,
    Objective, gaussian_vector,
};
use curvature_nets::layers::{avg_pool2d, flatten, global_avg_pool2d, max_pool2d};
use curvature_nets::*;

type B = NdArray<f64>;

/// Smooth layers: exact HVP vs Richardson-extrapolated central differences (O(h⁴), f64).
const SMOOTH_TOL: f64 = 1e-8;
/// Piecewise-linear layers (ReLU, max): plain central differences with h = 1e-6, no kink
/// crossed for generic inputs; error dominated by rounding ε‖g‖/h ≈ 1e-10.
const KINK_TOL: f64 = 1e-6;
/// burn 0.21's gelu backward uses a tanh approximation (measured ≈1.5e-4 relative).
const GELU_TOL: f64 = 1e-3;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pool {
    Max,
    Avg,
    Global,
    Flatten,
}

/// conv → [BN] → activation → pooling → dense.
#[derive(Module, Debug)]
struct ConvProbe<B: Backend> {
    conv: Conv2d<B>,
    bn: Option<BatchNorm<B>>,
    dense: Dense<B>,
    #[module(skip)]
    activation: Activation,
    #[module(skip)]
    pool: Pool,
}

impl<B: Backend> Network<B, 4> for ConvProbe<B> {
    fn output(&self, x: Tensor<B, 4>, mode: BatchNormMode) -> Tensor<B, 2> {
        let mut h = self.conv.forward(x);
        if let Some(bn) = &self.bn {
            h = bn.forward(h, mode);
        }
        let h = self.activation.forward(h);
        let h = match self.pool {
            Pool::Max => flatten(max_pool2d(h, 2)),
            Pool::Avg => flatten(avg_pool2d(h, 2)),
            Pool::Global => global_avg_pool2d(h),
            Pool::Flatten => flatten(h),
        };
        self.dense.forward(h)
    }
}

/// dense → BN over [N, C] → activation → dense.
#[derive(Module, Debug)]
struct DenseProbe<B: Backend> {
    first: Dense<B>,
    bn: BatchNorm<B>,
    second: Dense<B>,
}

impl<B: Backend> Network<B, 2> for DenseProbe<B> {
    fn output(&self, x: Tensor<B, 2>, mode: BatchNormMode) -> Tensor<B, 2> {
        self.second
            .forward(Activation::Tanh.forward(self.bn.forward(self.first.forward(x), mode)))
    }
}

fn random_batch<const D: usize>(shape: [usize; D], classes: usize, seed: u64) -> Batch<B, D> {
    random_classification_batch(shape, classes, seed, &Default::default())
}

/// The exact HVP of `objective` at seeded parameters (`0.4 ×` a standard normal draw: the
/// layers' own initialisation draws from burn's unseeded generator, and at an unlucky draw a
/// ReLU or max kink lies within the finite-difference step, or every ReLU is dead) against
/// finite differences of the gradient, along two seeded directions.
fn check<M: CurvatureModel<B, D>, const D: usize>(
    mut objective: Objective<B, M, D>,
    tol: f64,
    smooth: bool,
    what: &str,
) {
    let w = gaussian_vector::<B>(objective.dim(), 5, &Default::default()).mul_scalar(0.4);
    objective.set_params(w).unwrap();
    let objective = &objective;
    for seed in [11, 12] {
        let v = gaussian_vector::<B>(objective.dim(), seed, &Default::default());
        let exact = to_vec(&objective.hvp(&v).unwrap());
        let reference = if smooth {
            richardson_hvp(objective, &v, 1e-3).unwrap()
        } else {
            to_vec(
                &FiniteDifferenceHessian::with_step(objective, 1e-6)
                    .unwrap()
                    .apply(&v)
                    .unwrap(),
            )
        };
        assert_rel_close(&exact, &reference, tol, what);
    }
}

fn conv_probe(
    conv: Conv2dConfig,
    bn: bool,
    activation: Activation,
    pool: Pool,
    spatial: usize,
) -> ConvProbe<B> {
    let device = Default::default();
    let out = conv.channels[1];
    let conv = conv.init::<B>(&device).unwrap();
    let [h, w] = conv.output_size([spatial, spatial]);
    let features = match pool {
        Pool::Max | Pool::Avg => out * (h / 2) * (w / 2),
        Pool::Global => out,
        Pool::Flatten => out * h * w,
    };
    ConvProbe {
        conv,
        bn: bn.then(|| BatchNormConfig::new(out).init(&device).unwrap()),
        dense: DenseConfig::new(features, 3).init(&device).unwrap(),
        activation,
        pool,
    }
}

/// Convolutions on 4 input channels of 8 × 8 whose outputs have even sizes (poolable by 2).
fn conv_geometries() -> [(&'static str, Conv2dConfig); 4] {
    [
        (
            // H: (8 + 2 − 3) / 2 drops a row (the transposed convolution's output padding).
            "3×2 stride 2, pad [1, 0]",
            Conv2dConfig::new([4, 4], [3, 2])
                .with_stride([2, 2])
                .with_padding([1, 0]),
        ),
        (
            "3×3 pad 1",
            Conv2dConfig::new([4, 6], [3, 3]).with_padding([1, 1]),
        ),
        (
            "stride 2, groups 2, no bias",
            Conv2dConfig::new([4, 6], [3, 3])
                .with_stride([2, 2])
                .with_padding([1, 1])
                .with_groups(2)
                .with_bias(false),
        ),
        (
            "dilation 2",
            Conv2dConfig::new([4, 2], [3, 3])
                .with_dilation([2, 2])
                .with_padding([2, 2]),
        ),
    ]
}

#[test]
fn convolutions_stride_padding_groups_dilation() {
    for (name, conv) in conv_geometries() {
        let model = conv_probe(conv, false, Activation::Tanh, Pool::Flatten, 8);
        let objective = Objective::new(
            model,
            Loss::CrossEntropy,
            vec![random_batch([5, 4, 8, 8], 3, 1)],
        )
        .unwrap();
        check(objective, SMOOTH_TOL, true, name);
    }
}

/// Every [`ConvLowering`] is burn's `conv2d`: the gradient and the exact HVP (first and second
/// derivatives, with respect to the convolution's weights and everything after it) of the same
/// network with the same weights agree to 1e-10 in f64 between `Burn` (burn's primitive, the
/// independent reference), `Im2col` (our patches + one matrix product), `GemmGrad` (our
/// custom operation: its backward and the backward of its backward are our weight-gradient
/// products, not burn's) and `Auto`, over
/// strides, padding, dilation, groups and a batch norm; and each also matches finite
/// differences (the `Burn` network through [`check`]).
#[test]
fn every_conv_lowering_has_burns_first_and_second_derivatives() {
    const LOWERING_TOL: f64 = 1e-10;
    for (name, conv) in conv_geometries() {
        let model = conv_probe(conv, true, Activation::Tanh, Pool::Avg, 8);
        let batch = random_batch([5, 4, 8, 8], 3, 4);
        let with = |lowering: ConvLowering| {
            let mut m = model.clone();
            m.conv.lowering = lowering;
            Objective::new(m, Loss::CrossEntropy, vec![batch.clone()]).unwrap()
        };
        check(with(ConvLowering::Burn), SMOOTH_TOL, true, name);
        let reference = with(ConvLowering::Burn);
        let v = gaussian_vector::<B>(reference.dim(), 5, &Default::default());
        let (_, g_ref) = reference.gradient().unwrap();
        let h_ref = to_vec(&reference.hvp(&v).unwrap());
        for lowering in [
            ConvLowering::Im2col,
            ConvLowering::GemmGrad,
            ConvLowering::Auto,
        ] {
            let objective = with(lowering);
            let (_, g) = objective.gradient().unwrap();
            let what = format!("{name}, {lowering}");
            assert_rel_close(
                &to_vec(&g),
                &to_vec(&g_ref),
                LOWERING_TOL,
                &format!("{what}: gradient"),
            );
            let h = to_vec(&objective.hvp(&v).unwrap());
            assert_rel_close(&h, &h_ref, LOWERING_TOL, &format!("{what}: HVP"));
        }
    }
}

#[test]
fn every_activation() {
    for (activation, tol, smooth) in [
        (Activation::Tanh, SMOOTH_TOL, true),
        (Activation::Softplus, SMOOTH_TOL, true),
        (Activation::Elu, KINK_TOL, false),
        (Activation::Identity, SMOOTH_TOL, true),
        (Activation::Relu, KINK_TOL, false),
        (Activation::LeakyRelu { slope: 0.1 }, KINK_TOL, false),
        (Activation::Sigmoid, SMOOTH_TOL, true),
        (Activation::Gelu, GELU_TOL, true),
    ] {
        let model = conv_probe(
            Conv2dConfig::new([4, 3], [3, 3]).with_padding([1, 1]),
            false,
            activation,
            Pool::Flatten,
            4,
        );
        let objective = Objective::new(
            model,
            Loss::CrossEntropy,
            vec![random_batch([6, 4, 4, 4], 3, 2)],
        )
        .unwrap();
        check(objective, tol, smooth, &format!("{activation:?}"));
    }
}

#[test]
fn pooling_layers() {
    for (pool, smooth) in [(Pool::Max, false), (Pool::Avg, true), (Pool::Global, true)] {
        let activation = if smooth {
            Activation::Tanh
        } else {
            Activation::Relu
        };
        let model = conv_probe(
            Conv2dConfig::new([4, 3], [3, 3]).with_padding([1, 1]),
            false,
            activation,
            pool,
            8,
        );
        let objective = Objective::new(
            model,
            Loss::CrossEntropy,
            vec![random_batch([5, 4, 8, 8], 3, 3)],
        )
        .unwrap();
        check(
            objective,
            if smooth { SMOOTH_TOL } else { KINK_TOL },
            smooth,
            &format!("{pool:?} pooling"),
        );
    }
}

#[test]
fn batch_norm_rank_4_and_rank_2_in_both_modes() {
    for mode in [BatchNormMode::Train, BatchNormMode::Eval] {
        let model = conv_probe(
            Conv2dConfig::new([4, 3], [3, 3])
                .with_padding([1, 1])
                .with_bias(false),
            true,
            Activation::Tanh,
            Pool::Avg,
            4,
        );
        let batch = random_batch([6, 4, 4, 4], 3, 4);
        model
            .bn
            .as_ref()
            .unwrap()
            .update_running_stats(model.conv.forward(batch.inputs.clone()));
        let objective = Objective::new(model, Loss::CrossEntropy, vec![batch])
            .unwrap()
            .with_bn_mode(mode);
        check(
            objective,
            SMOOTH_TOL,
            true,
            &format!("BatchNorm2d {mode:?}"),
        );

        let device = Default::default();
        let model = DenseProbe {
            first: DenseConfig::new(5, 4).init::<B>(&device).unwrap(),
            bn: BatchNormConfig::new(4).init(&device).unwrap(),
            second: DenseConfig::new(4, 3).init(&device).unwrap(),
        };
        let objective = Objective::new(model, Loss::CrossEntropy, vec![random_batch([7, 5], 3, 5)])
            .unwrap()
            .with_bn_mode(mode);
        check(
            objective,
            SMOOTH_TOL,
            true,
            &format!("BatchNorm1d {mode:?}"),
        );
    }
}

#[test]
fn bundled_models() {
    let device = Default::default();
    let logreg = LogisticRegressionConfig::new(6, 3)
        .init::<B>(&device)
        .unwrap();
    check(
        Objective::new(logreg, Loss::CrossEntropy, vec![random_batch([8, 6], 3, 6)]).unwrap(),
        SMOOTH_TOL,
        true,
        "LogisticRegression",
    );
    let mlp = MlpConfig::new(6, vec![5, 4], 3)
        .with_activation(Activation::Softplus)
        .init::<B>(&device)
        .unwrap();
    check(
        Objective::new(mlp, Loss::CrossEntropy, vec![random_batch([8, 6], 3, 7)]).unwrap(),
        SMOOTH_TOL,
        true,
        "Mlp",
    );
    let mlp = MlpConfig::new(6, vec![5], 2).init::<B>(&device).unwrap();
    let targets = Tensor::from_data(
        TensorData::new(vec![0.5f64, -1.0, 2.0, 0.0, 1.0, 1.0, -0.5, 0.3], [4, 2]),
        &device,
    );
    let batch = Batch::regression(random_batch([4, 6], 2, 8).inputs, targets).unwrap();
    check(
        Objective::new(mlp, Loss::MeanSquaredError, vec![batch]).unwrap(),
        KINK_TOL,
        false,
        "Mlp with MSE",
    );
    let cnn = SimpleCnnConfig::new(2, [8, 8], vec![3, 4], 3)
        .init::<B>(&device)
        .unwrap();
    check(
        Objective::new(
            cnn,
            Loss::CrossEntropy,
            vec![random_batch([6, 2, 8, 8], 3, 9)],
        )
        .unwrap(),
        KINK_TOL,
        false,
        "SimpleCnn (BN, ReLU, max pool)",
    );
}

#[test]
fn parameter_counts() {
    let device = Default::default();
    let count = |m: usize, expected: usize| assert_eq!(m, expected);
    count(
        LogisticRegressionConfig::mnist()
            .init::<B>(&device)
            .unwrap()
            .num_params(),
        7_850,
    );
    count(LogisticRegressionConfig::mnist().num_params(), 7_850);
    count(
        LogisticRegressionConfig::optdigits()
            .init::<B>(&device)
            .unwrap()
            .num_params(),
        650,
    );
    count(
        MlpConfig::mnist().init::<B>(&device).unwrap().num_params(),
        79_510,
    );
    count(MlpConfig::mnist().num_params(), 79_510);
}

#[test]
fn forward_shapes_and_invalid_configs() {
    let device = Default::default();
    let cnn = SimpleCnnConfig::new(3, [32, 32], vec![8, 16, 16], 10)
        .init::<B>(&device)
        .unwrap();
    let x = Tensor::<B, 4>::zeros([2, 3, 32, 32], &device);
    assert_eq!(cnn.forward(x, BatchNormMode::Eval).dims(), [2, 10]);
    assert!(
        SimpleCnnConfig::new(3, [30, 30], vec![8, 8], 10)
            .init::<B>(&device)
            .unwrap_err()
            .to_string()
            .contains("multiples of 2^2")
    );
    assert!(
        Conv2dConfig::new([3, 4], [3, 3])
            .with_groups(2)
            .init::<B>(&device)
            .is_err()
    );
    assert!(DenseConfig::new(0, 3).init::<B>(&device).is_err());
    assert!(MlpConfig::new(3, vec![4, 0], 2).init::<B>(&device).is_err());
    let mut bn = BatchNormConfig::new(3);
    bn.momentum = 1.5;
    assert!(bn.init::<B>(&device).is_err());
}

#[test]
fn clones_share_initialised_weights() {
    // burn initialises lazily and a clone of an unread parameter re-samples it; layers here
    // initialise eagerly so that clones are identical.
    let m = MlpConfig::new(4, vec![3], 2)
        .init::<B>(&Default::default())
        .unwrap();
    let c = m.clone();
    let a: Vec<f64> = m.layers[0].weight.val().into_data().iter::<f64>().collect();
    let b: Vec<f64> = c.layers[0].weight.val().into_data().iter::<f64>().collect();
    assert_eq!(a, b);
}

#[test]
fn paper_models_at_reduced_size() {
    let device = Default::default();
    let vgg = VggConfig {
        layers: vec![
            VggLayer::Conv(3),
            VggLayer::Pool,
            VggLayer::Conv(4),
            VggLayer::Pool,
        ],
        in_channels: 2,
        image_size: [8, 8],
        classifier_width: 5,
        num_classes: 3,
        batch_norm: true,
        // burn's primitive on NdArray too (the default there is im2col).
        conv: ConvLowering::Burn,
    };
    for mode in [BatchNormMode::Train, BatchNormMode::Eval] {
        let objective = Objective::new(
            vgg.init::<B>(&device).unwrap(),
            Loss::CrossEntropy,
            vec![random_batch([4, 2, 8, 8], 3, 20)],
        )
        .unwrap();
        check(
            objective.with_bn_mode(mode),
            KINK_TOL,
            false,
            &format!("VGG-BN (reduced) {mode:?}"),
        );
    }
    let pre = PreResNetConfig::new(11, 3).with_widths([2, 2, 3]);
    let mut pre = pre;
    pre.in_channels = 2;
    let objective = Objective::new(
        pre.init::<B>(&device).unwrap(),
        Loss::CrossEntropy,
        vec![random_batch([4, 2, 8, 8], 3, 21)],
    )
    .unwrap();
    check(
        objective,
        KINK_TOL,
        false,
        "PreResNet-11 bottleneck (reduced)",
    );
    let basic = PreResNetConfig {
        depth: 8,
        block: ResidualBlock::Basic,
        num_classes: 3,
        in_channels: 2,
        widths: [2, 3, 3],
        conv: ConvLowering::Im2col,
    };
    let objective = Objective::new(
        basic.init::<B>(&device).unwrap(),
        Loss::CrossEntropy,
        vec![random_batch([4, 2, 8, 8], 3, 22)],
    )
    .unwrap();
    check(objective, KINK_TOL, false, "PreResNet-8 basic (reduced)");
    let mut wrn = WideResNetConfig::new(10, 1, 3);
    wrn.in_channels = 2;
    let objective = Objective::new(
        wrn.init::<B>(&device).unwrap(),
        Loss::CrossEntropy,
        vec![random_batch([3, 2, 8, 8], 3, 23)],
    )
    .unwrap();
    check(objective, KINK_TOL, false, "WRN-10-1 (reduced)");
    let cnn = AllCnnConfig {
        in_channels: 2,
        widths: [3, 4],
        num_classes: 3,
        batch_norm: true,
        conv: ConvLowering::Auto,
    };
    let objective = Objective::new(
        cnn.init::<B>(&device).unwrap(),
        Loss::CrossEntropy,
        vec![random_batch([4, 2, 16, 16], 3, 24)],
    )
    .unwrap();
    check(objective, KINK_TOL, false, "All-CNN-C with BN (reduced)");
}
