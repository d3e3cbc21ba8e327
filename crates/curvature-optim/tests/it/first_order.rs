//! Golden values: the first three steps of SGD and Adam/AdamW against an independent
//! re-implementation of the PyTorch update formulas, plus convergence, burn integration,
//! state save/load round trips and invalid configurations.
//!
//! The reference numbers were produced by this script (plain Python, no torch):
//!
//! ```python
//! # Independent re-implementation of torch.optim.SGD / Adam / AdamW update formulas (PyTorch
//! # 2.x docs, dampening = 0, maximize = False, amsgrad = False), in plain Python floats.
//! import math
//! w0 = [1.0, -2.0, 0.5]
//! grads = [[0.1, -0.2, 0.3], [-0.05, 0.4, 0.1], [0.2, 0.0, -0.3]]
//! lr = 0.1
//!
//! def sgd(momentum=0.0, nesterov=False, wd=0.0, decoupled=False):
//!     p = list(w0); buf = None
//!     for g in grads:
//!         if decoupled:
//!             p = [x * (1 - lr * wd) for x in p]; d = list(g)
//!         else:
//!             d = [gi + wd * pi for gi, pi in zip(g, p)]
//!         if momentum:
//!             buf = list(d) if buf is None else [momentum * b + di for b, di in zip(buf, d)]
//!             d = [di + momentum * b for di, b in zip(d, buf)] if nesterov else list(buf)
//!         p = [pi - lr * di for pi, di in zip(p, d)]
//!     return p
//!
//! def adam(b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False):
//!     p = list(w0); m = [0.0] * 3; v = [0.0] * 3
//!     for t, g in enumerate(grads, start=1):
//!         if decoupled:
//!             p = [x * (1 - lr * wd) for x in p]
//!         else:
//!             g = [gi + wd * pi for gi, pi in zip(g, p)]
//!         m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
//!         v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
//!         bc1 = 1 - b1 ** t; bc2 = 1 - b2 ** t
//!         p = [pi - (lr / bc1) * mi / (math.sqrt(vi) / math.sqrt(bc2) + eps) for pi, mi, vi in zip(p, m, v)]
//!     return p
//!
//! cases = {
//!     "sgd": sgd(), "sgd_momentum": sgd(0.9), "sgd_nesterov": sgd(0.9, True),
//!     "sgd_l2": sgd(0.9, False, 0.01), "sgd_decoupled": sgd(0.9, False, 0.01, True),
//!     "adam_eps_1e-8": adam(), "adam_eps_1e-1": adam(eps=1e-1), "adam_l2": adam(wd=0.01),
//!     "adamw": adam(wd=0.01, decoupled=True), "adam_d": adam(eps=5e-3, wd=5e-4),
//! }
//! for k, v in cases.items():
//!     print(f'("{k}", [{", ".join(repr(x) for x in v)}]),')
//! ```

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer, SimpleOptimizer};
use burn::record::{BinBytesRecorder, DoublePrecisionSettings, Recorder};
use burn::tensor::{Tensor, TensorData};
use curvature_core::{BatchNormMode, Loss, Objective};
use curvature_data::optdigits;
use curvature_nets::{LogisticRegression, LogisticRegressionConfig};
use curvature_optim::*;

type B = NdArray<f64>;
type AB = Autodiff<B>;

/// Same formulas, f64 on both sides: only rounding (a few ulps) separates them.
const GOLDEN_TOL: f64 = 1e-12;

const W0: [f64; 3] = [1.0, -2.0, 0.5];
const GRADS: [[f64; 3]; 3] = [[0.1, -0.2, 0.3], [-0.05, 0.4, 0.1], [0.2, 0.0, -0.3]];

fn run<O: SimpleOptimizer<B>>(opt: &O) -> Vec<f64> {
    let dev = Default::default();
    let mut w = Tensor::<B, 1>::from_data(TensorData::new(W0.to_vec(), [3]), &dev);
    let mut state = None;
    for g in GRADS {
        let (nw, ns) = opt.step(
            0.1,
            w,
            Tensor::from_data(TensorData::new(g.to_vec(), [3]), &dev),
            state,
        );
        w = nw;
        state = ns;
    }
    w.into_data().iter::<f64>().collect()
}

