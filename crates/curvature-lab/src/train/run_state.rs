//! What the training loop advances ([`Run`]): the model, its optimiser and the progress a
//! checkpoint saves — started fresh or restored from the last checkpoint — and the model a
//! run reports on.

use super::*;

/// The model, its optimiser and the progress a checkpoint saves.
pub(super) struct Run<BB: Backend, M: AutodiffModule<Autodiff<BB>>> {
    pub(super) model: M,
    pub(super) opt: RunOptimizer<BB, M>,
    pub(super) state: State,
}

impl<BB: Backend, M: AutodiffModule<Autodiff<BB>>> Run<BB, M> {
    /// A fresh run of `model` on the training examples of `inputs`, or (`inputs.resume`) the
    /// one checkpointed in `inputs.paths`, refused on another backend, precision or number of
    /// peers than it was trained on. With a `group`, this peer's run.
    pub(super) fn start(
        inputs: &RunInputs<'_>,
        model: M,
        device: &BB::Device,
        group: Option<&PeerGroup<BB>>,
    ) -> Result<Self> {
        let (config, paths, backend) = (inputs.config, inputs.paths, inputs.options.backend);
        let train_len = inputs.train.len();
        let opt = RunOptimizer::<BB, M>::new(config, train_len)?;
        let opt = match group {
            Some(g) => opt.with_peers(g.clone())?,
            None => opt,
        };
        let peers = group.map_or(1, |g| g.peers());
        let auto = matches!(config.damping, Some(DampingSetting::Auto(_)));
        if auto && train_len.min(config.rmt_subsample) <= 128 {
            return Err(invalid(
                "rmt_subsample",
                format!("{} ({train_len} training examples)", config.rmt_subsample),
                "RMT auto-damping estimates the Hessian variance on batches of 128 and needs a sub-sample of more than 128 training examples (at least two batches)",
            ));
        }
        let rmt = match auto {
            true => Some(
                RmtDamping::new(opt.damping_floor())?
                    .with_schedule(config.damping_interval, 0.7)?
                    .for_training_batch(config.batch_size.min(train_len), Some(train_len))?,
            ),
            false => None,
        };
        let fresh = Self {
            model,
            opt,
            state: State {
                epochs_done: 0,
                batches_done: 0,
                steps: 0,
                first_loss: None,
                steps_above: 0,
                backend: Some(backend),
                rmt,
                peers: Some(peers),
            },
        };
        match inputs.resume {
            false => Ok(fresh),
            true => fresh.restore(paths, backend, device, group.is_none_or(|g| g.rank() == 0)),
        }
    }

    /// This run with model, optimiser and state from the checkpoint in `paths`, and the CSV
    /// files truncated to its epochs.
    /// Only the `lead` peer (peer 0, the one that writes) truncates the CSV files.
    fn restore(
        self,
        paths: &RunPaths,
        here: BackendChoice,
        device: &BB::Device,
        lead: bool,
    ) -> Result<Self> {
        let ck = paths.checkpoint();
        let mut state = State::read(&ck)?;
        // Another backend or precision would continue with other numbers, silently.
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
        // Another number of peers would share the batches differently (and, with batch norm
        // or sampled KFAC labels, step differently): refused rather than silently changed.
        let (trained, now) = (state.peers.unwrap_or(1), self.state.peers.unwrap_or(1));
        if trained != now {
            return Err(invalid(
                "peers",
                format!("{now} (the run was trained on {trained})"),
                "resume a run with the number of data-parallel peers it was trained on (--peers), so that it continues as it started",
            ));
        }
        let model = self
            .model
            .load_record(load_record(&ck.join("model"), device)?);
        let opt = self.opt.load(&ck.join("optimizer"), device)?;
        // Keep the rows of the checkpointed epochs only.
        if lead {
            truncate_csv(&paths.metrics(), state.epochs_done)?;
            truncate_csv(&paths.spectra_csv(), state.epochs_done)?;
        }
        Ok(Self { model, opt, state })
    }

    /// The model a run reports on: the current iterate, or once iterate averaging has begun the
    /// averaged weights with their batch-norm statistics recomputed over `data` (the averaged
    /// weights never produced statistics of their own; Izmailov et al. 2018).
    pub(super) fn reported_model<const D: usize>(
        &self,
        data: &Vec<Batch<BB, D>>,
    ) -> Result<M::InnerModule>
    where
        M::InnerModule: CurvatureModel<BB, D>,
    {
        match self.opt.averaged(self.model.clone())? {
            Some(averaged) => {
                let inner = averaged.valid();
                recompute_running_stats(&inner, data)?;
                Ok(inner)
            }
            None => Ok(self.model.valid()),
        }
    }

    /// The line a resumed run starts with.
    pub(super) fn resuming_line(&self, paths: &RunPaths) -> String {
        let s = &self.state;
        format!(
            "resuming {} after epoch {}{} (step {})",
            paths.out.display(),
            s.epochs_done,
            match s.batches_done {
                0 => String::new(),
                n => format!(" + {n} batches"),
            },
            s.steps
        )
    }
}
