//! RMT auto-damping recovers the Hessian noise variance (unbiased estimator, rescaled to the
//! training batch) of a problem where it is known in closed form: least squares with a linear model, whose mini-batch Hessians are
//! `H_i = (2/K)(1/B) Σ_{n∈i} I_K ⊗ x̃_n x̃_nᵀ`.

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use curvature_core::testing::to_vec;
use curvature_core::{Batch, HessianVarianceConfig, Loss, Objective};
use curvature_data::optdigits;
use curvature_nets::LogisticRegressionConfig;
use curvature_optim::{DampingPolicy, RmtDamping};

type B = NdArray<f64>;

/// Both sides are f64 sums of a few thousand terms: agreement to ≈1e-12; stated bound 1e-9.
const TOL: f64 = 1e-9;

#[test]
fn rmt_damping_recovers_the_known_hessian_variance() {
    let device = Default::default();
    let (k, d, bsz) = (10usize, 64usize, 64usize);
    let data = optdigits().unwrap().take(640);
    // Regression targets: one-hot labels (any targets give the same Hessians).
    let batches: Vec<Batch<B, 2>> = (0..data.len())
        .step_by(bsz)
        .map(|s| {
            let x = Tensor::from_data(
                TensorData::new(data.inputs[s * d..(s + bsz) * d].to_vec(), [bsz, d]),
                &device,
            );
            let mut y = vec![0.0f64; bsz * k];
            for n in 0..bsz {
                y[n * k + data.labels[s + n]] = 1.0;
            }
            Batch::regression(x, Tensor::from_data(TensorData::new(y, [bsz, k]), &device)).unwrap()
        })
        .collect();
    let model = LogisticRegressionConfig::new(d, k)
        .init::<B>(&device)
        .unwrap();
    let objective = Objective::new(model, Loss::MeanSquaredError, batches).unwrap();
    let seed = 5;
    // EMA 0 and interval 1: the damping is the estimate itself after one step. The damping is
    // for training batches of 32 drawn from the 640 examples.
    let mut damping = RmtDamping::new(1e-12)
        .unwrap()
        .with_schedule(1, 0.0)
        .unwrap()
        .for_training_batch(32, Some(640))
        .unwrap();
    let config = HessianVarianceConfig::new().with_seed(seed);
    // The vectors of the next re-estimate (fresh ones each time, derived from the step count);
    // the estimator normalises them, and so does the closed form.
    let vectors = damping
        .next_config(&config)
        .random_vectors::<B>(objective.dim(), &device);
    assert_eq!(vectors.len(), 4);
    let mut estimates = Vec::new();
    for v in &vectors {
        let v = to_vec(v);
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let v: Vec<f64> = v.iter().map(|x| x / norm).collect();
        let (vw, vb) = v.split_at(k * d);
        let (mut hvs, mut sq) = (Vec::new(), 0.0);
        for s in (0..data.len()).step_by(bsz) {
            let mut hv = vec![0.0f64; k * (d + 1)];
            for n in s..s + bsz {
                let x: Vec<f64> = data.inputs[n * d..(n + 1) * d]
                    .iter()
                    .map(|&p| p as f64)
                    .collect();
                for c in 0..k {
                    let u = (0..d).map(|a| vw[c * d + a] * x[a]).sum::<f64>() + vb[c];
                    let scale = 2.0 / k as f64 / bsz as f64;
                    for a in 0..d {
                        hv[c * d + a] += scale * u * x[a];
                    }
                    hv[k * d + c] += scale * u;
                }
            }
            sq += hv.iter().map(|a| a * a).sum::<f64>() / 10.0;
            hvs.push(hv);
        }
        // Σ_i w_i ‖H_i v‖² − ‖H̄v‖², equal weights 1/10.
        let mean: Vec<f64> = (0..hvs[0].len())
            .map(|j| hvs.iter().map(|h| h[j]).sum::<f64>() / 10.0)
            .collect();
        estimates.push(sq - mean.iter().map(|a| a * a).sum::<f64>());
    }
    let v_batch = estimates.iter().sum::<f64>() / 4.0;
    assert!(v_batch > 0.0);
    // δ = V_batch · S/(n − 1) · (1/B − 1/N) with S = N = 640, n = 10, B = 32.
    let expected = v_batch * 640.0 / 9.0 * (1.0 / 32.0 - 1.0 / 640.0);
    assert!(damping.step_with(&objective, &config).unwrap());
    assert!(
        (damping.damping() - expected).abs() <= TOL * expected,
        "δ = {} vs {expected}",
        damping.damping()
    );
    // The logged re-estimate: the closed-form batch variance, the per-example variance
    // `V_batch·S/(n − 1)`, and δ̂ = δ (EMA 0).
    let [e] = damping.estimates.as_slice() else {
        panic!("one re-estimate: {:?}", damping.estimates)
    };
    assert_eq!(e.step, 1);
    assert!((e.batch_variance - v_batch).abs() <= TOL * v_batch);
    let per_example = e.per_example_variance.unwrap();
    assert!((per_example - v_batch * 640.0 / 9.0).abs() <= TOL * per_example);
    assert!(e.batch_variance_stderr.is_some() && e.per_example_variance_stderr.is_some());
    assert_eq!(
        (e.estimate, e.delta),
        (damping.damping(), damping.damping())
    );
    // The next re-estimate draws other vectors.
    let next = damping
        .next_config(&config)
        .random_vectors::<B>(objective.dim(), &device);
    assert_ne!(to_vec(&next[0]), to_vec(&vectors[0]));
    // Without a training batch the damping is the batch variance itself (the paper's setting
    // of equal estimation and training batches).
    let mut plain = RmtDamping::new(1e-12)
        .unwrap()
        .with_schedule(1, 0.0)
        .unwrap();
    let config = plain.next_config(&HessianVarianceConfig::new().with_seed(seed));
    let variance = curvature_core::hessian_variance(&objective, &config).unwrap();
    assert!(
        plain
            .step_with(&objective, &HessianVarianceConfig::new().with_seed(seed))
            .unwrap()
    );
    assert_eq!(plain.damping(), variance.batch_variance);
    // One estimation batch cannot be rescaled to a training batch: a clear error.
    let one = Objective::new(
        objective.model(),
        Loss::MeanSquaredError,
        vec![objective_first_batch(&objective)],
    )
    .unwrap();
    let mut one_batch = RmtDamping::new(1e-12)
        .unwrap()
        .with_schedule(1, 0.0)
        .unwrap()
        .for_training_batch(32, None)
        .unwrap();
    let err = one_batch
        .step_with(&one, &HessianVarianceConfig::new())
        .unwrap_err();
    assert!(
        err.to_string().contains("at least two estimation batches"),
        "{err}"
    );
}

