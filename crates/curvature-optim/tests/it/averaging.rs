//! Iterate averaging: the averaged model is the arithmetic mean of the averaged iterates; its
//! state round-trips through records; Gadam trains.

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::record::{BinBytesRecorder, DoublePrecisionSettings, Recorder};

use curvature_core::testing::{assert_rel_close, to_vec};
use curvature_core::{BatchNormMode, Loss, ParamLayout};
use curvature_data::optdigits;
use curvature_nets::{LogisticRegression, LogisticRegressionConfig};
use curvature_optim::*;

type B = NdArray<f64>;
type AB = Autodiff<B>;

fn step<O: Optimizer<LogisticRegression<AB>, AB>>(
    opt: &mut O,
    model: LogisticRegression<AB>,
    lr: f64,
) -> LogisticRegression<AB> {
    let dev = Default::default();
    let data = optdigits().unwrap().take(200);
    let batch = &data.batches::<B, 2>(200, &dev).unwrap()[0];
    let loss = Loss::CrossEntropy.batch_mean(&model, batch, BatchNormMode::Train);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    opt.step(lr, model, grads)
}

#[test]
fn average_is_the_mean_of_the_averaged_iterates() {
    let dev = Default::default();
    let sgd = SgdConfig::new()
        .with_momentum(0.9)
        .init::<AB, LogisticRegression<AB>>()
        .unwrap();
    let mut opt = IterateAveraging::new(
        sgd,
        AveragingSchedule {
            start: 3,
            frequency: 2,
        },
    )
    .unwrap();
    let mut model = LogisticRegressionConfig::optdigits()
        .init::<AB>(&dev)
        .unwrap();
    let layout = ParamLayout::of(&model).unwrap();
    assert!(opt.averaged(model.clone()).unwrap().is_none());
    let mut iterates = Vec::new();
    for s in 1..=9 {
        model = step(&mut opt, model, 0.5);
        if s >= 3 && (s - 3) % 2 == 0 {
            iterates.push(to_vec(&layout.flatten(&model.valid()).unwrap()));
        }
    }
    assert_eq!(opt.count(), 4, "steps 3, 5, 7, 9");
    let mean: Vec<f64> = (0..layout.dim())
        .map(|i| iterates.iter().map(|w| w[i]).sum::<f64>() / iterates.len() as f64)
        .collect();
    let avg = opt.averaged(model.clone()).unwrap().unwrap();
    assert_rel_close(
        &to_vec(&layout.flatten(&avg.valid()).unwrap()),
        &mean,
        1e-12,
        "running mean vs arithmetic mean",
    );
    // Round trip through a record.
    let recorder = BinBytesRecorder::<DoublePrecisionSettings>::default();
    let bytes = recorder
        .record(Optimizer::<LogisticRegression<AB>, AB>::to_record(&opt), ())
        .unwrap();
    let fresh = IterateAveraging::new(
        SgdConfig::new()
            .with_momentum(0.9)
            .init::<AB, LogisticRegression<AB>>()
            .unwrap(),
        AveragingSchedule {
            start: 3,
            frequency: 2,
        },
    )
    .unwrap();
    let restored = Optimizer::<LogisticRegression<AB>, AB>::load_record(
        fresh,
        recorder.load(bytes, &dev).unwrap(),
    );
    assert_eq!(restored.count(), 4);
    let again = restored.averaged(model).unwrap().unwrap();
    assert_eq!(
        to_vec(&layout.flatten(&again.valid()).unwrap()),
        to_vec(&layout.flatten(&avg.valid()).unwrap())
    );
    assert!(
        IterateAveraging::<(), AB>::new(
            (),
            AveragingSchedule {
                start: 0,
                frequency: 0
            }
        )
        .is_err()
    );
}

#[test]
fn gadam_trains_and_averages() {
    let dev = Default::default();
    let mut opt = gadam::<AB, LogisticRegression<AB>>(
        1e-4,
        AveragingSchedule {
            start: 10,
            frequency: 1,
        },
    )
    .unwrap();
    let mut model = LogisticRegressionConfig::optdigits()
        .init::<AB>(&dev)
        .unwrap();
    for _ in 0..20 {
        model = step(&mut opt, model, 0.01);
    }
    assert_eq!(opt.count(), 11);
    assert!(opt.averaged(model).unwrap().is_some());
}

