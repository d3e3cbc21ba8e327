//! Spectrum summaries: every statistic of SPEC §2, each labelled with its estimator.

use std::collections::BTreeMap;
use std::fmt;

use burn::config::Config;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::error::{Result as CResult, invalid};
use crate::hutchinson::hutchinson_trace;
use crate::operator::LinearOperator;
use crate::slq::{QuadratureRun, SlqConfig, SpectralDensity, slq};

/// Whether the operator may have negative eigenvalues; decides the rank-degeneracy rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Definiteness {
    /// Indefinite (the Hessian): combine the two Ritz values closest to 0.
    Indefinite,
    /// Positive semi-definite (the GGN): the single Ritz value closest to 0.
    Psd,
}

/// Configuration of [`spectrum`].
#[derive(Config, Debug)]
pub struct SpectrumConfig {
    /// SLQ (Lanczos steps, number of vectors, seed).
    #[config(default = "SlqConfig::new()")]
    pub slq: SlqConfig,
    /// Rademacher samples for the Hutchinson trace (0 = skip).
    #[config(default = 0)]
    pub hutchinson_samples: usize,
    /// Degeneracy rule.
    #[config(default = "Definiteness::Indefinite")]
    pub definiteness: Definiteness,
    /// Ritz values are split into clusters at gaps larger than `outlier_gap` × the median gap;
    /// outliers are the Ritz values above the bulk cluster.
    #[config(default = 10.0)]
    pub outlier_gap: f64,
}

impl SpectrumConfig {
    /// Check the configuration.
    ///
    /// # Errors
    /// [`CurvatureError::InvalidConfig`](crate::CurvatureError::InvalidConfig).
    pub fn validate(&self) -> CResult<()> {
        if !(self.outlier_gap.is_finite() && self.outlier_gap > 1.0) {
            return Err(invalid("outlier_gap", self.outlier_gap, "must be a finite factor > 1"));
        }
        self.slq.validate()
    }
}

/// A Hessian (or GGN, …) spectrum summary. Serialises to JSON with the field names below;
/// `estimators` says how each statistic was obtained.
#[derive(Debug, Clone, Serialize)]
pub struct SpectrumSummary {
    /// Dimension `P`.
    pub num_params: usize,
    /// Lanczos steps per vector.
    pub lanczos_steps: usize,
    /// Number of SLQ vectors `n_v`.
    pub num_vectors: usize,
    /// Ritz values pooled over the vectors, ascending.
    pub ritz_values: Vec<f64>,
    /// Their weights (sum to 1).
    pub ritz_weights: Vec<f64>,
    /// Largest Ritz value.
    pub lambda_max: f64,
    /// Smallest Ritz value.
    pub lambda_min: f64,
    /// `Tr A` by SLQ, `P Σ ρ θ` (mean over vectors).
    pub trace: f64,
    /// Standard error of `trace` across SLQ vectors (`null` for one vector).
    pub trace_stderr: Option<f64>,
    /// `Tr A` by Hutchinson (Rademacher probes), if requested.
    pub trace_hutchinson: Option<f64>,
    /// Standard error of the Hutchinson estimate.
    pub trace_hutchinson_stderr: Option<f64>,
    /// `Tr A / P`.
    pub mean_eigenvalue: f64,
    /// `‖A‖_F = sqrt(P Σ ρ θ²)`.
    pub frobenius: f64,
    /// Spectral mass at the origin (rank degeneracy).
    pub degenerate_mass: f64,
    /// Weighted location of that mass.
    pub degenerate_location: f64,
    /// Weight of negative Ritz values, excluding the degenerate node(s).
    pub negative_mass: f64,
    /// Number of negative Ritz values, excluding the degenerate node(s), over all vectors.
    pub negative_count: usize,
    /// Number of Ritz values above the bulk (median over vectors).
    pub outliers: usize,
    /// Upper edge of the bulk (median over vectors).
    pub bulk_edge: f64,
    /// Estimator of each statistic.
    pub estimators: BTreeMap<&'static str, &'static str>,
}

