//! The damping paper's §5 experiment in miniature: softmax regression on optdigits (1 000
//! training digits, 797 test digits) trained with LanczosOPT (k = 50 Ritz pairs, refreshed
//! every update) across damping δ ∈ {1e-3, 1e-2, 1e-1, 1}, against gradient descent.
//!
//! ```text
//! cargo run --release --example lanczos_opt_damping
//! ```
//!
//! The learning rate is α = δ, so that in the orthogonal complement of the Krylov space every
//! run takes the same gradient-descent step (α/δ = 1); δ only changes how strongly the
//! curvature directions are trusted.
use anyhow::Result;
use burn::backend::NdArray;
use curvature::core::{Loss, Objective};
use curvature::data::optdigits;
use curvature::nets::{LogisticRegression, LogisticRegressionConfig};
use curvature::optim::{FixedDamping, LanczosOptConfig};

type B = NdArray<f32>;
type Digits = Objective<B, LogisticRegression<B>, 2>;
type Step<'a> = Box<dyn FnMut(&mut Digits) -> Result<()> + 'a>;

fn error(objective: &Digits) -> Result<f64> {
    Ok(1.0 - objective.evaluate()?.accuracy.unwrap_or(0.0))
}

fn main() -> Result<()> {
    let device = Default::default();
    <B as burn::tensor::backend::Backend>::seed(&device, 0); // reproducible initialisation
    let (train, test) = optdigits()?.split(797, 1)?;
    let updates = 25;
    println!(
        "softmax regression, optdigits: {} train / {} test, {updates} full-batch updates each\n",
        train.len(),
        test.len()
    );
    println!(
        "{:<28} {:>12} {:>12} {:>12}",
        "method", "train loss", "train error", "test error"
    );
    let init = LogisticRegressionConfig::optdigits().init::<B>(&device)?;
    let run = |name: String, mut step: Step| -> Result<()> {
        let mut objective = Objective::new(
            init.clone(),
            Loss::CrossEntropy,
            train.batches::<B, 2>(train.len(), &device)?,
        )?;
        for _ in 0..updates {
            step(&mut objective)?;
        }
        let eval = objective.evaluate()?;
        let test_objective = Objective::new(
            objective.model(),
            Loss::CrossEntropy,
            test.batches::<B, 2>(test.len(), &device)?,
        )?;
        println!(
            "{name:<28} {:>12.4} {:>11.2}% {:>11.2}%",
            eval.loss,
            100.0 * error(&objective)?,
            100.0 * error(&test_objective)?
        );
        Ok(())
    };
    run(
        "gradient descent (lr 1)".into(),
        Box::new(|o| {
            let (_, g) = o.gradient()?;
            o.set_params(o.params() - g)?;
            Ok(())
        }),
    )?;
    for delta in [1e-3, 1e-2, 1e-1, 1.0] {
        let mut opt = LanczosOptConfig::new().with_rank(50).init::<B>()?;
        let damping = FixedDamping::new(delta)?;
        run(
            format!("LanczosOPT δ = {delta:e}"),
            Box::new(move |o| {
                opt.step(o, delta, &damping)?;
                Ok(())
            }),
        )?;
    }
    Ok(())
}
