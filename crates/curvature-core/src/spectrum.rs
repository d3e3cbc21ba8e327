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
            return Err(invalid(
                "outlier_gap",
                self.outlier_gap,
                "must be a finite factor > 1",
            ));
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
    /// The minimum mass at the origin implied by a rank bound, `1 − bound/P`, if one was given
    /// ([`SpectrumSummary::with_rank_bound`]).
    pub degenerate_mass_bound: Option<f64>,
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
            per_run
                .iter()
                .map(|s| s.degenerate_mass * s.degenerate_location)
                .sum::<f64>()
                / (nv * degenerate_mass)
        } else {
            0.0
        };
        let mut outliers: Vec<usize> = per_run.iter().map(|s| s.outliers).collect();
        outliers.sort_unstable();
        let mut edges: Vec<f64> = per_run.iter().map(|s| s.bulk_edge).collect();
        edges.sort_by(f64::total_cmp);
        let degeneracy_rule = match config.definiteness {
            Definiteness::Indefinite => {
                "SLQ: summed weight and weighted location of the two Ritz values closest to 0 (Granziol, Flatness is a False Friend, App. D)"
            }
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
            (
                "negative_mass",
                "SLQ: weight of negative Ritz values apart from the degenerate node(s) (Granziol et al., True loss surface, §5.3)",
            ),
            (
                "negative_count",
                "count of negative Ritz values apart from the degenerate node(s)",
            ),
            (
                "outliers",
                "Ritz values above the bulk cluster (clusters split at gaps > outlier_gap × median gap)",
            ),
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
            degenerate_mass_bound: None,
            estimators,
        }
    }

    /// Report the minimum spectral mass at the origin implied by `rank(H) ≤ bound` beside the
    /// measured one (see [`feedforward_rank_bound`]).
    pub fn with_rank_bound(mut self, bound: usize) -> Self {
        self.degenerate_mass_bound = Some((1.0 - bound as f64 / self.num_params as f64).max(0.0));
        self.estimators.insert(
            "degenerate_mass_bound",
            "1 − rank bound / P (Granziol, Flatness is a False Friend, §3.2)",
        );
        self
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
        writeln!(
            f,
            "spectrum of a {}-dimensional operator ({} Lanczos steps × {} vector(s))",
            self.num_params, self.lanczos_steps, self.num_vectors
        )?;
        writeln!(
            f,
            "  λ_max            {:>13.6e}   largest Ritz value",
            self.lambda_max
        )?;
        writeln!(
            f,
            "  λ_min            {:>13.6e}   smallest Ritz value",
            self.lambda_min
        )?;
        match self.trace_stderr {
            Some(s) => writeln!(
                f,
                "  trace            {:>13.6e}   SLQ (± {s:.2e})",
                self.trace
            )?,
            None => writeln!(
                f,
                "  trace            {:>13.6e}   SLQ, one vector",
                self.trace
            )?,
        }
        if let Some(t) = self.trace_hutchinson {
            writeln!(
                f,
                "  trace            {:>13.6e}   Hutchinson (± {:.2e})",
                t,
                self.trace_hutchinson_stderr.unwrap_or(f64::NAN)
            )?;
        }
        writeln!(
            f,
            "  mean eigenvalue  {:>13.6e}   trace / P",
            self.mean_eigenvalue
        )?;
        writeln!(
            f,
            "  Frobenius norm   {:>13.6e}   SLQ sqrt(P Σρθ²)",
            self.frobenius
        )?;
        writeln!(
            f,
            "  degenerate mass  {:>13.6}   at λ ≈ {:.3e}",
            self.degenerate_mass, self.degenerate_location
        )?;
        if let Some(b) = self.degenerate_mass_bound {
            writeln!(
                f,
                "  (rank bound)     {b:>13.6}   minimum mass at 0 implied by the rank bound"
            )?;
        }
        writeln!(
            f,
            "  negative mass    {:>13.6}   {} negative Ritz value(s)",
            self.negative_mass, self.negative_count
        )?;
        write!(
            f,
            "  outliers         {:>13}   above the bulk edge {:.4e}",
            self.outliers, self.bulk_edge
        )
    }
}