fn objective_first_batch(
    objective: &Objective<B, curvature_nets::LogisticRegression<B>, 2>,
) -> Batch<B, 2> {
    let mut first = None;
    objective
        .for_each_batch(&mut |b| {
            first.get_or_insert_with(|| b.clone());
            Ok(())
        })
        .unwrap();
    first.unwrap()
}

/// Adam's ε is its damping: a [`DampingCell`] carries a learned δ (here from [`RmtDamping`])
/// into a burn Adam optimiser between steps.
#[test]
fn a_damping_cell_sets_adams_epsilon_during_training() {
    use burn::backend::Autodiff;
    use burn::module::AutodiffModule;
    use burn::optim::{GradientsParams, Optimizer};
    use curvature_core::BatchNormMode;
    use curvature_core::testing::random_classification_batch;
    use curvature_nets::LogisticRegression;
    use curvature_optim::{AdamConfig, DampingCell};
    type AB = Autodiff<B>;
    type M = LogisticRegression<AB>;
    let device = Default::default();
    let batch = random_classification_batch::<B, 2>([32, 6], 3, 5, &device);
    let model = LogisticRegressionConfig::new(6, 3)
        .init::<AB>(&device)
        .unwrap();
    let train = |mut opt: Box<dyn FnMut(M, GradientsParams) -> M>, between: &dyn Fn(usize)| {
        let mut m = model.clone();
        for i in 0..4 {
            between(i);
            let loss = Loss::CrossEntropy.batch_mean(&m, &batch, BatchNormMode::Train);
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            m = opt(m, grads);
        }
        to_vec(
            &curvature_core::ParamLayout::of(&m)
                .unwrap()
                .flatten(&m.valid())
                .unwrap(),
        )
    };
    let fixed = |eps: f64| {
        let mut o = AdamConfig::new().with_epsilon(eps).init::<AB, M>().unwrap();
        train(Box::new(move |m, g| o.step(0.05, m, g)), &|_| {})
    };
    let (small, large) = (fixed(1e-8), fixed(0.1));
    // A cell held at 0.1 is Adam with ε = 0.1, bit for bit.
    let cell = DampingCell::new(0.1).unwrap();
    let mut o = AdamConfig::new()
        .init_damped::<AB, M>(cell.clone())
        .unwrap();
    assert_eq!(
        train(Box::new(move |m, g| o.step(0.05, m, g)), &|_| {}),
        large
    );
    // Switching the cell mid-training changes the later steps only.
    let cell = DampingCell::new(1e-8).unwrap();
    let mut o = AdamConfig::new()
        .init_damped::<AB, M>(cell.clone())
        .unwrap();
    let switched = train(Box::new(move |m, g| o.step(0.05, m, g)), &|i| {
        if i == 2 {
            cell.set(0.1).unwrap();
        }
    });
    assert_ne!(switched, small);
    assert_ne!(switched, large);
    // An RMT policy publishes its δ through the cell.
    let mut rmt = RmtDamping::new(1e-3)
        .unwrap()
        .with_schedule(1, 0.0)
        .unwrap();
    rmt.step(|| Ok(0.25)).unwrap();
    let cell = DampingCell::new(1e-8).unwrap();
    cell.follow(&rmt).unwrap();
    assert_eq!(cell.damping(), 0.25);
    assert!(cell.set(f64::NAN).is_err() && cell.damping() == 0.25);
}
