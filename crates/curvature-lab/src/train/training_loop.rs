//! The training loop of one run: epochs of optimiser steps with RMT damping, blow-up
//! detection, interruption, evaluation, spectra and checkpoints.

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

/// Loss and accuracy of `model` (inference form) on `data`.
pub(super) fn evaluate<BB: Backend, M: CurvatureModel<BB, D>, const D: usize>(
    model: &M,
    data: &[Batch<BB, D>],
) -> Result<(f64, f64)> {
    let e = Objective::new(model.clone(), Loss::CrossEntropy, data.to_vec())?.evaluate()?;
    Ok((e.loss, e.accuracy.unwrap_or(0.0)))
}

/// The model a run reports on: the current iterate, or once iterate averaging has begun the
/// averaged weights with their batch-norm statistics recomputed over `data` (the averaged
/// weights never produced statistics of their own; Izmailov et al. 2018).
pub(super) fn reported_model<BB: Backend, M, const D: usize>(
    model: &M,
    average: Option<&IterateAverage<Autodiff<BB>>>,
    data: &Vec<Batch<BB, D>>,
) -> Result<M::InnerModule>
where
    M: AutodiffModule<Autodiff<BB>>,
    M::InnerModule: CurvatureModel<BB, D>,
{
    match average.map(|a| a.averaged(model.clone())).transpose()? {
        Some(Some(averaged)) => {
            let inner = averaged.valid();
            recompute_running_stats(&inner, data)?;
            Ok(inner)
        }
        _ => Ok(model.valid()),
    }
}

/// Training examples (the first ones) on which the spectra during training are measured.
const SPECTRUM_EXAMPLES: usize = 10_000;