/// The rank bound of Granziol, *Flatness is a False Friend*, §3.2, for a feed-forward network
/// with `d_x` inputs, hidden layers of `N_l` neurons and `d_y` outputs:
/// `rank(H) ≤ 4 d_y (Σ_l N_l + d_x)`. For VGG-16 on CIFAR-10 it implies at least 96.4 % of the
/// spectral mass at the origin.
pub fn feedforward_rank_bound(d_x: usize, hidden: &[usize], d_y: usize) -> usize {
    4 * d_y * (hidden.iter().sum::<usize>() + d_x)
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
        degenerate
            .iter()
            .map(|&k| run.weights[k] * run.nodes[k])
            .sum::<f64>()
            / degenerate_mass
    } else {
        0.0
    };
    let negatives: Vec<usize> = (0..m)
        .filter(|k| run.nodes[*k] < 0.0 && !degenerate.contains(k))
        .collect();
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
        let weight = |&(a, b): &(usize, usize)| -> f64 {
            (a..=b)
                .filter(|k| !degenerate.contains(k))
                .map(|k| run.weights[k])
                .sum()
        };
        let bulk = clusters
            .iter()
            .max_by(|x, y| weight(x).total_cmp(&weight(y)))
            .copied()
            .expect("non-empty");
        (m - 1 - bulk.1, run.nodes[bulk.1])
    };
    RunStats {
        degenerate_mass,
        degenerate_location,
        negative_mass,
        negative_count: negatives.len(),
        outliers,
        bulk_edge,
    }
}

