//! Where a run's files are.

use super::*;

/// Where a run's files are.
#[derive(Debug, Clone)]
pub struct RunPaths {
    /// The output directory.
    pub out: PathBuf,
}

impl RunPaths {
    /// `OUT/config.json`.
    pub fn config(&self) -> PathBuf {
        self.out.join("config.json")
    }
    /// `OUT/metrics.csv`.
    pub fn metrics(&self) -> PathBuf {
        self.out.join("metrics.csv")
    }
    /// `OUT/checkpoint`.
    pub fn checkpoint(&self) -> PathBuf {
        self.out.join("checkpoint")
    }
    /// `OUT/checkpoint.old`: the previous checkpoint during the swap in [`checkpoint`].
    pub(super) fn previous_checkpoint(&self) -> PathBuf {
        self.out.join("checkpoint.old")
    }
    /// `OUT/checkpoint.tmp`: the next checkpoint while [`checkpoint`] writes it.
    pub(super) fn checkpoint_tmp(&self) -> PathBuf {
        self.out.join("checkpoint.tmp")
    }
    /// After a crash between the two renames of the checkpoint swap only `checkpoint.old`
    /// exists (complete: it was the checkpoint until then): move it back so that resuming,
    /// `--checkpoint` and sweeps find it.
    ///
    /// # Errors
    /// The rename's I/O error.
    pub fn recover_checkpoint(&self) -> Result<()> {
        let (ck, old) = (self.checkpoint(), self.previous_checkpoint());
        if !ck.join("state.json").exists() && old.join("state.json").exists() {
            if ck.exists() {
                std::fs::remove_dir_all(&ck).map_err(|e| io(&ck, e))?;
            }
            std::fs::rename(&old, &ck).map_err(|e| io(&old, e))?;
        }
        Ok(())
    }
    /// `OUT/weights.safetensors`.
    pub fn weights(&self) -> PathBuf {
        self.out.join("weights.safetensors")
    }
    /// `OUT/summary.json`.
    pub fn summary(&self) -> PathBuf {
        self.out.join("summary.json")
    }
    /// `OUT/plots`.
    pub fn plots(&self) -> PathBuf {
        self.out.join("plots")
    }
    /// `OUT/spectra.csv`.
    pub fn spectra_csv(&self) -> PathBuf {
        self.out.join("spectra.csv")
    }
    /// `OUT/rmt.csv`: the RMT auto-damping's re-estimates.
    pub fn rmt_csv(&self) -> PathBuf {
        self.out.join("rmt.csv")
    }
    /// `OUT/spectra`.
    pub fn spectra(&self) -> PathBuf {
        self.out.join("spectra")
    }
    /// The rows of `metrics.csv`.
    ///
    /// # Errors
    /// An unreadable file.
    pub fn read_metrics(&self) -> Result<Vec<EpochMetrics>> {
        let (_, rows) =
            csv_table::read(&self.metrics())?.ok_or_else(|| io(self.metrics(), "not found"))?;
        Ok(rows.iter().filter_map(EpochMetrics::from_record).collect())
    }

    /// The rows of `spectra.csv` (empty when the run recorded no spectra).
    ///
    /// # Errors
    /// [`LabError::Io`] if the file exists but cannot be read.
    pub fn read_spectra(&self) -> Result<Vec<SpectrumRecord>> {
        Ok(
            csv_table::read(&self.spectra_csv())?.map_or_else(Vec::new, |(_, rows)| {
                rows.iter()
                    .filter_map(SpectrumRecord::from_record)
                    .collect()
            }),
        )
    }
}