fn check(name: &str, got: Vec<f64>, expected: [f64; 3]) {
    for (g, e) in got.iter().zip(expected) {
        assert!(
            (g - e).abs() <= GOLDEN_TOL * e.abs().max(1.0),
            "{name}: {got:?} vs {expected:?}"
        );
    }
}

#[test]
fn sgd_golden_values() {
    let d = WeightDecayMode::Decoupled;
    check(
        "sgd",
        run(&SgdConfig::new().build().unwrap()),
        [0.975, -2.02, 0.49],
    );
    check(
        "sgd_momentum",
        run(&SgdConfig::new().with_momentum(0.9).build().unwrap()),
        [0.9624, -2.0218, 0.42969999999999997],
    );
    check(
        "sgd_nesterov",
        run(&SgdConfig::new()
            .with_momentum(0.9)
            .with_nesterov(true)
            .build()
            .unwrap()),
        [0.94116, -2.0396199999999998, 0.42673],
    );
    check(
        "sgd_l2",
        run(&SgdConfig::new()
            .with_momentum(0.9)
            .with_weight_decay(0.01)
            .build()
            .unwrap()),
        [0.956827789, -2.010625578, 0.4270213695],
    );
    check(
        "sgd_decoupled",
        run(&SgdConfig::new()
            .with_momentum(0.9)
            .with_weight_decay(0.01)
            .with_weight_decay_mode(d)
            .build()
            .unwrap()),
        [0.959426989, -2.015823978, 0.4282984695],
    );
}

#[test]
fn adam_golden_values_across_epsilon() {
    check(
        "adam_eps_1e-8",
        run(&AdamConfig::new().build().unwrap()),
        [0.8075551543513814, -1.9649102641979639, 0.30805491514879363],
    );
    check(
        "adam_eps_1e-1",
        run(&AdamConfig::new().with_epsilon(1e-1).build().unwrap()),
        [0.9007577041658569, -1.981547664013794, 0.36135194113567537],
    );
    check(
        "adam_l2",
        run(&AdamConfig::new().with_weight_decay(0.01).build().unwrap()),
        [0.793599933780809, -1.9520598046138422, 0.30617057952903926],
    );
    check(
        "adamw",
        run(&AdamConfig::adamw(0.01).build().unwrap()),
        [0.8047846870319881, -1.9590795518364226, 0.3068434210333065],
    );
    check(
        "adam_d",
        run(&AdamConfig::adam_d(5e-3, 5e-4).build().unwrap()),
        // Adam-D is Adam with a large ε and Adam's L2 weight decay (damping paper §6).
        [0.8155615090747267, -1.9656130438564592, 0.3115972567539098],
    );
}

#[test]
fn invalid_configurations_are_rejected() {
    assert!(SgdConfig::new().with_momentum(1.0).build().is_err());
    assert!(SgdConfig::new().with_weight_decay(-0.1).build().is_err());
    assert!(SgdConfig::new().with_nesterov(true).build().is_err());
    assert!(AdamConfig::new().with_epsilon(0.0).build().is_err());
    assert!(
        AdamConfig::new()
            .with_beta_1(1.0)
            .build()
            .unwrap_err()
            .to_string()
            .contains("beta_1")
    );
    assert!(AdamConfig::new().with_beta_2(-0.1).build().is_err());
}

fn train<O: Optimizer<LogisticRegression<AB>, AB>>(
    mut opt: O,
    lr: f64,
    steps: usize,
) -> (f64, f64, O, LogisticRegression<AB>) {
    let dev = Default::default();
    let data = optdigits().unwrap().take(500);
    let batch = &data.batches::<B, 2>(500, &dev).unwrap()[0];
    let mut model = LogisticRegressionConfig::optdigits()
        .init::<AB>(&dev)
        .unwrap();
    let eval = |m: &LogisticRegression<AB>| {
        Objective::new(m.valid(), Loss::CrossEntropy, vec![batch.clone()])
            .unwrap()
            .evaluate()
            .unwrap()
            .loss
    };
    let start = eval(&model);
    for _ in 0..steps {
        let loss = Loss::CrossEntropy.batch_mean(&model, batch, BatchNormMode::Train);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = opt.step(lr, model, grads);
    }
    let end = eval(&model);
    (start, end, opt, model)
}