impl SpectrumSummary {
    /// Summarise a spectral density.
    pub fn from_density(density: &SpectralDensity, steps: usize, config: &SpectrumConfig) -> Self {
        let (nodes, weights) = density.pooled();
        let p = density.dim as f64;
        let (trace, trace_stderr) = density.trace();
        let (tr2, _) = density.trace_of_square();
        let per_run: Vec<RunStats> = density.runs.iter().map(|r| run_stats(r, config)).collect();
        let nv = per_run.len() as f64;
        let degenerate_mass = per_run.iter().map(|s| s.degenerate_mass).sum::<f64>() / nv;
        let degenerate_location = if degenerate_mass > 0.0 {
            per_run.iter().map(|s| s.degenerate_mass * s.degenerate_location).sum::<f64>() / (nv * degenerate_mass)
        } else {
            0.0
        };
        let mut outliers: Vec<usize> = per_run.iter().map(|s| s.outliers).collect();
        outliers.sort_unstable();
        let mut edges: Vec<f64> = per_run.iter().map(|s| s.bulk_edge).collect();
        edges.sort_by(f64::total_cmp);
        let degeneracy_rule = match config.definiteness {
            Definiteness::Indefinite => "SLQ: summed weight and weighted location of the two Ritz values closest to 0 (Granziol, Flatness is a False Friend, App. D)",
            Definiteness::Psd => "SLQ: weight of the Ritz value closest to 0",
        };
        let estimators = BTreeMap::from([
            ("lambda_max", "largest Ritz value (Lanczos)"),
            ("lambda_min", "smallest Ritz value (Lanczos)"),
            ("trace", "SLQ: P·Σρθ, mean over vectors"),
            ("trace_stderr", "standard error across SLQ vectors"),
            ("trace_hutchinson", "Hutchinson: mean of zᵀAz, Rademacher z"),
            ("mean_eigenvalue", "SLQ trace / P"),
            ("frobenius", "SLQ: sqrt(P·Σρθ²)"),
            ("degenerate_mass", degeneracy_rule),
            ("negative_mass", "SLQ: weight of negative Ritz values apart from the degenerate node(s) (Granziol et al., True loss surface, §5.3)"),
            ("negative_count", "count of negative Ritz values apart from the degenerate node(s)"),
            ("outliers", "Ritz values above the bulk cluster (clusters split at gaps > outlier_gap × median gap)"),
        ]);
        Self {
            num_params: density.dim,
            lanczos_steps: steps,
            num_vectors: density.runs.len(),
            lambda_max: nodes.last().copied().unwrap_or(0.0),
            lambda_min: nodes.first().copied().unwrap_or(0.0),
            ritz_values: nodes,
            ritz_weights: weights,
            trace,
            trace_stderr,
            trace_hutchinson: None,
            trace_hutchinson_stderr: None,
            mean_eigenvalue: trace / p,
            frobenius: tr2.max(0.0).sqrt(),
            degenerate_mass,
            degenerate_location,
            negative_mass: per_run.iter().map(|s| s.negative_mass).sum::<f64>() / nv,
            negative_count: per_run.iter().map(|s| s.negative_count).sum(),
            outliers: outliers[outliers.len() / 2],
            bulk_edge: edges[edges.len() / 2],
            estimators,
        }
    }

    /// The summary as pretty JSON.
    ///
    /// # Errors
    /// Serialisation errors (none expected).
    pub fn to_json(&self) -> CResult<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

impl fmt::Display for SpectrumSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "spectrum of a {}-dimensional operator ({} Lanczos steps × {} vector(s))", self.num_params, self.lanczos_steps, self.num_vectors)?;
        writeln!(f, "  λ_max            {:>13.6e}   largest Ritz value", self.lambda_max)?;
        writeln!(f, "  λ_min            {:>13.6e}   smallest Ritz value", self.lambda_min)?;
        match self.trace_stderr {
            Some(s) => writeln!(f, "  trace            {:>13.6e}   SLQ (± {s:.2e})", self.trace)?,
            None => writeln!(f, "  trace            {:>13.6e}   SLQ, one vector", self.trace)?,
        }
        if let Some(t) = self.trace_hutchinson {
            writeln!(f, "  trace            {:>13.6e}   Hutchinson (± {:.2e})", t, self.trace_hutchinson_stderr.unwrap_or(f64::NAN))?;
        }
        writeln!(f, "  mean eigenvalue  {:>13.6e}   trace / P", self.mean_eigenvalue)?;
        writeln!(f, "  Frobenius norm   {:>13.6e}   SLQ sqrt(P Σρθ²)", self.frobenius)?;
        writeln!(f, "  degenerate mass  {:>13.6}   at λ ≈ {:.3e}", self.degenerate_mass, self.degenerate_location)?;
        writeln!(f, "  negative mass    {:>13.6}   {} negative Ritz value(s)", self.negative_mass, self.negative_count)?;
        write!(f, "  outliers         {:>13}   above the bulk edge {:.4e}", self.outliers, self.bulk_edge)
    }
}

