//! The training loop of one run: epochs of optimiser steps, each epoch evaluated; everything
//! else (RMT damping, the blow-up guard, progress, spectra, checkpoints, CSV and plots) is an
//! [`Observer`] of it.

use super::*;

/// Load `config.init_weights`, if given.
pub(super) fn initial_weights<BB: Backend, M: burn::module::Module<BB>>(
    config: &TrainConfig,
    model: M,
) -> Result<M> {
    match &config.init_weights {
        Some(path) => load_weights(model, path),
        None => Ok(model),
    }
}

pub(super) fn schedule(config: &TrainConfig) -> Schedule {
    match config.schedule {
        ScheduleKind::Constant => Schedule::Constant,
        ScheduleKind::Cosine => Schedule::Cosine { min_ratio: 0.0 },
        ScheduleKind::LinearDecay => Schedule::LinearDecay { ratio: 0.01 },
        // α_avg = α₀/2 as in the paper; validation guarantees averaging is on.
        ScheduleKind::AveragingDecay => Schedule::AveragingDecay {
            averaging_start: config.averaging_start().unwrap_or(config.epochs) as f64,
            avg_ratio: 0.5,
        },
        ScheduleKind::WarmRamp => Schedule::WarmRamp {
            kappa: 5.0,
            ratio: 0.01,
        },
    }
}

/// Loss and accuracy of `model` (inference form) on `data` (with a group: each peer on its
/// share of the batches, [`group_objective`]).
pub(super) fn evaluate<BB: Backend, M: CurvatureModel<BB, D>, const D: usize>(
    model: &M,
    data: &[Batch<BB, D>],
    group: Option<&PeerGroup<BB>>,
) -> Result<(f64, f64)> {
    let e = group_objective(model.clone(), data, group)?.evaluate()?;
    Ok((e.loss, e.accuracy.unwrap_or(0.0)))
}

/// Whether the user asked the run to stop: peer 0 (the one a Ctrl-C reaches through the
/// command) decides, and with a group every peer learns it at the same step (one all-reduce of
/// one number), so that they stop together.
fn stop_requested<BB: Backend>(
    interrupt: Option<&Interrupt>,
    group: Option<&PeerGroup<BB>>,
    device: &BB::Device,
) -> Result<bool> {
    let Some(interrupt) = interrupt else {
        return Ok(false);
    };
    let mine = group.is_none_or(|g| g.rank() == 0) && interrupt.raised();
    match group {
        None => Ok(mine),
        Some(g) => {
            let flag =
                curvature_core::reduce::from_host::<BB>(vec![f64::from(u8::from(mine))], device);
            Ok(curvature_core::reduce::scalar(g.all_reduce_sum(flag)?) > 0.0)
        }
    }
}

/// What a run is given: its configuration, directory, options and data.
pub(super) struct RunInputs<'a> {
    pub(super) config: &'a TrainConfig,
    pub(super) paths: &'a RunPaths,
    pub(super) resume: bool,
    pub(super) options: RunOptions,
    pub(super) train: &'a ClassificationData,
    pub(super) val: &'a ClassificationData,
}