/// Everything at once: SLQ (+ Hutchinson if requested) and the summary.
///
/// ```no_run
/// # use curvature_core::*;
/// # fn f<B: burn::tensor::backend::Backend>(op: &DenseOperator<B>) -> Result<()> {
/// let summary = spectrum(op, &SpectrumConfig::new())?;
/// println!("{summary}");
/// # Ok(()) }
/// ```
///
/// # Errors
/// Invalid configuration and operator errors.
pub fn spectrum<B: Backend, A: LinearOperator<B> + ?Sized>(
    op: &A,
    config: &SpectrumConfig,
) -> CResult<SpectrumSummary> {
    config.validate()?;
    let (density, runs) = slq(op, &config.slq)?;
    let steps = runs.iter().map(|r| r.steps()).max().unwrap_or(0);
    let mut summary = SpectrumSummary::from_density(&density, steps, config);
    if config.hutchinson_samples > 0 {
        let t = hutchinson_trace(
            op,
            config.hutchinson_samples,
            config.slq.lanczos.seed ^ 0x5EED,
        )?;
        summary.trace_hutchinson = Some(t.trace);
        summary.trace_hutchinson_stderr = t.stderr;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lanczos::LanczosConfig;
    use crate::operator::{DenseOperator, dense_spectrum};
    use burn::backend::NdArray;
    use nalgebra::{DMatrix, DVector};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    type B = NdArray<f64>;

    fn gaussian(rows: usize, cols: usize, seed: u64) -> DMatrix<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        DMatrix::from_fn(rows, cols, |_, _| rng.sample(StandardNormal))
    }

    /// Random orthonormal matrix (QR of a Gaussian matrix).
    fn orthonormal(n: usize, seed: u64) -> DMatrix<f64> {
        gaussian(n, n, seed).qr().q()
    }

    fn config(steps: usize, vectors: usize) -> SpectrumConfig {
        SpectrumConfig::new().with_slq(
            SlqConfig::new()
                .with_lanczos(LanczosConfig::new().with_steps(steps))
                .with_num_vectors(vectors),
        )
    }

    /// Spiked Wishart: `W = XᵀX/n + Σ_k s_k u_k u_kᵀ`, `X: n × p` Gaussian. The bulk follows
    /// Marchenko–Pastur on `[(1 − √(p/n))², (1 + √(p/n))²] = [0.086, 2.91]` for p/n = ½; the
    /// five spikes sit far above it.
    #[test]
    fn spiked_gram_matrix_outliers_and_bulk_mass() {
        let (p, n) = (400, 800);
        let x = gaussian(n, p, 1);
        let mut w = x.transpose() * &x / n as f64;
        let u = orthonormal(p, 2);
        let spikes = [10.0, 14.0, 18.0, 24.0, 30.0];
        for (k, s) in spikes.iter().enumerate() {
            let uk = u.column(k);
            w += *s * uk * uk.transpose();
        }
        let dense = dense_spectrum(&w);
        let op = DenseOperator::<B>::from_nalgebra(&w, &Default::default()).unwrap();
        let summary = spectrum(&op, &config(80, 8)).unwrap();
        assert_eq!(
            summary.outliers,
            spikes.len(),
            "outliers = number of spikes; Ritz values {:?}",
            &summary.ritz_values[summary.ritz_values.len() - 8..]
        );
        // Outlier Ritz values equal the dense top eigenvalues (they converge first).
        let top_dense = &dense.eigenvalues[p - 1];
        assert!(
            (summary.lambda_max - top_dense).abs() <= 1e-8 * top_dense,
            "{} vs {top_dense}",
            summary.lambda_max
        );
        // Bulk mass: all weight not on the outliers; each outlier carries ≈ 1/P.
        let bulk_mass: f64 = summary
            .ritz_values
            .iter()
            .zip(&summary.ritz_weights)
            .filter(|(t, _)| **t <= summary.bulk_edge)
            .map(|(_, w)| w)
            .sum();
        let expected = 1.0 - spikes.len() as f64 / p as f64;
        // Tolerance: the outlier weights are (uᵀv)² ~ χ²₁/P; averaged over 8 vectors their sum
        // stays within 0.01 of its mean 5/P with overwhelming probability.
        assert!(
            (bulk_mass - expected).abs() < 0.01,
            "bulk mass {bulk_mass} vs {expected}"
        );
        // The bulk edge sits at the largest non-spike eigenvalue (MP edge), within 5 %.
        let edge = dense.eigenvalues[p - 1 - spikes.len()];
        assert!(
            (summary.bulk_edge - edge).abs() < 0.05 * edge,
            "bulk edge {} vs {edge}",
            summary.bulk_edge
        );
    }

    /// A known indefinite spectrum: half zeros, a sixth in [−2, −1], a third in [1, 3].
    #[test]
    fn degenerate_and_negative_mass_of_a_known_spectrum() {
        let p = 600;
        let values: Vec<f64> = (0..p)
            .map(|i| match i {
                i if i < 300 => 0.0,
                i if i < 400 => -2.0 + (i - 300) as f64 / 100.0,
                i => 1.0 + 2.0 * (i - 400) as f64 / 200.0,
            })
            .collect();
        let q = orthonormal(p, 5);
        let a = &q * DMatrix::from_diagonal(&DVector::from_vec(values)) * q.transpose();
        let op = DenseOperator::<B>::from_nalgebra(&a, &Default::default()).unwrap();
        let s = spectrum(&op, &config(60, 10)).unwrap();
        // Each vector sees mass χ²-fluctuations of order sqrt(2/P) ≈ 0.06 per group; averaged
        // over 10 vectors ≈ 0.02; tolerance 0.06 (3σ).
        assert!(
            (s.degenerate_mass - 0.5).abs() < 0.06,
            "degenerate mass {}",
            s.degenerate_mass
        );
        // The indefinite rule also takes the second-closest node, here an edge node of the
        // ±1 clusters with weight ≈ 1/m_cluster, which pulls the location off 0 slightly.
        assert!(
            s.degenerate_location.abs() < 0.02,
            "{}",
            s.degenerate_location
        );
        assert!(
            (s.negative_mass - 1.0 / 6.0).abs() < 0.06,
            "negative mass {}",
            s.negative_mass
        );
        assert!(s.negative_count > 0);
        // The extremes sit at the edges of densely packed clusters (spacing 0.01), where 60
        // steps converge to a fraction of the spacing, not to rounding.
        assert!(
            (s.lambda_min + 2.0).abs() < 1e-3 && (s.lambda_max - 2.99).abs() < 1e-3,
            "[{}, {}]",
            s.lambda_min,
            s.lambda_max
        );
        // Trace and Frobenius norm against their exact values −150 + 400 = 250 and the sum of squares.
        let exact_tr = a.trace();
        let exact_fro = a.norm();
        assert!(
            (s.trace - exact_tr).abs() < 4.0 * s.trace_stderr.unwrap() + 1e-9,
            "trace {} ± {:?} vs {exact_tr}",
            s.trace,
            s.trace_stderr
        );
        assert!(
            (s.frobenius - exact_fro).abs() < 0.05 * exact_fro,
            "frobenius {} vs {exact_fro}",
            s.frobenius
        );
        let json: serde_json::Value = serde_json::from_str(&s.to_json().unwrap()).unwrap();
        for key in [
            "num_params",
            "lanczos_steps",
            "ritz_values",
            "ritz_weights",
            "lambda_max",
            "lambda_min",
            "trace",
            "trace_stderr",
            "frobenius",
            "degenerate_mass",
            "negative_mass",
            "negative_count",
            "outliers",
        ] {
            assert!(json.get(key).is_some(), "JSON summary lacks `{key}`");
        }
    }

    #[test]
    fn rank_bound_of_the_papers_example() {
        // Flatness §3.2 quotes 577 600 for VGG-16 on CIFAR-10 (10 classes, 13 416 neurons),
        // which is 4·10·(13 416 + 1 024): the paper counts d_x = 32·32 = 1 024 inputs.
        assert_eq!(feedforward_rank_bound(1_024, &[13_416], 10), 577_600);
        let op = DenseOperator::<B>::from_nalgebra(&DMatrix::identity(4, 4), &Default::default())
            .unwrap();
        let s = spectrum(&op, &SpectrumConfig::new())
            .unwrap()
            .with_rank_bound(1);
        assert_eq!(s.degenerate_mass_bound, Some(0.75));
        assert!(s.to_string().contains("rank bound"));
    }

    #[test]
    fn invalid_configurations_are_rejected() {
        let op = DenseOperator::<B>::from_nalgebra(&DMatrix::identity(3, 3), &Default::default())
            .unwrap();
        assert!(spectrum(&op, &SpectrumConfig::new().with_outlier_gap(0.5)).is_err());
        assert!(
            spectrum(
                &op,
                &SpectrumConfig::new().with_slq(SlqConfig::new().with_num_vectors(0))
            )
            .is_err()
        );
    }
}