struct RunStats {
    degenerate_mass: f64,
    degenerate_location: f64,
    negative_mass: f64,
    negative_count: usize,
    outliers: usize,
    bulk_edge: f64,
}

fn run_stats(run: &QuadratureRun, config: &SpectrumConfig) -> RunStats {
    let m = run.nodes.len();
    // Degenerate node(s): the one or two Ritz values of smallest magnitude.
    let mut by_mag: Vec<usize> = (0..m).collect();
    by_mag.sort_by(|&a, &b| run.nodes[a].abs().total_cmp(&run.nodes[b].abs()));
    let take = match config.definiteness {
        Definiteness::Indefinite => 2,
        Definiteness::Psd => 1,
    }
    .min(m);
    let degenerate: Vec<usize> = by_mag[..take].to_vec();
    let degenerate_mass: f64 = degenerate.iter().map(|&k| run.weights[k]).sum();
    let degenerate_location = if degenerate_mass > 0.0 {
        degenerate.iter().map(|&k| run.weights[k] * run.nodes[k]).sum::<f64>() / degenerate_mass
    } else {
        0.0
    };
    let negatives: Vec<usize> = (0..m).filter(|k| run.nodes[*k] < 0.0 && !degenerate.contains(k)).collect();
    let negative_mass = negatives.iter().map(|&k| run.weights[k]).sum::<f64>() + 0.0; // + 0.0: an empty sum is −0.0
    // Bulk and outliers by gap clustering (nodes are ascending).
    let gaps: Vec<f64> = run.nodes.windows(2).map(|w| w[1] - w[0]).collect();
    let (outliers, bulk_edge) = if gaps.is_empty() {
        (0, run.nodes.first().copied().unwrap_or(0.0))
    } else {
        let mut sorted = gaps.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2].max(f64::MIN_POSITIVE);
        // Clusters as index ranges.
        let mut clusters = vec![(0usize, 0usize)];
        for (k, g) in gaps.iter().enumerate() {
            if *g > config.outlier_gap * median {
                clusters.push((k + 1, k + 1));
            } else {
                clusters.last_mut().expect("non-empty").1 = k + 1;
            }
        }
        let weight = |&(a, b): &(usize, usize)| -> f64 { (a..=b).filter(|k| !degenerate.contains(k)).map(|k| run.weights[k]).sum() };
        let bulk = clusters
            .iter()
            .max_by(|x, y| weight(x).total_cmp(&weight(y)))
            .copied()
            .expect("non-empty");
        (m - 1 - bulk.1, run.nodes[bulk.1])
    };
    RunStats { degenerate_mass, degenerate_location, negative_mass, negative_count: negatives.len(), outliers, bulk_edge }
}

/// Everything at once: SLQ (+ Hutchinson if requested) and the summary.
///
/// ```no_run
/// # use curvature_core::*;
/// # fn f<B: burn::tensor::backend::Backend>(op: &DenseOperator<B>) -> CResult<()> {
/// let summary = spectrum(op, &SpectrumConfig::new())?;
/// println!("{summary}");
/// # Ok(()) }
/// ```
///
/// # Errors
/// Invalid configuration and operator errors.
pub fn spectrum<B: Backend, A: LinearOperator<B> + ?Sized>(op: &A, config: &SpectrumConfig) -> CResult<SpectrumSummary> {
    config.validate()?;
    let (density, runs) = slq(op, &config.slq)?;
    let steps = runs.iter().map(|r| r.steps()).max().unwrap_or(0);
    let mut summary = SpectrumSummary::from_density(&density, steps, config);
    if config.hutchinson_samples > 0 {
        let t = hutchinson_trace(op, config.hutchinson_samples, config.slq.lanczos.seed ^ 0x5EED)?;
        summary.trace_hutchinson = Some(t.trace);
        summary.trace_hutchinson_stderr = t.stderr;
    }
    Ok(summary)
}
