//! The one step trait: every optimiser, built by `OptimizerConfig` and stepped through
//! `TrainingStep::train_step`, takes exactly the step of its own API; Adam's ε is the damping
//! policy's δ; a saved and restored state continues bit-identically; refused steps return the
//! model untouched.
//!
//! What makes the references independent of the code under test: each one steps a second
//! optimiser through its native API — burn's `Optimizer::step` on gradients from
//! `backward()` for SGD and Adam (whose ε comes from its config, not from a damping cell),
//! `Kfac::step` with the forward closure, `LanczosOpt::step` on an `Objective` — never through
//! the trait or `AnyOptimizer`. (The updates themselves are checked against PyTorch's formulas
//! and exact solves in `first_order.rs`, `kfac.rs` and `lanczos_opt.rs`.)

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::Tensor;
use curvature_core::testing::to_vec;
use curvature_core::{Batch, BatchNormMode, Loss, Network, Objective, ParamLayout};
use curvature_data::optdigits;
use curvature_nets::{Mlp, MlpConfig};
use curvature_optim::*;

type B = NdArray<f64>;
type AB = Autodiff<B>;
type Model = Mlp<AB>;

const LR: f64 = 0.05;

/// An MLP 64-8-10 and three batches of 20 digits. Every run of a test starts from clones of
/// the one model (initialisation draws from burn's global generator).
fn setup() -> (Model, Vec<Batch<B, 2>>) {
    let dev = Default::default();
    let batches = optdigits()
        .unwrap()
        .take(60)
        .batches::<B, 2>(20, &dev)
        .unwrap();
    let model = MlpConfig::new(64, vec![8], 10).init::<AB>(&dev).unwrap();
    (model, batches)
}

/// The trainable parameters, flat.
fn params(m: &Model) -> Vec<f64> {
    let inner = m.valid();
    to_vec(
        &ParamLayout::of_model(&inner)
            .unwrap()
            .flatten(&inner)
            .unwrap(),
    )
}

fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Three steps through the trait.
fn trait_steps(
    config: &OptimizerConfig,
    delta: f64,
    (model, batches): &(Model, Vec<Batch<B, 2>>),
) -> Vec<f64> {
    let mut model = model.clone();
    let mut opt = config.init::<B, Model>().unwrap();
    let damping = FixedDamping::new(delta).unwrap();
    for (i, batch) in batches.iter().enumerate() {
        let (m, report) = opt
            .train_step(model, batch, Loss::CrossEntropy, LR, &damping)
            .map_err(|(_, e)| e)
            .unwrap();
        assert_eq!(report.step, i);
        assert!(report.loss.is_finite() && report.loss > 0.0);
        model = m;
    }
    params(&model)
}

/// Three steps of a burn optimiser on `backward()`'s gradients.
fn native_first_order<O: Optimizer<Model, AB>>(
    mut opt: O,
    (model, batches): &(Model, Vec<Batch<B, 2>>),
) -> Vec<f64> {
    let mut model = model.clone();
    for batch in batches {
        let loss = Loss::CrossEntropy.batch_mean(&model, batch, BatchNormMode::Train);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = opt.step(LR, model, grads);
    }
    params(&model)
}