/// The averaged weights never produced the batch-norm statistics the model holds: one pass
/// over the data re-estimates them (equal-weight average of the batch statistics).
#[test]
fn batch_norm_statistics_are_recomputed_for_the_averaged_model() {
    use burn::tensor::Tensor;
    use curvature_core::Batch;
    use curvature_nets::{
        SimpleCnn, SimpleCnnConfig, StatsUpdate, recompute_running_stats, with_running_stats,
    };
    let dev = Default::default();
    let data = optdigits().unwrap().take(120);
    let batches: Vec<Batch<B, 4>> = data
        .batches::<B, 2>(40, &dev)
        .unwrap()
        .into_iter()
        .map(|b| Batch {
            inputs: b.inputs.reshape([40, 1, 8, 8]),
            targets: b.targets,
        })
        .collect();
    let mut model: SimpleCnn<AB> = SimpleCnnConfig::new(1, [8, 8], vec![3], 10)
        .init(&dev)
        .unwrap();
    let mut opt = gadam::<AB, SimpleCnn<AB>>(
        1e-4,
        AveragingSchedule {
            start: 2,
            frequency: 1,
        },
    )
    .unwrap();
    for b in batches.iter().cycle().take(6) {
        // Training updates the running statistics of the raw iterates as it goes.
        let loss = with_running_stats(StatsUpdate::Momentum, || {
            Loss::CrossEntropy.batch_mean(&model, b, BatchNormMode::Train)
        });
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = opt.step(1e-2, model, grads);
    }
    let averaged = opt.averaged(model).unwrap().unwrap().valid();
    recompute_running_stats(&averaged, &batches).unwrap();
    // Reference, computed on the host from the first convolution's outputs: the mean over
    // batches of each channel's mean and of its unbiased variance (n = 40 · 64 values per
    // channel; PyTorch's `update_bn` with momentum None, an equal-weight cumulative average).
    let (mut expected, mut expected_var) = (vec![0.0; 3], vec![0.0; 3]);
    for b in &batches {
        let h = averaged.convs[0].forward(b.inputs.clone());
        let values: Vec<f64> = h
            .swap_dims(0, 1)
            .reshape([3, 40 * 64])
            .into_data()
            .iter::<f64>()
            .collect();
        for (c, channel) in values.chunks(40 * 64).enumerate() {
            let n = channel.len() as f64;
            let mean = channel.iter().sum::<f64>() / n;
            let var = channel.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            expected[c] += mean / batches.len() as f64;
            expected_var[c] += var / batches.len() as f64;
        }
    }
    let read = |t: Tensor<B, 1>| -> Vec<f64> { t.into_data().iter::<f64>().collect() };
    let got = read(averaged.norms[0].running_mean.value());
    assert_rel_close(&got, &expected, 1e-12, "recomputed running mean");
    let got_var = read(averaged.norms[0].running_var.value());
    assert_rel_close(
        &got_var,
        &expected_var,
        1e-12,
        "recomputed running variance",
    );
    // The recomputed statistics replace the raw iterate's: not the initial ones either.
    assert!(
        got_var.iter().all(|v| (v - 1.0).abs() > 1e-6),
        "{got_var:?}"
    );
    let empty: Vec<Batch<B, 4>> = Vec::new();
    assert!(recompute_running_stats(&averaged, &empty).is_err());
}

/// [`IterateAverage`] on its own (what training loops around KFAC and LanczosOPT use): the
/// mean of the observed modules, a record round trip, and a clear error for a module of
/// another shape.
#[test]
fn a_standalone_average_follows_any_loop_and_refuses_another_model() {
    let dev = Default::default();
    let schedule = AveragingSchedule {
        start: 1,
        frequency: 1,
    };
    let mut avg = IterateAverage::<AB>::new(schedule).unwrap();
    // Two independent initialisations: different weights.
    let a = LogisticRegressionConfig::new(64, 10)
        .init::<AB>(&dev)
        .unwrap();
    let b = LogisticRegressionConfig::new(64, 10)
        .init::<AB>(&dev)
        .unwrap();
    assert!(avg.averaged(a.clone()).unwrap().is_none());
    avg.observe(&a).unwrap();
    avg.observe(&b).unwrap();
    assert_eq!((avg.steps(), avg.count()), (2, 2));
    let layout = ParamLayout::of(&a).unwrap();
    let (wa, wb) = (
        to_vec(&layout.flatten(&a.valid()).unwrap()),
        // Blocks are found by parameter id: each module flattens with its own layout.
        to_vec(&ParamLayout::of(&b).unwrap().flatten(&b.valid()).unwrap()),
    );
    assert_ne!(wa, wb);
    let mean: Vec<f64> = wa.iter().zip(&wb).map(|(x, y)| (x + y) / 2.0).collect();
    let averaged = avg.averaged(a.clone()).unwrap().unwrap();
    assert_rel_close(
        &to_vec(&layout.flatten(&averaged.valid()).unwrap()),
        &mean,
        1e-12,
        "mean of two modules",
    );
    let restored = IterateAverage::<AB>::new(schedule)
        .unwrap()
        .load_record(avg.to_record());
    assert_eq!((restored.steps(), restored.count()), (2, 2));
    assert_eq!(
        to_vec(
            &layout
                .flatten(&restored.averaged(a).unwrap().unwrap().valid())
                .unwrap()
        ),
        to_vec(&layout.flatten(&averaged.valid()).unwrap())
    );
    let other = LogisticRegressionConfig::new(10, 3)
        .init::<AB>(&dev)
        .unwrap();
    let err = avg.observe(&other).unwrap_err().to_string();
    assert!(err.contains("parameter count"), "{err}");
}