#[test]
fn every_optimiser_trains_softmax_regression_through_burns_optimizer_trait() {
    let (s, e, ..) = train(
        SgdConfig::new()
            .with_momentum(0.9)
            .init::<AB, LogisticRegression<AB>>()
            .unwrap(),
        0.5,
        60,
    );
    assert!(e < 0.35 * s, "SGD: loss {s} → {e}");
    let (s, e, ..) = train(
        AdamConfig::new()
            .init::<AB, LogisticRegression<AB>>()
            .unwrap(),
        0.05,
        60,
    );
    assert!(e < 0.35 * s, "Adam: loss {s} → {e}");
    let (s, e, ..) = train(
        AdamConfig::adam_d(5e-3, 1e-4)
            .init::<AB, LogisticRegression<AB>>()
            .unwrap(),
        0.01,
        60,
    );
    assert!(e < 0.5 * s, "Adam-D: loss {s} → {e}");
}

#[test]
fn state_round_trips_through_records_and_training_continues_identically() {
    let dev = Default::default();
    let cfg = AdamConfig::adamw(1e-3);
    let (_, _, opt, model) = train(cfg.init::<AB, LogisticRegression<AB>>().unwrap(), 0.05, 5);
    let recorder = BinBytesRecorder::<DoublePrecisionSettings>::default();
    let bytes = recorder.record(opt.to_record(), ()).unwrap();
    let restored = cfg
        .init::<AB, LogisticRegression<AB>>()
        .unwrap()
        .load_record(recorder.load(bytes, &dev).unwrap());
    // One more identical step from both optimisers.
    let data = optdigits().unwrap().take(100);
    let batch = &data.batches::<B, 2>(100, &dev).unwrap()[0];
    let step = |mut o: _, m: LogisticRegression<AB>| {
        let loss = Loss::CrossEntropy.batch_mean(&m, batch, BatchNormMode::Train);
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        let m = Optimizer::<LogisticRegression<AB>, AB>::step(&mut o, 0.05, m, grads);
        m.linear
            .weight
            .val()
            .into_data()
            .iter::<f64>()
            .collect::<Vec<_>>()
    };
    let a = step(opt, model.clone());
    let b = step(restored, model);
    assert_eq!(
        a, b,
        "restored optimiser state must continue bit-identically"
    );
}

#[test]
fn observed_steps_report_loss_and_damping_and_refuse_nan() {
    let dev = Default::default();
    let data = optdigits().unwrap().take(50);
    let batch = &data.batches::<B, 2>(50, &dev).unwrap()[0];
    let model = LogisticRegressionConfig::optdigits()
        .init::<AB>(&dev)
        .unwrap();
    let mut opt = AdamConfig::new()
        .init::<AB, LogisticRegression<AB>>()
        .unwrap();
    let mut history = History::default();
    let loss = Loss::CrossEntropy.batch_mean(&model, batch, BatchNormMode::Train);
    let expected: f64 = loss.clone().into_scalar();
    let model = observed_step(
        &mut opt,
        "adam",
        0,
        0.01,
        Some(1e-8),
        model,
        loss,
        &mut history,
    )
    .map_err(|(_, e)| e)
    .unwrap();
    let r = &history.reports[0];
    assert_eq!(
        (r.optimizer, r.step, r.loss, r.lr),
        ("adam", 0, expected, 0.01)
    );
    assert_eq!(r.damping, Some(1e-8));
    let nan = Tensor::<AB, 1>::from_data(TensorData::new(vec![f64::NAN], [1]), &dev);
    let res = observed_step(&mut opt, "adam", 1, 0.01, None, model, nan, &mut history);
    assert!(matches!(res, Err((_, OptimError::NonFiniteLoss(_)))));
    assert_eq!(history.reports.len(), 1, "a refused step is not reported");
}