#[test]
fn every_optimiser_takes_the_step_of_its_own_api() {
    let data = setup();
    // SGD: the damping is not used (any δ).
    let sgd = SgdConfig::new().with_momentum(0.9);
    let got = trait_steps(&OptimizerConfig::Sgd(sgd.clone()), 123.0, &data);
    let native = native_first_order(sgd.init::<AB, Model>().unwrap(), &data);
    assert_eq!(max_rel_diff(&got, &native), 0.0, "sgd");

    // Adam: ε is the policy's δ, not the config's 1e-8.
    let got = trait_steps(&OptimizerConfig::Adam(AdamConfig::new()), 0.03, &data);
    let native = native_first_order(
        AdamConfig::new()
            .with_epsilon(0.03)
            .init::<AB, Model>()
            .unwrap(),
        &data,
    );
    assert_eq!(max_rel_diff(&got, &native), 0.0, "adam, ε = δ");
    let undamped = native_first_order(AdamConfig::new().init::<AB, Model>().unwrap(), &data);
    assert!(
        max_rel_diff(&got, &undamped) > 1e-3,
        "ε = 0.03 and ε = 1e-8 give different steps"
    );

    // KFAC (factors and inverses every step).
    let kfac = KfacConfig::new().with_cov_interval(1).with_inv_interval(1);
    let got = trait_steps(&OptimizerConfig::Kfac(kfac.clone()), 0.1, &data);
    let (mut model, batches) = data.clone();
    let mut native = kfac.init::<AB, Model>().unwrap();
    let damping = FixedDamping::new(0.1).unwrap();
    for batch in &batches {
        let x = Tensor::<AB, 2>::from_inner(batch.inputs.clone());
        model = native
            .step(
                model,
                LR,
                &damping,
                Loss::CrossEntropy,
                &batch.targets,
                |m| m.output(x.clone(), BatchNormMode::Train),
            )
            .map_err(|(_, e)| e)
            .unwrap()
            .0;
    }
    assert_eq!(max_rel_diff(&got, &params(&model)), 0.0, "kfac");

    // LanczosOPT on the batch's objective.
    let lanczos = LanczosOptConfig::new().with_rank(5);
    let got = trait_steps(&OptimizerConfig::LanczosOpt(lanczos.clone()), 0.5, &data);
    let (model, batches) = data.clone();
    let mut native = lanczos.init::<B>().unwrap();
    let mut inner = model.valid();
    for batch in &batches {
        let mut objective = Objective::new(inner, Loss::CrossEntropy, vec![batch.clone()]).unwrap();
        native
            .step(&mut objective, LR, &FixedDamping::new(0.5).unwrap())
            .unwrap();
        inner = objective.model();
    }
    let native = to_vec(
        &ParamLayout::of_model(&inner)
            .unwrap()
            .flatten(&inner)
            .unwrap(),
    );
    assert_eq!(max_rel_diff(&got, &native), 0.0, "lanczos-opt");
}

#[test]
fn saved_state_continues_bit_identically_and_foreign_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Default::default();
    let configs = [
        OptimizerConfig::Sgd(SgdConfig::new().with_momentum(0.9)),
        OptimizerConfig::Adam(AdamConfig::new()),
        OptimizerConfig::Kfac(KfacConfig::new()),
        OptimizerConfig::LanczosOpt(LanczosOptConfig::new().with_rank(4)),
    ];
    let damping = FixedDamping::new(0.1).unwrap();
    for config in &configs {
        let (mut model, batches) = setup();
        let mut opt = config.init::<B, Model>().unwrap();
        let name = TrainingStep::<B, Model>::name(&opt);
        for batch in &batches[..2] {
            model = opt
                .train_step(model, batch, Loss::CrossEntropy, LR, &damping)
                .map_err(|(_, e)| e)
                .unwrap()
                .0;
        }
        let path = dir.path().join(name);
        TrainingStep::<B, Model>::save(&opt, &path).unwrap();
        let restored = config
            .init::<B, Model>()
            .unwrap()
            .load(&path, &dev)
            .unwrap();
        let step = |mut o: AnyOptimizer<B, Model>| {
            o.train_step(model.clone(), &batches[2], Loss::CrossEntropy, LR, &damping)
                .map_err(|(_, e)| e)
                .unwrap()
        };
        let (a, ra) = step(opt);
        let (b, rb) = step(restored);
        assert_eq!(params(&a), params(&b), "{name}: the step after a restore");
        assert_eq!(
            (ra.step, rb.step),
            (2, 2),
            "{name}: the step count is restored"
        );
        assert_eq!(ra.loss, rb.loss);
    }
    // Another optimiser's record, and a missing file: specific errors naming the file.
    let e = TrainingStep::<B, Model>::load(
        configs[0].init::<B, Model>().unwrap(),
        &dir.path().join("kfac"),
        &dev,
    )
    .err()
    .expect("an SGD state cannot be read from KFAC's file");
    assert!(
        matches!(&e, OptimError::Record { path, .. } if path.ends_with("kfac.bin")),
        "{e}"
    );
    let e = TrainingStep::<B, Model>::load(
        configs[2].init::<B, Model>().unwrap(),
        &dir.path().join("missing"),
        &dev,
    )
    .err()
    .expect("no file");
    assert!(e.to_string().contains("missing.bin"), "{e}");
}