#[allow(clippy::too_many_arguments)]
pub(super) fn run<BB: Backend, M, const D: usize>(
    config: &TrainConfig,
    paths: &RunPaths,
    resume: bool,
    options: RunOptions,
    mut model: M,
    train: &ClassificationData,
    val: &ClassificationData,
    device: &BB::Device,
) -> Result<Vec<EpochMetrics>>
where
    M: AutodiffModule<Autodiff<BB>> + Network<Autodiff<BB>, D>,
    M::InnerModule: CurvatureModel<BB, D>,
{
    let device = device.clone();
    let quiet = options.progress == ProgressMode::Quiet;
    let mut opt = RunOptimizer::<BB, M>::new(config)?;
    let auto = matches!(config.damping, Some(DampingSetting::Auto(_)));
    if auto && train.len().min(config.rmt_subsample) <= 128 {
        return Err(invalid(
            "rmt_subsample",
            format!(
                "{} ({} training examples)",
                config.rmt_subsample,
                train.len()
            ),
            "RMT auto-damping estimates the Hessian variance on batches of 128 and needs a sub-sample of more than 128 training examples (at least two batches)",
        ));
    }
    let floor = opt.damping_floor();
    let mut state = State {
        epochs_done: 0,
        batches_done: 0,
        steps: 0,
        first_loss: None,
        steps_above: 0,
        backend: Some(options.backend),
        rmt: if auto {
            Some(
                RmtDamping::new(floor)?
                    .with_schedule(config.damping_interval, 0.7)?
                    .for_training_batch(config.batch_size.min(train.len()), Some(train.len()))?,
            )
        } else {
            None
        },
    };
    if resume {
        let ck = paths.checkpoint();
        let text = std::fs::read_to_string(ck.join("state.json"))
            .map_err(|e| io(ck.join("state.json"), e))?;
        state = serde_json::from_str(&text).map_err(|e| io(ck.join("state.json"), e))?;
        // Another backend or precision would continue with other numbers, silently.
        let here = options.backend;
        if let Some(trained) = state.backend
            && (trained.backend, trained.precision) != (here.backend, here.precision)
        {
            return Err(invalid(
                "backend",
                format!("{here} (the run was trained on {trained})"),
                "resume a run on the backend and precision it was trained on (--backend, --precision), so that it continues bit-identically",
            ));
        }
        state.backend = Some(here);
        model = model.load_record(load_record(&ck.join("model"), &device)?);
        opt = opt.load(&ck.join("optimizer"), &device)?;
        // Keep the rows of the checkpointed epochs only.
        truncate_csv(&paths.metrics(), state.epochs_done)?;
        truncate_csv(&paths.spectra_csv(), state.epochs_done)?;
        if !quiet {
            eprintln!(
                "resuming {} after epoch {}{} (step {})",
                paths.out.display(),
                state.epochs_done,
                if state.batches_done > 0 {
                    format!(" + {} batches", state.batches_done)
                } else {
                    String::new()
                },
                state.steps
            );
        }
    }
    let batch_size = config.batch_size.min(train.len());
    // Iterate averaging from the end of epoch T_avg (in steps), on any optimiser.
    let mut average = match config.averaging_start() {
        Some(t_avg) => {
            let average = IterateAverage::<Autodiff<BB>>::new(AveragingSchedule {
                start: (t_avg * config.batches_per_epoch(train.len())).max(1),
                frequency: config.average_every,
            })?;
            Some(if resume {
                average.load_record(load_record(&paths.checkpoint().join("average"), &device)?)
            } else {
                average
            })
        }
        None => None,
    };
    // Training-time augmentation, drawn anew every epoch from (seed, epoch).
    let augmentation = match train.example_shape[..] {
        [_, h, w] => config.augmentation(h.min(w)),
        _ => None,
    };

    let val_batches = val.batches::<BB, D>(val.len().min(1000), &device)?;
    let train_eval = train.batches::<BB, D>(train.len().min(1000), &device)?;
    // The first `n` training examples in batches of 128: the data of the spectra recorded
    // during training (`SPECTRUM_EXAMPLES`) and of the RMT re-estimate (`rmt_subsample`,
    // damping paper §7: 10 000), shared when the two are the same examples.
    let first_batches = |n: usize| {
        train
            .take(n)
            .batches::<BB, D>(128.min(train.len()), &device)
    };
    let spectrum_data = match config.spectrum_every {
        0 => None,
        _ => Some(first_batches(SPECTRUM_EXAMPLES)?),
    };
    let same_examples = config.rmt_subsample.min(train.len()) == SPECTRUM_EXAMPLES.min(train.len());
    let rmt_data = match (&state.rmt, &spectrum_data) {
        (None, _) => None,
        (Some(_), Some(shared)) if same_examples => Some(shared.clone()),
        (Some(_), _) => Some(first_batches(config.rmt_subsample)?),
    };
    let sched = schedule(config);
    let mut rows = Vec::new();
    for epoch in state.epochs_done..config.epochs {
        let start = Instant::now();
        // A fixed permutation per (seed, epoch): resumed runs see the same batches.
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(curvature_core::derive_seed(
            config.seed,
            epoch as u64,
        ));
        order.shuffle(&mut rng);
        let epoch_data = match &augmentation {
            Some(a) => std::borrow::Cow::Owned(a.augment_all(
                train,
                curvature_core::derive_seed(config.seed ^ AUGMENT_STREAM, epoch as u64),
            )?),
            None => std::borrow::Cow::Borrowed(train),
        };
        let batches = epoch_data
            .select(&order)
            .batches::<BB, D>(batch_size, &device)?;
        drop(epoch_data);
        // With a step budget the last epoch stops when the budget is spent.
        let n_batches = match config.steps {
            Some(budget) => batches
                .len()
                .min(budget.saturating_sub(state.steps) + state.batches_done),
            None => batches.len(),
        };
        let mut bar = Progress::new(
            format!("epoch {}/{}", epoch + 1, config.epochs),
            n_batches,
            options.progress,
        );
        let skip = state.batches_done;
        bar.advance(skip, "");
        let mut lr = config.lr;
        for (i, batch) in batches.iter().enumerate().take(n_batches).skip(skip) {
            let t = epoch as f64 + i as f64 / batches.len() as f64;
            lr = sched.learning_rate(config.lr, t, config.epochs as f64);
            if let (Some(rmt), Some(data)) = (&mut state.rmt, &rmt_data) {
                // Fresh vectors at every re-estimate (seeded by the step count: resumable).
                let base = HessianVarianceConfig::new()
                    .with_seed(config.seed)
                    .with_vectors(config.rmt_vectors)
                    .with_max_examples(config.rmt_subsample);
                rmt.step_estimating(&base, |cfg| {
                    let objective =
                        Objective::new(model.valid(), Loss::CrossEntropy, data.clone())?;
                    Ok(curvature_core::hessian_variance(&objective, cfg)?)
                })?;
            }
            let result = opt.step(model, lr, batch, state.rmt.as_ref());
            let loss;
            (model, loss) = match result {
                Ok((stepped, report)) => (stepped, report.loss),
                Err((_, OptimError::NonFiniteLoss(loss))) => {
                    bar.finish();
                    return Err(LabError::Diverged {
                        loss,
                        cause: String::new(),
                        step: state.steps,
                        epoch: epoch + 1,
                        checkpoint: Some(paths.checkpoint()).filter(|p| p.exists()),
                    });
                }
                Err((_, e)) => return Err(e.into()),
            };
            if let Some(cause) = state.blown_up(loss, config) {
                bar.finish();
                return Err(LabError::Diverged {
                    loss,
                    cause,
                    step: state.steps,
                    epoch: epoch + 1,
                    checkpoint: Some(paths.checkpoint()).filter(|p| p.exists()),
                });
            }
            if let Some(a) = &mut average {
                a.observe(&model)?;
            }
            state.steps += 1;
            state.batches_done = i + 1;
            bar.advance(1, &format!("loss {loss:.4}"));
            if options.interrupt.as_ref().is_some_and(Interrupt::raised) && i + 1 < n_batches {
                bar.finish();
                checkpoint(paths, &model, &opt, average.as_ref(), &state)?;
                return Err(LabError::Interrupted {
                    step: state.steps,
                    out: paths.out.clone(),
                });
            }
        }
        bar.finish();
        let seconds = start.elapsed().as_secs_f64();
        let reported = reported_model(&model, average.as_ref(), &train_eval)?;
        let (train_loss, train_accuracy) = evaluate(&reported, &train_eval)?;
        let (val_loss, val_accuracy) = evaluate(&reported, &val_batches)?;
        state.epochs_done = epoch + 1;
        state.batches_done = 0;
        let damping = opt.damping(state.rmt.as_ref());
        let row = EpochMetrics {
            epoch: epoch + 1,
            step: state.steps,
            lr,
            damping,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
            seconds,
        };
        // Every `spectrum_every` epochs, and after the last one.
        if let Some(data) = spectrum_data
            .as_ref()
            .filter(|_| (epoch + 1) % config.spectrum_every == 0 || epoch + 1 == config.epochs)
        {
            record_spectrum(config, paths, &reported, data, &row, options.progress)?;
        }
        checkpoint(paths, &model, &opt, average.as_ref(), &state)?;
        csv_table::append(&paths.metrics(), &HEADER, &row.fields())?;
        plot_run(paths)?;
        if !quiet {
            eprintln!(
                "epoch {}/{}  step {}  lr {:.3e}  train loss {:.4} acc {:.2}%  val loss {:.4} acc {:.2}%  ({:.1}s)",
                row.epoch,
                config.epochs,
                row.step,
                row.lr,
                row.train_loss,
                100.0 * row.train_accuracy,
                row.val_loss,
                100.0 * row.val_accuracy,
                row.seconds
            );
        }
        rows.push(row);
        if options.interrupt.as_ref().is_some_and(Interrupt::raised) && epoch + 1 < config.epochs {
            return Err(LabError::Interrupted {
                step: state.steps,
                out: paths.out.clone(),
            });
        }
    }
    // The reported model: with iterate averaging, the average (as Gadam and SWA evaluate).
    let reported = reported_model(&model, average.as_ref(), &train_eval)?;
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
