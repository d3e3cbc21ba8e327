//! Spectrum summaries: every statistic of SPEC §2, each labelled with its estimator.

use std::collections::BTreeMap;
use std::fmt;

use burn::config::Config;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::error::{Result as CResult, invalid};
use crate::hutchinson::hutchinson_trace;
use crate::operator::LinearOperator;
use crate::slq::{QuadratureRun, SlqConfig, SpectralDensity, mean_stderr, slq};

/// Whether the operator may have negative eigenvalues; decides the rank-degeneracy rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Definiteness {
    /// Indefinite (the Hessian): combine the two Ritz values closest to 0.
    Indefinite,
    /// Positive semi-definite (the GGN): the single Ritz value closest to 0.
    Psd,
}

/// How the bulk edge and the outliers above it are found in each SLQ run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutlierRule {
    /// Random-matrix rule: fit a Marchenko–Pastur law `MP(σ², q)` to the moments of the
    /// non-negative bulk (`σ² = μ₁`, `q = μ₂/μ₁² − 1`, iterating with the nodes above the edge
    /// removed), bulk edge `λ₊ = σ²(1 + √q)²`; outliers are the Ritz values above
    /// `λ₊ + width`, where `width` is the larger of `tracy_widom` times the Tracy–Widom scale
    /// `σ²(√n + √P)(1/√n + 1/√P)^{1/3}/n` (`n = P/q`; Johnstone 2001) and three standard errors
    /// of the fitted edge (from the sampling error of the moments). A spike of a spiked
    /// covariance is found exactly when it lies above the BBP threshold `1 + √q` (Baik, Ben
    /// Arous & Péché 2005), whose outlier sits at `ℓ(1 + q/(ℓ − 1)) > λ₊`.
    MarchenkoPastur {
        /// Multiple of the Tracy–Widom scale (3: beyond the 0.999 quantile of TW₁).
        tracy_widom: f64,
    },
    /// Gap rule: split the Ritz values into clusters at gaps larger than `factor` × the median
    /// gap; the bulk is the heaviest cluster (apart from the degenerate nodes), outliers are the
    /// Ritz values above it.
    Gap {
        /// Gap factor (> 1; 10 was the library's rule before the RMT one).
        factor: f64,
    },
}

impl OutlierRule {
    /// The rule's description, for the estimator labels.
    pub fn description(&self) -> &'static str {
        match self {
            Self::MarchenkoPastur { .. } => {
                "Ritz values above the Marchenko–Pastur bulk edge fitted to the non-negative bulk's SLQ moments, by more than the Tracy–Widom scale (or the edge's error)"
            }
            Self::Gap { .. } => {
                "Ritz values above the heaviest cluster (clusters split at gaps > factor × median gap)"
            }
        }
    }
}

impl std::str::FromStr for OutlierRule {
    type Err = crate::CurvatureError;
    /// `mp` (Marchenko–Pastur, 3 Tracy–Widom scales) or `gap` (factor 10).
    fn from_str(s: &str) -> CResult<Self> {
        match s {
            "mp" => Ok(Self::default()),
            "gap" => Ok(Self::Gap { factor: 10.0 }),
            other => Err(invalid(
                "outliers",
                other,
                "unknown outlier rule; valid: mp, gap",
            )),
        }
    }
}

impl Default for OutlierRule {
    fn default() -> Self {
        Self::MarchenkoPastur { tracy_widom: 3.0 }
    }
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
    /// How the bulk edge and the outliers are found.
    #[config(default = "OutlierRule::default()")]
    pub outliers: OutlierRule,
    /// The near-zero cluster: Ritz values with `|θ| ≤ zero_tolerance · max|θ|` count as the
    /// degenerate mass (besides the one or two closest to 0, which always do), so that a
    /// degenerate mass split over several nodes is not counted as negative mass (Granziol et
    /// al., *True loss surface*, §5.3: negative Ritz values *well separated* from the
    /// smallest-magnitude ones).
    #[config(default = 1e-3)]
    pub zero_tolerance: f64,
}