/// Train `model` as `inputs` say; the metrics of every epoch of the run (on a resume, those
/// before the checkpoint too).
///
/// With a `group`, this is one peer of a data-parallel run: every peer runs this loop on its
/// share of every global batch with the same optimiser state, and peer 0 alone writes the run's
/// files (checkpoints, CSV, plots, weights) and prints its progress.
pub(super) fn run<BB: Backend, M, const D: usize>(
    inputs: &RunInputs<'_>,
    model: M,
    device: &BB::Device,
    group: Option<PeerGroup<BB>>,
) -> Result<Vec<EpochMetrics>>
where
    M: AutodiffModule<Autodiff<BB>> + Network<Autodiff<BB>, D>,
    M::InnerModule: CurvatureModel<BB, D>,
{
    let RunInputs {
        config,
        paths,
        options,
        train,
        ..
    } = inputs;
    let group = group.as_ref();
    let lead = group.is_none_or(|g| g.rank() == 0);
    let progress = match lead {
        true => options.progress,
        false => ProgressMode::Quiet,
    };
    let mut run = Run::start(inputs, model, device, group)?;
    if inputs.resume && progress != ProgressMode::Quiet {
        eprintln!("{}", run.resuming_line(paths));
    }
    let data = LoopData::<BB, D>::load(config, train, inputs.val, run.state.rmt.is_some(), device)?;
    let mut observers = observers::<BB, M, D>(config, paths, progress, &data, group);
    let interrupted = || stop_requested::<BB>(options.interrupt.as_ref(), group, device);
    let sched = schedule(config);
    // A resumed run's earlier epochs: `metrics.csv`, truncated to the checkpoint's epochs.
    let mut rows = match inputs.resume && lead {
        true => paths.read_metrics()?,
        false => Vec::new(),
    };
    for epoch in run.state.epochs_done..config.epochs {
        let start = Instant::now();
        let batches = epoch_batches::<BB, D>(config, train, epoch, device, group)?;
        // With a step budget the last epoch stops when the budget is spent.
        let steps = match config.steps {
            Some(budget) => batches
                .len()
                .min(budget.saturating_sub(run.state.steps) + run.state.batches_done),
            None => batches.len(),
        };
        for o in &mut observers {
            o.epoch_started(&run, epoch, steps)?;
        }
        let mut lr = config.lr;
        for (i, batch) in batches
            .iter()
            .enumerate()
            .take(steps)
            .skip(run.state.batches_done)
        {
            let t = epoch as f64 + i as f64 / batches.len() as f64;
            lr = sched.learning_rate(config.lr, t, config.epochs as f64);
            for o in &mut observers {
                o.before_step(&mut run)?;
            }
            let (model, report) = run
                .opt
                .step(run.model, lr, batch, run.state.rmt.as_ref())
                .map_err(|(_, e)| match e {
                    OptimError::NonFiniteLoss(loss) => {
                        diverged(paths, &run.state, loss, String::new())
                    }
                    e => e.into(),
                })?;
            run.model = model;
            for o in &mut observers {
                o.after_step(&mut run, &report)?;
            }
            run.state.steps += 1;
            run.state.batches_done = i + 1;
            if interrupted()? && i + 1 < steps {
                for o in &mut observers {
                    o.interrupted(&run)?;
                }
                return Err(LabError::Interrupted {
                    step: run.state.steps,
                    out: paths.out.clone(),
                });
            }
        }
        for o in &mut observers {
            o.steps_done(&run);
        }
        let seconds = start.elapsed().as_secs_f64();
        let reported = run.reported_model(&data.train_eval)?;
        let (train_loss, train_accuracy) = evaluate(&reported, &data.train_eval, group)?;
        let (val_loss, val_accuracy) = evaluate(&reported, &data.val, group)?;
        run.state.epochs_done = epoch + 1;
        run.state.batches_done = 0;
        let row = EpochMetrics {
            epoch: epoch + 1,
            step: run.state.steps,
            lr,
            damping: run.opt.damping(run.state.rmt.as_ref()),
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
            seconds,
        };
        for o in &mut observers {
            o.epoch_ended(&run, &row, &reported)?;
        }
        rows.push(row);
        if interrupted()? && epoch + 1 < config.epochs {
            return Err(LabError::Interrupted {
                step: run.state.steps,
                out: paths.out.clone(),
            });
        }
    }
    // The reported model: with iterate averaging, the average (as Gadam and SWA evaluate).
    let reported = run.reported_model(&data.train_eval)?;
    if !lead {
        return Ok(rows);
    }
    save_safetensors(&reported, paths.weights(), &module_path)?;
    if let Some(last) = rows.last() {
        write_atomic(
            &paths.summary(),
            serde_json::to_string_pretty(last)
                .expect("serialisable")
                .as_bytes(),
        )?;
    }
    Ok(rows)
}