/// Averaging as a [`TrainingStep`] wrapper around any optimiser (here KFAC, and Gadam through
/// [`OptimizerConfig::gadam`]): the stepped models are the inner optimiser's, bit for bit; the
/// average is the arithmetic mean of the iterates from `start` on (computed here on the host
/// from the models the loop saw); saving and loading through files continues identically.
#[test]
fn averaging_wraps_any_training_step_and_round_trips_through_files() {
    let dev = Default::default();
    let data = optdigits().unwrap().take(120);
    let batches = data.batches::<B, 2>(40, &dev).unwrap();
    let schedule = AveragingSchedule {
        start: 3,
        frequency: 2,
    };
    let damping = FixedDamping::new(0.1).unwrap();
    let model = LogisticRegressionConfig::optdigits()
        .init::<AB>(&dev)
        .unwrap();
    let layout = ParamLayout::of(&model).unwrap();
    let flat = |m: &LogisticRegression<AB>| to_vec(&layout.flatten(&m.valid()).unwrap());
    for inner in [
        OptimizerConfig::Kfac(KfacConfig::new()),
        OptimizerConfig::Adam(AdamConfig::adamw(1e-4)),
    ] {
        let averaged = OptimizerConfig::Averaged {
            inner: Box::new(inner.clone()),
            schedule,
        };
        let mut plain = inner.init::<B, LogisticRegression<AB>>().unwrap();
        let mut opt = averaged.init::<B, LogisticRegression<AB>>().unwrap();
        let (mut a, mut b) = (model.clone(), model.clone());
        let mut iterates = Vec::new();
        let dir = tempfile::tempdir().unwrap();
        for (s, batch) in (1..=8).zip(batches.iter().cycle()) {
            a = plain
                .train_step(a, batch, Loss::CrossEntropy, 0.05, &damping)
                .unwrap()
                .0;
            b = opt
                .train_step(b, batch, Loss::CrossEntropy, 0.05, &damping)
                .unwrap()
                .0;
            assert_eq!(flat(&a), flat(&b), "step {s}: the wrapper changes no step");
            if s >= 3 && (s - 3) % 2 == 0 {
                iterates.push(flat(&b));
            }
            if s == 4 {
                // Save mid-run and continue from the files.
                let path = dir.path().join("optimizer");
                opt.save(&path).unwrap();
                assert!(average_path(&path).with_extension("bin").exists());
                opt = averaged
                    .init::<B, LogisticRegression<AB>>()
                    .unwrap()
                    .load(&path, &dev)
                    .unwrap();
            }
        }
        assert!(plain.averaged(a.clone()).unwrap().is_none(), "no average");
        let mean: Vec<f64> = (0..layout.dim())
            .map(|i| iterates.iter().map(|w| w[i]).sum::<f64>() / iterates.len() as f64)
            .collect();
        let avg = opt.averaged(b).unwrap().expect("averaging has started");
        assert_rel_close(&flat(&avg), &mean, 1e-12, "average of steps 3, 5, 7");
    }
    let gadam = serde_json::to_string(&OptimizerConfig::gadam(1e-4, schedule)).unwrap();
    assert!(gadam.contains(r#""kind":"averaged""#), "{gadam}");
    assert!(gadam.contains(r#""kind":"adam""#), "{gadam}");
}