impl SpectrumConfig {
    /// Check the configuration.
    ///
    /// # Errors
    /// [`CurvatureError::InvalidConfig`](crate::CurvatureError::InvalidConfig).
    pub fn validate(&self) -> CResult<()> {
        match self.outliers {
            OutlierRule::Gap { factor } if !(factor.is_finite() && factor > 1.0) => {
                return Err(invalid(
                    "outliers.factor",
                    factor,
                    "must be a finite factor > 1",
                ));
            }
            OutlierRule::MarchenkoPastur { tracy_widom }
                if !(tracy_widom.is_finite() && tracy_widom >= 0.0) =>
            {
                return Err(invalid(
                    "outliers.tracy_widom",
                    tracy_widom,
                    "must be a finite multiple ≥ 0",
                ));
            }
            _ => {}
        }
        if !(self.zero_tolerance.is_finite() && (0.0..1.0).contains(&self.zero_tolerance)) {
            return Err(invalid(
                "zero_tolerance",
                self.zero_tolerance,
                "must lie in [0, 1)",
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
    /// `Tr A` by SLQ with the converged Ritz values deflated, `Σ_{k∈C} θ_k + P Σ_{k∉C} ρ_k θ_k`
    /// (mean over vectors; [`SpectralDensity::deflated_power_trace`]).
    pub trace: f64,
    /// Standard error of `trace`: `P sqrt(2(μ'₂ − μ'₁²)/((P + 2) n_v))`, the exact standard
    /// deviation of `vᵀA'v` for `v` uniform on the sphere with the pooled SLQ moments of the
    /// non-deflated rest `A'` — available for one vector as for many ([`sphere_stderr`]).
    pub trace_stderr: f64,
    /// `Tr A` by Hutchinson (Rademacher probes), if requested.
    pub trace_hutchinson: Option<f64>,
    /// Standard error of the Hutchinson estimate.
    pub trace_hutchinson_stderr: Option<f64>,
    /// `Tr A / P`.
    pub mean_eigenvalue: f64,
    /// `‖A‖_F = sqrt(Tr A²)`, `Tr A²` estimated as `trace` with `θ²`.
    pub frobenius: f64,
    /// Standard error of `frobenius`: that of `Tr A²` (as `trace_stderr` with `μ'₂`, `μ'₄`)
    /// carried through the square root (`se(Tr A²) / (2‖A‖_F)`).
    pub frobenius_stderr: f64,
    /// Spectral mass at the origin (rank degeneracy).
    pub degenerate_mass: f64,
    /// Standard error of `degenerate_mass`: the larger of its spread across vectors and the
    /// sampling error `sqrt(2f(1 − f)/((P + 2) n_v))` of a spectral fraction `f`.
    pub degenerate_mass_stderr: f64,
    /// Weighted location of that mass.
    pub degenerate_location: f64,
    /// Weight of negative Ritz values outside the near-zero cluster.
    pub negative_mass: f64,
    /// Standard error of `negative_mass` (as `degenerate_mass_stderr`).
    pub negative_mass_stderr: f64,
    /// Number of negative Ritz values outside the near-zero cluster, over all vectors.
    pub negative_count: usize,
    /// Number of Ritz values above the bulk (median over vectors).
    pub outliers: usize,
    /// Upper edge of the bulk (median over vectors).
    pub bulk_edge: f64,
    /// The rule that produced `outliers` and `bulk_edge`.
    pub outlier_rule: OutlierRule,
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
        let (trace, trace_stderr) = density.deflated_power_trace(1);
        let (tr2, tr2_stderr) = density.deflated_power_trace(2);
        let per_run: Vec<RunStats> = density
            .runs
            .iter()
            .map(|r| run_stats(r, config, density.dim, density.runs.len()))
            .collect();
        let nv = per_run.len() as f64;
        let frobenius = tr2.max(0.0).sqrt();
        let fraction_stderr = |values: Vec<f64>| -> f64 {
            let (f, spread) = mean_stderr(&values);
            sphere_stderr(f, f, density.dim, values.len()).max(spread.unwrap_or(0.0))
        };
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
                "SLQ: summed weight and weighted location of the near-zero cluster — the two Ritz values closest to 0 (Granziol, Flatness is a False Friend, App. D) and every one with |θ| ≤ zero_tolerance·max|θ|"
            }
            Definiteness::Psd => {
                "SLQ: weight of the Ritz value closest to 0 and every one with |θ| ≤ zero_tolerance·max|θ|"
            }
        };
        let estimators = BTreeMap::from([
            ("lambda_max", "largest Ritz value (Lanczos)"),
            ("lambda_min", "smallest Ritz value (Lanczos)"),
            (
                "trace",
                "SLQ with converged Ritz values deflated: Σ_C θ + P·Σ_rest ρθ, mean over vectors",
            ),
            (
                "trace_stderr",
                "P·sqrt(2(μ'₂ − μ'₁²)/((P + 2) n_v)): exact for vectors uniform on the sphere, with the pooled SLQ moments μ' of the non-deflated rest",
            ),
            (
                "frobenius_stderr",
                "se(Tr A²)/(2‖A‖_F), se(Tr A²) as trace_stderr with μ'₂, μ'₄",
            ),
            (
                "mass_stderr",
                "max(spread across vectors, sqrt(2f(1 − f)/((P + 2) n_v))): sampling error only, not the Ritz resolution",
            ),
            ("trace_hutchinson", "Hutchinson: mean of zᵀAz, Rademacher z"),
            ("mean_eigenvalue", "SLQ trace / P"),
            (
                "frobenius",
                "SLQ: sqrt(Σ_C θ² + P·Σ_rest ρθ²), converged Ritz values deflated",
            ),
            ("degenerate_mass", degeneracy_rule),
            (
                "negative_mass",
                "SLQ: weight of negative Ritz values outside the near-zero cluster (Granziol et al., True loss surface, §5.3)",
            ),
            (
                "negative_count",
                "count of negative Ritz values outside the near-zero cluster",
            ),
            ("outliers", config.outliers.description()),
            ("bulk_edge", config.outliers.description()),
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
            frobenius,
            frobenius_stderr: if frobenius > 0.0 {
                tr2_stderr / (2.0 * frobenius)
            } else {
                0.0
            },
            degenerate_mass_stderr: fraction_stderr(
                per_run.iter().map(|s| s.degenerate_mass).collect(),
            ),
            degenerate_mass,
            degenerate_location,
            negative_mass_stderr: fraction_stderr(
                per_run.iter().map(|s| s.negative_mass).collect(),
            ),
            negative_mass: per_run.iter().map(|s| s.negative_mass).sum::<f64>() / nv,
            negative_count: per_run.iter().map(|s| s.negative_count).sum(),
            outliers: outliers[outliers.len() / 2],
            bulk_edge: edges[edges.len() / 2],
            outlier_rule: config.outliers,
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
        writeln!(
            f,
            "  trace            {:>13.6e} ± {:.2e}   SLQ, {}",
            self.trace,
            self.trace_stderr,
            self.vectors_phrase()
        )?;
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
            "  Frobenius norm   {:>13.6e} ± {:.2e}   SLQ sqrt(P Σρθ²)",
            self.frobenius, self.frobenius_stderr
        )?;
        writeln!(
            f,
            "  degenerate mass  {:>13.6} ± {:.2e}   at λ ≈ {:.3e}",
            self.degenerate_mass, self.degenerate_mass_stderr, self.degenerate_location
        )?;
        if let Some(b) = self.degenerate_mass_bound {
            writeln!(
                f,
                "  (rank bound)     {b:>13.6}   minimum mass at 0 implied by the rank bound"
            )?;
        }
        writeln!(
            f,
            "  negative mass    {:>13.6} ± {:.2e}   {} negative Ritz value(s)",
            self.negative_mass, self.negative_mass_stderr, self.negative_count
        )?;
        let rule = match self.outlier_rule {
            OutlierRule::MarchenkoPastur { .. } => "Marchenko–Pastur fit + Tracy–Widom width",
            OutlierRule::Gap { .. } => "gap rule",
        };
        write!(
            f,
            "  outliers         {:>13}   above the bulk edge {:.4e} ({rule})",
            self.outliers, self.bulk_edge
        )
    }
}

impl SpectrumSummary {
    /// "n vectors" with, for one vector, where its error bars come from.
    fn vectors_phrase(&self) -> String {
        if self.num_vectors == 1 {
            "one vector (error bars from its Ritz decomposition)".into()
        } else {
            format!("{} vectors", self.num_vectors)
        }
    }
}

/// The standard error of the mean of `n_v` quadratic forms `vᵀAv` over independent vectors
/// uniform on the unit sphere in `R^P`, given the spectral moments `μ₁ = P⁻¹ Tr A` and
/// `μ₂ = P⁻¹ Tr A²`: `Var(vᵀAv) = 2(μ₂ − μ₁²)/(P + 2)` exactly (from
/// `E[(vᵀAv)²] = ((Tr A)² + 2 Tr A²)/(P(P + 2))`), so
///
/// ```text
/// se = sqrt(2(μ₂ − μ₁²) / ((P + 2) n_v)).
/// ```
///
/// SLQ's quadrature reproduces `vᵀAv` exactly (degree 1) and `vᵀA²v` from two steps on, so with
/// the pooled SLQ moments this is an error bar for a single vector as well as for many. With
/// `A` replaced by `A²` (`μ₂`, `μ₄`) it is the error of the second moment, and with a spectral
/// projector (`μ₁ = μ₂ = f`) that of a spectral fraction.
pub fn sphere_stderr(mu1: f64, mu2: f64, dim: usize, vectors: usize) -> f64 {
    let var = 2.0 * (mu2 - mu1 * mu1).max(0.0) / (dim as f64 + 2.0);
    (var / vectors.max(1) as f64).sqrt()
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

fn run_stats(run: &QuadratureRun, config: &SpectrumConfig, dim: usize, vectors: usize) -> RunStats {
    let m = run.nodes.len();
    // The near-zero cluster: the one or two Ritz values of smallest magnitude, and every node
    // within zero_tolerance of the spectral radius.
    let mut by_mag: Vec<usize> = (0..m).collect();
    by_mag.sort_by(|&a, &b| run.nodes[a].abs().total_cmp(&run.nodes[b].abs()));
    let take = match config.definiteness {
        Definiteness::Indefinite => 2,
        Definiteness::Psd => 1,
    }
    .min(m);
    let radius = run.nodes.iter().fold(0.0f64, |r, t| r.max(t.abs()));
    let band = config.zero_tolerance * radius;
    let degenerate: Vec<usize> = by_mag
        .iter()
        .enumerate()
        .take_while(|&(rank, &k)| rank < take || run.nodes[k].abs() <= band)
        .map(|(_, &k)| k)
        .collect();
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
    let (outliers, bulk_edge) = match config.outliers {
        OutlierRule::Gap { factor } => gap_outliers(run, &degenerate, factor),
        OutlierRule::MarchenkoPastur { tracy_widom } => mp_outliers(run, tracy_widom, dim, vectors),
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

/// Bulk and outliers by gap clustering (nodes are ascending).
fn gap_outliers(run: &QuadratureRun, degenerate: &[usize], factor: f64) -> (usize, f64) {
    let m = run.nodes.len();
    let gaps: Vec<f64> = run.nodes.windows(2).map(|w| w[1] - w[0]).collect();
    if gaps.is_empty() {
        return (0, run.nodes.first().copied().unwrap_or(0.0));
    }
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2].max(f64::MIN_POSITIVE);
    // Clusters as index ranges.
    let mut clusters = vec![(0usize, 0usize)];
    for (k, g) in gaps.iter().enumerate() {
        if *g > factor * median {
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
}

/// A Marchenko–Pastur law `MP(σ², q)` fitted to a bulk: its upper edge and the threshold
/// above which a Ritz value is an outlier.
#[derive(Debug, Clone, Copy)]
struct MpFit {
    edge: f64,
    threshold: f64,
}

/// Fit `MP(σ², q)` to the first two moments `μ₁ = σ²`, `μ₂ = σ⁴(1 + q)` of the nodes in
/// `[0, limit]` (weights renormalised), with the Tracy–Widom width and the edge's own
/// sampling error (moments of a `dim`-dimensional operator from `vectors` quadratures).
fn mp_fit(
    run: &QuadratureRun,
    limit: f64,
    tracy_widom: f64,
    dim: usize,
    vectors: usize,
) -> Option<MpFit> {
    let (mut w, mut m1, mut m2, mut m4) = (0.0, 0.0, 0.0, 0.0);
    for (t, r) in run.nodes.iter().zip(&run.weights) {
        if *t >= 0.0 && *t <= limit {
            w += r;
            m1 += r * t;
            m2 += r * t * t;
            m4 += r * t.powi(4);
        }
    }
    if w <= 0.0 || m1 <= 0.0 {
        return None;
    }
    let (m1, m2, m4) = (m1 / w, m2 / w, m4 / w);
    let edge_of = |m1: f64, m2: f64| -> f64 {
        let q = (m2 / (m1 * m1) - 1.0).max(0.0);
        m1 * (1.0 + q.sqrt()).powi(2)
    };
    let edge = edge_of(m1, m2);
    let q = (m2 / (m1 * m1) - 1.0).max(1e-12);
    let p = dim as f64;
    let n = p / q;
    let tw = m1 * (n.sqrt() + p.sqrt()) * (1.0 / n.sqrt() + 1.0 / p.sqrt()).cbrt() / n;
    // The edge's sampling error: the moments' uniform-sphere errors (over the bulk's share of
    // the dimension), carried through λ₊(μ₁, μ₂) by finite differences.
    let eff = ((w * p).round() as usize).max(1);
    let (se1, se2) = (
        sphere_stderr(m1, m2, eff, vectors),
        sphere_stderr(m2, m4, eff, vectors),
    );
    let h1 = edge_of(m1 + se1, m2) - edge;
    let h2 = edge_of(m1, m2 + se2) - edge;
    let edge_se = (h1 * h1 + h2 * h2).sqrt();
    Some(MpFit {
        edge,
        threshold: edge + (tracy_widom * tw).max(3.0 * edge_se),
    })
}

/// Outliers above a Marchenko–Pastur bulk fitted to the non-negative Ritz values, iterated
/// until the set of bulk nodes is stable. Where the bulk is far from Marchenko–Pastur — a
/// Hessian at zero loss, whose few outliers' `λ²/P` dominate the second moment — the fitted
/// edge rises above them and the rule under-counts; the gap rule is the alternative there.
fn mp_outliers(run: &QuadratureRun, tracy_widom: f64, dim: usize, vectors: usize) -> (usize, f64) {
    let mut limit = f64::INFINITY;
    let mut fit = None;
    for _ in 0..100 {
        let Some(f) = mp_fit(run, limit, tracy_widom, dim, vectors) else {
            break;
        };
        fit = Some(f);
        let bulk = |l: f64| run.nodes.iter().filter(|t| **t >= 0.0 && **t <= l).count();
        if bulk(f.threshold) == bulk(limit) {
            break;
        }
        limit = f.threshold;
    }
    match fit {
        Some(f) => (
            run.nodes.iter().filter(|t| **t > f.threshold).count(),
            f.edge,
        ),
        // No non-negative mass: no bulk to stand out from.
        None => (0, run.nodes.last().copied().unwrap_or(0.0)),
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

    /// `Q diag(values) Qᵀ` with a random orthonormal `Q`, and its operator.
    fn rotated(values: Vec<f64>, seed: u64) -> (DMatrix<f64>, DenseOperator<B>) {
        let q = orthonormal(values.len(), seed);
        let a = &q * DMatrix::from_diagonal(&DVector::from_vec(values)) * q.transpose();
        let op = DenseOperator::<B>::from_nalgebra(&a, &Default::default()).unwrap();
        (a, op)
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
        // Bulk mass: all weight below the spikes (≥ 10; the bulk ends near 2.9); each outlier
        // carries ≈ 1/P. (The fitted MP edge `bulk_edge` may sit a Tracy–Widom scale below the
        // largest bulk eigenvalue, so it does not split the nodes here.)
        let bulk_mass: f64 = summary
            .ritz_values
            .iter()
            .zip(&summary.ritz_weights)
            .filter(|(t, _)| **t < 5.0)
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
        let (a, op) = rotated(values, 5);
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
            (s.trace - exact_tr).abs() < 4.0 * s.trace_stderr + 1e-9,
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

    /// Spiked covariance (Baik, Ben Arous & Péché 2005): rows of `X` (n × p) drawn from
    /// `N(0, Σ)` with `Σ = I + Σ_k (ℓ_k − 1) u_k u_kᵀ`, `W = XᵀX/n`, `q = p/n = ½`. A spike
    /// separates from the Marchenko–Pastur bulk `[0.086, 2.914]` exactly when `ℓ > 1 + √q =
    /// 1.707`, at `ℓ(1 + q/(ℓ − 1))`: here `ℓ = 3, 5` (outliers at 3.75 and 5.63) are above the
    /// threshold and `ℓ = 1.3, 1.5` below it (they stick to the edge). The RMT rule finds two
    /// outliers; the dense eigenvalues confirm where they are (independent of the rule).
    #[test]
    fn marchenko_pastur_rule_finds_spikes_above_the_bbp_threshold_only() {
        let (p, n) = (400, 800);
        let u = orthonormal(p, 12);
        let spikes: [f64; 4] = [3.0, 5.0, 1.3, 1.5];
        let mut sigma_half = DMatrix::<f64>::identity(p, p);
        for (k, l) in spikes.iter().enumerate() {
            let uk = u.column(k);
            sigma_half += (l.sqrt() - 1.0) * uk * uk.transpose();
        }
        let x = gaussian(n, p, 13) * &sigma_half;
        let w = x.transpose() * &x / n as f64;
        let dense = dense_spectrum(&w);
        let q: f64 = 0.5;
        let edge = (1.0 + q.sqrt()).powi(2);
        // The dense spectrum: two eigenvalues well above the edge, the third at the edge.
        let top = |k: usize| dense.eigenvalues[p - 1 - k];
        assert!(
            top(0) > 5.0 && top(1) > 3.4 && top(2) < edge + 0.15,
            "{:?}",
            (top(0), top(1), top(2))
        );
        let op = DenseOperator::<B>::from_nalgebra(&w, &Default::default()).unwrap();
        let s = spectrum(&op, &config(80, 4)).unwrap();
        assert_eq!(s.outlier_rule, OutlierRule::default());
        assert_eq!(
            s.outliers,
            2,
            "spikes above BBP only; Ritz values {:?}, edge {}",
            &s.ritz_values[s.ritz_values.len() - 6..],
            s.bulk_edge
        );
        assert!(
            (s.bulk_edge - edge).abs() < 0.1 * edge,
            "fitted edge {} vs {edge}",
            s.bulk_edge
        );
        // Below the threshold only: no outliers.
        let mut sub = DMatrix::<f64>::identity(p, p);
        for k in 0..2 {
            let uk = u.column(k);
            sub += (1.4f64.sqrt() - 1.0) * uk * uk.transpose();
        }
        let x = gaussian(n, p, 14) * &sub;
        let w = x.transpose() * &x / n as f64;
        let op = DenseOperator::<B>::from_nalgebra(&w, &Default::default()).unwrap();
        let s = spectrum(&op, &config(80, 4)).unwrap();
        assert_eq!(
            s.outliers, 0,
            "ℓ = 1.4 < 1.707: no outliers; edge {}",
            s.bulk_edge
        );
        // The gap rule is still available and labelled.
        let gap = spectrum(
            &op,
            &config(80, 4).with_outliers(OutlierRule::Gap { factor: 10.0 }),
        )
        .unwrap();
        assert!(gap.to_string().contains("gap rule"));
    }

    /// A degenerate mass split over several Ritz values: half the eigenvalues spread over
    /// `[−2e-3, 2e-3]`, a sixth in `[−2, −1]`, a third in `[1, 3]`. The near-zero cluster takes
    /// all nodes in `±zero_tolerance·max|θ| = ±3e-3`, so none of the split mass is counted as
    /// negative; with only the two nearest nodes it would be.
    #[test]
    fn a_degenerate_mass_split_over_several_nodes_is_not_negative_mass() {
        let p = 600;
        let values: Vec<f64> = (0..p)
            .map(|i| match i {
                i if i < 300 => -2e-3 + 4e-3 * i as f64 / 299.0,
                i if i < 400 => -2.0 + (i - 300) as f64 / 100.0,
                i => 1.0 + 2.0 * (i - 400) as f64 / 200.0,
            })
            .collect();
        let (_, op) = rotated(values, 15);
        let s = spectrum(&op, &config(100, 4)).unwrap();
        let near_zero = s.ritz_values.iter().filter(|t| t.abs() <= 3e-3).count();
        assert!(
            near_zero >= 3 * 4,
            "the mass must be split: {near_zero} nodes near 0 over 4 runs"
        );
        assert!(
            (s.degenerate_mass - 0.5).abs() < 4.0 * s.degenerate_mass_stderr + 0.02,
            "{}",
            s.degenerate_mass
        );
        assert!(
            (s.negative_mass - 1.0 / 6.0).abs() < 4.0 * s.negative_mass_stderr + 0.02,
            "negative mass {} ± {}",
            s.negative_mass,
            s.negative_mass_stderr
        );
        // The old rule (two nearest nodes only) counts part of the split mass as negative.
        let old = spectrum(&op, &config(100, 4).with_zero_tolerance(0.0)).unwrap();
        assert!(
            old.negative_mass > s.negative_mass + 0.05,
            "{} vs {}",
            old.negative_mass,
            s.negative_mass
        );
    }

    /// The default configuration's error bars are honest: over 100 seeds the trace and the
    /// Frobenius norm fall within one printed standard error of the exact values (dense `Tr A`,
    /// `‖A‖_F`) about 68 % of the time and within three nearly always. The operator has a
    /// Hessian-like spectrum: 90 % near zero, a bulk, three large outliers.
    #[test]
    fn default_error_bars_cover_the_exact_trace_and_frobenius_norm() {
        let p = 300;
        let values: Vec<f64> = (0..p)
            .map(|i| match i {
                i if i < 270 => 1e-3 * ((i % 7) as f64 - 3.0),
                i if i < 297 => 0.5 + (i - 270) as f64 / 27.0,
                i => 20.0 * (i - 296) as f64,
            })
            .collect();
        let (_, op) = rotated(values.clone(), 16);
        let exact_tr: f64 = values.iter().sum();
        let exact_fro = values.iter().map(|v| v * v).sum::<f64>().sqrt();
        let (mut tr1, mut tr3, mut fr1, mut fr3) = (0, 0, 0, 0);
        let seeds = 100;
        for seed in 0..seeds {
            let mut c = SpectrumConfig::new();
            c.slq.lanczos = c.slq.lanczos.clone().with_steps(20).with_seed(seed);
            assert_eq!(c.slq.num_vectors, 4, "four vectors by default");
            let s = spectrum(&op, &c).unwrap();
            let (zt, zf) = (
                (s.trace - exact_tr).abs() / s.trace_stderr,
                (s.frobenius - exact_fro).abs() / s.frobenius_stderr,
            );
            tr1 += usize::from(zt <= 1.0);
            tr3 += usize::from(zt <= 3.0);
            fr1 += usize::from(zf <= 1.0);
            fr3 += usize::from(zf <= 3.0);
        }
        eprintln!("within 1 / 3 standard errors: trace {tr1} / {tr3}, Frobenius {fr1} / {fr3}");
        // Binomial(100, 0.68): 68 ± 4.7; accept 50..=85. Within 3 σ: ≥ 95 of 100.
        for (what, one, three) in [("trace", tr1, tr3), ("Frobenius", fr1, fr3)] {
            assert!(
                (50..=85).contains(&one),
                "{what}: {one}/100 within one standard error"
            );
            assert!(
                three >= 95,
                "{what}: {three}/100 within three standard errors"
            );
        }
        // One vector also carries an error bar, from its own Ritz decomposition.
        let mut c = SpectrumConfig::new();
        c.slq.num_vectors = 1;
        let s = spectrum(&op, &c).unwrap();
        assert!(s.trace_stderr > 0.0 && s.to_string().contains("one vector (error bars"));
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
        assert!(
            spectrum(
                &op,
                &SpectrumConfig::new().with_outliers(OutlierRule::Gap { factor: 0.5 })
            )
            .is_err()
        );
        assert!(spectrum(&op, &SpectrumConfig::new().with_zero_tolerance(1.0)).is_err());
        assert!(
            spectrum(
                &op,
                &SpectrumConfig::new().with_slq(SlqConfig::new().with_num_vectors(0))
            )
            .is_err()
        );
    }
}
