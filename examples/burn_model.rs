//! Your own burn model, with exact Hessians: change one import line.
//!
//! burn 0.21's fused `nn::Linear` (and `MaxPool2d`, `AvgPool2d`) cannot be differentiated twice,
//! so a model written with them has gradients but no Hessian-vector products. `curvature::nn`
//! offers the same names and configuration APIs built from twice-differentiable operations:
//!
//! ```text
//! use burn::nn::{Linear, LinearConfig, Relu};        // before
//! use curvature::nn::{Linear, LinearConfig, Relu};   // after
//! ```
//!
//! The model then only needs `Network::output` (its forward pass, with a batch-norm mode it may
//! ignore) to get HVPs, spectra, the Hessian variance and the curvature-aware optimisers. This
//! example measures the spectrum of a small MLP on the embedded digits, and shows the error the
//! same model gives with burn's own `Linear`.
//!
//! ```text
//! cargo run --release --example burn_model
//! ```
use anyhow::Result;
use burn::backend::NdArray;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use curvature::core::{
    BatchNormMode, LanczosConfig, LinearOperator, Loss, Network, Objective, SlqConfig,
    SpectrumConfig, gaussian_vector, spectrum,
};
use curvature::data::optdigits;
use curvature::nn::{Linear, LinearConfig, Relu}; // was: use burn::nn::{Linear, LinearConfig, Relu};

type B = NdArray<f32>;

/// A model exactly as written for burn.
#[derive(Module, Debug)]
struct Mlp<B: Backend> {
    hidden: Linear<B>,
    relu: Relu,
    output: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    fn new(device: &B::Device) -> Self {
        Self {
            hidden: LinearConfig::new(64, 32).init(device),
            relu: Relu::new(),
            output: LinearConfig::new(32, 10).init(device),
        }
    }
}

/// The one addition: the forward pass as curvature calls it.
impl<B: Backend> Network<B, 2> for Mlp<B> {
    fn output(&self, x: Tensor<B, 2>, _: BatchNormMode) -> Tensor<B, 2> {
        self.output
            .forward(self.relu.forward(self.hidden.forward(x)))
    }
}

/// The same model on burn's fused `Linear`, for comparison.
#[derive(Module, Debug)]
struct BurnMlp<B: Backend> {
    hidden: burn::nn::Linear<B>,
    output: burn::nn::Linear<B>,
}

impl<B: Backend> Network<B, 2> for BurnMlp<B> {
    fn output(&self, x: Tensor<B, 2>, _: BatchNormMode) -> Tensor<B, 2> {
        let h = burn::tensor::activation::relu(self.hidden.forward(x));
        self.output.forward(h)
    }
}

fn main() -> Result<()> {
    let device = Default::default();
    <B as Backend>::seed(&device, 0);
    let data = optdigits()?.batches::<B, 2>(128, &device)?;

    let objective = Objective::new(Mlp::<B>::new(&device), Loss::CrossEntropy, data.clone())?;
    println!("MLP 64-32-10 on curvature::nn: P = {}", objective.dim());
    let v = gaussian_vector::<B>(objective.dim(), 1, &device);
    let hv = objective.hessian().apply(&v)?;
    println!(
        "exact Hessian-vector product: ‖Hv‖ = {:.4}",
        hv.powi_scalar(2).sum().into_scalar().sqrt()
    );
    let config = SpectrumConfig::new()
        .with_slq(SlqConfig::new().with_lanczos(LanczosConfig::new().with_steps(30)));
    println!("{}", spectrum(&objective.hessian(), &config)?);

    let burn_model = BurnMlp::<B> {
        hidden: burn::nn::LinearConfig::new(64, 32).init(&device),
        output: burn::nn::LinearConfig::new(32, 10).init(&device),
    };
    let objective = Objective::new(burn_model, Loss::CrossEntropy, data)?;
    // burn prints its own panic message first; curvature turns it into this error.
    match objective.hessian().apply(&v) {
        Ok(_) => println!("unexpected: burn's Linear was differentiated twice"),
        Err(e) => println!("\nthe same model on burn::nn::Linear:\n  {e}"),
    }
    Ok(())
}
