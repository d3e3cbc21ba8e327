//! `curvature_nets::nn` (re-exported as `curvature::nn`): burn's layer names and configuration
//! APIs with exact HVPs. The references are independent of our layers: burn's own modules for
//! the forward passes (copied weights; first order is fine in burn), Richardson-extrapolated
//! f64 central differences of the gradient for the HVP, and burn's fused `nn::Linear` for the
//! error a model gets when it cannot be differentiated twice.

use burn::backend::NdArray;
use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use curvature_core::testing::{
    assert_rel_close, random_classification_batch, richardson_hvp, to_vec,
};
use curvature_core::{
    BatchNormMode, CurvatureError, LinearOperator, Loss, Network, Objective, gaussian_vector,
};
use curvature_nets::nn::{
    AvgPool2dConfig, Conv2d, Conv2dConfig, Linear, LinearConfig, MaxPool2d, MaxPool2dConfig,
    PaddingConfig2d, Relu, Tanh,
};

type B = NdArray<f64>;

/// A burn-style model: only the import line differs from the same model on `burn::nn`.
#[derive(Module, Debug)]
struct Small<B: Backend> {
    conv: Conv2d<B>,
    pool: MaxPool2d,
    relu: Relu,
    tanh: Tanh,
    head: Linear<B>,
}

impl<B: Backend> Small<B> {
    fn new(device: &B::Device) -> Self {
        Self {
            conv: Conv2dConfig::new([2, 3], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            relu: Relu::new(),
            tanh: Tanh::new(),
            head: LinearConfig::new(3 * 2 * 2, 4).init(device),
        }
    }
}

impl<B: Backend> Network<B, 4> for Small<B> {
    fn output(&self, x: Tensor<B, 4>, _: BatchNormMode) -> Tensor<B, 2> {
        let h = self.pool.forward(self.relu.forward(self.conv.forward(x)));
        let h = self.tanh.forward(h.flatten(1, 3));
        self.head.forward(h)
    }
}

/// The same model with burn's fused `nn::Linear` head.
#[derive(Module, Debug)]
struct Fused<B: Backend> {
    head: burn::nn::Linear<B>,
}

impl<B: Backend> Network<B, 2> for Fused<B> {
    fn output(&self, x: Tensor<B, 2>, _: BatchNormMode) -> Tensor<B, 2> {
        self.head.forward(x)
    }
}

#[test]
fn a_burn_style_model_has_exact_hvps() {
    let device = Default::default();
    let model = Small::<B>::new(&device);
    let batch = random_classification_batch::<B, 4>([6, 2, 4, 4], 4, 3, &device);
    let mut objective = Objective::new(model, Loss::CrossEntropy, vec![batch]).unwrap();
    // Seeded weights (the layers' own initialisation draws from burn's unseeded generator): a
    // fixed point, checked to be away from ReLU and max-pool kinks by passing, every run.
    let w = gaussian_vector::<B>(objective.dim(), 5, &device).mul_scalar(0.5);
    objective.set_params(w).unwrap();
    let v = gaussian_vector::<B>(objective.dim(), 7, &device);
    let exact = to_vec(&objective.hessian().apply(&v).unwrap());
    // ReLU and max kinks: generic inputs cross none within h; Richardson in f64.
    let reference = richardson_hvp(&objective, &v, 1e-4).unwrap();
    assert_rel_close(&exact, &reference, 1e-6, "drop-in model HVP");
}

#[test]
fn burns_fused_linear_gives_an_error_naming_it() {
    let device = Default::default();
    let model = Fused::<B> {
        head: burn::nn::LinearConfig::new(5, 3).init(&device),
    };
    let batch = random_classification_batch::<B, 2>([4, 5], 3, 1, &device);
    let objective = Objective::new(model, Loss::CrossEntropy, vec![batch]).unwrap();
    // Gradients work …
    assert!(objective.gradient().is_ok());
    // … the exact HVP does not, and says why and what to use.
    let v = gaussian_vector::<B>(objective.dim(), 2, &device);
    let err = objective.hessian().apply(&v).unwrap_err();
    assert!(
        matches!(
            err,
            CurvatureError::NotTwiceDifferentiable {
                module: "burn::nn::Linear",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("curvature::nn::{Linear, LinearConfig}"),
        "{err}"
    );
}

/// Forward passes equal burn's own modules with the same weights (burn's `Linear` stores the
/// weight transposed); pooling covers floor mode (a 5×5 input) and the average variant.
#[test]
fn forward_passes_equal_burns_modules() {
    let device = Default::default();
    let x = Tensor::<B, 3>::random([2, 3, 5], Distribution::Normal(0.0, 1.0), &device);
    let ours = LinearConfig::new(5, 4).init::<B>(&device);
    let mut theirs = burn::nn::LinearConfig::new(5, 4).init::<B>(&device);
    theirs.weight = Param::from_tensor(ours.weight.val().transpose());
    theirs.bias = ours.bias.clone();
    assert_rel_close(
        &flat(ours.forward(x.clone())),
        &flat(theirs.forward(x)),
        1e-12,
        "Linear on a rank-3 input",
    );

    let x = Tensor::<B, 4>::random([2, 2, 5, 5], Distribution::Normal(0.0, 1.0), &device);
    let conv = Conv2dConfig::new([2, 3], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .init::<B>(&device);
    let mut burn_conv = burn::nn::conv::Conv2dConfig::new([2, 3], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .init::<B>(&device);
    burn_conv.weight = conv.weight.clone();
    burn_conv.bias = conv.bias.clone();
    assert_rel_close(
        &flat(conv.forward(x.clone())),
        &flat(burn_conv.forward(x.clone())),
        1e-12,
        "Conv2d, Same padding",
    );
    let pools = [
        (
            MaxPool2dConfig::new([2, 2]).init(),
            flat(
                burn::nn::pool::MaxPool2dConfig::new([2, 2])
                    .init()
                    .forward(x.clone()),
            ),
            "MaxPool2d, floor mode",
        ),
        (
            AvgPool2dConfig::new([2, 2]).init(),
            flat(
                burn::nn::pool::AvgPool2dConfig::new([2, 2])
                    .init()
                    .forward(x.clone()),
            ),
            "AvgPool2d, floor mode",
        ),
    ];
    for (ours, theirs, what) in pools {
        assert_rel_close(&flat(ours.forward(x.clone())), &theirs, 1e-12, what);
    }
}

#[test]
fn configurations_without_a_twice_differentiable_form_are_refused() {
    let device = Default::default();
    let overlapping = MaxPool2dConfig::new([3, 3]).with_strides([1, 1]).try_init();
    let err = overlapping.unwrap_err().to_string();
    assert!(err.contains("non-overlapping"), "{err}");
    let asymmetric = Conv2dConfig::new([1, 1], [2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 0, 0, 1))
        .try_init::<B>(&device);
    assert!(asymmetric.unwrap_err().to_string().contains("padding"));
    let zero = LinearConfig::new(0, 3).try_init::<B>(&device);
    assert!(zero.unwrap_err().to_string().contains("positive"));
}

fn flat<const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}
