//! Quickstart: train softmax regression on the embedded optdigits digits, then measure the
//! Hessian spectrum of the trained model. No download, no files.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
use anyhow::Result;
use burn::backend::NdArray;
use curvature::core::{LanczosConfig, Loss, Objective, SlqConfig, SpectrumConfig, spectrum};
use curvature::data::optdigits;
use curvature::nets::LogisticRegressionConfig;

type B = NdArray<f32>;

fn main() -> Result<()> {
    let device = Default::default();
    <B as burn::tensor::backend::Backend>::seed(&device, 0); // reproducible initialisation
    let (train, test) = optdigits()?.split(297, 0)?;
    println!(
        "optdigits: {} training and {} test digits (8×8, 10 classes), embedded",
        train.len(),
        test.len()
    );

    // 1. A model and an objective: model + loss + data.
    let model = LogisticRegressionConfig::optdigits().init::<B>(&device)?;
    let batches = train.batches::<B, 2>(64, &device)?;
    let mut objective = Objective::new(model, Loss::CrossEntropy, batches.clone())?;
    println!(
        "softmax regression 64 → 10: P = {} parameters",
        objective.dim()
    );

    // 2. A few epochs of mini-batch SGD with the objective's batch gradients.
    let (epochs, lr) = (30, 0.5);
    for epoch in 1..=epochs {
        for batch in &batches {
            let (_, g) = objective.batch_gradient(batch)?;
            objective.set_params(objective.params() - g.mul_scalar(lr))?;
        }
        if epoch % 5 == 0 || epoch == 1 {
            let e = objective.evaluate()?;
            println!(
                "epoch {epoch:>3}  train loss {:.4}  train accuracy {:.2}%",
                e.loss,
                100.0 * e.accuracy.unwrap_or(0.0)
            );
        }
    }
    let test_eval = Objective::new(
        objective.model(),
        Loss::CrossEntropy,
        test.batches::<B, 2>(297, &device)?,
    )?
    .evaluate()?;
    println!(
        "test loss {:.4}  test accuracy {:.2}%",
        test_eval.loss,
        100.0 * test_eval.accuracy.unwrap_or(0.0)
    );

    // 3. The Hessian of the training loss at the trained weights, by exact HVPs + Lanczos.
    let config = SpectrumConfig::new()
        .with_slq(SlqConfig::new().with_lanczos(LanczosConfig::new().with_steps(80)))
        .with_hutchinson_samples(20);
    let summary = spectrum(&objective.hessian(), &config)?;
    println!("\nHessian of the training loss:\n{summary}");
    Ok(())
}