/// A policy that returns whatever it holds (invalid values included).
struct Raw(f64);

impl DampingPolicy for Raw {
    fn damping(&self) -> f64 {
        self.0
    }
}

#[test]
fn refused_steps_return_the_model_untouched() {
    let (model, batches) = setup();
    let before = params(&model);
    let configs = [
        OptimizerConfig::Sgd(SgdConfig::new()),
        OptimizerConfig::Adam(AdamConfig::new()),
        OptimizerConfig::Kfac(KfacConfig::new()),
        OptimizerConfig::LanczosOpt(LanczosOptConfig::new().with_rank(4)),
    ];
    for config in &configs {
        let mut opt = config.init::<B, Model>().unwrap();
        let name = TrainingStep::<B, Model>::name(&opt);
        // A learning rate that is not positive.
        for lr in [0.0, -1.0, f64::NAN] {
            let (m, e) = opt
                .train_step(
                    model.clone(),
                    &batches[0],
                    Loss::CrossEntropy,
                    lr,
                    &Raw(0.1),
                )
                .err()
                .unwrap_or_else(|| panic!("{name}: lr {lr} accepted"));
            assert_eq!(params(&m), before, "{name}");
            assert!(e.to_string().contains("lr"), "{name}: {e}");
        }
        // A damping that is not positive: refused by every damped optimiser, ignored by SGD.
        let damped = TrainingStep::<B, Model>::is_damped(&opt);
        let result = opt.train_step(
            model.clone(),
            &batches[0],
            Loss::CrossEntropy,
            LR,
            &Raw(-1.0),
        );
        match result {
            Err((m, e)) => {
                assert!(damped, "{name}: {e}");
                assert_eq!(params(&m), before, "{name}");
                assert!(e.to_string().contains("-1"), "{name}: {e}");
            }
            Ok(_) => assert!(!damped, "{name} took a step with δ = -1"),
        }
    }
    // A non-finite loss (NaN inputs) is refused too.
    let mut bad = batches[0].clone();
    bad.inputs = bad.inputs.mul_scalar(f64::NAN);
    for config in &configs {
        let mut opt = config.init::<B, Model>().unwrap();
        let (m, e) = opt
            .train_step(model.clone(), &bad, Loss::CrossEntropy, LR, &Raw(0.1))
            .expect_err("NaN loss");
        assert_eq!(params(&m), before);
        // KFAC and the first-order steps check the loss themselves; LanczosOPT's objective
        // refuses it first.
        assert!(
            matches!(e, OptimError::NonFiniteLoss(_)) || e.to_string().contains("non-finite"),
            "{e}"
        );
    }
}

#[test]
fn optimizer_configs_round_trip_through_json_with_their_kind() {
    let config = OptimizerConfig::LanczosOpt(LanczosOptConfig::new().with_rank(7).with_eta(3.0));
    let json = serde_json::to_string(&config).unwrap();
    assert!(json.contains(r#""kind":"lanczos-opt""#), "{json}");
    match serde_json::from_str::<OptimizerConfig>(&json).unwrap() {
        OptimizerConfig::LanczosOpt(c) => assert_eq!((c.rank, c.eta), (7, 3.0)),
        other => panic!("{other:?}"),
    }
    let adam =
        serde_json::to_string(&OptimizerConfig::Adam(AdamConfig::adam_d(5e-3, 0.0))).unwrap();
    assert!(adam.contains(r#""kind":"adam""#), "{adam}");
    let e = serde_json::from_str::<OptimizerConfig>(r#"{"kind":"rmsprop"}"#).unwrap_err();
    assert!(e.to_string().contains("unknown variant `rmsprop`"), "{e}");
}
